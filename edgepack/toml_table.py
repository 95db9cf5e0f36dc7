"""A TOML table read strictly (every key taken, typed and known), and the checks on its values that
every profile key shares: ConfigErrors that name the file, the key and the fix."""
from __future__ import annotations

import errno
import math
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Table:
    """A TOML table read strictly: every key must be taken, typed and known."""

    def __init__(self, data: dict[str, Any], where: str, file: Path, allowed: tuple[str, ...]):
        self.data, self.where, self.file = data, where, file
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ConfigError(
                f"{file}: unknown key '{self._key(unknown[0])}'; allowed keys in {where or 'the top level'} are: {', '.join(allowed)}"
            )

    def _key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = None, *, required: bool = False, choices=None):
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.file}: missing required key '{self._key(key)}'")
            return default
        value = self.data[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{self.file}: key '{self._key(key)}' must be {names}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.file}: key '{self._key(key)}' must be a finite number, got {value!r}")
        if choices is not None:
            for item in value if isinstance(value, list) else [value]:
                if item not in choices:
                    raise ConfigError(f"{self.file}: key '{self._key(key)}' has {item!r}; choose from: {', '.join(map(str, choices))}")
        return value

    def table(self, key: str, allowed: tuple[str, ...]) -> _Table:
        sub = self.get(key, dict, {})
        return _Table(sub, self._key(key), self.file, allowed)


def _positive(file: Path, key: str, value, *, allow_zero: bool = False, most=None):
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise ConfigError(f"{file}: key '{key}' must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    if value is not None and most is not None and value > most:
        low = 0 if allow_zero else 1
        raise ConfigError(f"{file}: key '{key}' is {value!r}; it must be {low}..{most:,} (the documented maximum)")
    return value


def _os_text(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied; make it readable"
    if exc.errno == errno.ENAMETOOLONG:
        return "path too long; use a shorter path"
    if exc.errno == errno.EISDIR:
        return "it is a folder; give a .toml file"
    return str(exc.strerror or exc)


def _single_line(file: Path, key: str, value: str) -> str:
    if _CONTROL.search(value):
        raise ConfigError(f"{file}: key '{key}' must be a single line of text (no newlines, tabs or control characters), got {value!r}")
    return value
