"""Hostile .pt2 archives (issue #8), one generator per layout torch.export.load (torch 2.13) reads.

Each `make_<case>(tmp) -> Case` copies the shared tiny CNN .pt2 (tests/hostile_case.tiny_files) and
puts a payload where torch would unpickle, eval or exec it: a pickle whose __reduce__ touches
`payload_marker`, or a string that sympy.sympify / exec would run. The Case is a `build` that must
exit 3 with a one-line error naming the member, and leave no marker. `PT2_CASES` lists them for
tests/security/test_pt2_safety.py (which also runs inspect and check on each) and the corpus test.
`rewrite_pt2` and `Touch` are shared with that test.
"""
from __future__ import annotations

import json
import pathlib
import pickle
import zipfile
from pathlib import Path

from hostile_case import Case, tiny_files


class Touch:
    """Unpickling this creates `marker`: the stand-in for any code an attacker would run."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def payload(marker: Path) -> bytes:
    return pickle.dumps(Touch(marker), protocol=2)


def sympy_payload(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def rewrite_pt2(dst: Path, *, src: Path | None = None, root: str | None = None, drop=(), put: dict | None = None,
                program=None) -> Path:
    """Copy `src` (default: the tiny CNN .pt2) to `dst`, without the `drop` members (names relative to the
    root folder), with `put` members replaced or added, and with models/model.json passed through
    `program(dict) -> dict`. `root` renames the root folder ("" puts members at the top level)."""
    src = src or tiny_files()["pt2"]
    put = dict(put or {})
    with zipfile.ZipFile(src) as zin:
        old_root = zin.namelist()[0].split("/")[0] + "/"
        new_root = old_root if root is None else (root + "/" if root else "")
        members = {n[len(old_root):]: zin.read(n) for n in zin.namelist()}
    if program is not None:
        members["models/model.json"] = json.dumps(program(json.loads(members["models/model.json"]))).encode()
    for d in drop:
        members.pop(d, None)
    members.update({k: (v.encode() if isinstance(v, str) else v) for k, v in put.items()})
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in members.items():
            zout.writestr(new_root + name, data)
    return dst


def _case(tmp: Path, model: Path, text: str, marker: Path) -> Case:
    f = tiny_files()
    argv = ["build", str(model), "-c", str(f["calib"]), "-t", str(f["profile"]), "-o", str(tmp / "out"), "-q"]
    return Case(argv=argv, expect_code=3, expect_text=text, payload_marker=marker, keep=[model])


def _config(entries: dict) -> str:
    return json.dumps({"config": entries})


def _tensor_meta() -> dict:
    return {"dtype": 7, "sizes": [{"as_int": 1}], "requires_grad": False, "device": {"type": "cpu", "index": None},
            "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0}, "layout": 7}


def make_pt2_pickled_sample_inputs(tmp: Path) -> Case:
    """torch.export.save's own layout; the sample inputs (torch.load, weights_only=False fallback) hold the payload."""
    m = tmp / "MARKER_sample_inputs"
    model = rewrite_pt2(tmp / "evil_sample_inputs.pt2", put={"data/sample_inputs/model.pt": payload(m)})
    return _case(tmp, model, "tiny/data/sample_inputs/model.pt", m)


def make_pt2_legacy_weights_file(tmp: Path) -> Case:
    """The in-archive legacy weights (data/weights/model.pt, loaded before the weights config)."""
    m = tmp / "MARKER_legacy_weights"
    model = rewrite_pt2(tmp / "evil_legacy_weights.pt2", put={"data/weights/model.pt": payload(m)})
    return _case(tmp, model, "tiny/data/weights/model.pt", m)


def make_pt2_legacy_constants_file(tmp: Path) -> Case:
    m = tmp / "MARKER_legacy_constants"
    model = rewrite_pt2(tmp / "evil_legacy_constants.pt2", put={"data/constants/model.pt": payload(m)})
    return _case(tmp, model, "tiny/data/constants/model.pt", m)


def make_pt2_use_pickle_weight(tmp: Path) -> Case:
    """A weights-config entry with use_pickle (torch's form for tensor subclasses)."""
    m = tmp / "MARKER_use_pickle_weight"
    with zipfile.ZipFile(tiny_files()["pt2"]) as z:
        cfg = json.loads(z.read("tiny/data/weights/model_weights_config.json"))
    cfg["config"]["conv1.weight"].update(path_name="weight_99", use_pickle=True)
    model = rewrite_pt2(tmp / "evil_use_pickle.pt2", put={"data/weights/model_weights_config.json": json.dumps(cfg),
                                                          "data/weights/weight_99": payload(m)})
    return _case(tmp, model, "tiny/data/weights/weight_99", m)


def make_pt2_use_pickle_constant(tmp: Path) -> Case:
    m = tmp / "MARKER_use_pickle_constant"
    cfg = _config({"c0": {"path_name": "tensor_0", "is_param": False, "use_pickle": True, "tensor_meta": _tensor_meta()}})
    model = rewrite_pt2(tmp / "evil_pickled_constant.pt2", put={"data/constants/model_constants_config.json": cfg,
                                                                "data/constants/tensor_0": payload(m)})
    return _case(tmp, model, "tiny/data/constants/tensor_0", m)


def make_pt2_custom_obj(tmp: Path) -> Case:
    """A TorchScript custom object (torch._C._pickle_load_obj)."""
    m = tmp / "MARKER_custom_obj"
    cfg = _config({"obj": {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}})
    model = rewrite_pt2(tmp / "evil_custom_obj.pt2", put={"data/constants/model_constants_config.json": cfg,
                                                          "data/constants/custom_obj_0": payload(m)})
    return _case(tmp, model, "tiny/data/constants/custom_obj_0", m)


