"""The .ort save runs with a fixed address-space layout, so that the graph it writes is the same
run to run.

ONNX Runtime keys some of its maps by pointers. On amd64, the NCHWc transformer keeps its state in
a map keyed by NodeArg pointers, and the reorder nodes it adds (their node indices, their generated
names) come out in an order that follows heap addresses:
with address-space layout randomisation on, the same fp32 model gave two different graphs in ten
saves (onnxruntime 1.32); in a fresh process started under `setarch -R` (util-linux, on every
Linux), with PYTHONHASHSEED=0 and a small fixed environment, one. The order in which the tables are
serialised also follows address-seeded hashes; canonical.py removes that part for every save.

Only the short-lived saver process (formats/ort_mobile/convert.py) runs this way: the converter
children, which read user files, keep ASLR on; their other formats' output does not depend on it
(tests/test_reproducible.py with EDGEPACK_REPRODUCIBLE=0: every artifact identical, three runs).
EDGEPACK_REPRODUCIBLE=0 keeps ASLR on in the saver as well; amd64 .ort graphs may then differ from
build to build in their node numbering (not in what they compute).
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
