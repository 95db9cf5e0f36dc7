"""The output folder is written whole or not at all, and edgepack never deletes what it did not write.

A build writes into a staging folder beside --out (`.NAME.partial-*`), then swaps it into place.
The finished folder carries a signed marker (outmarker.py) listing every file edgepack wrote.
  - An existing --out may be replaced only if it is empty or its marker verifies; any other
    non-empty folder is refused, unless `force`, and then its whole old content is moved aside
    to `NAME.kept-<time>/` beside it.
  - At commit, every file of the old output that the marker does not list, or whose content
    changed since (including files that appeared during the build), is kept: moved into the new
    output at the same path if that is free, else aside to `NAME.kept-<time>/`. commit() returns
    one message per such move. Only files whose sha256 matches the marker are deleted.
  - A failed or interrupted build removes its staging folder and any parents it made; a killed
    one leaves it, with an owner file (workdirs.py), and the next run removes it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import stat
from pathlib import Path

from .errors import ConfigError
from .outmarker import MARKER, Marker, file_sha256, read_marker, write_marker
from .workdirs import OWNER_FILE, is_stale, make_owned, remove_owner, remove_stale

REPORT_FILES = ("report.json", "report.md", "report.html", "manifest.json")
# Names edgepack itself writes at the top of an output folder: a target (profile) name must not be one.
RESERVED_NAMES = frozenset({*REPORT_FILES, MARKER, OWNER_FILE})

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_NAME_MAX = 255  # bytes in one path component, on the usual file systems
_PREVIOUS = "previous"  # the old output, inside an owned holder folder, while it is disposed of


def translate_os_error(exc: OSError, folder: Path, what: str, only_if_inside: bool = False) -> ConfigError | None:
    """A ConfigError for disk full / permission denied while writing `folder`, or None for other
    errors (and, with `only_if_inside`, for errors about a file elsewhere)."""
    if exc.errno in _FULL:
        kind, fix = "disk full", "free some space, or choose a folder on another disk"
    elif exc.errno in _DENIED:
        kind = "permission denied" + (" (read-only file system)" if exc.errno == errno.EROFS else "")
        fix = "choose a folder you can write to"
    else:
        return None
    if only_if_inside:
        name = exc.filename2 or exc.filename  # a failed copy names its source first, then its destination
        if name is None:  # a failed write() names no file: blame this folder only if its disk is full
            with contextlib.suppress(OSError):
                if exc.errno in _FULL and shutil.disk_usage(folder).free < (1 << 20):
                    return ConfigError(f"{folder}: {kind} while writing {what}; {fix}")
            return None
        try:
            Path(os.fsdecode(name)).absolute().relative_to(folder)
        except ValueError:
            return None
    return ConfigError(f"{folder}: {kind} while writing {what}; {fix}")


class StagedOutput:
    def __init__(self, out: Path, option: str = "--out", force: bool = False, marker: str | None = None):
        """`option`: how error messages name the folder; `force`: replace a folder edgepack did not
        write (its content is moved aside, never deleted). `marker` is ignored (it used to name a
        file whose mere presence allowed replacing the folder)."""
        out = Path(out).absolute()
        try:
            self.out = out.resolve() if out.is_symlink() else out
        except OSError:  # e.g. a name too long: __enter__ says so
            self.out = out
        self.option = option
        self.force = force
        self.staging: Path | None = None
        self.messages: list[str] = []
        self._made_parents: list[Path] = []
        self._kept: Path | None = None

    # -- entering: check the folder, clean up after killed runs, make the staging folder

    def _foreign(self) -> bool:
        """True if --out is a non-empty folder without a valid marker."""
        out = self.out
        try:
            return out.is_dir() and any(out.iterdir()) and read_marker(out) is None
        except OSError as exc:
            raise self._error(exc) from None

    def _refuse(self, during: str = "") -> ConfigError:
        return ConfigError(
            f"{self.out}: {self.option} is a non-empty folder that edgepack did not write (no valid {MARKER}){during}; "
            f"choose a new or empty folder, or use --force to replace it (its content is moved aside, not deleted)"
        )

    def _error(self, exc: OSError) -> ConfigError:
        if exc.errno == errno.ENAMETOOLONG:
            return ConfigError(f"{self.out}: the path of {self.option} is too long for the file system; choose a shorter path")
        err = translate_os_error(exc, self.out, f"the output folder {self.option}")
        return err or ConfigError(
            f"{self.out}: cannot write the output folder ({exc.strerror or exc}); choose a writable {self.option}"
        )

    def check(self) -> None:
        """Refuse now, before any slow work, a folder that __enter__ would refuse."""
        out = self.out
        longest = _NAME_MAX - len(".kept-YYYYmmdd-HHMMSS-NN")  # the longest name edgepack makes from out's
        if len(os.fsencode(out.name)) > longest:
            raise ConfigError(
                f"{out}: the folder name of {self.option} is too long ({len(os.fsencode(out.name))} bytes; edgepack "
                f"adds a suffix to it for staging, so at most {longest}); choose a shorter name"
            )
        try:
            if out.exists() and not out.is_dir():
                raise ConfigError(f"{out}: {self.option} exists and is a file; choose a folder path")
        except OSError as exc:
            raise self._error(exc) from None
        if self._foreign() and not self.force:
            raise self._refuse()

    def __enter__(self) -> Path:
        out = self.out
        self.check()
        parent = out.parent
        try:
            if parent.is_dir():
                restored = self._recover_stale()
                self.messages += restored
                if restored:
                    self.check()  # an output put back by the recovery is checked like any other
        except OSError as exc:
            raise self._error(exc) from None
        try:
            missing = []
            p = parent
            while not p.exists():
                missing.append(p)
                p = p.parent
            for d in reversed(missing):
                d.mkdir()
                self._made_parents.append(d)
            self.staging = make_owned(f".{out.name}.partial-", parent)
            umask = os.umask(0)
            os.umask(umask)
            self.staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the result is an ordinary folder
        except OSError as exc:
            self._remove_parents()
            raise self._error(exc) from None
        return self.staging

    def _recover_stale(self) -> list[str]:
        """Remove staging folders of killed runs; finish the swaps that a killed run began."""
        parent, name = self.out.parent, self.out.name
        remove_stale(parent, f".{name}.partial-")
        messages = []
        for holder in sorted(parent.glob(f".{name}.old-*")):
            if not is_stale(holder):
                continue
            previous = holder / _PREVIOUS
            if previous.is_dir() and not os.path.lexists(self.out):
                os.replace(previous, self.out)  # killed between the two renames: put the old output back
                messages.append(f"{self.out}: restored the previous output that an interrupted build had moved to {holder}")
            elif previous.is_dir():
                messages += self._dispose(previous, read_marker(previous))
            if not previous.exists():
                shutil.rmtree(holder, ignore_errors=True)
        return messages

    # -- committing: sign the new output, swap it in, keep what is not edgepack's

    def commit(self) -> list[str]:
        """Swap the staging folder into place. Returns messages (one line each) naming every file
        of the old output that was kept, and where; also in `self.messages`."""
        assert self.staging is not None
        out = self.out
        try:
            remove_owner(self.staging)
            write_marker(self.staging)
            if not (out.is_dir() and any(out.iterdir())):
                if out.is_dir():
                    out.rmdir()
                os.replace(self.staging, out)
                self.staging = None
                return self.messages
            old = read_marker(out)
            if old is None and not self.force:
                raise self._refuse(" (its marker changed during the build)")
            holder = make_owned(f".{out.name}.old-", out.parent)
            previous = holder / _PREVIOUS
            os.replace(out, previous)
            try:
                os.replace(self.staging, out)
            except OSError:
                os.replace(previous, out)
                shutil.rmtree(holder, ignore_errors=True)
                raise
            self.staging = None
        except OSError as exc:
            raise self._error(exc) from None
        self.messages += self._dispose(previous, old)
        if not previous.exists():
            shutil.rmtree(holder, ignore_errors=True)
        return self.messages

    def _kept_dir(self) -> Path:
        if self._kept is None:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = self.out.with_name(f"{self.out.name}.kept-{stamp}")
            kept, n = base, 1
            while os.path.lexists(kept):
                n += 1
                kept = base.with_name(f"{base.name}-{n}")
            kept.mkdir()
            self._kept = kept
        return self._kept

    def _dispose(self, previous: Path, marker: Marker | None) -> list[str]:
        """Empty `previous` (the old output): delete only what edgepack wrote and nobody changed;
        move everything else into the new output or aside. Returns what was kept, and where."""
        if marker is None:  # replaced with --force: keep the whole old content aside
            entries = sorted(p.name for p in previous.iterdir())
            if not entries:
                previous.rmdir()
                return []
            kept = self._move_aside(previous, entries)
            with contextlib.suppress(OSError):
                previous.rmdir()
            if kept is None:
                return [f"{self.option} {self.out}: replaced with --force; could not move its previous content aside, it is in {previous}"]
            return [
                f"{self.option} {self.out}: replaced with --force; it was not an edgepack output, its previous "
                f"{len(entries)} entries ({_some(entries)}) are kept in {kept}"
            ]
        into_new, aside, stuck = [], [], []
        for root, dirnames, filenames in os.walk(previous):
            for name in filenames + [d for d in dirnames if (Path(root) / d).is_symlink()]:
                path = Path(root) / name
                rel = path.relative_to(previous).as_posix()
                if rel == MARKER:
                    continue  # removed last, so that an interrupted disposal can be resumed
                if rel in marker.files and _is_regular(path) and _sha(path) == marker.files[rel]:
                    path.unlink()  # edgepack wrote it and nobody changed it
                    continue
                dest = self._free_place(rel)
                if dest is None:
                    (aside if self._move_one(path, self._kept_dir_or_none(), rel) else stuck).append(rel)
                elif self._move_one(path, self.out, rel):
                    into_new.append(rel)
                else:
                    stuck.append(rel)
        for root, dirnames, _ in os.walk(previous, topdown=False):  # empty folders: the user's are kept
            for d in dirnames:
                path = Path(root) / d
                rel = path.relative_to(previous).as_posix()
                if path.is_symlink() or any(path.iterdir()):
                    continue
                if rel not in marker.dirs and not (self.out / rel).is_dir():
                    if self._free_place(rel) is not None:
                        (self.out / rel).mkdir(parents=True, exist_ok=True)
                        into_new.append(rel + "/")
                    else:
                        continue  # a file of the new output has its name: leave it to the catch-all below
                path.rmdir()
        with contextlib.suppress(OSError):
            (previous / MARKER).unlink()
        leftovers = sorted(p.name for p in previous.iterdir())
        if leftovers:
            kept = self._move_aside(previous, leftovers)
            (aside if kept else stuck).extend(leftovers)
        if not any(previous.iterdir()):
            previous.rmdir()
        messages = []
        if into_new:
            messages.append(
                f"{self.out}: kept {_count(into_new)} that edgepack did not write, or that changed since it wrote them, "
                f"at the same place in the new output: {_some(into_new)}"
            )
        if aside:
            messages.append(
                f"{self.out}: moved {_count(aside)} that edgepack did not write, or that changed since it wrote them, "
                f"aside to {self._kept} (the new output uses the same path): {_some(aside)}"
            )
        if stuck:
            messages.append(f"{self.out}: could not move {_count(stuck)} of the previous output; still in {previous}: {_some(stuck)}")
        return messages

    def _free_place(self, rel: str) -> Path | None:
        """out/rel if neither it nor any of its parents is taken by a file of the new output."""
        dest = self.out / rel
        if os.path.lexists(dest):
            return None
        p = dest.parent
        while p != self.out:
            if os.path.lexists(p) and (p.is_symlink() or not p.is_dir()):
                return None
            p = p.parent
        return dest

    def _kept_dir_or_none(self) -> Path | None:
        try:
            return self._kept_dir()
        except OSError:
            return None

    @staticmethod
    def _move_one(path: Path, root: Path | None, rel: str) -> bool:
        if root is None:
            return False
        dest = root / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
        except OSError:
            return False
        return True

    def _move_aside(self, previous: Path, names: list[str]) -> Path | None:
        kept = self._kept_dir_or_none()
        if kept is None:
            return None
        ok = all(self._move_one(previous / n, kept, n) for n in names)
        return kept if ok else None

    # -- leaving

    def __exit__(self, exc_type, exc, tb):
        if self.staging is not None:
            staging = self.staging
            err = None
            if isinstance(exc, OSError):  # before removing the staging folder frees the disk
                err = translate_os_error(exc, staging, "the staging folder", only_if_inside=True)
            shutil.rmtree(staging, ignore_errors=True)
            self.staging = None
            self._remove_parents()
            if err is not None:
                raise self._error(exc) from None
        return False

    def _remove_parents(self) -> None:
        for d in reversed(self._made_parents):
            try:
                d.rmdir()
            except OSError:
                break
        self._made_parents.clear()


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _sha(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _count(items: list[str]) -> str:
    folders = sum(1 for i in items if i.endswith("/"))
    files = len(items) - folders
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((files, "file"), (folders, "folder")) if n]
    return " and ".join(parts)


def _some(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")
