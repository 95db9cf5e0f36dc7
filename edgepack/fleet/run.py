"""`edgepack fleet` and `edgepack merge`: run the tasks, then join each model's tasks into one
output folder and report, and write the fleet summary.

    OUT/<model>/<target>/<artifact>            every model's artifacts, as `edgepack build` lays them
    OUT/<model>/report.json|md|html, manifest.json   the model's report, merged from its tasks
    OUT/fleet.json|md|html                     the cell grid of every model; exit code = the worst cell's
    OUT/.fleet/tasks.json                      each task's result (JSON data): what `merge` joins
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..outdir import StagedOutput
from ..pipeline.cells import CellFailure
from ..progress import Progress, Silent, StderrProgress
from ..report.json_report import report_json
from ..report.writers import write_reports
from .executors import run_local, run_ray
from .merge import decode_calibration, decode_report, merge_reports, rebase
from .plan import Task, parse_shard, plan_digest, plan_tasks, select_shard
from .spec import load_fleet
from .summary import FleetReport, write_summary

TASKS_FILE = Path(".fleet") / "tasks.json"
EXECUTORS = ("local", "ray")


def _progress(progress) -> Progress:
    return StderrProgress() if progress is True else (progress or Silent())


def run_fleet(
    fleet: str | Path,
    *,
    out: str | Path | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    shard: str | tuple[int, int] | None = None,
    cache: str | None = None,
    use_cache: bool = True,
    force: bool = False,
    progress: Progress | bool | None = None,
) -> FleetReport:
    """Build every model × target of FLEET.toml (or, with `shard` "I/N", this shard's tasks) on
    `executor` "local" (a process pool of `workers`) or "ray" (`ray_address`, else an in-process
    Ray). `cache`, `use_cache` go to every build (the cell cache). Returns the FleetReport; its
    `exit_code` is the worst cell's."""
    progress = _progress(progress)
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r}: choose from: {', '.join(EXECUTORS)}")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more")
    spec = load_fleet(fleet)
    out = Path(out) if out is not None else spec.out
    if out is None:
        raise ConfigError(f"{spec.path}: no output folder; pass --out DIR or set [defaults] out")
    shard = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    every = plan_tasks(spec)
    mine = select_shard(every, shard)
    plan = {
        "digest": plan_digest(every), "tasks_total": len(every), "models": [m.name for m in spec.models],
        "shard": list(shard) if shard else None, "tasks": [t.id for t in mine],
    }
    cache_args = {"cache": cache, "use_cache": use_cache}
    staged = StagedOutput(out, force=force)
    with staged as staging:
        work = staging / ".fleet" / "work"
        work.mkdir(parents=True)
        where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        progress.step(f"fleet: {len(mine)} of {len(every)} tasks{where} on {executor}")
        done = []

        def report_one(r: dict) -> None:
            done.append(r["id"])
            state = r["status"] if r["status"] == "built" else f"{r['error']} (exit {r['exit_code']}): {r['reason']}"
            progress.step(f"[{len(done)}/{len(mine)}] {r['id']}: {state}, {r.get('duration_s', 0):.1f} s, attempt {r.get('attempt', 1)}")

        if executor == "ray":
            results = run_ray(mine, cache_args, spec.resources, workers, ray_address, report_one)
            for i, t in enumerate(mine):  # the files came back with the results
                _write_files(results[t.id].pop("files", {}), work / str(i))
        else:
            results = run_local(mine, work, cache_args, spec.resources, workers, report_one)
        entries = [
            {"task": t.to_json(), "result": results[t.id], "root": str(work / str(i)), "shard": shard[0] if shard else None} for i, t in enumerate(mine)
        ]
        report = _assemble(staging, Path(out), entries, plan, executor, move=True)
        shutil.rmtree(work)
        for message in staged.commit():
            progress.warn(message)
    return report


