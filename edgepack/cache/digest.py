"""Content digests for cache keys: files and folders by their bytes, settings by canonical JSON.

A digest never depends on where a file lives or when it was written: a folder's digest covers the
relative path, the kind and the bytes of every entry, in sorted order, and nothing else (no mtimes,
no owners, no absolute paths).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..files import file_sha256


def tree_digest(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's sorted (relative path, bytes) pairs.
    Symlinks count as the file they point to, as every reader of the folder would see it."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256(b"edgepack-tree-v1\0")
    entries = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in files:
            full = Path(root) / name
            entries.append((full.relative_to(path).as_posix(), full))
    for rel, full in sorted(entries):
        h.update(rel.encode() + b"\0" + file_sha256(full).encode() + b"\0")
    return h.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal settings give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)


def settings_digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
