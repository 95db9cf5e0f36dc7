"""Read a .pt2 archive without running anything it holds (issue #8).

`torch.export.load` may run code from an untrusted file in five ways: it unpickles weights,
constants, sample inputs and custom objects (falling back to `weights_only=False`), it accepts
torch's pre-2.8 top-level layout whose weights are pickles, it dlopen()s AOTInductor libraries,
its JSON deserializer hands `expr_str` strings to `sympy.sympify` (which `eval`s them) and
resolves node targets to any callable under `torch.`, and `ExportedProgram.module()` `exec`s
the program's `guards_code`. So without --allow-pickle edgepack never calls it. Instead:

* `open_pt2` parses the zip itself against an ALLOW-LIST of the members torch.export.save()
  writes (models/model.json, the weights/constants `*_config.json` and their raw `weight_N` /
  `tensor_N` byte records, the zip's bookkeeping, extra/ text). Every other member is refused
  by name: pickles (`*.pt`, `use_pickle` entries, `custom_obj_*`, `opaque_obj_*`, the legacy
  `serialized_*.pt`), compiled code (`data/aotinductor/`), anything unknown. The sample inputs
  (a pickle torch.export.save always writes) are never loaded; their opcodes are only read
  (pickletools, no execution) to refuse payloads early.
* `vet_program` (pt2_program.py) checks the model JSON: node targets are aten-style operators, `expr_str` and
  `guards_code` parse (with `ast`, never evaluated) to plain arithmetic on shape symbols, and
  every name that torch.fx writes into generated code is a plain dotted identifier.
* `build_exported_program` (torch_source.py's loader) turns the vetted JSON into an
  ExportedProgram with torch's own serde and tensors made from raw bytes (torch.frombuffer +
  as_strided from the config's dtype, sizes, strides and offset): no unpickler runs.

`summary` gives `edgepack inspect` the I/O, op histogram and weights from the JSON alone,
without importing torch.
"""
from __future__ import annotations

import ast
import io
import json
import pickletools
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .pt2_program import NAME as _NAME
from .pt2_program import RESAVE as _RESAVE
from .pt2_program import TRUST as _TRUST
from .pt2_program import Pt2Error, vet_program

# torch._export.serde.schema.ScalarType (tests/security checks this against torch): id -> (torch name, bytes)
DTYPES: dict[int, tuple[str, int]] = {
    1: ("uint8", 1), 2: ("int8", 1), 3: ("int16", 2), 4: ("int32", 4), 5: ("int64", 8), 6: ("float16", 2),
    7: ("float32", 4), 8: ("float64", 8), 9: ("complex32", 4), 10: ("complex64", 8), 11: ("complex128", 16),
    12: ("bool", 1), 13: ("bfloat16", 2), 28: ("uint16", 2), 29: ("float8_e4m3fn", 1), 30: ("float8_e5m2", 1),
    31: ("float8_e4m3fnuz", 1), 32: ("float8_e5m2fnuz", 1), 33: ("float8_e8m0fnu", 1), 34: ("uint32", 4), 35: ("uint64", 8),
}
_MAX_JSON = 1 << 30  # a model.json or config larger than this is not one torch wrote
# the zip bookkeeping PyTorchFileWriter adds; never read except byteorder
_BOOKKEEPING = {".data/version", ".data/serialization_id", "byteorder", ".format_version", ".storage_alignment", "version"}
_LEGACY = ("serialized_exported_program.json", "serialized_state_dict.pt", "serialized_state_dict.json",
           "serialized_constants.pt", "serialized_constants.json", "serialized_example_inputs.pt")


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def check_model_file(path: Path, what: str = ".pt2 file") -> None:
    """Exists, is a regular file (through symlinks), and can be read; else a one-line InputError."""
    via = f" (a symlink to {path.resolve(strict=False)})" if path.is_symlink() else ""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: model file not found{via}; check the path") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read (permission denied){via}; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}){via}; check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is {_kind(st.st_mode)}{via}, not a {what}; pass the model file itself")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        raise InputError(f"{path}: cannot read (permission denied){via}; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}){via}") from None


