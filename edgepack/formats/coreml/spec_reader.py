"""Read a .mlpackage's model spec (Core ML's Model.proto) without coremltools.

`import coremltools` (even `coremltools.proto`) imports torch and TensorFlow, which takes tens of
seconds, so `edgepack inspect` reads the protobuf wire format itself and decodes only the fields
it shows. Field numbers are those of Core ML's public Model.proto, FeatureTypes.proto and MIL.proto:

    Model: specificationVersion 1, description 2, mlProgram 502
    ModelDescription: input 1, output 10, predictedFeatureName 11, predictedProbabilitiesName 12,
        metadata 100 (shortDescription 1, versionString 2, author 3, license 4, userDefined 100)
    FeatureDescription: name 1, shortDescription 2, type 3
    FeatureType: multiArrayType 5 (shape 1, dataType 2), imageType 4 (width 1, height 2, colorSpace 3)
    MIL Program: version 1, functions 2 (map) -> Function: opset 2, block_specializations 3 (map)
    Block: operations 3 -> Operation: type 1, attributes 5 (map) -> Value: type 2 ->
        ValueType: tensorType 1 -> TensorType: dataType 1, rank 2, dimensions 3 -> constant 1 -> size 1
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...types import TensorSpec

# ArrayFeatureType.ArrayDataType
ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
COLOR_SPACES = {10: "grayscale", 20: "rgb", 30: "bgr", 40: "grayscale_float16"}
FEATURE_KINDS = {1: "int64Type", 2: "doubleType", 3: "stringType", 4: "imageType", 5: "multiArrayType", 6: "dictionaryType", 7: "sequenceType", 8: "stateType"}
# MILSpec.DataType -> numpy-style names
MIL_DTYPES = {
    1: "bool", 2: "str", 10: "float16", 11: "float32", 12: "float64", 13: "bfloat16", 21: "int8", 22: "int16",
    23: "int32", 24: "int64", 25: "int4", 31: "uint8", 32: "uint16", 33: "uint32", 34: "uint64", 35: "uint4",
    36: "uint2", 37: "uint1", 38: "uint6", 39: "uint3", 40: "float8e4m3fn", 41: "float8e5m2",
}  # fmt: skip
WEIGHT_MIN_ELEMENTS = 17  # a const with more elements than this counts as a weight


class WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes) -> dict[int, list]:
    """All fields of one message: number -> values (int for varint/fixed, bytes for length-delimited)."""
    out: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise WireError("truncated field")
            val, pos = bytes(buf[pos : pos + n]), pos + n
        elif wire == 5:
            val, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end or num == 0:
            raise WireError("malformed field")
        out.setdefault(num, []).append(val)
    return out


def _one(f: dict[int, list], num: int, default=None):
    v = f.get(num)
    return v[-1] if v else default  # protobuf: the last occurrence wins


def _text(f: dict[int, list], num: int) -> str:
    return _one(f, num, b"").decode("utf-8", errors="replace")


def _ints(f: dict[int, list], num: int) -> list[int]:
    """A repeated int64 field, packed or not."""
    out: list[int] = []
    for v in f.get(num, []):
        if isinstance(v, int):
            out.append(v)
        else:
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def _map(f: dict[int, list], num: int) -> dict[str, bytes]:
    """A map<string, ...> field: entries are messages with key 1 and value 2."""
    out = {}
    for entry in f.get(num, []):
        e = fields(entry)
        out[_text(e, 1)] = _one(e, 2, b"")
    return out


@dataclass
class CoreMLSpec:
    specification_version: int
    model_type: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    image_inputs: dict[str, str]  # input name -> colour space
    metadata: dict[str, str]  # userDefined
    short_description: str
    version: str
    author: str
    predicted_feature: str
    ops: dict[str, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    opset: str = ""


def _feature(buf: bytes, images: dict[str, str]) -> TensorSpec:
    f = fields(buf)
    name = _text(f, 1)
    t = fields(_one(f, 3, b""))
    if 5 in t:
        arr = fields(_one(t, 5))
        dt = _one(arr, 2, 0)
        return TensorSpec(name, tuple(_ints(arr, 1)), ARRAY_DTYPES.get(dt, str(dt)))
    if 4 in t:
        img = fields(_one(t, 4))
        images[name] = COLOR_SPACES.get(_one(img, 3, 0), "?")
        return TensorSpec(name, (int(_one(img, 2, 0)), int(_one(img, 1, 0))), "image")
    kind = next((FEATURE_KINDS.get(k, "?") for k in t if k in FEATURE_KINDS), "?")
    return TensorSpec(name, (), kind)


def _tensor_type(value_type: bytes) -> tuple[str, int] | None:
    """(dtype, element count) of a MIL ValueType that is a tensor with constant dimensions."""
    vt = fields(value_type)
    if 1 not in vt:
        return None
    tt = fields(_one(vt, 1))
    dtype = MIL_DTYPES.get(_one(tt, 1, 0), str(_one(tt, 1, 0)))
    n = 1
    for d in tt.get(3, []):
        const = _one(fields(d), 1)
        n *= int(_one(fields(const), 1, 0)) if const is not None else 0
    return dtype, n


def _program(buf: bytes, spec: CoreMLSpec) -> None:
    funcs = _map(fields(buf), 2)
    main = funcs.get("main") or next(iter(funcs.values()), b"")
    fn = fields(main)
    spec.opset = _text(fn, 2)
    blocks = _map(fn, 3)
    block = blocks.get(spec.opset) or next(iter(blocks.values()), b"")
    ops, weights = Counter(), Counter()
    for op_buf in fields(block).get(3, []):
        op = fields(op_buf)
        kind = _text(op, 1)
        if kind != "const":
            ops[kind] += 1
        if kind.startswith("constexpr_"):
            weights[kind] += 1
        elif kind != "const":
            continue
        # a const's value, or a constexpr op's stored tensors (iOS16 ops keep data as attributes)
        for name, val in _map(op, 5).items():
            if kind == "const" and name != "val":
                continue
            tt = _tensor_type(_one(fields(val), 2, b""))
            if tt is not None and tt[1] >= WEIGHT_MIN_ELEMENTS:
                weights[tt[0]] += 1
    spec.ops, spec.weights = dict(ops.most_common()), dict(weights)


def model_spec_path(package: Path) -> Path:
    """The spec file inside a .mlpackage, as its Manifest.json names it."""
    try:
        manifest = json.loads((package / "Manifest.json").read_text(encoding="utf-8"))
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        path = package / "Data" / root["path"]
        if path.is_file():
            return path
    except (OSError, KeyError, TypeError, ValueError):
        pass
    return package / "Data" / "com.apple.CoreML" / "model.mlmodel"


def read_spec(buf: bytes) -> CoreMLSpec:
    """Decode a Model.proto message; raises WireError on bytes that are not one."""
    m = fields(buf)
    desc = fields(_one(m, 2, b""))
    meta = fields(_one(desc, 100, b""))
    images: dict[str, str] = {}
    inputs = tuple(_feature(b, images) for b in desc.get(1, []))
    outputs = tuple(_feature(b, {}) for b in desc.get(10, []))
    kinds = {502: "mlProgram", 500: "neuralNetwork", 403: "neuralNetworkClassifier", 202: "pipeline", 200: "pipelineClassifier"}
    spec = CoreMLSpec(
        specification_version=int(_one(m, 1, 0)),
        model_type=next((v for k, v in kinds.items() if k in m), "other"),
        inputs=inputs,
        outputs=outputs,
        image_inputs=images,
        metadata={k: v.decode("utf-8", errors="replace") for k, v in _map(meta, 100).items()},
        short_description=_text(meta, 1),
        version=_text(meta, 2),
        author=_text(meta, 3),
        predicted_feature=_text(desc, 11),
    )
    if 502 in m:
        _program(_one(m, 502), spec)
    return spec
