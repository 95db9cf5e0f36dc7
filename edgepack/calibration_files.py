"""Reading untrusted calibration files from disk: what a path is, why it cannot be read, and
.npy/.npz arrays whose headers are checked BEFORE any data is read or decompressed.

Every problem becomes an InputError (exit 3) that names the file. A header says how many bytes
its array holds; edgepack sums those claims, refuses them above a bound, refuses a claim that the
file (or the zip member) cannot hold, and after reading checks that the array is what was claimed.
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, first_line

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
MAX_TEXT_BYTES = 10_000_000  # labels.txt, preprocess.toml
_NUMERIC_KINDS = "biufc"


def human_bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def os_problem(path: Path | str, exc: OSError) -> InputError:
    """An OSError as a one-line InputError that says what went wrong, naming the file."""
    where = exc.filename if exc.filename else path
    code = exc.errno
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        what = "permission denied; make it readable (chmod) or copy the data somewhere you can read"
    elif code == errno.ENAMETOOLONG:
        what = "path too long (a name over 255 bytes, or a path over the system's limit); use a shorter path"
    elif code == errno.ENOENT:
        what = "not found; check the path"
    elif code == errno.ELOOP:
        what = "a symlink loop; point the symlink at a real file"
    elif code == errno.EISDIR:
        what = "is a folder, not a file"
    elif code == errno.ENOTDIR:
        what = "a part of the path is a file, not a folder; check the path"
    else:
        what = f"cannot read ({exc.strerror or exc})"
    return InputError(f"{where}: {what}")


def _kind_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def path_kind(path: Path) -> str:
    """"file", "dir" or "missing"; anything else (a FIFO, a device, a symlink to one) is an
    InputError that says what it is. OSErrors (permission, name too long) are InputErrors too."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            os.lstat(path)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise os_problem(path, exc) from None
        raise InputError(f"{path}: a broken symlink (its target {os.readlink(path)!r} does not exist); fix or remove it") from None
    except OSError as exc:
        raise os_problem(path, exc) from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    what = _kind_name(st.st_mode)
    if os.path.islink(path):
        what = f"a symlink to {os.path.realpath(path)}, which is {what}"
    raise InputError(f"{path}: is {what}, not a data file; calibration reads regular files only")


def require_file(path: Path) -> None:
    kind = path_kind(path)
    if kind == "missing":
        raise InputError(f"{path}: not found; check the path")
    if kind == "dir":
        raise InputError(f"{path}: is a folder, but a file of this name is expected; rename or remove it")


def read_text_file(path: Path, what: str, bad_text: type[Exception] = InputError) -> str:
    """A small UTF-8 text file (a BOM is allowed); not UTF-8 is refused (as `bad_text`) with the byte offset."""
    require_file(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_TEXT_BYTES:
            raise InputError(f"{path}: is {human_bytes(size)}; {what} is a small text file (at most {human_bytes(MAX_TEXT_BYTES)})")
        data = path.read_bytes()
    except OSError as exc:
        raise os_problem(path, exc) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_text(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at byte offset {exc.start}); save {what} as UTF-8"
        ) from None


@dataclass(frozen=True)
class ArrayHeader:
    file: Path
    member: str  # the zip member for a .npz; "" for a .npy
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def key(self) -> str:
        return self.member[: -len(".npy")] if self.member else ""

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n * self.dtype.itemsize

    def where(self) -> str:
        return f"{self.file} (member {self.member!r})" if self.member else str(self.file)

    def describe(self) -> str:
        return f"shape {self.shape} {self.dtype}"


def _fix() -> str:
    return "save it with numpy.save / numpy.savez"


