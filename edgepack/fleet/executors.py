"""Where the tasks run: a local process pool (default) or a Ray cluster (`edgepack[ray]`).

Both retry a task whose worker was lost (killed, out of memory) up to `max_retries` times; a task
still lost after that fails its cells. The cell cache (when on) makes a retry cheap: the cells the
lost attempt finished are hits.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExitCode, MissingDependencyError, first_line
from .plan import Task
from .spec import Resources
from .task import HOOK_ENVS, run_task

OnResult = Callable[[dict[str, Any]], None]


def lost(task: Task, attempts: int, why: str) -> dict[str, Any]:
    return {
        "id": task.id, "attempt": attempts, "status": "error", "error": "WorkerLost", "exit_code": int(ExitCode.CONVERSION),
        "reason": f"the worker building it was lost {attempts} time(s) ({why}); the last try is not retried; "
                  f"raise [resources] memory_mb or max_retries in the fleet file",
        "duration_s": 0.0,
    }


def _attempts(file: Path) -> int:
    try:
        return len(file.read_text(encoding="ascii").split())
    except OSError:
        return 0


def _local_task(task: dict[str, Any], out: str, cache: dict[str, Any], attempts_file: str) -> dict[str, Any]:
    with open(attempts_file, "a", encoding="ascii") as f:  # the driver counts a lost worker's attempts from it
        f.write(f"{os.getpid()}\n")
    return run_task(task, out, cache, _attempts(Path(attempts_file)))


def run_local(tasks: list[Task], work: Path, cache: dict[str, Any], resources: Resources, workers: int | None, on_result: OnResult) -> dict[str, dict]:
    """Run on a process pool (spawn: fresh interpreters) of `workers` processes (default: the cores).
    Task i builds into work/<i>; a pool broken by a lost worker is rebuilt for the tasks not done."""
    workers = workers or os.cpu_count() or 1
    ctx = multiprocessing.get_context("spawn")
    index = {t.id: i for i, t in enumerate(tasks)}
    pending = {t.id: t for t in tasks}
    results: dict[str, dict] = {}
    while pending:
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx) as pool:
            futures = {
                pool.submit(_local_task, t.to_json(), str(work / str(index[t.id])), cache, str(work / f"{index[t.id]}.attempts")): t
                for t in pending.values()
            }
            try:
                for fut in as_completed(futures):
                    t = futures[fut]
                    try:
                        r = fut.result()
                    except BrokenProcessPool:
                        continue  # a worker died: decided below, by the attempts each task made
                    results[t.id] = r
                    del pending[t.id]
                    on_result(r)
            except BaseException:  # Ctrl-C, SIGTERM, a bug: stop the workers now, not after their builds
                _stop(pool)
                raise
        for tid, t in list(pending.items()):
            made = _attempts(work / f"{index[tid]}.attempts")
            if made > resources.max_retries:
                results[tid] = lost(t, made, "its process died")
                del pending[tid]
                on_result(results[tid])
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "--executor ray") from None
    return ray


class _AttemptCounter:
    """A Ray actor that counts each task's attempts (Ray retries a lost worker's task by itself)."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def hit(self, task_id: str) -> int:
        self.counts[task_id] = self.counts.get(task_id, 0) + 1
        return self.counts[task_id]


def _ray_task(task: dict[str, Any], cache: dict[str, Any], counter) -> dict[str, Any]:
    import ray

    attempt = ray.get(counter.hit.remote(task["id"]))
    return run_task(task, None, cache, attempt)


def run_ray(tasks: list[Task], cache: dict[str, Any], resources: Resources, workers: int | None, address: str | None, on_result: OnResult) -> dict[str, dict]:
    """Run on Ray: the cluster at `address` (ray://host:port), else a local Ray started here with
    `workers` CPUs (default: the cores). Each task asks for resources.num_cpus and memory_mb and is
    retried max_retries times when its worker is lost; its files come back with its result."""
    ray = import_ray()
    env = {k: os.environ[k] for k in HOOK_ENVS if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
        except Exception as exc:  # noqa: BLE001 - any failure to reach or start Ray is the user's to fix
            where = f"--ray-address {address}" if address else "a local Ray"
            raise ConfigError(f"{where}: Ray did not start ({type(exc).__name__}: {first_line(exc)}); check the address and that the cluster runs ray {ray.__version__}") from None
    results: dict[str, dict] = {}
    try:
        counter = ray.remote(_AttemptCounter).options(num_cpus=0).remote()
        remote = ray.remote(_ray_task).options(
            num_cpus=resources.num_cpus, memory=resources.memory_mb * 2**20, max_retries=resources.max_retries, retry_exceptions=False,
        )
        refs = {remote.remote(t.to_json(), cache, counter): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                t = refs.pop(ref)
                try:
                    r = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    r = lost(t, resources.max_retries + 1, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
                results[t.id] = r
                on_result(r)
    finally:
        if started_here:
            ray.shutdown()
    return results
