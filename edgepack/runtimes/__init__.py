"""Runtime plug-ins: each registered with @register_runtime on import."""
from .._plugins import PluginModules

PLUGINS = PluginModules("edgepack.runtimes.ort", "edgepack.runtimes.litert", "edgepack.runtimes.coreml_emulator")