@dataclass
class Payload:
    """One tensor of the state dict or constants: where its raw bytes are and how to view them."""
    fqn: str
    member: str
    dtype: str
    sizes: list[int]
    strides: list[int]
    offset: int
    is_param: bool = False
    requires_grad: bool = False


@dataclass
class Pt2Archive:
    path: Path
    root: str
    program: dict[str, Any]  # models/model.json, vetted
    weights: list[Payload] = field(default_factory=list)
    constants: list[Payload] = field(default_factory=list)

    def read(self, member: str) -> bytes:
        with zipfile.ZipFile(self.path) as z:
            return z.read(member)


def _refuse(path: Path, members: list[str], why: str, fix: str) -> Pt2Error:
    shown = ", ".join(members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else "")
    return Pt2Error(f"{path}: {why} ({shown}); {fix}")


def _pickled(path: Path, members: list[str], note: str = "") -> Pt2Error:
    return _refuse(path, members, f"contains pickled data{note}, which can run code when loaded",
                   f"edgepack loads .pt2 files without unpickling: {_RESAVE} without tensor subclasses or custom objects, or {_TRUST}")


def _json(path: Path, z: zipfile.ZipFile, member: str) -> Any:
    info = z.getinfo(member)
    if info.file_size > _MAX_JSON:
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({member} claims {info.file_size} bytes); {_RESAVE}")
    try:
        return json.loads(z.read(member))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({member} is not valid JSON: {exc}); {_RESAVE}") from None


def open_pt2(path: Path) -> Pt2Archive:
    """Parse and vet a .pt2 archive without torch; every refusal is a one-line Pt2Error."""
    path = Path(path)
    check_model_file(path)
    try:
        with zipfile.ZipFile(path) as z:
            return _open(path, z)
    except zipfile.BadZipFile as exc:
        if not zipfile.is_zipfile(path):
            raise Pt2Error(f"{path}: not a .pt2 archive (not a zip file); save it with torch.export.save()") from None
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({exc}); {_RESAVE}") from None
    except (OSError, EOFError, NotImplementedError, zipfile.LargeZipFile) as exc:
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({type(exc).__name__}: {exc}); {_RESAVE}") from None


def _open(path: Path, z: zipfile.ZipFile) -> Pt2Archive:
    infos = [i for i in z.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    if not names:
        raise Pt2Error(f"{path}: corrupt .pt2 archive (the zip is empty); {_RESAVE}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({dup[0]} appears twice); {_RESAVE}")
    legacy = [n for n in names if n in _LEGACY or n == "version"]
    if "serialized_exported_program.json" in names or ("version" in names and "/" not in names[0]):
        pickles = [n for n in names if n.endswith(".pt") or n in _LEGACY[1:]] or legacy
        raise _pickled(path, pickles, " in torch's pre-2.8 layout")
    root = names[0].split("/")[0] + "/"  # PyTorchFileReader's rule: the first record names the root folder
    rel = {n: n[len(root):] for n in names if n.startswith(root)}
    outside = [n for n in names if n not in rel]
    if outside:
        raise _refuse(path, outside, "has members outside the archive's root folder", f"{_RESAVE}, or {_TRUST}")
    by_rel = {r: n for n, r in rel.items()}
    for need, value in (("archive_format", "pt2"), ("archive_version", "0")):
        got = z.read(root + need).decode("utf-8", "replace").strip() if need in by_rel else None
        if got != value:
            raise Pt2Error(f"{path}: not a .pt2 archive ({root}{need} is {got!r}, not {value!r}); save it with torch.export.save()")
    if "byteorder" in by_rel and z.read(root + "byteorder").strip() not in (b"little", b""):
        raise Pt2Error(f"{path}: a big-endian .pt2 archive; re-save it on a little-endian machine")

    allowed = {"archive_format", "archive_version", "models/model.json", "data/sample_inputs/model.pt",
               "data/weights/model_weights_config.json", "data/constants/model_constants_config.json"} | _BOOKKEEPING
    pickled, compiled = [], []
    for n, r in rel.items():
        base = r.rsplit("/", 1)[-1]
        if r.startswith("data/aotinductor/") or base.endswith((".so", ".dll", ".dylib")):
            compiled.append(n)
        elif base.endswith((".pt", ".pkl", ".pickle")) and r != "data/sample_inputs/model.pt":
            pickled.append(n)
        elif base.startswith(("custom_obj_", "opaque_obj_")):
            pickled.append(n)
    if pickled:
        raise _pickled(path, pickled)
    if compiled:
        raise _refuse(path, compiled, "contains AOTInductor compiled code, which runs when loaded",
                      f"save the ExportedProgram with torch.export.save(), or {_TRUST}")
    for need in ("models/model.json", "data/weights/model_weights_config.json", "data/constants/model_constants_config.json",
                 "data/sample_inputs/model.pt"):
        if need not in by_rel:
            raise Pt2Error(f"{path}: corrupt .pt2 archive ({root}{need} is missing); {_RESAVE}")

    weights, wfiles = _payloads(path, z, root, "weights", "weight_")
    constants, cfiles = _payloads(path, z, root, "constants", "tensor_")
    unknown = [n for n, r in rel.items() if r not in allowed and r not in wfiles and r not in cfiles and not r.startswith("extra/")]
    if unknown:
        raise _refuse(path, unknown, "has members edgepack does not read",
                      f"edgepack loads only what torch.export.save() writes: {_RESAVE}, or {_TRUST}")
    _scan_sample_inputs(path, root + "data/sample_inputs/model.pt", z.read(root + "data/sample_inputs/model.pt"))
    program = _json(path, z, root + "models/model.json")
    vet_program(path, root + "models/model.json", program)
    return Pt2Archive(path, root, program, weights, constants)


def _ints(v: Any, what: str) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(s, dict) and type(s.get("as_int")) is int for s in v):
        raise ValueError(f"{what} must be concrete integers")
    return [s["as_int"] for s in v]


