"""The record a hostile-input generator returns (issue #8 corpus contract).

Generators live in tests/hostile_inputs.py, tests/hostile_pt2.py and tests/hostile_misc.py as
`make_<case>(tmp: pathlib.Path) -> Case`; tests/test_hostile_corpus.py runs each through the CLI.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Case:
    argv: list[str]            # CLI args after `edgepack`, e.g. ["build", model, "-c", calib, "-t", prof, "-o", out]
    expect_code: int           # the documented exit code (2, 3, 4 or 5; 1 for a failed gate)
    expect_text: str = ""      # a substring the one-line error must contain (e.g. the file name)
    payload_marker: Path | None = None   # a file a payload would create; must NOT exist afterwards
    keep: list[Path] = field(default_factory=list)  # user files that must still exist, byte-identical
    stdin_timeout: float = 120.0
    teardown: list[Callable[[], None]] = field(default_factory=list)  # run after the case (e.g. unmount a tmpfs)


# --- shared tiny inputs, built once per test session -------------------------------------------
# Generators may call `tiny_files()` instead of exporting their own model: the corpus test points
# the cache at a session folder (`set_cache_dir`), so the tiny CNN is exported once for all cases.
# Treat the returned files as read-only (copy one before corrupting it).

_cache: dict[str, Path] = {}


def set_cache_dir(path: Path) -> None:
    _cache.clear()
    _cache["dir"] = Path(path)


def _cache_dir() -> Path:
    if "dir" not in _cache:
        import atexit
        import shutil
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="edgepack-corpus-cache-"))
        atexit.register(shutil.rmtree, d, True)
        _cache["dir"] = d
    _cache["dir"].mkdir(parents=True, exist_ok=True)
    return _cache["dir"]


ORT_FP32_PROFILE = 'name = "corpus"\nthreads = 1\n\n[formats.ort]\nprecisions = ["fp32"]\n\n[latency]\nwarmup = 1\nruns = 2\n'


def tiny_files() -> dict[str, Path]:
    """{"pt2", "onnx", "calib", "profile"}: the conftest tiny CNN on (1, 3, 16, 16) -> (1, 10) as .pt2
    and .onnx, a folder with 40 calibration samples (samples.npz, input "image"), and an ort-fp32
    profile that times 2 runs."""
    d = _cache_dir() / "tiny"
    files = {"pt2": d / "tiny.pt2", "onnx": d / "tiny.onnx", "calib": d / "calib", "profile": d / "ort_fp32.toml"}
    if not (d / ".done").exists():
        import torch

        from conftest import save_onnx, save_pt2, tiny_cnn, write_stacked

        d.mkdir(parents=True, exist_ok=True)
        m, ex = tiny_cnn(), (torch.randn(1, 3, 16, 16),)
        save_pt2(m, ex, files["pt2"])
        save_onnx(m, ex, files["onnx"])
        write_stacked(files["calib"], 40, (3, 16, 16))
        files["profile"].write_text(ORT_FP32_PROFILE, encoding="utf-8")
        (d / ".done").write_text("ok\n")
    return files
