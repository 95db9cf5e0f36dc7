"""The fleet's unit of work: a task = model × target × format (all of the format's precisions
together: they share one converter worker). Tasks are identified "model/target/format"; sorted by
(model, target, format), task k belongs to shard (k mod N) + 1.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from ..profiles import resolve_profile
from .spec import FleetSpec


@dataclass(frozen=True)
class Task:
    model_name: str
    model: str
    calibration: str
    target: str  # as FLEET.toml gave it (a shipped name or an absolute profile path)
    target_name: str  # the profile's name: the folder OUT/<model>/<target_name>/
    format: str
    precisions: tuple[str, ...]
    order: int  # its place in the model's report: targets in FLEET.toml's order, formats in the profile's

    @property
    def id(self) -> str:
        return f"{self.model_name}/{self.target_name}/{self.format}"

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.model_name, self.target_name, self.format)

    def to_json(self) -> dict:
        return asdict(self) | {"id": self.id, "precisions": list(self.precisions)}


def plan_tasks(spec: FleetSpec) -> list[Task]:
    """Every task of the fleet, sorted by (model, target, format). Profiles are read here, so a
    profile mistake stops the fleet before any work (with the profile's own one-line error)."""
    profiles = {}
    tasks = []
    for m in spec.models:
        names = []
        order = 0
        for t in m.targets:
            if t not in profiles:
                try:
                    profiles[t] = resolve_profile(t)
                except ConfigError as exc:
                    raise ConfigError(f"{spec.path}: model {m.name!r}: {exc}") from None
            p = profiles[t]
            if p.name in names:
                raise ConfigError(f"{spec.path}: model {m.name!r} lists two targets named {p.name!r}; each target needs its own name")
            names.append(p.name)
            for f in p.formats:
                tasks.append(Task(m.name, m.model, m.calibration, t, p.name, f.name, tuple(f.precisions), order))
                order += 1
    return sorted(tasks, key=lambda k: k.sort_key)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"I/N" -> (I, N), 1 <= I <= N; None -> None."""
    if text is None:
        return None
    got = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not got or not 1 <= int(got[1]) <= int(got[2]):
        raise ConfigError(f"--shard {text!r}: give I/N with 1 <= I <= N, e.g. --shard 1/2")
    return int(got[1]), int(got[2])


def shard_of(k: int, count: int) -> int:
    """The shard (1-based) of the k-th task (0-based, in sorted order)."""
    return k % count + 1


def select_shard(tasks: list[Task], shard: tuple[int, int] | None) -> list[Task]:
    if shard is None:
        return list(tasks)
    index, count = shard
    ordered = sorted(tasks, key=lambda k: k.sort_key)
    return [t for k, t in enumerate(ordered) if shard_of(k, count) == index]


def plan_digest(tasks: list[Task]) -> str:
    """A digest of the whole plan (every task's id and precisions), the same in every shard: merge
    checks that its shards come from one plan."""
    ids = [[t.id, list(t.precisions)] for t in sorted(tasks, key=lambda k: k.sort_key)]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()
