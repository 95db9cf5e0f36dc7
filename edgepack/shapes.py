"""Static input shapes for models whose inputs have symbolic or unknown dimensions.

Real exports almost always have them (`batch`, `height`, `width`, `?`, `DynamicDimension.0`).
Converters for phones want fixed shapes, so each input takes its static shape from, in order:
`--input-shape NAME=1,3,320,320`, the profiles' `input_shapes` key, or the calibration data, whose
samples must then all agree.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import ConfigError, InputError
from .types import TensorSpec

Shape = tuple[int, ...]


def is_static(spec: TensorSpec) -> bool:
    return all(isinstance(d, int) and d > 0 for d in spec.shape)


def parse_input_shapes(items: Iterable[str], where: str = "--input-shape") -> dict[str, Shape]:
    """`NAME=1,3,320,320` items (repeatable) as {name: shape}."""
    out: dict[str, Shape] = {}
    for item in items:
        name, sep, dims = str(item).partition("=")
        name = name.strip()
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip() != "")
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"{where} {item!r}: write NAME=D0,D1,... with positive sizes, e.g. {where} images=1,3,320,320")
        if name in out and out[name] != shape:
            raise ConfigError(f"{where} gives input '{name}' twice with different shapes")
        out[name] = shape
    return out


def profile_input_shapes(profiles) -> dict[str, Shape]:
    """The profiles' `input_shapes`: one build has one source, so all profiles that set it must agree."""
    chosen: dict[str, tuple[Shape, str]] = {}
    for p in profiles:
        for name, shape in (getattr(p, "input_shapes", None) or {}).items():
            shape = tuple(shape)
            if name in chosen and chosen[name][0] != shape:
                raise ConfigError(
                    f"targets {chosen[name][1]!r} and {p.name!r} ask for different input_shapes for '{name}' "
                    f"({list(chosen[name][0])} and {list(shape)}); build them in separate runs"
                )
            chosen[name] = (shape, p.name)
    return {n: s for n, (s, _) in chosen.items()}


def resolve_input_shapes(
    inputs: tuple[TensorSpec, ...],
    samples: list[Mapping[str, object]],
    origins: list[str],
    overrides: Mapping[str, Shape] | None = None,
    where: str = "",
) -> dict[str, Shape]:
    """A static shape for every input that is not static already (and for every overridden one).

    An override must fit the declared static dims; calibration samples must all have the same shape
    (an override must match them too). Returns {} for a model whose inputs are all static and
    that nothing overrides."""
    overrides = dict(overrides or {})
    names = [t.name for t in inputs]
    unknown = [n for n in overrides if n not in names]
    if unknown:
        raise ConfigError(f"--input-shape names '{unknown[0]}', which is not an input of {where or 'the model'}; its inputs are: {', '.join(names)}")
    out: dict[str, Shape] = {}
    for spec in inputs:
        if is_static(spec) and spec.name not in overrides:
            continue
        seen: dict[Shape, str] = {}
        for sample, origin in zip(samples, origins):
            arr = sample.get(spec.name)
            if arr is not None:
                seen.setdefault(tuple(int(d) for d in arr.shape), origin)
        if spec.name in overrides:
            shape = overrides[spec.name]
            _fits(spec, shape, "--input-shape", where)
            wrong = [(s, o) for s, o in seen.items() if s != shape]
            if wrong:
                s, o = wrong[0]
                raise InputError(f"{o}: input '{spec.name}' has shape {s}, but --input-shape asks for {shape}; make the calibration data that shape")
            out[spec.name] = shape
            continue
        if len(seen) > 1:
            (s1, o1), (s2, o2) = list(seen.items())[:2]
            raise InputError(
                f"{o2}: input '{spec.name}' has shape {s2}, but {o1} has {s1}; the model's input is dynamic "
                f"{_shown(spec)}, and edgepack builds one static shape: make every sample the same shape, "
                f"or give --input-shape {spec.name}=..."
            )
        if not seen:
            raise InputError(f"{where}: input '{spec.name}' is dynamic {_shown(spec)} and no calibration sample shows its size; give --input-shape {spec.name}=...")
        shape = next(iter(seen))
        _fits(spec, shape, "the calibration data", where)
        out[spec.name] = shape
    return out


def _shown(spec: TensorSpec) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in spec.shape) + ")"


def _fits(spec: TensorSpec, shape: Shape, by: str, where: str) -> None:
    ok = len(shape) == len(spec.shape) and all(not (isinstance(d, int) and d > 0) or d == s for d, s in zip(spec.shape, shape))
    if not ok:
        raise ConfigError(f"{by} gives input '{spec.name}' the shape {list(shape)}, which does not fit {_shown(spec)} of {where or 'the model'}")


def static_specs(inputs: tuple[TensorSpec, ...], shapes: Mapping[str, Shape]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(t.name, tuple(shapes[t.name]), t.dtype) if t.name in shapes else t for t in inputs)
