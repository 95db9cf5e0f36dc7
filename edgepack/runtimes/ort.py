"""ONNX Runtime, on the host CPU: runs .onnx and .ort files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConversionError, require
from ..types import IOBinding, Sample, TensorSpec
from .base import Runtime, Session, match_names, register_runtime


def _np_dtype(ort_type: str) -> str:
    # "tensor(float)" -> float32 ...
    table = {
        "float": "float32",
        "float16": "float16",
        "double": "float64",
        "int8": "int8",
        "uint8": "uint8",
        "int16": "int16",
        "int32": "int32",
        "int64": "int64",
        "bool": "bool",
    }
    inner = ort_type.removeprefix("tensor(").removesuffix(")")
    return table.get(inner, inner)


class OrtSession(Session):
    def __init__(self, sess, path: Path, source_inputs: tuple[TensorSpec, ...], source_outputs: tuple[TensorSpec, ...]):
        self.sess = sess
        self.path = Path(path)
        self.source_inputs = source_inputs
        self.inputs = tuple(
            IOBinding(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape), _np_dtype(i.type)) for i in sess.get_inputs()
        )
        self.outputs = tuple(
            IOBinding(o.name, tuple(d if isinstance(d, int) else -1 for d in o.shape), _np_dtype(o.type)) for o in sess.get_outputs()
        )
        where = str(path)
        self._in_names = dict(zip((t.name for t in source_inputs), match_names(source_inputs, self.inputs, "input", where)))
        self._in_dtypes = {b.name: b.dtype for b in self.inputs}
        self._out_names = match_names(source_outputs, self.outputs, "output", where)

    def raw_feeds(self, feeds: Sample) -> dict[str, np.ndarray]:
        return {self._in_names[k]: np.asarray(v, dtype=self._in_dtypes[self._in_names[k]]) for k, v in feeds.items()}

    def run_raw(self, raw_feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sess.run(self._out_names, raw_feeds)

    def run(self, feeds: Sample) -> list[np.ndarray]:
        outs = self.sess.run(self._out_names, self.raw_feeds(feeds))
        return [np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for o in outs]

    def notes(self) -> list[str]:
        from .ort_fp16 import fp16_note  # an fp16 .ort whose ops take float32 (casts ORT inserted on save)

        note = fp16_note(self.path) if self.path.suffix.lower() == ".ort" else None
        return [note] if note else []


@register_runtime
class OnnxRuntime(Runtime):
    name = "onnxruntime"
    extra = "onnx"
    android_library = "com.microsoft.onnxruntime:onnxruntime-android"

    def version(self) -> str:
        return require("onnxruntime", self.extra, "Running .ort artifacts").__version__

    def open(self, path: Path, *, threads: int, source_inputs, source_outputs) -> Session:
        ort = require("onnxruntime", self.extra, "Running .ort artifacts")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if Path(path).is_dir():
            raise ConversionError(f"{path}: is a folder, not an .ort file")
        try:
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConversionError(f"{path}: onnxruntime cannot load the artifact ({str(exc).splitlines()[0]})") from exc
        return OrtSession(sess, path, source_inputs, source_outputs)

    def diagnosis_session(self, path: Path, *, source_inputs, source_outputs, companions=()) -> Session:
        """The ONNX the artifact was saved from, with every intermediate tensor exposed (ort_diagnosis)."""
        from .ort_diagnosis import open_diagnosis

        return open_diagnosis(Path(path), source_inputs, source_outputs, tuple(companions))