def _payloads(path: Path, z: zipfile.ZipFile, root: str, kind: str, prefix: str) -> tuple[list[Payload], set[str]]:
    config_member = f"{root}data/{kind}/model_{kind}_config.json"
    cfg = _json(path, z, config_member)
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict):
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({config_member} has no 'config' table); {_RESAVE}")
    out, files, pickled = [], set(), []
    for fqn, meta in entries.items():
        pname = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        member = f"{root}data/{kind}/{pname}"
        if not isinstance(meta, dict) or meta.get("use_pickle") or not pname.startswith(prefix):
            pickled.append(f"{member} for {fqn!r}")
            continue
        if not re.fullmatch(prefix + r"[0-9]+", pname) or not _NAME.match(fqn):
            raise Pt2Error(f"{path}: {config_member}: entry {fqn!r} -> {pname!r} is not a name torch.export.save() writes; {_RESAVE}")
        if member not in z.NameToInfo:
            raise Pt2Error(f"{path}: corrupt .pt2 archive ({config_member} names {member}, which is missing); {_RESAVE}")
        try:
            tm = meta["tensor_meta"]
            dtype, itemsize = DTYPES[tm["dtype"]]
            sizes, strides = _ints(tm["sizes"], "sizes"), _ints(tm["strides"], "strides")
            offset = _ints([tm["storage_offset"]], "storage_offset")[0]
            nbytes = z.getinfo(member).file_size
        except KeyError as exc:
            raise Pt2Error(f"{path}: corrupt .pt2 archive ({config_member}: {fqn!r} lacks {exc}); {_RESAVE}") from None
        except (ValueError, TypeError) as exc:
            raise Pt2Error(f"{path}: corrupt .pt2 archive ({config_member}: {fqn!r}: {exc}); {_RESAVE}") from None
        numel = nbytes // itemsize
        last = offset + sum((n - 1) * s for n, s in zip(sizes, strides, strict=False)) if all(n > 0 for n in sizes) else -1
        if (len(sizes) != len(strides) or nbytes % itemsize or min([0, offset, *sizes, *strides]) < 0
                or (nbytes and last >= numel)):
            raise Pt2Error(f"{path}: corrupt .pt2 archive ({member}: {nbytes} bytes do not hold {dtype} {sizes} "
                           f"with strides {strides} at offset {offset}); {_RESAVE}")
        out.append(Payload(fqn, member, dtype, sizes, strides, offset, bool(meta.get("is_param")),
                           bool(tm.get("requires_grad"))))
        files.add(f"data/{kind}/{pname}")
    if pickled:
        raise _pickled(path, pickled)
    return out, files


