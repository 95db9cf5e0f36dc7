"""A private apt for arm64: Debian's own packages fetched and unpacked without touching the host's dpkg.

apt gets its own configuration (APT_CONFIG): `APT::Architecture "arm64"`, its own state and
cache folders, an empty dpkg status, and the Debian sources the host already uses (its mirror
and release; deb-src lines only for fetching qemu's source). `dpkg-deb -x` unpacks each .deb
into the sysroot; nothing is installed on the host.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import first_line

DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class AptError(RuntimeError):
    pass


def host_release() -> str:
    """The host's Debian codename (bookworm, trixie ...), from /etc/os-release."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError as exc:
        raise AptError("no /etc/os-release: not a Debian-like system") from exc
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    if not m:
        raise AptError("/etc/os-release names no VERSION_CODENAME")
    return m.group(1)


def host_debian_uris() -> list[str]:
    """The Debian mirrors (not security, not third-party) the host's apt sources name."""
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
              *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        try:
            texts.append(p.read_text())
        except OSError:
            continue
    uris = []
    for text in texts:
        for m in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            u = m.group(1).rstrip("/")
            if u.endswith("/debian") and u not in uris:
                uris.append(u)
    return uris or [DEFAULT_MIRROR]


def sources(release: str, mirror: str, *, src: bool = False) -> str:
    types = "deb-src" if src else "deb"
    security = mirror.removesuffix("/debian") + "/debian-security" if "deb.debian.org" in mirror else "http://deb.debian.org/debian-security"
    keyring = f" signed-by={KEYRING}" if Path(KEYRING).exists() else ""
    arch = "" if src else " arch=arm64"
    opts = f"[{(arch + keyring).strip()}] " if (arch or keyring) else ""
    return (
        f"{types} {opts}{mirror} {release} main\n"
        f"{types} {opts}{mirror} {release}-updates main\n"
        f"{types} {opts}{security} {release}-security main\n"
    )


class PrivateApt:
    """apt-get with a configuration of its own, under `root`."""

    def __init__(self, root: Path, *, src: bool = False):
        self.root = root
        for d in ("state/lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d", "etc/apt.conf.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        status = root / "state" / "status"
        if not status.exists():
            status.write_text("")
        release = host_release()
        (root / "etc" / "sources.list").write_text(sources(release, host_debian_uris()[0], src=src))
        conf = {
            "APT::Architecture": "arm64",
            "APT::Architectures": "arm64",
            "Dir::State": f"{root}/state",
            "Dir::State::status": f"{status}",
            "Dir::Cache": f"{root}/cache",
            "Dir::Etc::SourceList": f"{root}/etc/sources.list",
            "Dir::Etc::SourceParts": f"{root}/etc/sources.list.d",
            "Dir::Etc::Preferences": f"{root}/etc/preferences",
            "Dir::Etc::PreferencesParts": f"{root}/etc/preferences.d",
            "Dir::Etc::Parts": f"{root}/etc/apt.conf.d",  # the host's apt.conf.d hooks (docker-clean ...) stay out
            "Debug::NoLocking": "true",
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
            "APT::Install-Recommends": "false",
            "APT::Get::Assume-Yes": "true",
            "Acquire::Languages": "none",
        }
        proxy = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")
        if proxy:
            conf["Acquire::http::Proxy"] = proxy
        lines = [f'{k} "{v}";' for k, v in conf.items() if v != ""]
        (root / "apt.conf").write_text("\n".join(lines) + "\n")

    def run(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "APT_CONFIG": str(self.root / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        try:
            proc = subprocess.run(["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AptError(f"apt-get {args[0]}: {first_line(exc)}") from exc
        if proc.returncode != 0:
            errs = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith(("E:", "Err:"))]
            raise AptError(f"apt-get {' '.join(args)} failed: {errs[0] if errs else (proc.stderr.strip().splitlines() or ['?'])[-1]}")
        return proc.stdout

    def update(self) -> None:
        self.run("update")

    def download(self, packages: list[str]) -> list[Path]:
        """Download `packages` and all they depend on (the status is empty: nothing counts as installed)."""
        self.run("install", "--download-only", *packages)
        return sorted((self.root / "cache" / "archives").glob("*.deb"))

    def source(self, package: str, into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        self.run("source", "--download-only", package, cwd=into)
        return sorted(into.iterdir())


def unpack(debs: list[Path], sysroot: Path) -> None:
    sysroot.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(sysroot)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AptError(f"dpkg-deb -x {deb.name}: {proc.stderr.strip() or proc.returncode}")
