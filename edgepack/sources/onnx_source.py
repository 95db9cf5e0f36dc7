"""ONNX source: a .onnx file (protobuf, no pickles), run in onnxruntime as the reference."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, InputError, UnsupportedOpError, first_line, require
from ..inspect import Inspection, quantization_summary, register_inspector
from ..types import Sample, TensorSpec
from .base import Source, file_sha256, register_source


def onnx_value_specs(values, initializer_names=frozenset()) -> tuple[TensorSpec, ...]:
    """TensorSpecs of ONNX graph inputs/outputs (ValueInfoProto), skipping initializers."""
    onnx = require("onnx", "onnx", "Reading ONNX models")
    specs = []
    for v in values:
        if v.name in initializer_names:
            continue
        tt = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        specs.append(TensorSpec(v.name, shape, dtype))
    return tuple(specs)


def load_onnx_checked(path: Path):
    """onnx.load + check, with one-line errors that name the file."""
    onnx = require("onnx", "onnx", "Reading ONNX models")
    _check_readable(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        first = first_line(exc)
        raise InputError(f"{path}: not a valid ONNX model ({first}); re-export it") from None
    if not model.graph.output:
        raise InputError(f"{path}: the ONNX graph has no outputs; re-export it")
    return model


def _check_readable(path: Path) -> None:
    """Say what is wrong with the file itself before ONNX parses it: missing, a folder, unreadable, empty, a zip."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an ONNX model file; give the path of the .onnx file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: model file not found; check the path") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied reading the model; make it readable (chmod u+r) or run as its owner") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the model ({exc.strerror or exc}); check the file") from None
    if not head:
        raise InputError(f"{path}: the file is empty (0 bytes); export the model again")
    if head == b"PK\x03\x04":
        raise InputError(f"{path}: is a zip archive, not an ONNX protobuf (a renamed .pt2 or .keras?); give the .onnx file itself")


# Domains whose ops onnxruntime implements; any other domain is a custom op that no runtime here has.
KNOWN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"})
# Ops whose output shape depends on the input values, not only on the input shapes.
DATA_DEPENDENT_OPS = frozenset({"NonMaxSuppression", "NonZero", "Unique", "Compress"})


def check_supported_graph(path: Path, model) -> None:
    """Refuse, with exit 4, what edgepack cannot build or check: custom-domain ops (unless defined as
    model-local functions) and outputs whose shape is data-dependent (NonMaxSuppression and the like)."""
    local = {(f.domain, f.name) for f in model.functions}
    for n in model.graph.node:
        if n.domain not in KNOWN_DOMAINS and (n.domain, n.op_type) not in local:
            op = f"{n.domain}:{n.op_type}"
            raise UnsupportedOpError(
                op, "any", f"{path}: node '{n.name or n.output[0]}' is the custom op {op}, which no edgepack runtime or converter implements; "
                "re-export the model with standard ONNX ops only"
            )
    producers = {o: n for n in model.graph.node for o in n.output}
    input_dims = {d.dim_param for v in model.graph.input for d in v.type.tensor_type.shape.dim if d.dim_param}
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        static = out.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") or d.dim_param in input_dims for d in dims)
        if static:
            continue
        seen, stack = set(), [out.name]
        while stack:  # walk back from the output through its producers
            n = producers.get(stack.pop())
            if n is None or id(n) in seen:
                continue
            seen.add(id(n))
            if n.domain in ("", "ai.onnx") and n.op_type in DATA_DEPENDENT_OPS:
                raise ConversionError(
                    f"{path}: output '{out.name}' has a data-dependent shape (it comes from {n.op_type} node '{n.name or n.output[0]}'); "
                    f"edgepack builds and checks fixed-shape outputs only: end the model before {n.op_type} and run that step in the app"
                )
            stack.extend(i for i in n.input if i)


