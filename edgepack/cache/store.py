"""Where cache entries live: a local folder, or any fsspec URL (a shared folder, s3://bucket/prefix).

An entry is a set of files plus `entry.json`, which lists every file with its sha256 and size and
carries the caller's metadata. Layout, under the cache root:

    v1/<key[:2]>/<key>/entry.json
    v1/<key[:2]>/<key>/<nonce>/<relative path of each file>

Writes are atomic for readers: the files go up first, under a fresh nonce, and `entry.json`, which
names that nonce, is written last (to a temporary name, then moved into place). A reader that finds
no entry.json sees a miss; one whose files do not match the digests in entry.json (a partial upload,
a corrupted disk, a concurrent writer of other bytes) sees a corrupt entry, which is removed and
rebuilt, never used.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, require
from ..files import file_sha256

LAYOUT = "v1"
ENTRY = "entry.json"


@dataclass
class Fetched:
    """A cache hit, copied to a local folder: `root` holds the entry's files at their relative paths."""

    root: Path
    files: dict[str, dict[str, Any]]
    meta: dict[str, Any]


class Corrupt(Exception):
    """An entry whose files do not match its entry.json."""


class _LocalFS:
    def __init__(self, root: str):
        self.root = root

    def join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def put(self, local: Path, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, path)

    def get(self, path: str, local: Path) -> None:
        shutil.copyfile(path, local)

    def remove(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def list_dirs(self, path: str) -> list[str]:
        try:
            return [e.path for e in os.scandir(path) if e.is_dir()]
        except FileNotFoundError:
            return []


class _RemoteFS:
    """Any fsspec filesystem (s3://, gs://, memory://, file://...)."""

    def __init__(self, url: str):
        require("fsspec", "cache", f"A remote cache ({url})")
        import fsspec

        try:
            # a fresh client per build: fsspec's instance cache would keep one made for another endpoint
            self.fs, self.root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"--cache {url}: {str(exc).splitlines()[0]} (for s3:// install s3fs: pip install 'edgepack[cache]')") from exc
        self.root = self.root.rstrip("/")

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = f"{path}.tmp-{secrets.token_hex(6)}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)

    def put(self, local: Path, path: str) -> None:
        self.fs.put_file(str(local), path)

    def get(self, path: str, local: Path) -> None:
        self.fs.get_file(path, str(local))

    def remove(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def list_dirs(self, path: str) -> list[str]:
        try:
            return [e["name"] for e in self.fs.ls(path, detail=True) if e["type"] == "directory"]
        except FileNotFoundError:
            return []


class Store:
    """A cache location. `location` is a local path or an fsspec URL ("s3://bucket/prefix")."""

    def __init__(self, location: str | Path):
        location = str(location)
        self.location = location
        remote = "://" in location and not location.startswith("file://")
        self.fs = _RemoteFS(location) if remote else _LocalFS(location.removeprefix("file://"))

    def _dir(self, key: str) -> str:
        return self.fs.join(LAYOUT, key[:2], key)

    def has(self, key: str) -> bool:
        """Whether a committed entry exists (its files are checked only by get)."""
        return self.fs.read(self.fs.join(LAYOUT, key[:2], key, ENTRY)) is not None

    def get(self, key: str, into: Path) -> Fetched | None:
        """Copy the entry's files into `into`; None on a miss. Raises Corrupt (after removing the
        entry) when a file is missing or does not match its digest."""
        raw = self.fs.read(self.fs.join(LAYOUT, key[:2], key, ENTRY))
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            nonce, files, meta = entry["nonce"], entry["files"], entry["meta"]
            if entry.get("key") != key or not isinstance(files, dict):
                raise ValueError("entry.json names another key")
        except (ValueError, KeyError, TypeError) as exc:
            self.fs.remove(self._dir(key))
            raise Corrupt(f"unreadable entry.json ({exc})") from exc
        into.mkdir(parents=True, exist_ok=True)
        for rel, info in sorted(files.items()):
            if rel.startswith("/") or ".." in Path(rel).parts:
                self.fs.remove(self._dir(key))
                raise Corrupt(f"entry names a file outside itself: {rel!r}")
            local = into / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get(self.fs.join(LAYOUT, key[:2], key, nonce, rel), local)
            except (FileNotFoundError, OSError) as exc:
                self.fs.remove(self._dir(key))
                raise Corrupt(f"{rel} is missing ({exc.__class__.__name__})") from exc
            if local.stat().st_size != info.get("size") or file_sha256(local) != info.get("sha256"):
                self.fs.remove(self._dir(key))
                raise Corrupt(f"{rel} does not match its digest")
        return Fetched(into, files, meta)

    def put(self, key: str, root: Path, files: list[str], meta: dict[str, Any]) -> None:
        """Store the files (paths relative to `root`) and the metadata under `key`."""
        nonce = secrets.token_hex(8)
        listed = {}
        for rel in sorted(files):
            local = root / rel
            listed[rel] = {"sha256": file_sha256(local), "size": local.stat().st_size}
            self.fs.put(local, self.fs.join(LAYOUT, key[:2], key, nonce, rel))
        entry = {"key": key, "nonce": nonce, "files": listed, "meta": meta}
        self.fs.write_atomic(self.fs.join(LAYOUT, key[:2], key, ENTRY), json.dumps(entry, sort_keys=True).encode())
        # older nonces of this key (an earlier write) are garbage now
        for d in self.fs.list_dirs(self._dir(key)):
            if d.rstrip("/").rsplit("/", 1)[-1] != nonce:
                self.fs.remove(d)
