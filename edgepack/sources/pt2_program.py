"""Vet the program JSON of a .pt2 archive (models/model.json) before torch's deserializer sees it.

torch's JSON deserializer is not inert: it passes every `expr_str` to `sympy.sympify` (an `eval`),
resolves a node target to any callable reachable from `torch.`, `operator` or `math` and puts it in
the graph, and `ExportedProgram.module()` `exec`s the `guards_code` strings; torch.fx pastes
parameter names, tree-spec keys and keyword names into the Python it generates. So every such
string is checked here, by pattern or by parsing it with `ast` (never evaluating it), and node
metadata edgepack does not need (stack traces, custom annotations) is dropped. Imports no torch.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from ..errors import InputError

RESAVE = "re-save it with torch.export.save() (torch >= 2.8)"
TRUST = "pass --allow-pickle only if you trust this file"
NAME = re.compile(r"^[A-Za-z0-9_.]*$")  # everything torch.fx may paste into generated Python
_SYM = re.compile(r"^[a-z]+[0-9]+$")  # shape symbols: s0, u3, ps12, zuf0 ...
_NUM = re.compile(r"^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$")
_CTRL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class Pt2Error(InputError):
    """A .pt2 problem; the message is one line naming the file (and member) and the fix."""


_OPERATOR = {"getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "neg", "pos", "eq", "ne", "lt", "le",
             "gt", "ge", "and_", "or_", "lshift", "rshift", "not_", "abs"}
_TORCH_SYM = {"sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_not", "sym_sqrt", "sym_sum", "_sym_sqrt"}
_MATH = {"trunc", "floor", "ceil", "sqrt", "isnan", "isinf", "isfinite", "exp", "log"}
_HOPS = {"cond", "while_loop", "map_impl", "scan", "associative_scan", "wrap_with_set_grad_enabled", "wrap_with_autocast",
         "auto_functionalized", "auto_functionalized_v2", "with_effects", "invoke_subgraph", "flex_attention"}
_TARGET = re.compile(r"^torch\.ops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?$")
_SYMPY_FUNCS = {
    "Symbol", "Integer", "Float", "Rational", "Mul", "Add", "Pow", "Mod", "Max", "Min", "Abs", "floor", "ceiling", "Eq", "Ne",
    "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "Equality", "Unequality", "And",
    "Or", "Not", "Piecewise", "ExprCondPair", "Tuple", "sqrt", "FloorDiv", "ModularIndexing", "Where", "PythonMod",
    "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
    "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "TrueDiv",
}
_SYMPY_CONSTS = {"oo", "zoo", "nan", "true", "false", "pi", "E", "True", "False", "None"}
_ASSUMPTIONS = {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "infinite", "zero",
                "nonzero", "rational", "even", "odd", "commutative", "extended_real", "precision", "evaluate"}
_ARITH = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
          ast.Load, ast.Tuple)
_SHAPE_ATTRS = {"size", "stride", "storage_offset", "dim", "numel"}


def target_allowed(target: str) -> bool:
    """Whether a node target string names an operator edgepack lets torch resolve (pattern only)."""
    mod, _, name = target.partition(".")
    if mod == "_operator":
        return name in _OPERATOR
    if mod == "math":
        return name in _MATH
    if target.startswith("torch.ops."):
        m = _TARGET.match(target)
        return bool(m) and (m[1] != "higher_order" or (m[2] in _HOPS and m[3] is None))
    return mod == "torch" and name in _TORCH_SYM


def _expr_ok(text: str) -> bool:
    """A sympy expression (srepr or plain) that sympify can only turn into arithmetic on symbols."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, _ARITH):
            continue
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_FUNCS):
                return False
        elif isinstance(node, ast.keyword):
            if node.arg not in _ASSUMPTIONS or not isinstance(node.value, ast.Constant):
                return False
        elif isinstance(node, ast.Name):
            if not (node.id in _SYMPY_FUNCS or node.id in _SYMPY_CONSTS or _SYM.match(node.id)):
                return False
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, str) and not (_SYM.match(v) or _NUM.match(v)):
                return False
            if not isinstance(v, (str, int, float, bool, type(None))):
                return False
        else:
            return False
    return True


