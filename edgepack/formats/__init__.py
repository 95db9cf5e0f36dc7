"""Format plug-ins. Each module registers itself with @register_format on import."""
from .._plugins import PluginModules

PLUGINS = PluginModules("edgepack.formats.ort_mobile", "edgepack.formats.tflite", "edgepack.formats.coreml")
