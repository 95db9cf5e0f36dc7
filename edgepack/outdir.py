"""The output folder is written whole or not at all: build in a staging folder beside it,
then swap it into place. A failed build removes the staging folder and any parents it made."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError

class StagedOutput:
    def __init__(self, out: Path, marker: str = "report.json", option: str = "--out"):
        """`marker`: a file whose presence shows an existing folder is a previous edgepack output;
        `option`: how error messages name the folder."""
        self.out = Path(out).absolute()
        self.marker = marker
        self.option = option
        self.staging: Path | None = None
        self._made_parents: list[Path] = []

    def __enter__(self) -> Path:
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: {self.option} exists and is a file; choose a folder path")
        if out.is_dir() and any(out.iterdir()) and not (out / self.marker).is_file():
            raise ConfigError(f"{out}: {self.option} is a non-empty folder that edgepack did not write; choose a new or empty folder")
        parent = out.absolute().parent
        try:
            missing = []
            p = parent
            while not p.exists():
                missing.append(p)
                p = p.parent
            for d in reversed(missing):
                d.mkdir()
                self._made_parents.append(d)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
            umask = os.umask(0)
            os.umask(umask)
            self.staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the result is an ordinary folder
        except OSError as exc:
            self._remove_parents()
            raise ConfigError(f"{out}: cannot write the output folder ({exc.strerror or exc}); choose a writable {self.option}") from None
        return self.staging

    def commit(self) -> None:
        assert self.staging is not None
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.staging, self.out)
        self.staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self._remove_parents()

    def _remove_parents(self) -> None:
        for d in reversed(self._made_parents):
            try:
                d.rmdir()
            except OSError:
                break
        self._made_parents.clear()
