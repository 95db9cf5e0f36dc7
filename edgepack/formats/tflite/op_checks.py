"""Op checks: ops that LiteRT's built-in kernels cannot run become one-line errors naming the op.

Three places catch them:
- litert-torch has no lowering for a PyTorch op ("Lowering not found: aten.cumprod.default").
  These are the ops that TensorFlow's converter would hand to TensorFlow Select (Flex) kernels;
  litert-torch never emits Flex ops, so `allow_flex` cannot rescue them on this route.
- a converted flatbuffer holds Flex ops (CUSTOM ops named Flex*): refused unless the profile
  sets `allow_flex = true` (the app must then link the Flex delegate).
- the LiteRT interpreter cannot resolve an op (an unregistered custom op, or a StableHLO op
  without a kernel).
"""
from __future__ import annotations

import re

from ...errors import ConversionError, UnsupportedOpError
from .flatbuf import Graph

_LOWERING = re.compile(r"Lowering not found: (?P<op>[\w.]+)")
_UNRESOLVED = (
    re.compile(r"Encountered unresolved custom op: (?P<op>[\w.:/-]+)"),
    re.compile(r"Didn't find op for builtin opcode '(?P<op>[\w.]+)'"),
    re.compile(r"Node number \d+ \((?P<op>Flex\w+)\) failed to prepare"),
)


def _aten_name(raw: str) -> str:
    parts = raw.split(".")
    if parts[0] == "aten" and len(parts) >= 2:
        return f"aten.{parts[1]}"  # drop the overload (.default, .dim, ...)
    return raw


def flex_ops(graph: Graph) -> list[str]:
    """TensorFlow ops that the model runs through Flex (CUSTOM:FlexCumprod -> Cumprod)."""
    return sorted({o.name.removeprefix("CUSTOM:Flex") for o in graph.ops if o.name.startswith("CUSTOM:Flex")})


def check_flex(graph: Graph, *, allow_flex: bool, where: str) -> None:
    ops = flex_ops(graph)
    if ops and not allow_flex:
        more = f" (and {len(ops) - 1} more: {', '.join(ops[1:])})" if len(ops) > 1 else ""
        raise UnsupportedOpError(
            ops[0],
            "tflite",
            f"{where}: op '{ops[0]}'{more} needs TensorFlow Select (Flex) kernels, which LiteRT's built-in runtime lacks; "
            "replace the op in the model, or set allow_flex = true under [formats.tflite] and link the Flex delegate in the app",
        )


def from_lowering_error(exc: BaseException, where: str, converter: str) -> ConversionError | None:
    """An UnsupportedOpError for litert-torch's "Lowering not found", else None."""
    m = _LOWERING.search(str(exc))
    if m is None:
        return None
    op = _aten_name(m["op"])
    return UnsupportedOpError(
        op,
        "tflite",
        f"{where}: op '{op}' has no LiteRT built-in kernel ({converter} has no lowering for it; "
        "TensorFlow would need Select/Flex ops); rewrite it with supported ops or drop tflite from the target",
    )


def from_runtime_error(exc: BaseException, where: str) -> ConversionError | None:
    """An UnsupportedOpError for an op the interpreter cannot resolve, else None."""
    text = str(exc)
    for pat in _UNRESOLVED:
        m = pat.search(text)
        if m is not None:
            op = m["op"].rstrip(".")
            hint = (
                "it needs TensorFlow Select (Flex) kernels, which this host runtime lacks; on Android link "
                "org.tensorflow:tensorflow-lite-select-tf-ops"
                if op.startswith("Flex")
                else "LiteRT's built-in runtime has no kernel for it"
            )
            return UnsupportedOpError(op, "tflite", f"{where}: op '{op}' cannot run: {hint}")
    return None
