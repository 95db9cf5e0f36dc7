"""Is real Core ML at hand? Only on macOS, with coremltools' native bindings.

On Linux coremltools converts and saves, but `MLModel.predict` raises; the emulator is then the
only way to run an artifact. This module does not import coremltools on Linux (that import
takes seconds and cannot change the answer).
"""
from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def real_coreml_available() -> tuple[bool, str]:
    """(True, what) when `coremltools.models.MLModel(...).predict` can run here; else (False, why)."""
    try:
        ct_version = version("coremltools")
    except PackageNotFoundError:
        return False, "coremltools is not installed (pip install 'edgepack[coreml]')"
    if sys.platform != "darwin":
        return (
            False,
            f"Core ML runs only on macOS; coremltools {ct_version} on {platform.system()} can convert and save but not predict",
        )
    try:
        from coremltools.models import model as _model
    except ImportError as exc:
        return False, f"coremltools {ct_version} cannot be imported ({exc})"
    if getattr(_model, "_MLModelProxy", None) is None:
        return False, f"coremltools {ct_version} on macOS {platform.mac_ver()[0]} lacks its native Core ML bindings (libcoremlpython)"
    return True, f"Core ML through coremltools {ct_version} on macOS {platform.mac_ver()[0]}"