def make_pt2_opaque_obj(tmp: Path) -> Case:
    """An opaque object constant (plain pickle.loads in torch)."""
    m = tmp / "MARKER_opaque_obj"
    cfg = _config({"obj": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}})
    model = rewrite_pt2(tmp / "evil_opaque_obj.pt2", put={"data/constants/model_constants_config.json": cfg,
                                                          "data/constants/opaque_obj_0": payload(m)})
    return _case(tmp, model, "tiny/data/constants/opaque_obj_0", m)


def make_pt2_slash_model_name(tmp: Path) -> Case:
    """The red team's second layout: a model named "sub/model", whose legacy weights are data/weights/sub/model.pt."""
    m = tmp / "MARKER_slash_name"
    with zipfile.ZipFile(tiny_files()["pt2"]) as z:
        program = z.read("tiny/models/model.json")
    model = rewrite_pt2(tmp / "evil_slash.pt2", put={
        "models/sub/model.json": program, "data/weights/sub/model.pt": payload(m),
        "data/constants/sub/model.pt": payload(m), "data/sample_inputs/sub/model.pt": payload(m)})
    return _case(tmp, model, "tiny/data/weights/sub/model.pt", m)


def make_pt2_legacy_toplevel(tmp: Path) -> Case:
    """torch's pre-2.8 layout at the zip's top level (torch.export.load still reads it): every part is a pickle."""
    m = tmp / "MARKER_legacy_toplevel"
    model = tmp / "evil_legacy.pt2"
    with zipfile.ZipFile(tiny_files()["pt2"]) as z:
        program = z.read("tiny/models/model.json")
    with zipfile.ZipFile(model, "w") as zout:
        zout.writestr("version", "8.20")
        zout.writestr("serialized_exported_program.json", program)
        zout.writestr("serialized_state_dict.pt", payload(m))
        zout.writestr("serialized_constants.pt", payload(m))
        zout.writestr("serialized_example_inputs.pt", payload(m))
    return _case(tmp, model, "serialized_state_dict.pt", m)


def make_pt2_aotinductor(tmp: Path) -> Case:
    """An AOTInductor library (torch dlopen()s data/aotinductor/<model>/*.so)."""
    model = rewrite_pt2(tmp / "evil_aoti.pt2", put={"data/aotinductor/model/model.so": b"\x7fELF not really"})
    return _case(tmp, model, "tiny/data/aotinductor/model/model.so", tmp / "MARKER_never")


def make_pt2_sympy_expression(tmp: Path) -> Case:
    """No pickle at all: a shape expression torch's JSON deserializer hands to sympy.sympify (an eval)."""
    m = tmp / "MARKER_sympy"

    def edit(p: dict) -> dict:
        tv = p["graph_module"]["graph"]["tensor_values"]
        tv["image"]["sizes"][0] = {"as_expr": {"expr_str": sympy_payload(m), "hint": {"as_int": 1}}}
        return p

    model = rewrite_pt2(tmp / "evil_sympy.pt2", program=edit)
    return _case(tmp, model, "shape expression", m)


def make_pt2_guards_code(tmp: Path) -> Case:
    """No pickle at all: guards_code, which ExportedProgram.module() exec()s."""
    m = tmp / "MARKER_guards"

    def edit(p: dict) -> dict:
        p["guards_code"] = [sympy_payload(m) + " is None"]
        return p

    model = rewrite_pt2(tmp / "evil_guards.pt2", program=edit)
    return _case(tmp, model, "guards_code", m)


def make_pt2_callable_target(tmp: Path) -> Case:
    """No pickle at all: a node whose target torch resolves to os.system (any callable under `torch.`; this
    minimal node then fails torch's verifier, a well-formed one would run at inference)."""
    m = tmp / "MARKER_target"

    def edit(p: dict) -> dict:
        p["graph_module"]["graph"]["nodes"].insert(0, {
            "target": "torch.os.system", "inputs": [{"name": "command", "arg": {"as_string": f"touch {m}"}, "kind": 1}],
            "outputs": [], "metadata": {}, "is_hop_single_tensor_return": None})
        return p

    model = rewrite_pt2(tmp / "evil_target.pt2", program=edit)
    return _case(tmp, model, "torch.os.system", m)


def make_pt2_name_injection(tmp: Path) -> Case:
    """No pickle at all: a parameter name that torch.fx would paste into the Python it generates."""
    m = tmp / "MARKER_name"
    evil = f'x"); __import__("pathlib").Path("{m}").touch(); ("'

    def edit(p: dict) -> dict:
        p["graph_module"]["signature"]["input_specs"][0]["parameter"]["parameter_name"] = evil
        return p

    with zipfile.ZipFile(tiny_files()["pt2"]) as z:
        cfg = json.loads(z.read("tiny/data/weights/model_weights_config.json"))
    cfg["config"][evil] = cfg["config"].pop("conv1.weight")
    model = rewrite_pt2(tmp / "evil_name.pt2", program=edit, put={"data/weights/model_weights_config.json": json.dumps(cfg)})
    return _case(tmp, model, "tiny/data/weights/model_weights_config.json", m)


PT2_CASES = [
    make_pt2_pickled_sample_inputs, make_pt2_legacy_weights_file, make_pt2_legacy_constants_file, make_pt2_use_pickle_weight,
    make_pt2_use_pickle_constant, make_pt2_custom_obj, make_pt2_opaque_obj, make_pt2_slash_model_name, make_pt2_legacy_toplevel,
    make_pt2_aotinductor, make_pt2_sympy_expression, make_pt2_guards_code, make_pt2_callable_target, make_pt2_name_injection,
]