@register_source
class OnnxSource(Source):
    kind = "onnx"
    description = "ONNX .onnx"

    def __init__(self, spec: str, model, sha256: str):
        init = frozenset(i.name for i in model.graph.initializer)
        super().__init__(
            spec,
            Path(spec).stem,
            onnx_value_specs(model.graph.input, init),
            onnx_value_specs(model.graph.output),
            sha256,
        )
        self.path = Path(spec)
        self._session = None

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.lower().endswith(".onnx")

    @classmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source:
        path = Path(spec)
        model = load_onnx_checked(path)
        check_supported_graph(path, model)
        return cls(spec, model, file_sha256(path))

    def run(self, feeds: Sample) -> list[np.ndarray]:
        if self._session is None:
            ort = require("onnxruntime", "onnx", "Running the ONNX reference model")
            so = ort.SessionOptions()
            so.log_severity_level = 3
            try:
                self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise InputError(f"{self.path}: onnxruntime cannot load this model ({str(exc).splitlines()[0]})") from exc
        return self._session.run([o.name for o in self.outputs], {t.name: feeds[t.name] for t in self.inputs})

    def _shapes_fixed(self) -> None:
        self.__dict__.pop("_programs", None)
        onnx = require("onnx", "onnx", "Reading ONNX models")
        fixed = self._fixed_model(onnx.load(str(self.path), load_external_data=False))
        try:
            inferred = onnx.shape_inference.infer_shapes(fixed)
            outs = onnx_value_specs(inferred.graph.output)
            if len(outs) == len(self.outputs):
                self.outputs = outs
        except Exception:  # output specs stay as declared; the runtimes report the real shapes
            pass

    def _fixed_model(self, model):
        """`model` with its inputs' dims set to this source's static shapes (in place)."""
        for v in model.graph.input:
            shape = self.static_shapes.get(v.name)
            if shape is None:
                continue
            dims = v.type.tensor_type.shape.dim
            for d, size in zip(dims, shape):
                d.Clear()
                d.dim_value = int(size)
        return model

    def to_onnx(self, dest: Path) -> str:
        """A self-contained copy: weights kept in an external .data file are pulled inline. Inputs
        fixed by with_static_shapes() are static in the copy."""
        onnx = require("onnx", "onnx", "Reading ONNX models")
        model = self._fixed_model(onnx.load(str(self.path)))  # resolves external data beside the source file
        if model.ByteSize() < 2**31 - 1:
            onnx.save(model, str(dest))
        else:  # protobuf's 2 GB limit: keep the weights external, next to the copy
            onnx.save(model, str(dest), save_as_external_data=True, location=dest.name + ".data")
        fixed = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in self.static_shapes.items())
        return f"source ONNX (static inputs {fixed})" if fixed else "source ONNX"

    def exported_program(self, shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
        """The model as a torch.export ExportedProgram, through edgepack's ONNX->PyTorch bridge
        (edgepack/sources/onnx_torch), with this source's input names.

        `shapes` maps input names to static shapes (e.g. from --input-shape or the calibration
        data); inputs it leaves out keep their declared static dims, a symbolic batch becoming 1.
        A remaining symbolic dim raises ConversionError naming the input and the dimension; an op
        the bridge lacks raises UnsupportedOpError naming it. Results and errors are cached per
        `shapes`, because every format asks."""
        from .onnx_torch import export_program

        shapes = {**self.static_shapes, **(shapes or {})}
        key = tuple(sorted((k, tuple(v)) for k, v in shapes.items()))
        cache = self.__dict__.setdefault("_programs", {})
        if key not in cache:
            try:
                onnx = require("onnx", "onnx", "Reading ONNX models")
                ep = export_program(onnx.load(str(self.path)), self.inputs, shapes, self.spec)
                ep.edgepack_route = "source ONNX -> edgepack ONNX->PyTorch bridge -> torch.export"
                cache[key] = ep
            except ConversionError as exc:
                cache[key] = exc
        if isinstance(cache[key], ConversionError):
            raise cache[key]
        return cache[key]


@register_inspector(".onnx")
def inspect_onnx(path: Path) -> Inspection:
    onnx = require("onnx", "onnx", "Inspecting ONNX models")
    model = load_onnx_checked(path)
    ops = Counter((f"{n.domain}:{n.op_type}" if n.domain and n.domain != "ai.onnx" else n.op_type) for n in model.graph.node)
    weights = Counter(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.data_type)).name for i in model.graph.initializer)
    init = frozenset(i.name for i in model.graph.initializer)
    hist = dict(ops.most_common())
    return Inspection(
        path=path,
        kind="ONNX",
        size_bytes=path.stat().st_size,
        inputs=onnx_value_specs(model.graph.input, init),
        outputs=onnx_value_specs(model.graph.output),
        op_histogram=hist,
        weight_dtypes=dict(weights),
        quantization=quantization_summary(dict(weights), hist),
        details={"opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import}, "producer": model.producer_name},
    )
