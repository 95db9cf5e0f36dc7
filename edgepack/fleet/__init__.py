"""Fleet builds (issue #13 part 3): many models × targets as tasks (model × target × format) on a
local process pool or a Ray cluster, split into shards for CI matrix jobs and merged back.

spec.py reads FLEET.toml, plan.py makes and shards the tasks, task.py runs one in a worker,
executors.py says where they run, merge.py joins a model's reports, run.py writes the outputs,
summary.py the fleet summary. Nothing here imports ray unless the Ray executor is asked for.
"""
from .merge import merge_reports
from .plan import Task, parse_shard, plan_tasks, select_shard
from .run import merge_outputs, run_fleet
from .spec import FleetSpec, load_fleet
from .summary import FleetReport

__all__ = [
    "FleetReport", "FleetSpec", "Task", "load_fleet", "merge_outputs", "merge_reports", "parse_shard", "plan_tasks", "run_fleet", "select_shard",
]
