"""The `coreml_emulator` runtime plug-in: runs a saved .mlpackage in the numpy emulator.

Latency measured through this runtime is the emulator's numpy time on the build host
(`measured_on = "emulator"`); it says nothing about how fast the model runs on a device.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ConversionError
from ...types import IOBinding, Sample, TensorSpec
from ..base import Runtime, Session, match_names, register_runtime
from .interpreter import EmulatedModel
from .loader import coremltools_version
from .values import Fp16Overflow


class CoreMLEmulatorSession(Session):
    """An artifact opened in the emulator. `findings` lists fp16 overflows seen in its runs."""

    def __init__(self, model: EmulatedModel, source_inputs: tuple[TensorSpec, ...], source_outputs: tuple[TensorSpec, ...]):
        self.model = model
        self.inputs = model.inputs
        self.outputs = model.outputs
        self._in_names = dict(zip((t.name for t in source_inputs), match_names(source_inputs, self.inputs, "input", model.source)))
        # A classifier's predicted-label output is a string: the source's scores match the numbers.
        numeric = tuple(b for b in self.outputs if b.name not in model.label_outputs) or self.outputs
        self._out_names = match_names(source_outputs, numeric, "output", model.source)
        self._real, self._real_reason, self._real_runs, self._real_max_diff = None, "", 0, 0.0
        self._pixels: dict[str, tuple[float, np.ndarray]] = {}  # source input -> ImageType (scale, bias)
        self._in_dtypes = {b.name: b.dtype for b in self.inputs}

    @property
    def findings(self) -> list[Fp16Overflow]:
        return self.model.findings

    def raw_feeds(self, feeds: Sample) -> dict[str, np.ndarray]:
        raw = {}
        for k, v in feeds.items():
            if k in self._pixels:  # an ImageType input takes pixels; the program applies scale and bias
                scale, bias = self._pixels[k]
                v = (np.asarray(v, np.float64) - bias.reshape(1, -1, 1, 1)) / scale
            name = self._in_names.get(k, k)  # an unknown name is left for EmulatedModel.run to refuse
            dtype = self._in_dtypes.get(name, "unknown")
            raw[name] = np.asarray(v) if dtype == "unknown" else np.asarray(v, dtype=dtype)
        return raw

    def run_raw(self, raw_feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self.model.run(raw_feeds)
        return [outs[name] for name in self._out_names]

    def parity_failures(self) -> list[str]:
        """fp16 overflow fails parity even where later ops hide it (a clamp, a compare): on a
        device the value is inf, and what follows may be NaN."""
        return [f"fp16 overflow in the Core ML emulator: {f.message()}" for f in self.model.findings]

    def notes(self) -> list[str]:
        if self._real is None:
            real = [f"parity from edgepack's Core ML emulator only: {self._real_reason}"]
        else:
            real = [
                f"real Core ML ({self._real_reason}) ran the same {self._real_runs} samples: "
                f"max |Core ML - emulator| = {self._real_max_diff:.6g} over all outputs"
            ]
        return [*real, *self.model.notes]  # fp16 overflow findings are failures: parity_failures()

    def _check_real(self, feeds: dict[str, np.ndarray], emulated: list[np.ndarray]) -> None:
        """On macOS: run the real Core ML too, and keep its largest difference from the emulator."""
        got = self._real.predict({k: np.asarray(v) for k, v in feeds.items()})
        for name, emu in zip(self._out_names, emulated):
            if name in got:
                real = np.asarray(got[name], dtype=np.float64).reshape(emu.shape)
                self._real_max_diff = max(self._real_max_diff, float(np.abs(real - emu).max()))
        self._real_runs += 1

    def run(self, feeds: Sample) -> list[np.ndarray]:
        raw = self.raw_feeds(feeds)
        outs = self.model.run(raw)
        result = []
        for name in self._out_names:
            o = outs[name]
            result.append(o.astype(np.float32) if o.dtype == np.float16 else o)
        if self._real is not None:
            self._check_real(raw, result)
        return result


@register_runtime
class CoreMLEmulatorRuntime(Runtime):
    """Core ML ML programs (.mlpackage), run by edgepack's numpy emulator on any OS."""

    name = "coreml_emulator"
    extra = "coreml"
    measured_on = "emulator"

    def version(self) -> str:
        return f"coremltools {coremltools_version()} emulator"

    def diagnosis_session(self, path: Path, *, source_inputs, source_outputs, companions=()) -> Session:
        """Every Var of the program, as the emulator computes it (diagnosis.py)."""
        from .diagnosis import open_diagnosis

        return open_diagnosis(Path(path), source_inputs, source_outputs)

    def open(self, path: Path, *, threads: int, source_inputs, source_outputs) -> Session:
        # `threads` has no effect: the emulator is numpy, whose BLAS threads are set process-wide.
        from . import load_mlpackage
        from .macos import real_coreml_available

        session = CoreMLEmulatorSession(load_mlpackage(path), tuple(source_inputs), tuple(source_outputs))
        session._pixels = _image_inputs(Path(path), session._in_names)
        ok, session._real_reason = real_coreml_available()
        if ok:  # macOS: parity also runs the real Core ML runtime (CPU only, to be deterministic)
            import coremltools as ct

            session._real = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        return session


def _image_inputs(path: Path, in_names: dict[str, str]) -> dict[str, tuple[float, np.ndarray]]:
    """ImageType inputs take pixels, and the program computes scale * pixel + bias. edgepack records
    the normalisation it built them from in the package's metadata; parity feeds the same samples
    as pixels: pixel = (x - bias) / scale."""
    import json

    from .loader import read_spec

    spec, _ = read_spec(path)
    meta = dict(spec.description.metadata.userDefined)
    images = {f.name for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"}
    if not images:
        return {}
    if "com.edgepack.preprocess" not in meta:
        raise ConversionError(f"{path}: has image inputs {sorted(images)} but no edgepack preprocessing metadata; cannot feed it pixels")
    pp = json.loads(meta["com.edgepack.preprocess"])
    std = np.asarray(pp["std"], np.float64)
    scale = float(pp["scale"]) / float(std[0])
    bias = -np.asarray(pp["mean"], np.float64) / std
    return {src: (scale, bias) for src, art in in_names.items() if art in images}
