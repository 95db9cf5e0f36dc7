"""Fleet builds end to end (slow): 3 tiny CNNs (conftest) × 2 targets (ort fp32 for arm and for amd64) and a
broken model on the local pool (cold, filling a cell cache), the same as single `edgepack build`s
(sha256); shards 1/2 + 2/2 (from that cache) + merge equal to the unsharded fleet; an in-process
Ray with a 4th model whose killed worker's task is retried; the local pool's retry and lost worker.
The cache keys hold a digest of edgepack's code: an edit to edgepack/ during a run makes misses."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli, save_onnx, tiny_cnn, write_profile, write_stacked

pytestmark = pytest.mark.slow

PROFILE = 'name = "{name}"\n[latency]\nruns = 1\nwarmup = 0\n[formats.{fmt}]\nprecisions = ["fp32"]\n'
MODELS = ("m0", "m1", "m2")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every artifact file under a fleet output's model folders (reports aside)."""
    skip = {"report.json", "report.md", "report.html", "manifest.json", ".edgepack-output.json"}
    return {
        p.relative_to(folder).as_posix(): _sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip and not p.name.startswith("fleet.") and ".fleet" not in p.parts
    }


def _fleet_json(folder: Path) -> dict:
    return json.loads((folder / "fleet.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("fleet")
    for i, name in enumerate((*MODELS, "m3")):
        torch.manual_seed(i)
        save_onnx(tiny_cnn(width=4 + i), (torch.randn(1, 3, 16, 16),), d / f"{name}.onnx")
    write_stacked(d / "calib", 24, (3, 16, 16))
    (d / "broken.onnx").write_bytes(b"not an onnx file")
    write_profile(d / "a.toml", PROFILE.format(name="tA", fmt="ort"))
    write_profile(d / "b.toml", PROFILE.format(name="tB", fmt="ort") + 'target_platform = "amd64"\n')
    models = "".join(f'[[models]]\nname = "{n}"\nmodel = "{n}.onnx"\ncalibration = "calib"\n' for n in MODELS)
    head = '[defaults]\ntargets = ["a.toml", "b.toml"]\n[resources]\nnum_cpus = 1\nmemory_mb = 1024\nmax_retries = 2\n'
    write_profile(d / "RAY.toml", head + models + '[[models]]\nname = "m3"\nmodel = "m3.onnx"\ncalibration = "calib"\n')
    broken = '[[models]]\nname = "bad"\nmodel = "broken.onnx"\ncalibration = "calib"\ntargets = ["a.toml"]\n'
    write_profile(d / "WITH_BAD.toml", head + models + broken)
    return d


def _single(case: Path, name: str) -> dict[str, str]:
    """sha256 of every artifact of a plain, cold `edgepack build` of one model for both targets."""
    out = case / f"single-{name}"
    code, _, err = run_cli("build", str(case / f"{name}.onnx"), "-c", str(case / "calib"), "-t", str(case / "a.toml"), "-t", str(case / "b.toml"),
                           "-o", str(out), "--no-cache", "-q")
    assert code == 0, err
    return {f"{name}/{k}": v for k, v in _files(out).items()}


@pytest.fixture(scope="module")
def local(case):
    """The unsharded fleet (3 good models and a broken one) on the local pool, through the CLI; it
    fills a cell cache that the shards then reuse."""
    out = case / "local"
    got = run_cli("fleet", str(case / "WITH_BAD.toml"), "-o", str(out), "--workers", "2", "--cache", str(case / "cache"), "-q")
    return out, got


def test_local_fleet_writes_one_report_per_model_and_the_grid(case, local):
    out, (code, stdout, stderr) = local
    assert code == 3, stderr  # the worst cell's: the broken model's InputError
    fleet = _fleet_json(out)
    assert [t["cache_hits"] for t in fleet["tasks"] if t["status"] == "built"] == [0] * 6  # a cold cache
    assert fleet["exit_code"] == 3 and fleet["executor"] == "local" and fleet["plan"]["tasks_total"] == 7
    grid = [(c["model"], c["target"], c["format"], c["precision"], c["status"], c["exit_code"]) for c in fleet["cells"]]
    good = [(m, t, f, "fp32", "passed", 0) for m in MODELS for t, f in (("tA", "ort"), ("tB", "ort"))]
    assert grid == good + [("bad", "tA", "ort", "fp32", "failed", 3)]
    bad = fleet["cells"][-1]
    assert bad["stage"] == "build" and "broken.onnx" in bad["reason"]
    assert f"FAIL bad tA ort fp32: failed (exit 3): {bad['reason']}" in stderr
    assert "edgepack: error: 1 of 7 cells failed; exit code 3 is the worst cell's" in stderr
    for m in MODELS:
        rep = json.loads((out / m / "report.json").read_text(encoding="utf-8"))
        assert [(c["target"], c["format"], c["status"]) for c in rep["cells"]] == [("tA", "ort", "passed"), ("tB", "ort", "passed")]
        assert sorted(t["name"] for t in rep["targets"]) == ["tA", "tB"] and rep["exit_code"] == 0
        assert (rep["cache"]["hits"], rep["cache"]["stored"], rep["cache"]["location"]) == (0, 2, str(case / "cache"))
        for a in rep["artifacts"]:
            assert _sha(out / m / a["file"]) == a["sha256"]
        manifest = json.loads((out / m / "manifest.json").read_text(encoding="utf-8"))
        assert [a["file"] for a in manifest["artifacts"]] == [f"tA/{m}.fp32.ort", f"tB/{m}.fp32.ort"]
        assert (out / m / "report.html").stat().st_size > 1000
    assert not (out / "bad").exists()  # no cell of it built: its cells are in the fleet summary only
    m0 = _single(case, "m0")
    assert {k: v for k, v in _files(out).items() if k.startswith("m0/")} == m0 and len(m0) == 4  # two .ort and their operator configs
    assert "| m1 | tB | ort | fp32 | passed | 0 |" in (out / "fleet.md").read_text(encoding="utf-8")
    assert "<tr class='FAIL'><td>bad</td>" in (out / "fleet.html").read_text(encoding="utf-8")


def test_shards_and_merge_equal_the_unsharded_fleet(case, local):
    out, _ = local
    shards = []
    for i in (1, 2):
        s = case / f"shard{i}"
        code, _, err = run_cli("fleet", str(case / "WITH_BAD.toml"), "-o", str(s), "--shard", f"{i}/2", "--cache", str(case / "cache"), "-q")
        assert code == (3 if i == 1 else 0), err  # "bad/tA/ort" is the first of the sorted tasks: shard 1
        assert _fleet_json(s)["plan"]["shard"] == [i, 2]
        built = [t for t in _fleet_json(s)["tasks"] if t["status"] == "built"]
        assert [t["cache_hits"] for t in built] == [1, 1, 1]  # the unsharded run's cells, reused
        shards.append(s)
    ids = [t["id"] for t in _fleet_json(shards[0])["tasks"]] + [t["id"] for t in _fleet_json(shards[1])["tasks"]]
    assert sorted(ids) == sorted(t["id"] for t in _fleet_json(out)["tasks"]) and len(set(ids)) == 7
    merged = case / "merged"
    code, stdout, err = run_cli("merge", str(shards[1]), str(shards[0]), "-o", str(merged), "-q")
    assert code == 3, err
    a, b = _fleet_json(out), _fleet_json(merged)
    assert b["cells"] == a["cells"] and b["models"] == a["models"] and b["exit_code"] == 3 and b["plan"]["shard"] is None
    assert _files(merged) == _files(out) and len(_files(out)) == 12  # 6 .ort and their operator configs
    for m in MODELS:
        ra, rb = (json.loads((f / m / "report.json").read_text(encoding="utf-8")) for f in (out, merged))
        assert rb["cells"] == ra["cells"] and [x["sha256"] for x in rb["artifacts"]] == [x["sha256"] for x in ra["artifacts"]]


@pytest.mark.parametrize("retries", [1, 0])
def test_local_pool_retries_a_killed_worker_then_gives_up(case, monkeypatch, retries):
    """The broken model fails at loading (no conversion): cheap. Its first worker is killed; with a
    retry left, the task runs again and fails as it should (exit 3); with none, it is lost (exit 4)."""
    marker = case / f"local-kill-{retries}.marker"
    monkeypatch.setenv("EDGEPACK_TEST_KILL_WORKER_ONCE", str(marker))
    head = f'[defaults]\ntargets = ["a.toml"]\n[resources]\nmax_retries = {retries}\n'
    fleet = write_profile(case / f"BAD_{retries}.toml", head + '[[models]]\nname = "bad"\nmodel = "broken.onnx"\ncalibration = "calib"\n')
    out = case / f"bad-{retries}"
    code, _, err = run_cli("fleet", str(fleet), "-o", str(out), "--workers", "1", "-q")
    assert marker.read_text() == "bad/tA/ort"
    (task,) = _fleet_json(out)["tasks"]
    (cell,) = _fleet_json(out)["cells"]
    if retries:
        assert (code, task["attempts"], cell["exit_code"]) == (3, 2, 3), err
        assert "broken.onnx" in cell["reason"]
    else:
        assert (code, task["attempts"], cell["exit_code"]) == (4, 1, 4), err
        assert cell["reason"].startswith("the worker building it was lost 1 time(s) (its process died)")
        assert f"FAIL bad tA ort fp32: failed (exit 4): {cell['reason']}" in err


def test_ray_fleet_retries_a_killed_worker_and_matches_single_builds(case, local, monkeypatch):
    """4 models × 2 targets on an in-process Ray with the local run's cache: m0-m2 come back from it
    (as the local pool built them); m3 is new, and its ort task's first worker is killed."""
    pytest.importorskip("ray")
    marker = case / "kill.marker"
    monkeypatch.setenv("EDGEPACK_TEST_KILL_WORKER_ONCE", str(marker))
    monkeypatch.setenv("EDGEPACK_TEST_KILL_TASK", "m3/tA/ort")
    out = case / "ray"
    code, stdout, err = run_cli("fleet", str(case / "RAY.toml"), "-o", str(out), "--executor", "ray", "--workers", "2", "--cache", str(case / "cache"), "-q")
    assert code == 0, err
    assert marker.read_text() == "m3/tA/ort"  # the hook killed that task's first worker
    fleet = _fleet_json(out)
    assert fleet["executor"] == "ray"
    tasks = {t["id"]: (t["attempts"], t["cache_hits"]) for t in fleet["tasks"]}
    assert tasks.pop("m3/tA/ort") == (2, 0) and tasks.pop("m3/tB/ort") == (1, 0)  # retried, and built on Ray
    assert set(tasks.values()) == {(1, 1)}  # m0-m2: the cells the local pool built
    local_cells = [c for c in _fleet_json(local[0])["cells"] if c["model"] != "bad"]
    assert [c for c in fleet["cells"] if c["model"] != "m3"] == local_cells
    assert [(c["model"], c["status"], c["exit_code"]) for c in fleet["cells"] if c["model"] == "m3"] == [("m3", "passed", 0)] * 2
    m3 = {k: v for k, v in _files(out).items() if k.startswith("m3/")}
    assert m3 == _single(case, "m3") and len(m3) == 4
    assert {k: v for k, v in _files(out).items() if not k.startswith("m3/")} == _files(local[0])
