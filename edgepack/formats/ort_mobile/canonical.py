"""Byte-identical .ort files: read an .ort flatbuffer and write it again in one canonical form.

ONNX Runtime lays out an .ort's objects in an order that follows address-seeded hash maps (the
kernel type-string resolver's; onnxruntime 1.32 gave six digests in twenty saves of one fp16 model
with ASLR on). Compared field by field, those files held the same content: only the layout
differed. The canonical form is a deep copy of the whole file with flatbuffers' own Builder, in
one fixed order, in which the vectors that ONNX Runtime reads back into maps (SET_VECTORS) are also
sorted by their entries' content and every other vector keeps its order; scalar fields keep their
exact bytes and their presence, so ONNX Runtime reads back the same model.

The copy is driven by the schema that onnxruntime ships as generated Python
(tools/ort_format_model/ort_flatbuffers_py/fbs): each table's fields, their slots and kinds are
read from that source (its Add functions and accessors), not written out here, so a new field in a
later onnxruntime is copied as well. What the generated code cannot say (a union's member tables,
which vectors are sets) is listed below; a schema that does not fit raises ConversionError.
"""
from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ConversionError
from .inspect import ort_schema

ROOT_TABLE = "InferenceSession"

# A union's member tables by its type value (the generated Python names the values only).
UNIONS = {("TypeInfo", "Value"): {"enum": "TypeInfoValue", "members": {1: "TensorTypeAndShape", 2: "SequenceType", 3: "MapType"}}}

# Vectors that ONNX Runtime reads back into maps or sets, so their order carries no meaning:
# (table, field) -> sorted by their entries' whole content.
SET_VECTORS = frozenset({
    ("KernelTypeStrResolver", "OpKernelTypeStrArgs"),  # op id -> its type strings
    ("OpIdKernelTypeStrArgsEntry", "KernelTypeStrArgs"),  # type string -> the args it names
})

_FLAGS = {  # flatbuffers.number_types names -> struct format
    "Bool": "?", "Int8": "b", "Uint8": "B", "Int16": "h", "Uint16": "H", "Int32": "i", "Uint32": "I",
    "Int64": "q", "Uint64": "Q", "Float32": "f", "Float64": "d",
}


@dataclass(frozen=True)
class Field:
    name: str
    slot: int
    kind: str  # scalar, string, table, union, vector
    elem: str = ""  # scalar: its format char; table: its table; vector: scalar/string/table/struct
    target: str = ""  # vector of scalars: format char; of tables or structs: their name


@dataclass(frozen=True)
class Table:
    name: str
    slots: int
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]
    structs: dict[str, tuple[int, int]]  # name -> (size, alignment)


class Obj:
    """A decoded table: its name and its present fields (name -> value)."""

    __slots__ = ("table", "values")

    def __init__(self, table: str, values: dict[str, Any]):
        self.table = table
        self.values = values

    def __eq__(self, other):
        return isinstance(other, Obj) and (self.table, self.values) == (other.table, other.values)

    def __repr__(self):
        return f"{self.table}({self.values!r})"


# --- the schema, from the generated accessors ------------------------------------------------

def _accessor_field(body: str, imported: str | None) -> tuple[str, str, str] | None:
    """(kind, elem, target) of a field, from the code of its generated accessor."""
    if "self._tab.Union(" in body:
        return "union", "", ""
    flags = re.search(r"number_types\.(\w+)Flags, (\w)", body)
    if "self._tab.Vector(o)" in body:
        if "Indirect" in body and imported:
            return "vector", "table", imported
        if "self._tab.String(a" in body:
            return "vector", "string", ""
        if imported:
            return "vector", "struct", imported
        if flags and flags.group(1) in _FLAGS:
            return "vector", "scalar", _FLAGS[flags.group(1)]
        return None
    if "self._tab.String(o" in body:
        return "string", "", ""
    if "Indirect(o + self._tab.Pos)" in body and imported:
        return "table", imported, ""
    if flags and flags.group(2) == "o" and flags.group(1) in _FLAGS:
        return "scalar", _FLAGS[flags.group(1)], ""
    return None


