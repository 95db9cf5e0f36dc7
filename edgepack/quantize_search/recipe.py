"""An int8_auto recipe: which layers stay int8, which go int16 or float, and why; JSON on disk.

    {"edgepack_recipe": 1, "format": "ort", "precision": "int8_auto",
     "base": {format-specific settings of the whole model: method, per_channel, ...},
     "layers": [{"name", "op_type", "precision": "int8" | "int16" | "float", "sensitivity_db",
                 "with_input": true for a mover that followed the layers it reads}],
     "fallbacks": [names of the layers not in int8, most sensitive first],
     "fixes": [{"fix", "on_top_of", "score", "passed", "helped"}],
     "steps": [{"fallbacks", "label", "to": what the layers went to, "layers", "passed", "score", "values",
                "failures", "binding": [output, key] of the worst check, "size_bytes",
                "samples": how many samples judged it (1 for a clear miss on its first look)}],
     "search": {"fit_samples", "check_samples", "confirm_samples", "candidates", "seconds", "reused",
                "sensitivity", "met_headroom": false when no candidate met the search's thresholds and the
                recipe is the fewest fallbacks that met the gate's own, "fewest_within": [lo, hi] the
                bracket the bisection left (the fewest passing count lies in it; the recipe takes hi)},
     "budget": {output: {key: {"value", "source", "searched": the threshold the search held}}}}

A recipe given back (`--recipe FILE`, or `[formats.<fmt>] recipe = "FILE"`) is applied as it is,
with no search: with the same model, calibration data and tools the artifact is the same, byte
for byte. Only "format", "base" and "layers" matter for that; the rest is the record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

RECIPE_VERSION = 1
LAYER_PRECISIONS = ("int8", "int16", "float")
SUFFIX = ".recipe.json"


@dataclass
class Recipe:
    format: str
    base: dict[str, Any]
    layers: list[dict[str, Any]]  # graph order
    precision: str = "int8_auto"
    fixes: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)

    def precision_of(self) -> dict[str, str]:
        return {la["name"]: la["precision"] for la in self.layers}

    @property
    def fallbacks(self) -> list[str]:
        moved = [la for la in self.layers if la["precision"] != "int8"]
        # most sensitive first; the movers that followed their input (with_input) last
        moved.sort(key=lambda la: (bool(la.get("with_input")), la.get("sensitivity_db") is None, la.get("sensitivity_db") or 0.0))
        return [la["name"] for la in moved]

    def provenance(self) -> str:
        """How this recipe was found, for an artifact's route: "reused recipe FILE" or "searched
        over N candidates"."""
        if self.search.get("reused"):
            return "reused recipe " + self.search.get("from", "")
        return f"searched over {self.search.get('candidates')} candidates"

    def counts(self) -> dict[str, int]:
        return {p: sum(1 for la in self.layers if la["precision"] == p) for p in LAYER_PRECISIONS}

    def to_json(self) -> dict[str, Any]:
        return {
            "edgepack_recipe": RECIPE_VERSION,
            "format": self.format,
            "precision": self.precision,
            "base": self.base,
            "layers": self.layers,
            "fallbacks": self.fallbacks,
            "counts": self.counts(),
            "fixes": self.fixes,
            "steps": self.steps,
            "search": self.search,
            "budget": self.budget,
        }

    def applied_part(self) -> dict[str, Any]:
        """What decides the artifact's bytes (the cell cache keys a reused recipe by it)."""
        return {"format": self.format, "base": self.base, "layers": [(la["name"], la["precision"]) for la in self.layers]}

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n", encoding="utf-8")
        return path


def load_recipe(path: str | Path, fmt: str | None = None) -> Recipe:
    """A recipe file, checked; ConfigError naming the file and the fix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found; give the .recipe.json an int8_auto build wrote beside its artifact") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a JSON recipe ({exc.msg} at line {exc.lineno}); give the .recipe.json an int8_auto build wrote") from None
    if not isinstance(data, dict) or data.get("edgepack_recipe") != RECIPE_VERSION:
        raise ConfigError(f"{path}: not an edgepack recipe (no \"edgepack_recipe\": {RECIPE_VERSION}); give the .recipe.json an int8_auto build wrote")
    if not isinstance(data.get("format"), str) or not isinstance(data.get("base"), dict) or not isinstance(data.get("layers"), list):
        raise ConfigError(f"{path}: recipe lacks 'format', 'base' or 'layers'; rebuild it with an int8_auto build")
    if fmt is not None and data["format"] != fmt:
        raise ConfigError(f"{path}: this recipe is for format '{data['format']}', not '{fmt}'; give the {fmt} recipe of the build")
    layers = []
    for la in data["layers"]:
        if not (isinstance(la, dict) and isinstance(la.get("name"), str) and la.get("precision") in LAYER_PRECISIONS):
            raise ConfigError(f"{path}: a layer entry {str(la)[:80]} needs a 'name' and a 'precision' in {', '.join(LAYER_PRECISIONS)}")
        layers.append(dict(la))
    return Recipe(
        format=data["format"], base=dict(data["base"]), layers=layers, precision=str(data.get("precision", "int8_auto")),
        fixes=list(data.get("fixes") or []), steps=list(data.get("steps") or []), search=dict(data.get("search") or {}),
        budget=dict(data.get("budget") or {}),
    )


def recipe_digest(path: str | Path) -> str | None:
    """The digest of the part of a recipe file that decides the artifact (None when unreadable:
    the cell then fails with the loader's message)."""
    from ..cache.digest import settings_digest

    try:
        return settings_digest(load_recipe(path).applied_part())
    except ConfigError:
        return None


def check_layers(recipe: Recipe, known: list[str], where: str) -> None:
    """ConfigError when a recipe names layers this model does not have (another model's recipe)."""
    missing = [la["name"] for la in recipe.layers if la["name"] not in set(known)]
    if missing:
        raise ConfigError(
            f"{where}: the recipe names {len(missing)} layer(s) this model does not have (e.g. '{missing[0]}'); "
            "it was made for another model: drop the recipe to search again"
        )


def with_recipes(profiles: list, recipes) -> list:
    """The profiles with `[formats.<fmt>] recipe` set from `--recipe` files (each file names its
    format); ConfigError when a file is for a format that no target builds int8_auto in, or two
    files are for the same format."""
    import dataclasses

    by_format: dict[str, Path] = {}
    for r in recipes:
        rec = load_recipe(r)
        if rec.format in by_format:
            raise ConfigError(f"{r}: a second --recipe for format '{rec.format}' (the first is {by_format[rec.format]}); give one per format")
        by_format[rec.format] = Path(r).resolve()
    out, used = [], set()
    for p in profiles:
        specs = []
        for f in p.formats:
            if f.name in by_format and "int8_auto" in f.precisions:
                f = dataclasses.replace(f, options={**f.options, "recipe": str(by_format[f.name])})
                used.add(f.name)
            specs.append(f)
        out.append(dataclasses.replace(p, formats=tuple(specs)))
    for fmt, path in by_format.items():
        if fmt not in used:
            raise ConfigError(f"{path}: --recipe is for format '{fmt}', which no --target builds in int8_auto; add int8_auto to [formats.{fmt}] precisions or drop the recipe")
    return out
