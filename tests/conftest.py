"""Shared fixtures: tiny models built in code, written as real .pt2/.onnx files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for examples.* entry points

# Builds for the arm64 targets skip their emulated arm64 runs (seconds of QEMU per artifact) unless a
# test turns them on (tests/test_arm64_*.py) or the environment already says EDGEPACK_ARM64=on.
os.environ.setdefault("EDGEPACK_ARM64", "off")
# Every test builds its cells anew: a cell cache shared between tests would let one test's artifact
# stand in for another's conversion (a killed converter, a refused op). The cache's own tests turn it
# on with a folder of their own (tests/test_cache_*.py).
os.environ.setdefault("EDGEPACK_CACHE", "off")

DIGITS_PT2 = ROOT / "examples" / "digits" / "digits_cnn.pt2"
DIGITS_ONNX = ROOT / "examples" / "digits" / "digits_cnn.onnx"
DIGITS_DATA = ROOT / "calibration_data" / "digits"
IMAGES_DATA = ROOT / "calibration_data" / "images"


def tiny_cnn(channels: int = 3, classes: int = 10, width: int = 8):
    """A small conv net on (1, channels, 16, 16) -> (1, classes)."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width * 2, 3, stride=2, padding=1)
            self.fc = nn.Linear(width * 2 * 8 * 8, classes)

        def forward(self, image):
            x = torch.relu(self.bn(self.conv1(image)))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(x, 1))

    return TinyCNN().eval()


def save_pt2(module, example: tuple, path: Path) -> Path:
    import torch

    torch.export.save(torch.export.export(module, example), str(path))
    return path


def save_onnx(module, example: tuple, path: Path, input_names=("image",), output_names=("logits",)) -> Path:
    import torch

    prog = torch.onnx.export(module, example, dynamo=True, input_names=list(input_names), output_names=list(output_names), external_data=False)
    prog.save(str(path), external_data=False)
    return path


def write_stacked(path: Path, n: int, shape: tuple[int, ...], name: str = "image", seed: int = 0, dtype=np.float32) -> Path:
    """n samples of `shape` (without batch), stacked on axis 0, as one .npz."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / "samples.npz", **{name: rng.standard_normal((n, *shape)).astype(dtype)})
    return path


@pytest.fixture(scope="session")
def tiny_cnn_files(tmp_path_factory):
    """A tiny CNN as .pt2 and .onnx, plus 40 random calibration samples for it."""
    import torch

    d = tmp_path_factory.mktemp("tiny_cnn")
    m = tiny_cnn()
    ex = (torch.randn(1, 3, 16, 16),)
    return {
        "pt2": save_pt2(m, ex, d / "tiny.pt2"),
        "onnx": save_onnx(m, ex, d / "tiny.onnx"),
        "calib": write_stacked(d / "calib", 40, (3, 16, 16)),
        "module": m,
    }


def write_profile(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def run_cli(*args: str):
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""
    import contextlib
    import io

    from edgepack.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return int(code), out.getvalue(), err.getvalue()
