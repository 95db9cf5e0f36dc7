"""Import plug-in modules once, on first use, so that `edgepack --help` stays light."""
from __future__ import annotations

import importlib


class PluginModules:
    def __init__(self, *modules: str):
        self.modules = modules
        self._loaded = False

    def load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self.modules:
                importlib.import_module(mod)
