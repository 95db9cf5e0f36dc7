"""`edgepack setup arm64`: everything the emulated arm64 runtime needs, into a cache folder.

1. qemu-user from apt (the dynamic qemu-aarch64, which takes -plugin), when missing and root;
   otherwise the exact sudo line to run.
2. An arm64 Python sysroot from Debian's archive through a private apt (aptroot.py): python3 and
   libstdc++6 with their dependencies, unpacked with dpkg-deb; the host's dpkg is never touched.
3. The arm64 wheels of numpy, ai-edge-litert and onnxruntime at the host's exact versions
   (pip install --target with the aarch64 platform tags).
4. qemu's `qemu-plugin.h` from its Debian source package (apt-get source with a private deb-src)
   and the counting plugin (plugin/count.c) compiled with gcc.
5. A fake /proc/cpuinfo per CPU model (cpuinfo.py), then stamp.json: the versions, written last.
Idempotent: a finished set-up for the same versions is kept. The network is used here only.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ..errors import first_line
from ..progress import Progress, Silent
from .aptroot import AptError, PrivateApt, unpack
from .cpuinfo import MODELS, cpu_prefix
from .home import QEMU, RUNTIME_PACKAGES, Home, current_home, host_versions, qemu_binary
from .status import NotSetUp, Unavailable

PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
SYSTEM_PACKAGES = ("qemu-user",)  # plus gcc and libc6-dev when there is no C compiler
SYSROOT_PACKAGES = ("python3", "libstdc++6")
PLUGIN_SOURCE = Path(__file__).parent / "plugin" / "count.c"
STAMP_VERSION = 1


def qemu_version() -> str:
    qemu = qemu_binary()
    if qemu is None:
        return "?"
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def _system_packages(progress: Progress) -> None:
    """qemu-user (and a C compiler) from apt when missing; NotSetUp with the sudo line when not root."""
    if not sys.platform.startswith("linux"):
        raise Unavailable(f"arm64 emulation needs Linux with qemu-user; this is {sys.platform}: builds go on without it")
    missing = [] if qemu_binary() else list(SYSTEM_PACKAGES)
    if not shutil.which("gcc"):
        missing += ["gcc", "libc6-dev"]
    if not missing:
        return
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise Unavailable(f"arm64 emulation needs {', '.join(missing)} and this machine has no apt-get: install them, then run `edgepack setup arm64`")
    line = f"apt-get install -y --no-install-recommends {' '.join(missing)}"
    if os.geteuid() != 0:
        raise NotSetUp(f"{', '.join(missing)} missing and this is not root; first run: sudo {line}")
    progress.step(f"installing {', '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], line.replace("-y", "-y -qq").split()):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    if not qemu_binary():
        raise Unavailable(f"apt-get installed qemu-user but there is no {QEMU} on PATH")


def _sysroot(home: Home, progress: Progress) -> None:
    if (home.sysroot / "usr" / "bin").is_dir() and any((home.sysroot / "usr" / "bin").glob("python3.*")):
        return
    apt = PrivateApt(home.root / "apt")
    progress.step("arm64 sysroot: reading Debian's arm64 package lists (private apt configuration)")
    apt.update()
    progress.step(f"arm64 sysroot: downloading {' '.join(SYSROOT_PACKAGES)} and their dependencies")
    debs = apt.download(list(SYSROOT_PACKAGES))
    tmp = home.root / "sysroot.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in progress.track(debs, len(debs), "arm64 sysroot: unpacking .deb files"):
        unpack([deb], tmp)
    tmp.rename(home.sysroot)
    for deb in debs:
        deb.unlink()


def _guest_python_version(home: Home) -> str:
    return home.python().name.removeprefix("python")


def _wheels(home: Home, versions: dict[str, str], progress: Progress) -> None:
    if home.site.is_dir() and (home.root / "site.done").exists():
        return
    py = _guest_python_version(home)
    pins = [f"{pkg}=={versions[pkg]}" for pkg in ("numpy", *RUNTIME_PACKAGES) if pkg in versions]
    progress.step(f"arm64 wheels for Python {py}: {' '.join(pins)} (pip, about 50 MB)")
    tmp = home.root / "site.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-conflicts",
           "--target", str(tmp), "--only-binary=:all:", "--python-version", py, "--implementation", "cp",
           "--abi", f"cp{py.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    proc = subprocess.run([*cmd, *pins], capture_output=True, text=True)
    if proc.returncode != 0:
        errs = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln] or proc.stderr.strip().splitlines() or ["?"]
        raise NotSetUp(f"pip could not fetch the arm64 wheels ({errs[0].strip()})")
    shutil.rmtree(home.site, ignore_errors=True)
    tmp.rename(home.site)
    (home.root / "site.done").write_text(" ".join(pins) + "\n")


def _plugin_header(home: Home, progress: Progress) -> Path:
    include = home.root / "plugin" / "include"
    header = include / "qemu-plugin.h"
    if header.exists():
        return header
    progress.step("qemu-plugin.h: fetching qemu's Debian source package (private deb-src, about 24 MB)")
    apt = PrivateApt(home.root / "apt-src", src=True)
    apt.update()
    src = home.root / "apt-src" / "source"
    shutil.rmtree(src, ignore_errors=True)
    version = subprocess.run(["dpkg-query", "-W", "-f", "${source:Version}", "qemu-user"], capture_output=True, text=True).stdout.strip()
    try:
        files = apt.source(f"qemu={version}" if version else "qemu", src)
    except AptError:
        files = apt.source("qemu", src)  # the installed version left the archive: same plugin API in the release
    orig = [f for f in files if ".orig.tar" in f.name]
    if not orig:
        raise AptError("qemu's source package has no .orig tarball")
    with tarfile.open(orig[0]) as tar:
        member = next((m for m in tar if m.name.endswith("include/qemu/qemu-plugin.h")), None)
        if member is None:
            raise AptError(f"{orig[0].name} has no include/qemu/qemu-plugin.h")
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    include.mkdir(parents=True, exist_ok=True)
    header.write_bytes(data)
    shutil.rmtree(src, ignore_errors=True)
    return header


def build_plugin(home: Home, progress: Progress) -> Path:
    header = _plugin_header(home, progress)
    if home.plugin.exists() and home.plugin.stat().st_mtime >= PLUGIN_SOURCE.stat().st_mtime:
        return home.plugin
    progress.step("compiling the instruction-counting plugin (gcc)")
    proc = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-I", str(header.parent), "-o", str(home.plugin), str(PLUGIN_SOURCE)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise NotSetUp(f"gcc could not build {PLUGIN_SOURCE.name}: {(proc.stderr.strip().splitlines() or ['?'])[0]}")
    return home.plugin


def setup_arm64(progress: Progress | None = None, *, force: bool = False) -> Home:
    """Set up the arm64 runtime for the host's versions (see the module docstring); returns its Home.
    Raises Unavailable (no Linux/apt) or NotSetUp (not root for apt, a download failed), exit 5."""
    progress = progress or Silent()
    t0 = time.perf_counter()
    versions = host_versions()
    if not any(pkg in versions for pkg in RUNTIME_PACKAGES):
        raise NotSetUp("neither ai-edge-litert nor onnxruntime is installed on the host; run: pip install 'edgepack[tflite,onnx]'")
    home = current_home()
    stamp = home.read_stamp()
    if stamp and not force and stamp.get("versions") == versions and home.plugin.exists() and qemu_binary():
        progress.step(f"arm64 runtime already set up in {home.root}")
        return home
    _system_packages(progress)
    if force:
        shutil.rmtree(home.root, ignore_errors=True)
    home.stamp.unlink(missing_ok=True)
    (home.root / "plugin").mkdir(parents=True, exist_ok=True)
    try:
        _sysroot(home, progress)
        _wheels(home, versions, progress)
        build_plugin(home, progress)
    except AptError as exc:
        raise NotSetUp(first_line(exc)) from exc
    for model in MODELS:
        cpu_prefix(home.root, home.sysroot, model)
    for scratch in ("apt", "apt-src"):  # package lists and sources: 180 MB that no run needs
        shutil.rmtree(home.root / scratch, ignore_errors=True)
    stamp = {
        "stamp_version": STAMP_VERSION,
        "versions": versions,
        "guest_python": _guest_python_version(home),
        "qemu": qemu_version(),
        "cpus": list(MODELS),
        "host": platform.machine(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    home.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    progress.step(f"arm64 runtime ready in {home.root} ({stamp['seconds']:.0f} s)")
    return home