def _parse_module(source: str, tables: dict, structs: dict) -> None:
    """The tables and structs of one generated module: a table's fields are its `<T>Add<F>(builder, x)`
    functions (whose code names the slot), each read as its accessor `<T>.<F>` reads it."""
    tree = ast.parse(source)
    functions = {n.name: ast.unparse(n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        methods = {n.name: ast.unparse(n) for n in cls.body if isinstance(n, ast.FunctionDef)}
        create = re.search(r"builder\.Prep\((\d+), (\d+)\)", functions.get(f"Create{cls.name}", ""))
        if "SizeOf" in methods and create:  # a struct: (size, alignment)
            structs[cls.name] = (int(create.group(2)), int(create.group(1)))
            continue
        start = re.search(r"StartObject\((\d+)\)", functions.get(f"{cls.name}Start", ""))
        if start is None:
            continue  # an enum
        fields = []
        for fname, code in functions.items():
            slot = re.search(r"Slot\((\d+),", code)
            if not fname.startswith(f"{cls.name}Add") or slot is None:
                continue
            name = fname[len(cls.name) + 3:]
            body = methods.get(name, "")
            imp = re.search(r"from ort_flatbuffers_py\.fbs\.\w+ import (\w+)", body)
            kind = _accessor_field(body, imp.group(1) if imp else None)
            if kind is None or f"self._tab.Offset({4 + 2 * int(slot.group(1))})" not in body:
                raise ConversionError(f"{cls.name}.{name}: a field of the installed onnxruntime's .ort schema that edgepack's canonicaliser cannot read; pin onnxruntime to a tested version")
            fields.append(Field(name, int(slot.group(1)), *kind))
        tables[cls.name] = Table(cls.name, int(start.group(1)), tuple(sorted(fields, key=lambda f: f.slot)))


@lru_cache(maxsize=1)
def schema() -> Schema:
    """The .ort schema of the installed onnxruntime, read from its generated Python classes."""
    fbs = ort_schema()
    tables: dict[str, Table] = {}
    structs: dict[str, tuple[int, int]] = {}
    for path in sorted(Path(list(fbs.__path__)[0]).glob("*.py")):
        _parse_module(path.read_text(encoding="utf-8"), tables, structs)
    if ROOT_TABLE not in tables:
        raise ConversionError(f"the installed onnxruntime's .ort schema has no {ROOT_TABLE} table; pin onnxruntime to a tested version")
    for (table, field), union in UNIONS.items():
        enum = getattr(getattr(fbs, union["enum"], None), union["enum"], None)
        values = {v for k, v in vars(enum).items() if not k.startswith("_")} if enum else set()
        if values - {0} != set(union["members"]):
            raise ConversionError(f"{table}.{field}: the installed onnxruntime's .ort union has other members than edgepack knows; pin onnxruntime to a tested version")
    return Schema(tables, structs)


# --- decoding ----------------------------------------------------------------------------------

def _decode(buf: bytes, pos: int, table: str, sch: Schema) -> Obj:
    from flatbuffers.table import Table as FbTable

    tab = FbTable(buf, pos)
    values: dict[str, Any] = {}
    spec = sch.tables[table]
    for f in spec.fields:
        o = tab.Offset(4 + 2 * f.slot)
        if o == 0:
            continue
        at = o + tab.Pos
        if f.kind == "scalar":
            values[f.name] = bytes(buf[at: at + struct.calcsize("<" + f.elem)])
        elif f.kind == "string":
            values[f.name] = tab.String(at)
        elif f.kind == "table":
            values[f.name] = _decode(buf, tab.Indirect(at), f.elem, sch)
        elif f.kind == "union":
            members = UNIONS.get((table, f.name), {}).get("members", {})
            kind = values.get(f.name + "Type")
            member = members.get(struct.unpack("<B", kind)[0]) if kind else None
            if member is None:
                raise ConversionError(f"{table}.{f.name}: a union member that edgepack's .ort canonicaliser does not know")
            values[f.name] = _decode(buf, tab.Indirect(at), member, sch)
        else:
            values[f.name] = _decode_vector(buf, tab, o, f, sch)
    return Obj(table, values)


def _decode_vector(buf: bytes, tab, o: int, f: Field, sch: Schema):
    n = tab.VectorLen(o)
    start = tab.Vector(o)
    if f.elem == "scalar":
        return ("raw", f.target, n, bytes(buf[start: start + n * struct.calcsize("<" + f.target)]))
    if f.elem == "struct":
        size, _ = sch.structs[f.target]
        return ("raw", f.target, n, bytes(buf[start: start + n * size]))
    items = []
    for i in range(n):
        at = start + 4 * i
        items.append(tab.String(at) if f.elem == "string" else _decode(buf, tab.Indirect(at), f.target, sch))
    return items


def read_tree(data: bytes) -> Obj:
    """The whole .ort as nested Obj (scalars as their little-endian bytes)."""
    from flatbuffers import encode, packer

    sch = schema()
    return _decode(data, encode.Get(packer.uoffset, data, 0), ROOT_TABLE, sch)


# --- canonical order ---------------------------------------------------------------------------

def _key(value, sch: Schema):
    """A total, content-only order key for any decoded value."""
    if isinstance(value, Obj):
        spec = sch.tables[value.table]
        parts = []
        for f in spec.fields:
            v = value.values.get(f.name)
            if v is None:
                parts.append((0,))
            elif f.kind == "scalar":
                parts.append((1, struct.unpack("<" + f.elem, v)[0]))
            else:
                parts.append((1, _key(v, sch)))
        return tuple(parts)
    if isinstance(value, list):
        return tuple(_key(v, sch) for v in value)
    if isinstance(value, tuple):  # a raw vector
        return value[3]
    return value  # a string's bytes


def canonicalise(obj: Obj, sch: Schema) -> Obj:
    """`obj` with every set-like vector sorted (in place, also returned)."""
    spec = sch.tables[obj.table]
    for f in spec.fields:
        v = obj.values.get(f.name)
        if isinstance(v, Obj):
            canonicalise(v, sch)
        elif isinstance(v, list) and v and isinstance(v[0], Obj):
            for item in v:
                canonicalise(item, sch)
            if (obj.table, f.name) in SET_VECTORS:
                v.sort(key=lambda item: _key(item, sch))
        elif isinstance(v, list) and (obj.table, f.name) in SET_VECTORS:
            v.sort()
    return obj


# --- encoding ----------------------------------------------------------------------------------

class _Writer:
    def __init__(self, size_hint: int):
        import flatbuffers

        self.b = flatbuffers.Builder(max(1024, size_hint))
        self.strings: dict[bytes, int] = {}
        self.sch = schema()

    def string(self, s: bytes) -> int:
        if s not in self.strings:
            self.strings[s] = self.b.CreateString(s)
        return self.strings[s]

    def raw_vector(self, data: bytes, n: int, elem_size: int, align: int) -> int:
        b = self.b
        b.StartVector(elem_size, n, align)
        b.head -= len(data)
        b.Bytes[b.head: b.head + len(data)] = data
        return b.EndVector()

    def offsets_vector(self, offsets: list[int]) -> int:
        b = self.b
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def table(self, obj: Obj) -> int:
        spec = self.sch.tables[obj.table]
        made: dict[int, int] = {}  # children first: a table cannot be open while they are written
        for f in spec.fields:
            v = obj.values.get(f.name)
            if v is None or f.kind == "scalar":
                continue
            if f.kind == "string":
                made[f.slot] = self.string(v)
            elif f.kind in ("table", "union"):
                made[f.slot] = self.table(v)
            elif f.elem in ("scalar", "struct"):
                _, fmt, n, data = v
                size, align = (struct.calcsize("<" + fmt),) * 2 if f.elem == "scalar" else self.sch.structs[fmt]
                made[f.slot] = self.raw_vector(data, n, size, align)
            elif f.elem == "string":
                made[f.slot] = self.offsets_vector([self.string(s) for s in v])
            else:
                made[f.slot] = self.offsets_vector([self.table(t) for t in v])
        b = self.b
        b.StartObject(spec.slots)
        # largest scalars first (the least padding), then the offsets; slot order breaks ties
        scalars = sorted((f for f in spec.fields if f.kind == "scalar" and f.name in obj.values), key=lambda f: (-struct.calcsize("<" + f.elem), f.slot))
        for f in scalars:
            raw = obj.values[f.name]
            b.Prep(len(raw), 0)
            b.head -= len(raw)
            b.Bytes[b.head: b.head + len(raw)] = raw
            b.Slot(f.slot)
        for slot in sorted(made):
            b.PrependUOffsetTRelative(made[slot])
            b.Slot(slot)
        return b.EndObject()


def write_tree(tree: Obj, identifier: bytes, size_hint: int = 0) -> bytes:
    w = _Writer(size_hint)
    root = w.table(tree)
    w.b.Finish(root, file_identifier=identifier)
    return bytes(w.b.Output())


def canonical_bytes(data: bytes) -> bytes:
    """The canonical form of an .ort file's bytes."""
    if len(data) < 8 or bytes(data[4:8]) != b"ORTM":
        raise ConversionError("not an ORT-format model (no ORTM identifier)")
    tree = canonicalise(read_tree(data), schema())
    return write_tree(tree, bytes(data[4:8]), len(data) + 4096)


def canonical_ort(path: Path) -> Path:
    """Rewrite the .ort at `path` in its canonical form (in place); return `path`."""
    path = Path(path)
    data = path.read_bytes()
    try:
        out = canonical_bytes(data)
    except ConversionError as exc:
        raise ConversionError(f"{path.name}: {exc}") from exc
    except Exception as exc:  # a malformed flatbuffer: not what ONNX Runtime wrote
        raise ConversionError(f"{path.name}: could not re-serialise the .ort ({type(exc).__name__}: {exc}); rerun with --debug and report it") from exc
    if out != data:
        tmp = path.with_name(path.name + ".canonical")
        tmp.write_bytes(out)
        tmp.replace(path)
    return path
