"""Fleet builds, default tier: FLEET.toml parsing, task planning and shard assignment, and merge's
refusals. No conversion here (tests/test_fleet_build.py builds)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, write_profile
from edgepack.errors import ConfigError, InputError
from edgepack.fleet import load_fleet, parse_shard, plan_tasks, select_shard
from edgepack.fleet.plan import plan_digest, shard_of

ORT = 'name = "{name}"\n[formats.ort]\nprecisions = ["fp32"]\n'
BOTH = 'name = "{name}"\n[formats.tflite]\nprecisions = ["fp32", "fp16"]\n[formats.ort]\nprecisions = ["fp32"]\n'


def _fleet(tmp_path: Path, body: str) -> Path:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "calib").mkdir(exist_ok=True)
    write_profile(tmp_path / "a.toml", BOTH.format(name="tA"))
    write_profile(tmp_path / "b.toml", ORT.format(name="tB"))
    return write_profile(tmp_path / "FLEET.toml", body)


MODELS = """
[defaults]
targets = ["a.toml", "b.toml"]
out = "out"
[[models]]
name = "zeta"
model = "m.onnx"
calibration = "calib"
[[models]]
name = "alpha"
model = "m.onnx"
calibration = "calib"
targets = ["b.toml"]
"""


def test_fleet_file_is_read_with_paths_from_its_folder(tmp_path):
    spec = load_fleet(_fleet(tmp_path, MODELS + "[resources]\nnum_cpus = 2\nmemory_mb = 512\nmax_retries = 0\n"))
    assert [m.name for m in spec.models] == ["zeta", "alpha"]
    assert spec.models[0].model == str(tmp_path / "m.onnx")
    assert spec.models[0].targets == (str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))
    assert spec.models[1].targets == (str(tmp_path / "b.toml"),)
    assert spec.out == tmp_path / "out"
    assert (spec.resources.num_cpus, spec.resources.memory_mb, spec.resources.max_retries) == (2.0, 512, 0)
    assert load_fleet(_fleet(tmp_path, MODELS)).resources.max_retries == 2  # the default


@pytest.mark.parametrize("extra, message", [
    ("[defaults]\ntargetz = []\n", "unknown key 'defaults.targetz'; allowed keys in defaults are: targets, out"),
    ("[resources]\ngpus = 1\n", "unknown key 'resources.gpus'; allowed keys in resources are: num_cpus, memory_mb, max_retries"),
    ("[[models]]\nname = 'x'\nmodel = 'm.onnx'\ncalibration = 'calib'\nweights = 1\n",
     "unknown key 'models[0].weights'; allowed keys in models[0] are: name, model, calibration, targets"),
    ("[[models]]\nname = 'x'\nmodel = 'm.onnx'\n", "missing required key 'models[0].calibration'"),
    ("[[models]]\nname = '../up'\nmodel = 'm.onnx'\ncalibration = 'calib'\n", "models[0].name '../up' is not usable as a folder name"),
    ("[[models]]\nname = 'fleet.json'\nmodel = 'm.onnx'\ncalibration = 'calib'\n", "models[0].name 'fleet.json' is not usable as a folder name"),
    ("[[models]]\nname = 'x'\nmodel = 'm.onnx'\ncalibration = 'calib'\n", "model 'x' has no targets; set [defaults] targets or its own targets"),
    ("[[models]]\nname = 'x'\nmodel = 'm.onnx'\ncalibration = 'calib'\ntargets = []\n", "key 'models[0].targets' is empty"),
    ("[resources]\nmax_retries = -1\n[[models]]\nname = 'x'\nmodel = 'm.onnx'\ncalibration = 'calib'\n", "key 'resources.max_retries' must be >= 0, got -1"),
    ("", "no [[models]]; add one per model: name, model, calibration (targets optional)"),
    ("[defaults\n", "not valid TOML"),
])
def test_fleet_file_mistakes_are_one_line_config_errors(tmp_path, extra, message):
    with pytest.raises(ConfigError) as err:
        load_fleet(_fleet(tmp_path, extra))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "FLEET.toml"))


def test_duplicate_names_and_missing_files(tmp_path):
    two = "[[models]]\nname = 'x'\nmodel = 'm.onnx'\ncalibration = 'calib'\ntargets = ['b.toml']\n"
    with pytest.raises(ConfigError, match="two \\[\\[models\\]\\] are named 'x'; each needs its own name"):
        load_fleet(_fleet(tmp_path, two + two))
    with pytest.raises(InputError, match="model 'x': .*gone.onnx not found; check its 'model' path"):
        load_fleet(_fleet(tmp_path, two.replace("m.onnx", "gone.onnx")))
    with pytest.raises(InputError, match="model 'x': calibration .*nocal not found"):
        load_fleet(_fleet(tmp_path, two.replace("'calib'", "'nocal'")))
    with pytest.raises(ConfigError, match="lists two targets named 'tB'"):
        plan_tasks(load_fleet(_fleet(tmp_path, two.replace("['b.toml']", "['b.toml', 'b.toml']"))))


def test_tasks_are_model_target_format_sorted(tmp_path):
    tasks = plan_tasks(load_fleet(_fleet(tmp_path, MODELS)))
    assert [t.id for t in tasks] == ["alpha/tB/ort", "zeta/tA/ort", "zeta/tA/tflite", "zeta/tB/ort"]
    tflite = tasks[2]
    assert tflite.precisions == ("fp32", "fp16")  # one task: every precision of the format together
    assert (tflite.order, tasks[1].order, tasks[3].order) == (0, 1, 2)  # the report keeps the profile's order


def test_shards_split_the_sorted_tasks_round_robin(tmp_path):
    tasks = plan_tasks(load_fleet(_fleet(tmp_path, MODELS)))
    assert [shard_of(k, 3) for k in range(7)] == [1, 2, 3, 1, 2, 3, 1]
    one, two = select_shard(tasks, (1, 2)), select_shard(tasks, (2, 2))
    assert [t.id for t in one] == ["alpha/tB/ort", "zeta/tA/tflite"]
    assert [t.id for t in two] == ["zeta/tA/ort", "zeta/tB/ort"]
    assert select_shard(list(reversed(tasks)), (1, 2)) == one  # the order given does not matter
    assert [len(select_shard(tasks, (i, 5))) for i in range(1, 6)] == [1, 1, 1, 1, 0]
    assert plan_digest(tasks) == plan_digest(list(reversed(tasks)))
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match=f"--shard '{bad}': give I/N with 1 <= I <= N"):
            parse_shard(bad)


def test_cli_fleet_errors_exit_2(tmp_path):
    code, out, err = run_cli("fleet", str(tmp_path / "none.toml"))
    assert code == 2 and err.strip() == f"edgepack: error: {tmp_path / 'none.toml'}: fleet file not found; give the path to a FLEET.toml"
    fleet = _fleet(tmp_path, MODELS.replace('out = "out"\n', ""))
    code, out, err = run_cli("fleet", str(fleet))
    assert code == 2 and "no output folder; pass --out DIR or set [defaults] out" in err
    code, out, err = run_cli("fleet", str(fleet), "--out", str(tmp_path / "o"), "--shard", "3/2")
    assert code == 2 and err.strip() == "edgepack: error: --shard '3/2': give I/N with 1 <= I <= N, e.g. --shard 1/2"
    code, out, err = run_cli("fleet", str(fleet), "--out", str(tmp_path / "o"), "--ray-address", "ray://h:1")
    assert code == 2 and err.strip() == "edgepack: error: --ray-address needs --executor ray"


def _shard_out(folder: Path, shard, digest="d1", tasks=()) -> Path:
    folder.mkdir(parents=True)
    plan = {"digest": digest, "tasks_total": 2, "models": ["m"], "shard": shard, "tasks": list(tasks)}
    (folder / "fleet.json").write_text(json.dumps({"plan": plan}), encoding="utf-8")
    (folder / ".fleet").mkdir()
    (folder / ".fleet" / "tasks.json").write_text("[]", encoding="utf-8")
    return folder


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path):
    one = _shard_out(tmp_path / "s1", [1, 2])
    two = _shard_out(tmp_path / "s2", [2, 2])
    other = _shard_out(tmp_path / "x2", [2, 2], digest="d2")
    three = _shard_out(tmp_path / "t3", [3, 3])
    out = str(tmp_path / "merged")
    code, _, err = run_cli("merge", str(one), "-o", out)
    assert code == 2 and err.strip() == "edgepack: error: shard 2/2 is missing; pass the output of every shard (1..2)"
    code, _, err = run_cli("merge", str(one), str(one), "-o", out)
    assert code == 2 and err.strip() == f"edgepack: error: {one} and {one} are both shard 1/2; pass each shard once"
    code, _, err = run_cli("merge", str(one), str(other), "-o", out)
    assert code == 2 and "shards of different fleets (their task lists differ)" in err
    code, _, err = run_cli("merge", str(one), str(two), str(three), "-o", out)
    assert code == 2 and "the shards split the fleet in different ways (--shard ?/2 and ?/3)" in err
    code, _, err = run_cli("merge", str(tmp_path), "-o", out)
    assert code == 3 and err.strip() == f"edgepack: error: {tmp_path}: not the output of `edgepack fleet` (no readable fleet.json and .fleet/tasks.json); pass each shard's --out folder"
    assert not Path(out).exists()


def test_nothing_imports_ray_unless_asked():
    import subprocess
    import sys

    code = "import sys, edgepack.fleet, edgepack.cli; print('ray' in sys.modules)"
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert got.stdout.strip() == "False"
