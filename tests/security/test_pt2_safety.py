"""Loading an untrusted .pt2 runs nothing from it (issue #8), and inspect reads it without torch (issue #14).

Every layout torch.export.load (torch 2.13) accepts gets a payload (tests/hostile_pt2.py) where torch
would unpickle, eval or exec it; build, inspect and check must refuse each with exit 3, one line
naming the member, no traceback and no marker file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import DIGITS_PT2, run_cli
from hostile_case import tiny_files
from hostile_pt2 import PT2_CASES, payload, rewrite_pt2

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ort_artifact(tmp_path_factory):
    """One fp32 .ort of the tiny CNN (built from its .onnx), for `check --model hostile.pt2`."""
    f = tiny_files()
    out = tmp_path_factory.mktemp("ort") / "out"
    code, _, err = run_cli("build", str(f["onnx"]), "-c", str(f["calib"]), "-t", str(f["profile"]), "-o", str(out), "-q", "--no-latency")
    assert code == 0, err
    return next(out.rglob("*.ort"))


def _one_line(code: int, err: str, text: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 3, err
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: "), err
    assert text in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize("make", PT2_CASES, ids=[m.__name__.removeprefix("make_") for m in PT2_CASES])
def test_hostile_pt2_refused_by_build_inspect_check(make, tmp_path, ort_artifact, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a payload with a relative path would land here
    case = make(tmp_path)
    model = case.argv[1]
    before = Path(model).read_bytes()
    f = tiny_files()
    runs = {
        "build": case.argv,
        "inspect": ["inspect", model],
        "check": ["check", str(ort_artifact), "--model", model, "-c", str(f["calib"]), "--no-latency", "-q"],
    }
    for what, argv in runs.items():
        code, _, err = run_cli(*argv)
        _one_line(code, err, case.expect_text)
        assert not case.payload_marker.exists(), f"{what} ran the payload"
    assert Path(model).read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_refusal_names_member_and_fix(tmp_path):
    case = PT2_CASES[0](tmp_path)
    code, _, err = run_cli("inspect", case.argv[1])
    assert err.strip() == (
        f"edgepack: error: {case.argv[1]}: contains pickled data naming __builtin__.getattr, which can run code when loaded "
        "(tiny/data/sample_inputs/model.pt); edgepack loads .pt2 files without unpickling: re-save it with torch.export.save() "
        "(torch >= 2.8) without tensor subclasses or custom objects, or pass --allow-pickle only if you trust this file"
    )


def _outputs(src, seed=0):
    x = {t.name: np.random.default_rng(seed).standard_normal(t.static_shape()).astype(np.float32) for t in src.inputs}
    return src.run(x)[0]


def test_normal_pt2_loads_without_torch_loader_and_matches_torch(tmp_path):
    """The safe path gives the same numbers as torch.export.load, for the tiny CNN and the digits example."""
    import torch

    from edgepack.sources.torch_source import Pt2Source

    for path in (tiny_files()["pt2"], DIGITS_PT2):
        safe, ref = Pt2Source.load(str(path)), Pt2Source.load(str(path), allow_pickle=True)
        assert [(t.name, t.shape, t.dtype) for t in safe.inputs] == [(t.name, t.shape, t.dtype) for t in ref.inputs]
        assert [(t.name, t.shape) for t in safe.outputs] == [(t.name, t.shape) for t in ref.outputs]
        a, b = _outputs(safe), _outputs(ref)
        assert a.shape == b.shape and np.array_equal(a, b)
        assert set(safe.ep.state_dict) == set(ref.ep.state_dict)
        for k, v in ref.ep.state_dict.items():
            assert torch.equal(safe.ep.state_dict[k], v), k
    # the digits model against the module it was exported from
    from examples.digits.model import entry_point

    mod, ex = entry_point()
    with torch.no_grad():
        want = mod(*ex).numpy()
    got = Pt2Source.load(str(DIGITS_PT2)).run({"image": ex[0].numpy()})[0]
    assert np.abs(got - want).max() < 1e-5


def test_dynamic_shapes_and_guards_still_load(tmp_path):
    """A dynamic dim gives srepr shape expressions and a guards_code line: both pass the vetting."""
    import torch

    from edgepack.sources.torch_source import Pt2Source

    class Half(torch.nn.Module):
        def forward(self, x):
            return x[: x.shape[0] // 2] * 2

    b = torch.export.Dim("b", min=2, max=64)
    path = tmp_path / "dyn.pt2"
    torch.export.save(torch.export.export(Half(), (torch.randn(8, 3),), dynamic_shapes={"x": {0: 2 * b}}), str(path))
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read("dyn/models/model.json"))["guards_code"]  # the case is really covered
    src = Pt2Source.load(str(path))
    assert src.inputs[0].shape == ("2*s65", 3) or isinstance(src.inputs[0].shape[0], str)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert np.array_equal(src.run({"x": x})[0], x[:2] * 2)


def test_allow_pickle_still_loads_pickled_sample_inputs(tmp_path):
    """A file whose sample inputs are a non-tensor pickle: refused by default, loaded with allow_pickle."""
    import io

    import torch

    from edgepack.errors import InputError
    from edgepack.sources.torch_source import Pt2Source

    buf = io.BytesIO()
    t = torch.zeros(1, 3, 16, 16)
    t.note = Path("x")  # a PosixPath in the tensor's __dict__: beyond weights_only, harmless
    torch.save(((t,), {}), buf)
    path = rewrite_pt2(tmp_path / "pickled_inputs.pt2", put={"data/sample_inputs/model.pt": buf.getvalue()})
    with pytest.raises(InputError, match=r"contains pickled data naming (pathlib\.PosixPath|torch\._tensor\._rebuild_from_type_v2).*tiny/data/sample_inputs/model\.pt"):
        Pt2Source.load(str(path))
    src = Pt2Source.load(str(path), allow_pickle=True)
    ref = Pt2Source.load(str(tiny_files()["pt2"]))
    assert np.array_equal(_outputs(src), _outputs(ref))


def test_unexpected_member_is_refused_by_name(tmp_path):
    path = rewrite_pt2(tmp_path / "extra.pt2", put={"data/weights/notes.bin": b"\x00" * 8})
    code, _, err = run_cli("inspect", str(path))
    _one_line(code, err, "has members edgepack does not read (tiny/data/weights/notes.bin)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path):
    path = tmp_path / "locked.pt2"
    path.write_bytes(tiny_files()["pt2"].read_bytes())
    path.chmod(0)
    code, _, err = run_cli("inspect", str(path))
    _one_line(code, err, "cannot read (permission denied)")


def test_permission_denied_message_without_real_permissions(tmp_path, monkeypatch):
    """As root chmod 0 does not stop reads, so the PermissionError comes from open() itself."""
    import builtins

    path = tmp_path / "locked.pt2"
    path.write_bytes(tiny_files()["pt2"].read_bytes())
    real_open = builtins.open

    def deny(file, *a, **k):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    code, _, err = run_cli("inspect", str(path))
    _one_line(code, err, f"{path}: cannot read (permission denied)")


def test_symlink_to_special_file_and_folder(tmp_path):
    link = tmp_path / "null.pt2"
    link.symlink_to("/dev/null")
    code, _, err = run_cli("inspect", str(link))
    _one_line(code, err, f"{link}: is a character device (a symlink to /dev/null), not a .pt2 file")
    d = tmp_path / "dir.pt2"
    d.mkdir()
    code, _, err = run_cli("inspect", str(d))
    _one_line(code, err, "is a folder, not a .pt2 file")
    dangling = tmp_path / "gone.pt2"
    dangling.symlink_to(tmp_path / "missing.pt2")
    code, _, err = run_cli("inspect", str(dangling))
    _one_line(code, err, "not found")
    from edgepack.errors import InputError
    from edgepack.sources.pt2_archive import check_model_file

    with pytest.raises(InputError, match=r"model file not found \(a symlink to .*missing\.pt2\)"):
        check_model_file(dangling)


@pytest.mark.parametrize("allow", [False, True])
def test_malformed_zip_is_corrupt_without_traceback(tmp_path, allow, capfd):
    data = tiny_files()["pt2"].read_bytes()
    path = tmp_path / "cut.pt2"
    path.write_bytes(data[: len(data) // 2] + b"\x00" * 64 + data[-200:])  # central directory of a longer file
    if allow:
        from edgepack.errors import InputError
        from edgepack.sources.torch_source import Pt2Source

        with pytest.raises(InputError, match=r"cut\.pt2: (corrupt \.pt2 archive|not a \.pt2 archive|could not load)") as e:
            Pt2Source.load(str(path), allow_pickle=True)
        err = str(e.value)
    else:
        code, _, err = run_cli("inspect", str(path))
        _one_line(code, err, "corrupt .pt2 archive")
    captured = capfd.readouterr()
    assert "Traceback" not in err + captured.err + captured.out


def test_torch_loader_traceback_is_silenced(tmp_path, capfd):
    """With --allow-pickle torch.export.load reads the file; its logger's traceback stays quiet."""
    from edgepack.errors import InputError
    from edgepack.sources.torch_source import Pt2Source

    path = rewrite_pt2(tmp_path / "bad.pt2", put={"models/model.json": b"{not json"})
    with pytest.raises(InputError, match=r"bad\.pt2: (corrupt \.pt2 archive|could not load the ExportedProgram)"):
        Pt2Source.load(str(path), allow_pickle=True)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    code, _, err = run_cli("inspect", str(path))
    _one_line(code, err, "tiny/models/model.json is not valid JSON")


