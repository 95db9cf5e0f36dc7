"""Size and digest of an artifact, which may be a file or a folder (.mlpackage)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes, read in 1 MiB chunks (edgepack's one copy of this)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_size(path: Path) -> int:
    return sum(p.stat().st_size for p in _files(path))


def artifact_sha256(path: Path) -> str:
    """sha256 of a file; for a folder, over each file's relative path and contents, in sorted order."""
    h = hashlib.sha256()
    for p in _files(path):
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
