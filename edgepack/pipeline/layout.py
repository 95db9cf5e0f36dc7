"""Converter children run with a fixed address-space layout, so that their output is byte-identical
run to run.

ONNX Runtime writes the tables of an .ort file (its kernel type-string resolver) in the iteration order
of an absl hash map, and absl seeds its hashes from an address in the process. With address-space
layout randomisation on, the same model gives a different .ort every run (measured with onnxruntime
1.32: three conversions, three digests); with it off, the same digest every time. The converter
child is therefore started under `setarch -R` (util-linux, on every Linux), with PYTHONHASHSEED=0 so
that Python-side set and dict orders are fixed too.

This turns off one exploit mitigation, in the converter child only (the parent, which reads user
files first, keeps it). EDGEPACK_REPRODUCIBLE=0 keeps ASLR on in the child as well; .ort files then
differ from build to build in their byte order (not in what they compute).
"""
from __future__ import annotations

import os
import shutil
import sys


def fixed_layout_command(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """(command, extra environment) that run argv with ASLR off, where this platform can."""
    if os.environ.get("EDGEPACK_REPRODUCIBLE", "1") == "0":
        return argv, {}
    env = {"PYTHONHASHSEED": "0"}
    setarch = shutil.which("setarch") if sys.platform.startswith("linux") else None
    if setarch is None:
        return argv, env
    return [setarch, os.uname().machine, "-R", *argv], env
