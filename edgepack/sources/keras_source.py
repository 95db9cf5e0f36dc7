"""Keras source: a `.keras` file, loaded with Keras' safe_mode (no arbitrary code from Lambda
layers) unless --allow-pickle. The reference runs in Keras; formats that take ONNX get it from
tf2onnx, which keeps Keras' NHWC input layout; formats that take a torch.export program get the
same ONNX through edgepack's ONNX->PyTorch bridge (edgepack/sources/onnx_torch)."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._native import quiet_native
from ..errors import ConversionError, InputError, first_line, require
from ..types import Sample, TensorSpec
from .base import Source, file_sha256, register_source
from .onnx_torch.export import static_shapes

ONNX_OPSET = 17


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with quiet_native():
        require("tensorflow", "keras", "Reading Keras models")
        return require("keras", "keras", "Reading Keras models")


def _spec(name: str, shape, dtype) -> TensorSpec:
    return TensorSpec(name, tuple(d if isinstance(d, int) else None for d in shape), np.dtype(str(dtype)).name)


@register_source
class KerasSource(Source):
    kind = "keras"
    description = "Keras .keras (model.save)"
    layout = "nhwc"

    def __init__(self, spec: str, model: Any, sha256: str):
        self.model = model
        inputs = tuple(_spec(t.name, t.shape, t.dtype) for t in model.inputs)
        names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
        outputs = tuple(_spec(n, t.shape, t.dtype) for n, t in zip(names, model.outputs, strict=True))
        super().__init__(spec, Path(spec).stem, inputs, outputs, sha256)

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.lower().endswith((".keras", ".h5"))

    @classmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{path}: model file not found; check the path")
        if path.suffix.lower() == ".h5":
            raise InputError(f"{path}: legacy HDF5 Keras files are not read; save the model with model.save('model.keras')")
        keras = _keras()
        try:
            with quiet_native():
                model = keras.saving.load_model(str(path), safe_mode=not allow_pickle, compile=False)
        except Exception as exc:
            first = first_line(exc)
            hint = "; pass --allow-pickle if you trust its code" if "safe_mode" in first else "; save it again with model.save()"
            raise InputError(f"{path}: cannot load the Keras model ({first[:300]}){hint}") from None
        src = cls(spec, model, file_sha256(path))
        src.run({t.name: np.zeros(t.static_shape(), t.dtype) for t in src.inputs})  # a fresh model is built on first call
        return src

    def run(self, feeds: Sample) -> list[np.ndarray]:
        args = [np.asarray(feeds[t.name]) for t in self.inputs]
        out = self.model(args if len(args) > 1 else args[0], training=False)
        flat = out if isinstance(out, (list, tuple)) else list(out.values()) if isinstance(out, dict) else [out]
        return [np.asarray(o) for o in flat]

    def to_onnx(self, dest: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> str:
        """tf2onnx's export at the static shapes (see exported_program for `shapes`)."""
        tf = require("tensorflow", "keras", "Exporting Keras to ONNX")
        tf2onnx = require("tf2onnx", "keras", "Exporting Keras to ONNX")
        static = static_shapes(self.inputs, shapes, self.spec)
        sig = [tf.TensorSpec(static[t.name], getattr(tf, t.dtype), name=t.name) for t in self.inputs]
        try:
            with quiet_native(), contextlib.redirect_stdout(io.StringIO()):
                model_proto, _ = tf2onnx.convert.from_keras(self.model, input_signature=sig, opset=ONNX_OPSET)
        except Exception as exc:
            first = first_line(exc)
            raise ConversionError(f"{self.spec}: tf2onnx could not export the Keras model ({first[:300]})") from exc
        onnx = require("onnx", "onnx", "Exporting Keras to ONNX")
        for old, spec in zip(list(model_proto.graph.output), self.outputs):  # the source's output names
            if old.name != spec.name:
                for node in model_proto.graph.node:
                    node.output[:] = [spec.name if o == old.name else o for o in node.output]
                old.name = spec.name
        onnx.save(model_proto, str(dest))
        keras = require("keras", "keras", "Exporting Keras to ONNX")
        return f"keras {keras.__version__} -> tf2onnx {tf2onnx.__version__} (opset {ONNX_OPSET}, NHWC input)"

    def exported_program(self, shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
        """The model as a torch.export ExportedProgram: tf2onnx's ONNX (NHWC inputs, as Keras)
        through edgepack's ONNX->PyTorch bridge, with this source's input names. `shapes` and the
        caching are as OnnxSource.exported_program's."""
        from .onnx_torch import export_program

        key = tuple(sorted((k, tuple(v)) for k, v in (shapes or {}).items()))
        cache = self.__dict__.setdefault("_programs", {})
        if key not in cache:
            try:
                onnx = require("onnx", "onnx", "Exporting Keras to ONNX")
                with tempfile.TemporaryDirectory(prefix="edgepack-keras-") as tmp:
                    path = Path(tmp) / "model.onnx"
                    how = self.to_onnx(path, shapes)
                    model = onnx.load(str(path))
                ep = export_program(model, self.inputs, static_shapes(self.inputs, shapes, self.spec), self.spec)
                ep.edgepack_route = f"{how} -> edgepack ONNX->PyTorch bridge -> torch.export"
                cache[key] = ep
            except ConversionError as exc:
                cache[key] = exc
        if isinstance(cache[key], ConversionError):
            raise cache[key]
        return cache[key]