def _read_header(fp, where: str, allow_pickle: bool, file: Path, member: str) -> tuple[ArrayHeader, int]:
    """(header, bytes the header itself takes)."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = npf.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _fortran, dtype = npf.read_array_header_2_0(fp)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]}, which edgepack does not read")
    except OSError:
        raise
    except Exception as exc:  # numpy parses the header with ast/tokenize: ValueError, SyntaxError, TokenError, ...
        raise InputError(f"{where}: not a valid .npy array header ({type(exc).__name__}: {first_line(exc)}); {_fix()}") from None
    head = ArrayHeader(file, member, tuple(int(d) for d in shape), dtype)
    if dtype.hasobject:
        if not allow_pickle:
            raise InputError(f"{where}: holds pickled objects (dtype object); save plain numeric arrays, or pass --allow-pickle if you trust it")
    elif dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise InputError(f"{where}: holds an array of dtype {dtype} (not numbers); save numeric arrays (float32, int64, ...)")
    return head, fp.tell()


def _sniff(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise os_problem(path, exc) from None


def read_headers(path: Path, allow_pickle: bool = False) -> list[ArrayHeader]:
    """Every array's header in a .npy or .npz, without reading any array data."""
    require_file(path)
    magic = _sniff(path)
    suffix = path.suffix.lower()
    if magic.startswith(NPY_MAGIC):
        if suffix == ".npz":
            raise InputError(f"{path}: is a .npy file named .npz; rename it to .npy")
        try:
            size = os.stat(path).st_size
            with open(path, "rb") as f:
                head, used = _read_header(f, str(path), allow_pickle, path, "")
        except OSError as exc:
            raise os_problem(path, exc) from None
        if not head.dtype.hasobject and head.nbytes > size - used:
            _read_header_short(head, size - used)
        return [head]
    if magic[:4] not in ZIP_MAGICS:
        what = ".npz file (it is not a zip archive)" if suffix == ".npz" else ".npy file (it does not start with numpy's magic bytes)"
        raise InputError(f"{path}: not a {what}; {_fix()}")
    if suffix == ".npy":
        raise InputError(f"{path}: is a .npz (zip) file named .npy; rename it to .npz")
    heads: list[ArrayHeader] = []
    try:
        with zipfile.ZipFile(path) as zf:
            seen = set()
            for info in zf.infolist():
                name = info.filename
                if info.is_dir():
                    continue
                if not name.endswith(".npy"):
                    raise InputError(
                        f"{path}: member {name!r} is not a .npy array; a .npz must hold only arrays (save it with numpy.savez)"
                    )
                if name in seen:
                    raise InputError(f"{path}: holds two members named {name!r}; save it again with numpy.savez")
                seen.add(name)
                if info.flag_bits & 0x1:
                    raise InputError(f"{path}: member {name!r} is encrypted; save it with numpy.savez")
                where = f"{path} (member {name!r})"
                with zf.open(info) as fp:
                    head, used = _read_header(fp, where, allow_pickle, path, name)
                if not head.dtype.hasobject and head.nbytes > info.file_size - used:
                    _read_header_short(head, max(0, info.file_size - used))
                heads.append(head)
    except InputError:
        raise
    except OSError as exc:
        if isinstance(exc, PermissionError) or exc.errno is not None:
            raise os_problem(path, exc) from None
        raise InputError(f"{path}: not a readable .npz ({first_line(exc)}); {_fix()}") from None
    except Exception as exc:  # zipfile on a corrupt archive: BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError ...
        raise InputError(f"{path}: not a readable .npz ({first_line(exc)}); {_fix()}") from None
    return heads


def _read_header_short(head: ArrayHeader, holds: int) -> None:
    raise InputError(
        f"{head.where()}: its header claims {head.describe()} = {head.nbytes:,} bytes ({human_bytes(head.nbytes)}), but the "
        f"{'member' if head.member else 'file'} holds only {holds:,} bytes of data; the file is truncated or corrupt, {_fix()}"
    )


def check_total(heads: list[ArrayHeader], max_bytes: int, where: Path, extra_bytes: int = 0, extra_what: str = "") -> None:
    """Refuse when the arrays' headers (plus `extra_bytes`, e.g. decoded images) claim more than max_bytes."""
    total = sum(h.nbytes for h in heads if not h.dtype.hasobject) + extra_bytes
    if total <= max_bytes:
        return
    if heads:
        big = max(heads, key=lambda h: h.nbytes)
        detail = f"; the largest, {big.where()}, is {big.describe()}"
        what = "the arrays' headers claim"
    else:
        detail, what = "", extra_what or "the data needs"
    raise InputError(
        f"{where}: {what} {total:,} bytes ({human_bytes(total)}) of decompressed data{detail}; that is more than the limit of "
        f"{max_bytes // 1_000_000:,} MB (the target profile's validation.max_calibration_mb); use fewer or smaller samples, or raise the limit"
    )


def read_arrays(path: Path, heads: list[ArrayHeader], allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """The arrays whose headers read_headers returned; each must be exactly what its header claimed."""
    from numpy.lib import format as npf

    out: dict[str, np.ndarray] = {}
    try:
        if heads and not heads[0].member:
            with open(path, "rb") as f:
                arrays = [(heads[0], npf.read_array(f, allow_pickle=allow_pickle))]
        else:
            arrays = []
            with zipfile.ZipFile(path) as zf:
                for h in heads:
                    with zf.open(h.member) as fp:
                        arrays.append((h, npf.read_array(fp, allow_pickle=allow_pickle)))
    except OSError as exc:
        if exc.errno is not None:
            raise os_problem(path, exc) from None
        raise InputError(f"{path}: cannot read ({first_line(exc)}); {_fix()}") from None
    except Exception as exc:  # a corrupt stream (BadZipFile: bad CRC, zlib.error, EOFError) or, with --allow-pickle, a bad pickle
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {first_line(exc)}); {_fix()}") from None
    for h, arr in arrays:
        if not h.dtype.hasobject and (tuple(arr.shape) != h.shape or arr.dtype != h.dtype):
            raise InputError(f"{h.where()}: read {tuple(arr.shape)} {arr.dtype}, but its header claimed {h.describe()}; {_fix()}")
        out[h.key] = arr
    return out