# -- the sample inputs: read the pickle's opcodes, never run them ------------------------------
_SAFE_GLOBALS = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                 ("collections", "OrderedDict"), ("torch", "device"), ("torch", "Size")}
_STORAGES = re.compile(r"^(Float|Double|Half|BFloat16|Long|Int|Short|Char|Byte|Bool|ComplexFloat|ComplexDouble)Storage$")


def _scan_sample_inputs(path: Path, member: str, data: bytes) -> None:
    """Refuse a sample-inputs pickle that names anything but tensors, tuples and dicts."""
    if not data:
        return
    pkl = data
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                found = [n for n in inner.namelist() if n.endswith("data.pkl")]
                if len(found) != 1:
                    raise _pickled(path, [member], " that is not a tensor archive")
                pkl = inner.read(found[0])
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
            raise _pickled(path, [member], " that is not a tensor archive") from None
    strings: list[str] = []
    memo: dict[Any, str] = {}
    try:
        for op, arg, _pos in pickletools.genops(pkl):
            name = op.name
            if name in ("GLOBAL", "INST"):
                mod, _, attr = str(arg).partition(" ")
                if not ((mod, attr) in _SAFE_GLOBALS or (mod == "torch" and _STORAGES.match(attr))):
                    raise _pickled(path, [member], f" naming {mod}.{attr}")
            elif name == "STACK_GLOBAL":
                mod, attr = (strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?")
                if not ((mod, attr) in _SAFE_GLOBALS or (mod == "torch" and _STORAGES.match(attr))):
                    raise _pickled(path, [member], f" naming {mod}.{attr}")
            elif name.startswith("EXT"):
                raise _pickled(path, [member], " using the copyreg extension registry")
            elif "UNICODE" in name or "STRING" in name or name == "BINBYTES":
                strings.append(str(arg))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[arg] = strings[-1]
            elif name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                strings.append(memo[arg])
    except Pt2Error:
        raise
    except Exception:  # pickletools raises ValueError and friends on a broken stream
        raise _pickled(path, [member], " that cannot be read") from None


# -- the ExportedProgram, from vetted JSON and raw bytes (imports torch) --------------------------
def _resolve(torch: Any, target: str) -> Any:
    """torch's own lookup (serialize.deserialize_operator), for a target that passed target_allowed()."""
    import math
    import operator

    mod, _, rest = target.partition(".")
    obj: Any = {"_operator": operator, "math": math, "torch": torch}[mod]
    for part in rest.split("."):
        obj = getattr(obj, part, None)
    return obj


def _check_targets(torch: Any, path: Path, member: str, program: dict[str, Any]) -> None:
    import operator

    ok_types = (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)
    seen: set[str] = set()

    def walk(obj: Any, key: str | None) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif isinstance(obj, str) and key in ("target", "as_operator") and obj not in seen:
            seen.add(obj)
            t = _resolve(torch, obj)
            if t is None:
                raise Pt2Error(f"{path}: {member}: the operator {obj!r} is not registered in this torch "
                               f"(torch {torch.__version__}); import the library that defines it, or re-export without it")
            if obj.startswith("torch.ops.") and not isinstance(t, ok_types) or not (callable(t) or t is operator.getitem):
                raise Pt2Error(f"{path}: {member}: the node target {obj!r} is not an operator edgepack loads; {_RESAVE}")

    walk(program, None)


def build_exported_program(arch: Pt2Archive) -> Any:
    """The ExportedProgram, built with torch's JSON deserializer from the vetted program and tensors made
    from raw bytes. No unpickler runs, no sample inputs are loaded (edgepack makes its own), and the
    program's expressions and guards were checked by vet_program() before sympy or exec see them."""
    import torch
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    member = arch.root + "models/model.json"
    _check_targets(torch, arch.path, member, arch.program)
    flats: dict[str, Any] = {}

    def tensor(p: Payload, z: zipfile.ZipFile) -> Any:
        dt = getattr(torch, p.dtype)
        if p.member not in flats:
            raw = bytearray(z.read(p.member))  # writable, so frombuffer shares it without a warning
            flats[p.member] = torch.frombuffer(raw, dtype=dt) if raw else None
        flat = flats[p.member]
        if flat is None:  # torch writes an empty record for an empty tensor
            t = torch.zeros(p.sizes, dtype=dt)
        else:
            t = torch.as_strided(flat.view(dt) if flat.dtype != dt else flat, p.sizes, p.strides, p.offset)
        if p.is_param:
            return torch.nn.Parameter(t, requires_grad=p.requires_grad and (t.is_floating_point() or t.is_complex()))
        return t

    with zipfile.ZipFile(arch.path) as z:
        state_dict = {p.fqn: tensor(p, z) for p in arch.weights}
        constants = {p.fqn: tensor(p, z) for p in arch.constants}
    serialized = _dict_to_dataclass(schema.ExportedProgram, arch.program)
    return ExportedProgramDeserializer().deserialize(serialized, state_dict, constants, None)


# -- what inspect shows, from the JSON alone ----------------------------------------------------
def _sym_text(expr: str) -> str:
    """`Symbol('s0', positive=True)` -> `s0`, `Mul(Integer(2), Symbol('s0'))` -> `2*s0` (best effort)."""
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return expr

    def show(n: ast.AST) -> str:
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.args:
            args = [show(a) for a in n.args]
            op = {"Mul": "*", "Add": " + ", "Pow": "**"}.get(n.func.id)
            if n.func.id in ("Symbol", "Integer"):
                return args[0]
            if op:
                return op.join(args)
            return f"{n.func.id}({', '.join(args)})"
        if isinstance(n, ast.Constant):
            return str(n.value)
        return ast.unparse(n)

    return show(node)


def _tensor(program: dict[str, Any], name: str) -> tuple[tuple[int | str, ...], str]:
    tv = program["graph_module"]["graph"]["tensor_values"][name]
    shape = tuple(s["as_int"] if "as_int" in s else _sym_text(s["as_expr"]["expr_str"]) for s in tv["sizes"])
    return shape, DTYPES.get(tv["dtype"], (f"dtype{tv['dtype']}", 0))[0]


def _op_name(target: str) -> str:
    """The name `str(node.target)` gave on the torch path, minus "aten." (as inspect showed before)."""
    mod, _, name = target.partition(".")
    if mod in ("_operator", "math"):
        return f"<built-in function {name}>"
    return target.removeprefix("torch.ops.").removeprefix("aten.")


def summary(arch: Pt2Archive) -> dict[str, Any]:
    """Inputs, outputs (as (name, shape, dtype)), op histogram, weight dtypes and parameter count."""
    from collections import Counter
    from math import prod

    p = arch.program
    try:
        sig = p["graph_module"]["signature"]
        inputs = []
        for spec in sig["input_specs"]:
            arg = spec.get("user_input", {}).get("arg", {})
            if "as_tensor" in arg:
                inputs.append((arg["as_tensor"]["name"], *_tensor(p, arg["as_tensor"]["name"])))
        outs = [s["user_output"]["arg"] for s in sig["output_specs"] if "user_output" in s]
        names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
        outputs = [(nm, *_tensor(p, a["as_tensor"]["name"])) for nm, a in zip(names, outs, strict=True) if "as_tensor" in a]
        ops = Counter(_op_name(n["target"]) for n in p["graph_module"]["graph"]["nodes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Pt2Error(f"{arch.path}: corrupt .pt2 archive (models/model.json lacks {exc}); {_RESAVE}") from None
    return {
        "inputs": inputs,
        "outputs": outputs,
        "ops": dict(ops.most_common()),
        "weight_dtypes": dict(Counter(w.dtype for w in arch.weights)),
        "parameters": int(sum(prod(w.sizes) for w in arch.weights)),
    }