def _guard_ok(text: str) -> bool:
    """A guard torch exec()s in ExportedProgram.module(): only comparisons of input sizes and numbers."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, _ARITH):
            continue
        if isinstance(node, ast.Call):
            f = node.func
            shape_call = isinstance(f, ast.Attribute) and f.attr in _SHAPE_ATTRS and isinstance(f.value, ast.Subscript)
            math_call = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "math" and f.attr in _MATH
            if node.keywords or not (shape_call or math_call or (isinstance(f, ast.Name) and f.id in _SYMPY_FUNCS)):
                return False
        elif isinstance(node, ast.Attribute):
            if not (node.attr in _SHAPE_ATTRS or node.attr in _MATH or node.attr == "inf"):
                return False
        elif isinstance(node, ast.Subscript):
            if not (isinstance(node.slice, ast.Constant) and type(node.slice.value) in (int, str)):
                return False
        elif isinstance(node, ast.Name):
            if node.id not in {"L", "math", "inf"} | _SYMPY_FUNCS | _SYMPY_CONSTS:
                return False
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, str) and not v.isidentifier():
                return False
            if not isinstance(v, (str, int, float, bool, type(None))):
                return False
        else:
            return False
    return True


_FLOAT_WORDS = {"Infinity", "-Infinity", "NaN"}  # json.dumps of float("inf"), float("-inf"), float("nan")
_KEEP_META = {"nn_module_stack", "source_fn_stack", "torch_fn"}  # node metadata exporters use; the rest is dropped
_FREE_TEXT = {"as_string", "as_strings", "torch_version"}  # torch.fx writes these with repr(), or never


def vet_program(path: Path, member: str, program: Any) -> None:
    """Refuse (or, for metadata edgepack does not need, drop) everything in the program JSON that torch
    would evaluate as code. Changes `program` in place."""

    def bad(why: str) -> Pt2Error:
        return Pt2Error(f"{path}: {member}: {why}, which torch would run as code; {RESAVE}, or {TRUST}")

    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise Pt2Error(f"{path}: corrupt .pt2 archive ({member} is not an exported program); {RESAVE}")
    for g in program.get("guards_code") or []:
        if not isinstance(g, str) or not _guard_ok(g):
            raise bad(f"guards_code {str(g)[:60]!r} is not a plain shape check")
    program["graph_module"]["metadata"] = {}  # only {"custom": json} lives here; nothing edgepack uses

    def walk(obj: Any, key: str | None) -> None:
        if isinstance(obj, dict):
            if "target" in obj and "inputs" in obj and isinstance(obj.get("metadata"), dict):  # a graph node
                obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k in _KEEP_META}
                for k, v in obj["metadata"].items():
                    if not isinstance(v, str) or _CTRL.search(v):
                        raise bad(f"node metadata {k!r} holds control characters")
            for k, v in obj.items():
                if not isinstance(k, str) or (key != "range_constraints" and not NAME.match(k)) or _CTRL.search(k):
                    raise bad(f"the key {str(k)[:60]!r} is not a plain name")
                if (k == "metadata" and isinstance(v, dict)) or (k == "guards_code" and key is None):
                    continue  # vetted above
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif isinstance(obj, str):
            if key in ("target", "as_operator"):
                if not target_allowed(obj):
                    raise bad(f"the node target {obj[:80]!r} is not an operator edgepack loads")
            elif key == "expr_str":
                if not _expr_ok(obj):
                    raise bad(f"the shape expression {obj[:80]!r} is not plain arithmetic")
            elif key in ("in_spec", "out_spec", "context"):
                try:
                    inner = json.loads(obj)
                except ValueError:
                    if key != "context" or not NAME.match(obj):
                        raise bad(f"the {key} {obj[:60]!r} is not a tree spec") from None
                    return
                walk(inner, None)
            elif key in ("as_float", "as_floats") and obj in _FLOAT_WORDS:
                return  # torch writes non-finite floats as these words (F.pad(..., value=-inf))
            elif key in _FREE_TEXT:
                if key != "as_string" and key != "as_strings" and _CTRL.search(obj):
                    raise bad(f"{key} holds control characters")
            elif not NAME.match(obj):
                raise bad(f"the name {obj[:60]!r} ({key}) is not a plain dotted identifier")

    walk(program, None)
