"""Build results as plain JSON and back, for cache entries: no pickle, ever.

A shared cache is written by other machines, so what it holds must be data, not code: every value is
encoded from the dataclasses of edgepack.types by their declared field types, and decoded the same
way. Unknown fields are ignored and missing ones take their defaults, so an entry written by a
version with more or fewer fields still decodes (the key holds edgepack's version anyway).
Non-finite floats are tagged, since JSON has none.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

_FLOAT_TAGS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return encode(value.item())
    return value


def decode(tp: Any, data: Any) -> Any:
    """The value of type `tp` (a dataclass, or a typing annotation) that `encode` gave `data` for."""
    if isinstance(data, dict) and set(data) == {"__float__"}:
        return _FLOAT_TAGS[data["__float__"]]
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for option in options:  # the first that fits
            try:
                return decode(option, data)
            except (TypeError, ValueError, KeyError):
                continue
        return data
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise TypeError(f"{tp.__name__} needs an object")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = decode(hints[f.name], data[f.name])
        return tp(**kwargs)
    if tp is Path:
        return Path(data)
    if tp is Any or tp is object:
        return data
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        return tuple(decode(a, v) for a, v in zip(args, data))
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return [decode(arg, v) for v in data]
    if origin is dict:
        args = typing.get_args(tp) or (str, Any)
        return {k: decode(args[1], v) for k, v in data.items()}
    if tp is float:
        if not isinstance(data, (int, float)) or isinstance(data, bool):
            raise TypeError("not a number")
        return float(data)
    if tp in (int, str, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise TypeError(f"not a {tp.__name__}")
        return data
    return data
