"""Where the arm64 runtime lives: a cache folder keyed by the versions it pins, and its stamp.

Layout of `~/.cache/edgepack/arm64/<key>/` (EDGEPACK_ARM64_HOME overrides the parent folder):
  sysroot/            Debian's arm64 python3 and its libraries, unpacked (plus a fake /proc/cpuinfo per CPU)
  site/               the arm64 wheels of ai-edge-litert, onnxruntime and numpy (pip install --target)
  plugin/count.so     the instruction-counting TCG plugin
  stamp.json          the versions, written last: its presence means the set-up finished
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# host package -> the module the guest imports; only those installed on the host are set up
RUNTIME_PACKAGES = {"ai-edge-litert": "ai_edge_litert", "onnxruntime": "onnxruntime"}
CPU_MODELS = ("cortex-a53", "cortex-a55", "cortex-a72", "cortex-a76", "neoverse-n1")
DEFAULT_CPU = "cortex-a76"
QEMU = "qemu-aarch64"  # the dynamic build: qemu-aarch64-static has no -plugin option


def base_dir() -> Path:
    env = os.environ.get("EDGEPACK_ARM64_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgepack" / "arm64"


def host_versions() -> dict[str, str]:
    """The host's versions that the guest pins: python (major.minor), numpy and each runtime installed."""
    out = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for pkg in ("numpy", *RUNTIME_PACKAGES):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def key(versions: dict[str, str]) -> str:
    short = {"python": "py", "numpy": "np", "ai-edge-litert": "litert", "onnxruntime": "ort"}
    return "-".join(f"{short.get(k, k)}{v}" for k, v in sorted(versions.items()))


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def plugin(self) -> Path:
        return self.root / "plugin" / "count.so"

    @property
    def stamp(self) -> Path:
        return self.root / "stamp.json"

    def python(self) -> Path:
        """The guest interpreter inside the sysroot (python3.X of Debian's arm64 build)."""
        found = sorted((self.sysroot / "usr" / "bin").glob("python3.[0-9]*"))
        found = [p for p in found if p.name.replace("python3.", "").isdigit()]
        if not found:
            raise FileNotFoundError(self.sysroot / "usr" / "bin" / "python3")
        return found[-1]

    def read_stamp(self) -> dict | None:
        try:
            return json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return None


def current_home() -> Home:
    return Home(base_dir() / key(host_versions()))


def qemu_binary() -> str | None:
    return shutil.which(QEMU)


def ready(home: Home | None = None) -> bool:
    """True when the set-up finished for the host's versions and qemu is on PATH."""
    home = home or current_home()
    return home.read_stamp() is not None and qemu_binary() is not None
