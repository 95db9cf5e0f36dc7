"""Every op the emulator claims to cover has been run by the tests in this folder (this file
sorts last, so it sees what the others exercised)."""
from __future__ import annotations

import pytest

from emu_helpers import EXERCISED


def test_every_kernel_is_exercised():
    from edgepack.runtimes.coreml_emulator import covered_ops

    if len(EXERCISED) < 50:
        pytest.skip("run the whole tests/coreml_emulator folder to check kernel coverage")
    missing = sorted(set(covered_ops()) - EXERCISED)
    assert not missing, f"kernels no test runs: {missing}"
