"""int8_auto: int8 that finds its own mixed-precision recipe within the cell's accuracy budget.

    recipe_for(job, fmt, backend) -> Recipe   (in the format plug-in, in the converter worker)

The format plug-in owns its quantiser (a search.Backend); this package owns what is the same in
every format: the budget (budget.py: the cell's own tolerances, resolved by the parent and sent with
the cell as FormatJob.budget), the search-fit / search-check split of the calibration samples, the
per-layer sensitivity (sensitivity.py), the greedy loop (search.py) and the recipe file
(recipe.py). A recipe given back (`--recipe FILE`, `[formats.<fmt>] recipe = "FILE"`) is applied
with no search. The plug-in then builds its artifact from the recipe over every calibration sample,
so a searched artifact and a reused one are made the same way, byte for byte.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConversionError
from .budget import Budget, cell_budget, evaluate
from .recipe import SUFFIX, Recipe, check_layers, load_recipe, recipe_digest
from .search import search, split_calibration

__all__ = ["Budget", "Recipe", "cell_budget", "evaluate", "load_recipe", "recipe_digest", "recipe_for", "recipe_path", "search", "split_calibration"]

PRECISION = "int8_auto"


def recipe_path(job, suffix: str) -> Path:
    """Where a cell's recipe is written: beside its artifact, named after it
    (`model.int8_auto.ort.recipe.json` for `model.int8_auto.ort`), so that the recipes of the
    formats a target builds never take each other's place."""
    return job.workdir / f"{job.stem}.{PRECISION}{suffix}{SUFFIX}"


def recipe_for(job, fmt: str, backend) -> Recipe:
    """The cell's recipe: the one its options name (reused, checked against the model's layers),
    else a search against job.budget on the calibration samples."""
    given = (job.options or {}).get("recipe") or ""
    names = [la["name"] for la in backend.layers()]
    if given:
        recipe = load_recipe(given, fmt)
        check_layers(recipe, names, str(given))
        known = recipe.precision_of()
        if set(known) != set(names):  # layers the recipe does not list stay int8
            recipe.layers = recipe.layers + [{**la, "precision": "int8"} for la in backend.layers() if la["name"] not in known]
        recipe.search = {**recipe.search, "reused": True, "from": Path(given).name}
        return recipe
    budget = job.budget
    if budget is None:
        raise ConversionError(f"{PRECISION}: this cell has no accuracy budget to search against (an edgepack bug; please report it)")

    def reference(samples):
        return [list(job.source.run(s)) for s in samples]

    return search(fmt, backend, budget, list(job.calibration), reference, step=job.progress.step)


def details(recipe: Recipe, job, suffix: str) -> dict:
    """The Artifact.details entries of an int8_auto artifact, the recipe written beside it
    (recipe_path) and listed as the artifact's extra file ("_files")."""
    return {"recipe": recipe.to_json(), "_files": [recipe.write(recipe_path(job, suffix))]}
