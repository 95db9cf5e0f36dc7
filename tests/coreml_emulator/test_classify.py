"""classify: a Core ML classifier's last op, converted by ct.convert with a ClassifierConfig."""
from __future__ import annotations

import numpy as np
import pytest

from emu_helpers import EXERCISED

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")


def test_classifier_scores_and_label(tmp_path):
    from edgepack.runtimes.coreml_emulator import CoreMLEmulatorRuntime, load_mlpackage
    from edgepack.types import TensorSpec

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 4)).eval()
    x = torch.randn(1, 6)
    ep = torch.export.export(m, (x,)).run_decompositions({})
    labels = ["cat", "dog", "eel", "fox"]
    model = ct.convert(
        ep, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32,
        inputs=[ct.TensorType(name="x", shape=(1, 6), dtype=np.float32)], classifier_config=ct.ClassifierConfig(labels),
    )
    path = tmp_path / "cls.mlpackage"
    model.save(str(path))
    emu = load_mlpackage(path)
    EXERCISED.update(emu.op_types)
    assert "classify" in emu.op_types
    out = emu.run({"x": x.numpy()})
    ref = m(x).detach().numpy()
    scores = next(v for k, v in out.items() if k not in emu.label_outputs)
    label = out[next(iter(emu.label_outputs))]
    assert np.abs(scores - ref).max() <= 1e-5  # Core ML maps the tensor as it is, no softmax
    assert str(label) == labels[int(ref.argmax())]
    # The runtime plug-in matches the source's one score output to the scores, not the label.
    sess = CoreMLEmulatorRuntime().open(
        path, threads=1, source_inputs=(TensorSpec("x", (1, 6), "float32"),), source_outputs=(TensorSpec("output", (1, 4), "float32"),)
    )
    got = sess.run({"x": x.numpy()})
    assert got[0].shape == (1, 4) and np.abs(got[0] - ref).max() <= 1e-5
    assert any("emulator only" in n for n in sess.notes())
