"""The cell cache: a finished cell (its artifact files and its validation results) stored under its
key (keys.py) and restored on the next build that asks for the same cell.

Only cells that built and validated are stored; a failed cell is always tried again. A hit restores
the files into the build's staging folder and the ArtifactResult as it was measured, marked with
`cache = {"hit": True, "key": ...}` so the reports can say which cells were reused.

A build whose every cell is cached need not load the model at all: `model_info` stores what the
reports need from it (its description, its input and output specs, the static shapes resolved), under
a key of the model's and the calibration set's content.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..types import ArtifactResult, TensorSpec
from .codec import decode, encode
from .digest import tree_digest
from .keys import cell_key, model_digest, model_key
from .store import Corrupt, Store


def default_location() -> Path:
    """$EDGEPACK_CACHE, else $XDG_CACHE_HOME/edgepack/cells, else ~/.cache/edgepack/cells."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepack" / "cells"


def resolve_location(option: str | Path | None, enabled: bool = True) -> str | None:
    """The cache location a build uses: --no-cache (enabled=False) or EDGEPACK_CACHE=off turns it off;
    --cache PATH|URL, then $EDGEPACK_CACHE, then the user's cache folder."""
    if not enabled:
        return None
    if option is not None:
        return str(option)
    env = os.environ.get("EDGEPACK_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none", "no") else env
    return str(default_location())


@dataclass
class ModelInfo:
    """What a fully cached build needs from the model without loading it."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    shapes: dict[str, tuple[int, ...]]
    describe: dict[str, Any]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    corrupt: list[str] = field(default_factory=list)  # "<key>: why", rebuilt
    errors: list[str] = field(default_factory=list)  # writes that failed (the build goes on without them)

    def to_json(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "stored": self.stored, "corrupt": list(self.corrupt), "errors": list(self.errors)}


class CellCache:
    def __init__(self, store: Store, base: dict[str, Any], work: Path | None = None):
        self.store = store
        self.base = base  # model, calibration, shape overrides, options: see keys.py
        self.work = work  # where fetched entries land before they move into the build (default: the temp folder)
        self.stats = CacheStats()
        self.shapes: dict[str, tuple[int, ...]] = {}

    @classmethod
    def open(cls, location: str | None, *, model: str, calibration: str | Path, overrides: dict, options: dict, work: Path | None = None) -> CellCache | None:
        """None when caching is off or the model's content cannot be digested without running it."""
        if location is None:
            return None
        digest = model_digest(str(model))
        if digest is None:
            return None
        base = {
            "model": digest,
            "calibration": tree_digest(Path(calibration)),
            "shape_overrides": {k: list(v) for k, v in sorted(overrides.items())},
            "options": options,
        }
        made = cls(Store(location), base, work)
        made.model_spec = str(model)
        return made

    @property
    def location(self) -> str:
        return self.store.location

    # -- the model description --------------------------------------------------------------
    def model_info(self) -> ModelInfo | None:
        try:
            got = self._fetch(model_key(self.base))
        except Corrupt as exc:
            self.stats.corrupt.append(f"model info: {exc}")
            return None
        if got is None:
            return None
        meta = got[1]
        try:
            info = decode(ModelInfo, meta["model_info"])
        except (KeyError, TypeError, ValueError):
            return None
        self.shapes = dict(info.shapes)
        return info

    def save_model_info(self, inputs, outputs, shapes, describe) -> None:
        self.shapes = dict(shapes)
        info = ModelInfo(tuple(inputs), tuple(outputs), {k: tuple(v) for k, v in shapes.items()}, describe)
        self._put(model_key(self.base), None, [], {"model_info": encode(info)})

    # -- cells --------------------------------------------------------------------------------
    def key(self, profile, fmt: str, precision: str, split: tuple[list[int], list[int]]) -> str:
        base = {**self.base, "shapes": {k: list(v) for k, v in sorted(self.shapes.items())}}
        return cell_key(base, profile.to_json(), fmt, precision, split)

    def load(self, key: str, staging: Path) -> list[ArtifactResult] | None:
        """The cell's results with their files restored under `staging`; None on a miss (a corrupt
        entry counts as a miss, is removed, and is listed in stats.corrupt)."""
        try:
            got = self._fetch(key)
        except Corrupt as exc:
            self.stats.corrupt.append(f"{key[:16]}: {exc}")
            self.stats.misses += 1
            return None
        if got is None:
            self.stats.misses += 1
            return None
        folder, meta = got
        try:
            results = [decode(ArtifactResult, r) for r in meta["results"]]
        except (KeyError, TypeError, ValueError) as exc:
            self.stats.corrupt.append(f"{key[:16]}: undecodable results ({exc.__class__.__name__})")
            self.stats.misses += 1
            return None
        for rel in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()):
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder / rel), dest)
        shutil.rmtree(folder, ignore_errors=True)
        for r in results:
            r.artifact.path = staging / r.file
            r.artifact.extra_files = [staging / f for f in r.extra_files]
            r.cache = {"hit": True, "key": key}
        self.stats.hits += 1
        return results

    def save(self, key: str, results: list[ArtifactResult], staging: Path) -> None:
        files: list[str] = []
        for r in results:
            for rel in (r.file, *r.extra_files):
                p = staging / rel
                if p.is_dir():
                    files += [q.relative_to(staging).as_posix() for q in sorted(p.rglob("*")) if q.is_file()]
                elif p.is_file():
                    files.append(Path(rel).as_posix())
        encoded = []
        for r in results:
            e = encode(r)
            e["artifact"]["path"], e["artifact"]["extra_files"] = r.file, list(r.extra_files)
            e.pop("cache", None)
            encoded.append(e)
        if self._put(key, staging, files, {"results": encoded}):
            self.stats.stored += 1
        for r in results:
            r.cache = {"hit": False, "key": key}

    # -- plumbing -------------------------------------------------------------------------------
    def _fetch(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        if self.work is not None:
            self.work.mkdir(parents=True, exist_ok=True)
        into = Path(tempfile.mkdtemp(prefix="edgepack-cache-", dir=self.work))
        try:
            got = self.store.get(key, into)
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
        if got is None:
            shutil.rmtree(into, ignore_errors=True)
            return None
        return into, got.meta

    def _put(self, key: str, root: Path | None, files: list[str], meta: dict[str, Any]) -> bool:
        """Store an entry; a failed write (full disk, unreachable server) is recorded, never raised:
        the build's own results do not depend on the cache."""
        try:
            self.store.put(key, root or Path(tempfile.gettempdir()), files, meta)
            return True
        except Exception as exc:  # noqa: BLE001 - any store error; the message says which
            self.stats.errors.append(f"{self.location}: writing {key[:16]} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return False
