#!/usr/bin/env python
"""Train DigitsCNN on scikit-learn's bundled digits and export it.

Usage (from anywhere):  python examples/digits/train.py

Deterministic: fixed seeds, deterministic algorithms, one CPU thread, a
seeded batch order and augmentation.  Trains on the 1297 training digits of
the fixed split in digits_data.py, evaluates on the 500 held-out digits, then
writes next to this script:

  digits_cnn_state.pt   trained state_dict (torch.load(..., weights_only=True))
  digits_cnn.pt2        torch.export program, input (1, 1, 8, 8) float32
  digits_cnn.onnx       ONNX (dynamo exporter), input "image", output "logits",
                        weights stored inline (no external data file)

and checks that the .pt2 and the .onnx (via onnxruntime) match PyTorch.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT))

from examples.digits.digits_data import load_split  # noqa: E402
from examples.digits.model import DigitsCNN, example_input  # noqa: E402

SEED = 0
EPOCHS = 40
BATCH_SIZE = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4
MAX_SHIFT = 1  # augmentation: random translation by up to 1 pixel
LABEL_SMOOTHING = 0.1  # keeps logits small, so float32 rounding in exported
                       # runtimes stays far below the 1e-5 parity tolerance

STATE_PATH = HERE / "digits_cnn_state.pt"
PT2_PATH = HERE / "digits_cnn.pt2"
ONNX_PATH = HERE / "digits_cnn.onnx"
TOL = 1e-5


def setup_determinism():
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def random_shift(x, gen):
    """Translate each image by dy, dx in [-MAX_SHIFT, MAX_SHIFT], zero fill."""
    n, c, h, w = x.shape
    p = MAX_SHIFT
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]   # n,1,h,1
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]   # n,1,1,w
    b = torch.arange(n)[:, None, None, None]
    ch = torch.arange(c)[None, :, None, None]
    return padded[b, ch, rows, cols]


@torch.no_grad()
def predict(model, x, batch_size=500):
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def train(x_train, y_train, x_heldout, y_heldout):
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=EPOCHS * steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)

    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        for i in range(0, len(x_train), BATCH_SIZE):
            idx = order[i:i + BATCH_SIZE]
            xb = random_shift(x_train[idx], gen)
            loss = F.cross_entropy(model(xb), y_train[idx],
                                   label_smoothing=LABEL_SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0 or epoch == 0:
            acc = (predict(model, x_heldout).argmax(1) == y_heldout).float().mean().item()
            print(f"epoch {epoch + 1:3d}  loss {total_loss / len(x_train):.4f}  "
                  f"held-out acc {acc:.4f}")
    return model.eval()


def export_pt2(model, example):
    ep = torch.export.export(model.eval(), (example,))
    torch.export.save(ep, PT2_PATH)
    print("pt2 user_inputs :", ep.graph_signature.user_inputs)
    print("pt2 user_outputs:", ep.graph_signature.user_outputs)


def export_onnx(model, example):
    import onnx

    for stale in (ONNX_PATH, ONNX_PATH.with_name(ONNX_PATH.name + ".data")):
        stale.unlink(missing_ok=True)
    torch.onnx.export(model.eval(), (example,), str(ONNX_PATH), dynamo=True,
                      input_names=["image"], output_names=["logits"],
                      external_data=False)
    proto = onnx.load(str(ONNX_PATH), load_external_data=False)
    external = [t.name for t in proto.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise RuntimeError(f"ONNX weights stored externally: {external}")
    onnx.checker.check_model(proto, full_check=True)

    def describe(values):
        return [(v.name, [d.dim_value if d.HasField("dim_value") else d.dim_param
                          for d in v.type.tensor_type.shape.dim],
                 onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type))
                for v in values]

    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    print("onnx inputs :", describe(proto.graph.input))
    print("onnx outputs:", describe(proto.graph.output))
    print("onnx opsets :", opsets, " initializers:", len(proto.graph.initializer))


def verify(model, x_heldout, y_heldout):
    """Check the .pt2 and .onnx files against the in-memory model, one held-out
    sample at a time (both artefacts have a fixed batch size of 1)."""
    import onnxruntime as ort

    with torch.no_grad():
        # Reference: eager PyTorch on the same batch-1 inputs as the artefacts.
        model.eval()
        ref = torch.cat([model(x_heldout[i:i + 1]) for i in range(len(x_heldout))])

        loaded = torch.export.load(PT2_PATH).module()
        pt2_out = torch.cat([loaded(x_heldout[i:i + 1]) for i in range(len(x_heldout))])

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(ONNX_PATH), so, providers=["CPUExecutionProvider"])
    xs = x_heldout.numpy()
    ort_out = np.concatenate([sess.run(["logits"], {"image": xs[i:i + 1]})[0]
                              for i in range(len(xs))])

    pt2_diff = (pt2_out - ref).abs().max().item()
    ort_diff = float(np.abs(ort_out - ref.numpy()).max())
    y = y_heldout.numpy()
    acc_torch = float((ref.argmax(1).numpy() == y).mean())
    acc_pt2 = float((pt2_out.argmax(1).numpy() == y).mean())
    acc_ort = float((ort_out.argmax(1) == y).mean())
    print(f"held-out accuracy: torch {acc_torch:.4f}  pt2 {acc_pt2:.4f}  "
          f"onnxruntime {acc_ort:.4f}  (n={len(y)})")
    print(f"max |logit| {ref.abs().max().item():.2f}; max |logit diff| vs torch: "
          f"pt2 {pt2_diff:.2e}  onnxruntime {ort_diff:.2e}")
    if pt2_diff > TOL or ort_diff > TOL:
        raise RuntimeError(f"exported model differs from torch by more than {TOL}")
    if acc_torch < 0.95:
        raise RuntimeError(f"held-out accuracy {acc_torch:.4f} is below 0.95")


def main():
    setup_determinism()
    x_train, y_train, x_heldout, y_heldout = map(torch.from_numpy, load_split())

    t0 = time.perf_counter()
    model = train(x_train, y_train, x_heldout, y_heldout)
    train_time = time.perf_counter() - t0
    print(f"train time: {train_time:.1f} s ({EPOCHS} epochs, 1 thread)")

    torch.save(model.state_dict(), STATE_PATH)
    example = example_input()
    export_pt2(model, example)
    export_onnx(model, example)
    verify(model, x_heldout, y_heldout)
    for p in (STATE_PATH, PT2_PATH, ONNX_PATH):
        print(f"wrote {p.relative_to(REPO_ROOT)}  {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
