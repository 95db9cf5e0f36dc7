"""edgepack's content-addressed cell cache (issue #13): keys.py says what a key is made of,
store.py where entries live (a folder or an fsspec URL) and how they are written atomically and
checked, codec.py how results become JSON (never pickle), cells.py what the pipeline calls."""
from .cells import CellCache, default_location, resolve_location

__all__ = ["CellCache", "default_location", "resolve_location"]
