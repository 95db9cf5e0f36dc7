"""The record a hostile-input generator returns (issue #8 corpus contract).

Generators live in tests/hostile_inputs.py, tests/hostile_pt2.py and tests/hostile_misc.py as
`make_<case>(tmp: pathlib.Path) -> Case`; tests/test_hostile_corpus.py runs each through the CLI.
"""
from __future__ import annotations

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
