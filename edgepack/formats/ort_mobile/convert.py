"""ONNX -> ORT format (.ort) for a mobile target platform, plus the reduced-build operator config."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ...errors import ConversionError, require
from ...pipeline.layout import fixed_layout_command
from .canonical import canonical_ort

CONFIG_SUFFIX = ".required_operators_and_types.config"


def to_ort(onnx_path: Path, ort_path: Path, *, target_platform: str, optimization: str) -> Path:
    """Save `onnx_path` as an ORT-format model; return the operator config written beside it.

    For arm, the NCHWc layout transformer is disabled (x86-only kernels) and int8 QDQ stays
    int8 (`session.qdqisint8allowed`), as ONNX Runtime's own converter does for mobile.

    The saved file is then rewritten in its canonical form (canonical.py): ONNX Runtime serialises
    the .ort's tables in the order of hash maps seeded by heap addresses, and the canonical form
    is the same whatever that order was. The save itself still runs in a fresh interpreter with a
    fixed address-space layout (pipeline/layout.py): on amd64, the reorder nodes that the NCHWc
    transformer adds (node indices, generated names) come out in an order that follows heap
    addresses, so the graph itself differs unless the process's heap is the same every time.
    """
    require("onnxruntime", "onnx", "Converting to the ORT format")
    # Relative names from the model's folder and a small, fixed environment: the file names are the
    # same wherever the work folder is, and so are the process's first allocations.
    here = onnx_path.parent
    rel_out = os.path.relpath(ort_path, here)
    argv, fixed = fixed_layout_command([sys.executable, "-m", "edgepack.formats.ort_mobile.save_ort", onnx_path.name, rel_out, target_platform, optimization])
    package_root = str(Path(__file__).resolve().parents[3])  # the folder that holds edgepack/
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": package_root, "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", **fixed}
    done = subprocess.run(argv, cwd=here, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ConversionError(f"{onnx_path.name}: ONNX Runtime could not convert it to .ort ({last.removeprefix('edgepack-save-ort: ')})")
    canonical_ort(ort_path)
    return write_config(ort_path)


def save_ort(onnx_path: Path, ort_path: Path, *, target_platform: str, optimization: str) -> None:
    """The save itself (run by save_ort.py in its own process)."""
    ort = require("onnxruntime", "onnx", "Converting to the ORT format")
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.optimized_model_filepath = str(ort_path)
    so.log_severity_level = 3
    so.intra_op_num_threads = 1  # no pool threads allocating beside the save: the same heap every run
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.add_session_config_entry("session.qdqisint8allowed", "1" if target_platform == "arm" else "0")
    disabled = ["NchwcTransformer"] if target_platform == "arm" and optimization == "all" else None
    ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def write_config(ort_path: Path) -> Path:
    """The reduced-build operator config of an .ort, written beside it."""
    import logging

    from onnxruntime.tools.ort_format_model import create_config_from_models

    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)

    config = ort_path.with_name(ort_path.stem + CONFIG_SUFFIX)
    create_config_from_models([ort_path], config, True)
    # The config's header lists the models it came from by their full path (here, the work folder's);
    # keep the file name only, so that the same model gives the same config wherever it was built.
    text = config.read_text(encoding="utf-8").replace(str(ort_path), ort_path.name)
    config.write_text(text, encoding="utf-8")
    return config
