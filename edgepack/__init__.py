"""edgepack: package a trained model for phones and edge boxes, with parity and latency checked.

    import edgepack
    report = edgepack.build("model.pt2", "calibration_data/digits", ["android-arm64"], "build/out")
    report.passed  # every artifact met its tolerances and budgets

Heavy libraries (torch, onnxruntime, ...) are imported only when a build needs them.
"""
from __future__ import annotations

__version__ = "0.1.0"
REPORT_SCHEMA_VERSION = "1"

__all__ = ["__version__", "build", "check", "inspect"]


def build(*args, **kwargs):
    from .api import build as _build

    return _build(*args, **kwargs)


def check(*args, **kwargs):
    from .api import check as _check

    return _check(*args, **kwargs)


def inspect(path):
    from .inspect import inspect_file

    return inspect_file(path)
