"""The signed marker edgepack writes into every output folder: `.edgepack-output.json`.

It lists every file edgepack wrote there (relative path -> sha256; the files inside a .mlpackage
folder one by one) and every folder, and carries an HMAC-SHA256 over that list, keyed with a
random per-user secret kept in the user's config folder (`$XDG_CONFIG_HOME/edgepack/output-marker.key`,
default `~/.config/edgepack/`, mode 0600, made on first use).

Why keyed: a plain digest only catches a marker edited by hand; anyone can recompute it. With the
key, a marker copied from another folder, edited, written by hand or by another user does not
verify, so the folder counts as one edgepack did not write. Even a marker that verifies never
lets edgepack delete a file whose content differs from the digest it recorded.
Where no key can be stored (a read-only home), markers carry the plain digest instead, and are
accepted only on a machine that has no key either (a forger cannot downgrade a keyed check).
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from .files import file_sha256  # noqa: F401 - outdir imports it from here

MARKER = ".edgepack-output.json"
_KEYED, _PLAIN = "hmac-sha256", "sha256"


def key_path() -> Path | None:
    base = os.environ.get("XDG_CONFIG_HOME")
    if not base:
        try:
            base = str(Path.home() / ".config")
        except (KeyError, RuntimeError):
            return None
    return Path(base) / "edgepack" / "output-marker.key"


def _read_key(path: Path) -> bytes | None:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return key if len(key) >= 16 else None


def user_key(create: bool = True) -> bytes | None:
    """The per-user secret, made on first use (atomically: two builds at once agree on one key)."""
    path = key_path()
    if path is None:
        return None
    key = _read_key(path)
    if key is not None or not create:
        return key
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process made the key first: then use that one
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError:
        return None
    return _read_key(path)


def scan(folder: Path, skip: frozenset[str] = frozenset()) -> tuple[dict[str, str], list[str]]:
    """Every regular file (relative posix path -> sha256) and folder under `folder`; links and
    other special files are left out (so they count as not written by edgepack)."""
    files: dict[str, str] = {}
    dirs: list[str] = []
    for root, dirnames, filenames in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        for d in list(dirnames):
            p = Path(root) / d
            if p.is_symlink():
                dirnames.remove(d)
            else:
                dirs.append((rel_root / d).as_posix())
        for name in filenames:
            p = Path(root) / name
            rel = (rel_root / name).as_posix()
            if rel in skip or p.is_symlink() or not p.is_file():
                continue
            files[rel] = file_sha256(p)
    return files, sorted(dirs)


def _payload(files: dict[str, str], dirs: list[str]) -> bytes:
    return json.dumps({"version": 1, "files": files, "dirs": dirs}, sort_keys=True, separators=(",", ":")).encode()


def _sign(payload: bytes, key: bytes | None) -> tuple[str, str]:
    if key is None:
        return _PLAIN, hashlib.sha256(payload).hexdigest()
    return _KEYED, hmac.new(key, payload, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Marker:
    files: dict[str, str]
    dirs: frozenset[str]


def write_marker(folder: Path) -> Marker:
    """List everything in `folder` (edgepack's finished output) and write the signed marker."""
    files, dirs = scan(folder, skip=frozenset({MARKER}))
    scheme, signature = _sign(_payload(files, dirs), user_key())
    doc = {
        "about": "written by edgepack: every file it wrote here, with its sha256. A rebuild replaces only "
        "these; anything else, or anything changed since, is kept. Editing this file makes the folder foreign.",
        "version": 1,
        "files": files,
        "dirs": dirs,
        "scheme": scheme,
        "signature": signature,
    }
    (folder / MARKER).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return Marker(files, frozenset(dirs))


def read_marker(folder: Path) -> Marker | None:
    """The marker in `folder` if it is there and verifies; None otherwise."""
    path = folder / MARKER
    try:
        if path.is_symlink():
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        files, dirs, scheme, signature = doc["files"], doc["dirs"], doc["scheme"], doc["signature"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
        return None
    if not (isinstance(dirs, list) and all(isinstance(d, str) for d in dirs)) or not isinstance(signature, str):
        return None
    key = user_key(create=False)
    if scheme != (_KEYED if key is not None else _PLAIN):
        return None
    _, want = _sign(_payload(files, dirs), key)
    if not hmac.compare_digest(want, signature):
        return None
    return Marker(dict(files), frozenset(dirs))