def test_dtype_table_matches_torch():
    from torch._export.serde import schema
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    from edgepack.sources.pt2_archive import DTYPES

    for st in schema.ScalarType:
        if st.value == 0:
            continue
        dt = _SERIALIZE_TO_TORCH_DTYPE[st]
        assert DTYPES[st.value] == (str(dt).removeprefix("torch."), dt.itemsize), st


def test_inspect_imports_no_torch_and_matches_the_torch_path():
    """inspect reads the JSON and weight configs; the numbers match what the ExportedProgram says."""
    code = (
        "import sys, json, io, contextlib\nfrom edgepack.cli import main\n"
        f"buf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n    main(['inspect', '--json', {str(DIGITS_PT2)!r}])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\nprint(buf.getvalue())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    # the values the torch-based inspect printed before (and that the ExportedProgram gives):
    assert info["inputs"] == [{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert info["outputs"] == [{"name": "output", "shape": [1, 10], "dtype": "float32"}]
    assert info["op_histogram"] == {"conv2d.default": 3, "relu.default": 3, "batch_norm.default": 2, "max_pool2d.default": 1,
                                    "flatten.using_ints": 1, "linear.default": 1}
    assert info["weight_dtypes"] == {"float32": 14, "int64": 2} and info["details"]["parameters"] == 19324
    from collections import Counter

    from edgepack.sources.torch_source import Pt2Source

    ep = Pt2Source.load(str(DIGITS_PT2), allow_pickle=True).ep
    ops = Counter(str(n.target).removeprefix("aten.") for n in ep.graph.nodes if n.op == "call_function")
    assert info["op_histogram"] == dict(ops)
    assert info["details"]["parameters"] == sum(t.numel() for t in ep.state_dict.values())
    assert info["weight_dtypes"] == dict(Counter(str(t.dtype).removeprefix("torch.") for t in ep.state_dict.values()))
    # the plain-text form also comes without torch
    code2 = f"import sys\nfrom edgepack.cli import main\nmain(['inspect', {str(DIGITS_PT2)!r}])\nassert 'torch' not in sys.modules\n"
    res2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, cwd=ROOT)
    assert res2.returncode == 0 and "image: float32 [1, 1, 8, 8]" in res2.stdout, res2.stdout + res2.stderr


def test_entry_point_that_exits_or_raises_at_import(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "boom.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp_path / "late.py").write_text("import sys\ndef model():\n    sys.exit('bye')\n")
    for spec, text in (("exits.py:model", "importing 'exits.py' called sys.exit(3) instead of returning"),
                       ("boom.py:model", "importing 'boom.py' raised RuntimeError: broken at import"),
                       ("late.py:model", "the entry point called sys.exit('bye') instead of returning")):
        f = tiny_files()
        code, _, err = run_cli("build", spec, "-c", str(f["calib"]), "-t", str(f["profile"]), "-o", str(tmp_path / "o"), "-q")
        _one_line(code, err, text)


def test_payload_helper_really_runs_when_unpickled(tmp_path):
    """The marker test is meaningful: the payload does create its file when something unpickles it."""
    import pickle

    m = tmp_path / "M"
    pickle.loads(payload(m))
    assert m.exists()
