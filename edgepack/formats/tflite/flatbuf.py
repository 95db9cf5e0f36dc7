"""Read a .tflite flatbuffer without running it: operators, tensors, constants, I/O.

Only the schema accessors that ai-edge-litert ships are used (no TensorFlow). Everything here
reads subgraph 0, the main graph that the signature runs; edgepack's artifacts have one subgraph.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...errors import require

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "EMBEDDING_LOOKUP")


def schema():
    return require("ai_edge_litert.schema_py_generated", "tflite", "Reading .tflite files")


@lru_cache(maxsize=1)
def _names() -> tuple[dict[int, str], dict[int, str]]:
    fb = schema()
    ops = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    return ops, types


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str  # numpy-style name: float32, float16, int8, ...
    shape: tuple[int, ...]
    constant: bool  # backed by a buffer with data (a weight or a folded constant)
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]

    @property
    def quantization(self) -> dict[str, Any] | None:
        if not self.scale:
            return None
        return {"scale": list(self.scale), "zero_point": list(self.zero_point)}


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name, or CUSTOM:<code>
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    tensors: tuple[TensorInfo, ...] | dict[int, TensorInfo]  # a dict of the I/O tensors alone from read_graph(io_only=True)
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    metadata: dict[str, bytes]
    signature_inputs: tuple[tuple[str, int], ...]  # (signature name, tensor index), signature order
    signature_outputs: tuple[tuple[str, int], ...]

    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(o.name for o in self.ops).most_common())

    def producer(self) -> dict[int, OpInfo]:
        return {t: o for o in self.ops for t in o.outputs}

    def weight_dtypes(self) -> dict[str, list[str]]:
        """For each weight-carrying op type, the dtypes of its weight operand (input 1), looking
        through a DEQUANTIZE that feeds it (fp16 and weight-only models store weights that way)."""
        prod = self.producer()
        out: dict[str, set[str]] = {}
        for op in self.ops:
            if op.name not in WEIGHT_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            t = self.tensors[op.inputs[1]]
            src = prod.get(t.index)
            if not t.constant and src is not None and src.name == "DEQUANTIZE":
                t = self.tensors[src.inputs[0]]
            if t.constant:
                out.setdefault(op.name, set()).add(t.dtype)
        return {k: sorted(v) for k, v in out.items()}


def _op_name(model, ops_table: dict[int, str], opcode_index: int) -> str:
    oc = model.OperatorCodes(opcode_index)
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    name = ops_table.get(code, f"BUILTIN_{code}")
    if name == "CUSTOM":
        custom = oc.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}"
    return name


def read_graph(buf: bytes | bytearray, io_only: bool = False) -> Graph:
    """The main subgraph's tensors and ops, metadata and signature. `io_only`: only the input and
    output tensors (`tensors` then maps their indices to them) and no ops; what a session needs of a
    candidate, at a small part of the cost on a graph of thousands of tensors."""
    fb = schema()
    if not fb.Model.ModelBufferHasIdentifier(buf, 0):
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    model = fb.Model.GetRootAs(buf, 0)
    ops_table, types = _names()
    sg = model.Subgraphs(0)

    def has_data(bi: int) -> bool:
        b = model.Buffers(bi) if bi < model.BuffersLength() else None
        return b is not None and (b.DataLength() > 0 or b.Offset() > 1)

    inputs = tuple(int(x) for x in sg.InputsAsNumpy()) if sg.InputsLength() else ()
    outputs = tuple(int(x) for x in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
    sig_in: list[tuple[str, int]] = []
    sig_out: list[tuple[str, int]] = []
    if model.SignatureDefsLength():
        sd = model.SignatureDefs(0)
        sig_in = [(sd.Inputs(i).Name().decode(), sd.Inputs(i).TensorIndex()) for i in range(sd.InputsLength())]
        sig_out = [(sd.Outputs(i).Name().decode(), sd.Outputs(i).TensorIndex()) for i in range(sd.OutputsLength())]
    tensors = []
    wanted = sorted({*inputs, *outputs, *(i for _, i in sig_in + sig_out)}) if io_only else range(sg.TensorsLength())
    for i in wanted:
        t = sg.Tensors(i)
        q = t.Quantization()
        scale = tuple(float(s) for s in q.ScaleAsNumpy()) if q is not None and q.ScaleLength() else ()
        zp = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else ()
        tensors.append(
            TensorInfo(
                index=i,
                name=(t.Name() or b"").decode(errors="replace"),
                dtype=types.get(t.Type(), str(t.Type())),
                shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                constant=has_data(t.Buffer()),
                scale=scale,
                zero_point=zp,
            )
        )
    ops = []
    for i in range(0 if io_only else sg.OperatorsLength()):
        o = sg.Operators(i)
        ops.append(
            OpInfo(
                index=i,
                name=_op_name(model, ops_table, o.OpcodeIndex()),
                inputs=tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else (),
                outputs=tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else (),
            )
        )
    metadata = {}
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        b = model.Buffers(m.Buffer())
        if b is not None and b.DataLength():
            metadata[(m.Name() or b"").decode()] = b.DataAsNumpy().tobytes()
        elif b is not None and b.Offset() > 1:
            metadata[(m.Name() or b"").decode()] = bytes(buf[b.Offset() : b.Offset() + b.Size()])
    return Graph(
        tensors={t.index: t for t in tensors} if io_only else tuple(tensors),
        ops=tuple(ops),
        inputs=inputs,
        outputs=outputs,
        metadata=metadata,
        signature_inputs=tuple(sig_in),
        signature_outputs=tuple(sig_out),
    )
