"""Source plug-ins: model readers, each registered with @register_source on import."""
from .._plugins import PluginModules

PLUGINS = PluginModules("edgepack.sources.torch_source", "edgepack.sources.onnx_source", "edgepack.sources.keras_source")
