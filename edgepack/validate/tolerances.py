"""Which threshold applies to one output of one cell, and where it came from.

Levels, least to most specific; for each key the most specific level that sets it wins:

1. edgepack's default for the precision: the format plug-in's own (`Format.tolerances`, e.g.
   tflite fp16 is weight-only) or else profiles.DEFAULT_TOLERANCES. A profile's
   `[tolerances.<precision>]` with any metric key replaces this level whole (as it always has).
2. `[tolerances.<precision>.<format>]`
3. `[tolerances.<precision>.outputs.<NAME>]`
4. `[tolerances.<precision>.<format>.outputs.<NAME>]`

Every resolved value carries its source: "defaults.fp16.tflite", "defaults.int8",
"tolerances.int8", "tolerances.int8.outputs.boxes", ... (report.json `checks[].source`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..profiles import TargetProfile


@dataclass(frozen=True)
class Threshold:
    value: float
    source: str


def format_defaults(precision: str, fmt: str | None) -> tuple[dict[str, float], str] | None:
    """The format plug-in's own default tolerances for `precision`, if it declares any."""
    if fmt is None:
        return None
    from ..formats.base import formats

    cls = formats().get(fmt)
    table = getattr(cls, "tolerances", {}).get(precision) if cls else None
    return (dict(table), f"defaults.{precision}.{fmt}") if table else None


def default_tolerances(profile: TargetProfile | None, precision: str, fmt: str | None = None) -> tuple[dict[str, float], str]:
    """Level 1 without the profile's table: (values, source)."""
    from ..profiles import DEFAULT_TOLERANCES

    own = format_defaults(precision, fmt)
    if own:
        return own
    if precision in DEFAULT_TOLERANCES:
        return dict(DEFAULT_TOLERANCES[precision]), f"defaults.{precision}"
    for spec in profile.formats if profile is not None and fmt is None else ():  # no format named: the profile's first that declares one
        if precision in spec.precisions:
            own = format_defaults(precision, spec.name)
            if own:
                return own
    return {}, f"defaults.{precision}"


def resolve(profile: TargetProfile, precision: str, fmt: str | None = None, output: str | None = None) -> dict[str, Threshold]:
    """Every tolerance key that applies to (`precision`, `fmt`, `output`), with its source."""
    base = profile.tolerances.get(precision)
    if base:
        out = {k: Threshold(v, f"tolerances.{precision}") for k, v in base.items()}
    else:
        values, source = default_tolerances(profile, precision, fmt)
        out = {k: Threshold(v, source) for k, v in values.items()}
    layers = []
    if fmt is not None:
        layers.append(f"{precision}.{fmt}")
    if output is not None:
        layers.append(f"{precision}.outputs.{output}")
        if fmt is not None:
            layers.append(f"{precision}.{fmt}.outputs.{output}")
    for key in layers:
        for k, v in profile.tolerance_overrides.get(key, {}).items():
            out[k] = Threshold(v, f"tolerances.{key}")
    return out


def values(resolved: dict[str, Threshold]) -> dict[str, float]:
    return {k: t.value for k, t in resolved.items()}


def named_outputs(profile: TargetProfile) -> dict[str, str]:
    """{output name: the profile key that names it}, for checking against the model."""
    names = {n: f"outputs.{n}" for n in profile.output_kinds}
    for key in profile.tolerance_overrides:
        _, _, rest = key.partition(".")
        if rest.startswith("outputs."):
            names.setdefault(rest.removeprefix("outputs."), f"tolerances.{key}")
        elif ".outputs." in rest:
            names.setdefault(rest.split(".outputs.", 1)[1], f"tolerances.{key}")
    return names


def check_output_names(profiles: Iterable[TargetProfile], outputs: Iterable[str], model: str) -> None:
    """ConfigError when a profile's [outputs.NAME] or [tolerances.*.outputs.NAME] names no output
    of the model (this is only known once the model is loaded)."""
    have = list(outputs)
    for p in profiles:
        for name, key in named_outputs(p).items():
            if name not in have:
                import difflib

                close = difflib.get_close_matches(name, have, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ConfigError(
                    f"{p.path or p.name}: key '{key}' names output '{name}', which {model} does not have; {hint}its outputs are: {', '.join(have)}"
                )