def merge_outputs(shards: list[str | Path], out: str | Path, *, force: bool = False, progress: Progress | bool | None = None) -> FleetReport:
    """Join the outputs of `edgepack fleet --shard I/N` (every I of one N, one plan) into one fleet
    output, as the unsharded fleet would have written it. The shard folders are not changed."""
    progress = _progress(progress)
    if not shards:
        raise ConfigError("merge needs the output folders of the shards; e.g. edgepack merge out-1 out-2 -o out")
    plans, entries = [], []
    for s in map(Path, shards):
        try:
            meta = json.loads((s / "fleet.json").read_text(encoding="utf-8"))["plan"]
            saved = json.loads((s / TASKS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{s}: not the output of `edgepack fleet` (no readable fleet.json and {TASKS_FILE}); pass each shard's --out folder") from None
        plans.append((s, meta))
        entries += [{**e, "root": str(s / e["task"]["model_name"])} for e in saved]  # each keeps the shard that built it
    digests = {m["digest"] for _, m in plans}
    if len(digests) > 1:
        raise ConfigError(f"{plans[0][0]} and {next(s for s, m in plans if m['digest'] != plans[0][1]['digest'])}: shards of different fleets (their task lists differ); merge the shards of one FLEET.toml")
    counts = {tuple(m["shard"])[1] if m["shard"] else 1 for _, m in plans}
    if len(counts) > 1:
        raise ConfigError(f"the shards split the fleet in different ways (--shard ?/{' and ?/'.join(map(str, sorted(counts)))}); merge the shards of one split")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for s, m in plans:
        i = m["shard"][0] if m["shard"] else 1
        if i in seen:
            raise ConfigError(f"{seen[i]} and {s} are both shard {i}/{count}; pass each shard once")
        seen[i] = s
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        raise ConfigError(f"shard {missing[0]}/{count} is missing; pass the output of every shard (1..{count})")
    plan = {**plans[0][1], "shard": None, "tasks": sorted(e["task"]["id"] for e in entries)}
    staged = StagedOutput(Path(out), force=force)
    with staged as staging:
        progress.step(f"merging {len(entries)} tasks from {len(shards)} shard(s)")
        report = _assemble(staging, Path(out), entries, plan, "merged", move=False)
        for message in staged.commit():
            progress.warn(message)
    return report


def _task(data: dict[str, Any]) -> Task:
    names = {f.name for f in fields(Task)}
    return Task(**{k: (tuple(v) if k == "precisions" else v) for k, v in data.items() if k in names})


def _write_files(files: dict[str, bytes], root: Path) -> None:
    for rel, data in files.items():
        dest = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise InputError(f"a task returned a file outside its folder: {rel}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _place(src_root: Path, rels: list[str], dest_root: Path, move: bool) -> None:
    """Every listed file (a folder such as .mlpackage: each file in it) from src_root to dest_root."""
    for rel in rels:
        src = src_root / rel
        items = [q for q in sorted(src.rglob("*")) if q.is_file()] if src.is_dir() else [src]
        for q in items:
            if not q.is_file():
                raise InputError(f"{q}: a file of the task's report is missing; rebuild that shard")
            dest = dest_root / q.relative_to(src_root)
            if dest.exists():
                if _sha(dest) != _sha(q):
                    raise InputError(f"{dest}: two tasks wrote this file with different content; their target names must differ")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(q, dest) if move else shutil.copy2(q, dest)


def _failures(task: Task, result: dict) -> list[CellFailure]:
    return [
        CellFailure(task.target_name, task.format, p, "build", result["reason"], result["error"], int(result["exit_code"]))
        for p in task.precisions
    ]


def _assemble(staging: Path, out: Path, entries: list[dict], plan: dict, executor: str, move: bool) -> FleetReport:
    """Each model's tasks into staging/<model>/ with its merged report; then the fleet summary."""
    by_model: dict[str, list[dict]] = {}
    for e in entries:
        by_model.setdefault(e["task"]["model_name"], []).append(e)
    order = [m for m in plan["models"] if m in by_model]
    models, cells, tasks = [], [], []
    for name in order:
        group = sorted(by_model[name], key=lambda e: e["task"]["order"])
        reports, failures, facts = [], [], None
        for e in group:
            task, result = _task(e["task"]), e["result"]
            tasks.append({
                "id": task.id, "status": result["status"], "attempts": result.get("attempt", 1), "duration_s": result.get("duration_s"),
                "exit_code": result.get("exit_code"), "shard": e.get("shard"),
            })
            if result["status"] != "built":
                failures += _failures(task, result)
                continue
            rep = decode_report(result["report"])
            tasks[-1]["cache_hits"] = sum(1 for a in rep.artifacts if (a.cache or {}).get("hit"))
            _place(Path(e["root"]), [f for a in rep.artifacts for f in (a.file, *a.extra_files)], staging / name, move)
            reports.append(rep)
            facts = facts or decode_calibration(result["manifest"])
        entry = {"name": name, "model": group[0]["task"]["model"], "calibration": group[0]["task"]["calibration"], "report": None}
        if reports:
            merged = merge_reports(reports, out_dir=out / name)
            merged.failed_cells = [*merged.failed_cells, *failures]
            rebase(merged, staging / name)
            write_reports(merged, facts, staging / name)
            rebase(merged, out / name)
            rj = json.loads((staging / name / "report.json").read_text(encoding="utf-8"))
            model_cells = _cells(name, rj)
            entry |= {"report": f"{name}/report.json", "exit_code": merged.exit_code, "passed": merged.passed}
        else:
            model_cells = [{"model": name, **f.to_json(), "exit_code": f.exit_code} for f in failures]
            entry |= {"exit_code": max((f.exit_code for f in failures), default=0), "passed": False}
        models.append(entry)
        cells += model_cells
    saved = [{"task": e["task"], "result": {k: v for k, v in e["result"].items() if k != "files"}, "shard": e.get("shard")} for e in entries]
    (staging / TASKS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (staging / TASKS_FILE).write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    report = FleetReport(out=out, plan=plan, executor=executor, models=models, cells=cells, tasks=tasks)
    write_summary(report, staging)
    return report


def _cells(model: str, rj: dict) -> list[dict]:
    """The model's cells (report.json "cells") with exit code, sha256 and whether the cache had it."""
    by_cell = {(a["target"], a["format"], a["precision"]): a for a in rj["artifacts"]}
    codes = {(f["target"], f["format"], f["precision"]): f["exit_code"] for f in rj["failed_cells"]}
    out = []
    for c in rj["cells"]:
        key = (c["target"], c["format"], c["precision"])
        a = by_cell.get(key)
        row = {"model": model, **c, "exit_code": 0 if c["status"] == "passed" else (1 if c["status"] == "gate_failed" else codes.get(key, 70))}
        if a is not None:
            row |= {"file": f"{model}/{a['file']}", "sha256": a["sha256"], "size_bytes": a["size_bytes"]}
        out.append(row)
    return out
