"""PyTorch sources: a .pt2 ExportedProgram, or a Python entry point `module:function`.

Both become a torch.export ExportedProgram.

A .pt2 file is data: without --allow-pickle edgepack never hands it to a torch loader that may
unpickle or evaluate its contents; pt2_archive.py parses the zip against an allow-list, vets the
program JSON and builds the ExportedProgram from JSON and raw tensor bytes. --allow-pickle means
"I trust this file" and uses torch.export.load.

An entry point RUNS THE USER'S CODE: edgepack imports the module and calls the function, exactly
as `python -c "import module; module.function()"` would. It is the only source kind that runs
code from the user's files; use it only for code you trust.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, InputError, first_line, require
from ..inspect import Inspection, quantization_summary, register_inspector
from ..types import Sample, TensorSpec
from .base import Source, file_sha256, register_source
from .pt2_archive import build_exported_program, check_model_file, open_pt2, summary

_ENTRY = re.compile(r"^(?P<mod>[A-Za-z_][\w.]*|[^:]+\.py):(?P<fn>[A-Za-z_]\w*)$")


def _torch(purpose: str = "Reading a PyTorch model"):
    return require("torch", "torch", purpose)


def _spec_from_value(name: str, val: Any) -> TensorSpec:
    torch = _torch()
    shape = tuple(d if isinstance(d, int) else str(d) for d in val.shape)  # SymInt -> its symbol
    dtype = str(val.dtype).replace("torch.", "")
    if val.dtype == torch.bool:
        dtype = "bool"
    return TensorSpec(name, shape, dtype)


class _TorchBase(Source):
    kind = "pytorch"

    def __init__(self, spec: str, name: str, ep: Any, sha256: str):
        self.ep = ep
        self._module = None
        sig = ep.graph_signature
        placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        inputs = tuple(_spec_from_value(n, placeholders[n].meta["val"]) for n in sig.user_inputs)
        out_node = next(n for n in ep.graph.nodes if n.op == "output")
        user = [spec.kind.name == "USER_OUTPUT" for spec in sig.output_specs]  # not mutated buffers
        out_args = [a for a, u in zip(out_node.args[0], user, strict=True) if u]
        out_vals = [a.meta.get("val") if hasattr(a, "meta") else None for a in out_args]
        names = ["output"] if len(out_vals) == 1 else [f"output_{i}" for i in range(len(out_vals))]
        outputs = tuple(_spec_from_value(nm, v) for nm, v in zip(names, out_vals, strict=True))
        super().__init__(spec, name, inputs, outputs, sha256)

    def run(self, feeds: Sample) -> list[np.ndarray]:
        torch = _torch()
        if self._module is None:
            self._module = self.ep.module()
        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in self.inputs]
        with torch.no_grad():
            out = self._module(*args)
        flat = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().cpu().numpy() for o in flat]

    def exported_program(self, shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
        """The ExportedProgram; with static shapes fixed (with_static_shapes, or `shapes`), the
        program re-exported at those shapes, so that converters see no symbolic dimension."""
        fixed = {**self.static_shapes, **(shapes or {})}
        if not fixed:
            return self.ep
        key = tuple(sorted((k, tuple(v)) for k, v in fixed.items()))
        cache = self.__dict__.setdefault("_static_programs", {})
        if key not in cache:
            torch = _torch()
            args = tuple(torch.zeros(fixed.get(t.name, t.static_shape()), dtype=getattr(torch, t.dtype)) for t in self.inputs)
            try:
                cache[key] = torch.export.export(self.ep.module(), args)
            except Exception as exc:
                first = first_line(exc)
                raise ConversionError(f"{self.spec}: re-exporting at the static input shapes {dict(key)} failed ({first}); check --input-shape") from exc
        return cache[key]

    def _shapes_fixed(self) -> None:
        self.__dict__.pop("_static_programs", None)

    def example_args(self) -> tuple:
        torch = _torch()
        return tuple(torch.zeros(t.static_shape(), dtype=getattr(torch, t.dtype)) for t in self.inputs)

    def to_onnx(self, dest: Path) -> str:
        torch = _torch()
        require("onnxscript", "onnx", "Exporting PyTorch to ONNX")
        import logging
        import warnings

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                prog = torch.onnx.export(
                    self.exported_program(),
                    self.example_args(),
                    dynamo=True,
                    input_names=[t.name for t in self.inputs],
                    output_names=[t.name for t in self.outputs],
                    external_data=False,
                    verbose=False,
                )
                prog.save(str(dest), external_data=False)
        except Exception as exc:  # the exporter raises many kinds
            first = first_line(exc)
            raise ConversionError(f"{self.spec}: torch.onnx.export (dynamo) failed: {first}") from exc
        return f"torch {torch.__version__} torch.onnx.export(dynamo=True)"


@contextlib.contextmanager
def _quiet_torch_logs():
    """torch.export.load logs a traceback (logger "torch.export") for a malformed zip, and the serde
    warns about fallbacks; edgepack reports the failure in one line, so they stay quiet without --debug."""
    import logging

    cli = sys.modules.get("edgepack.cli")
    if getattr(cli, "_state", {}).get("debug"):
        yield
        return
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch.export.pt2_archive._package")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


@register_source
class Pt2Source(_TorchBase):
    description = "PyTorch .pt2 (torch.export.save)"

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.lower().endswith(".pt2")

    @classmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source:
        """Without allow_pickle no torch loader runs on the file: pt2_archive parses and vets it and builds
        the ExportedProgram from JSON and raw bytes. With allow_pickle, torch.export.load reads it (it may
        unpickle and run the file's code: for files the user trusts)."""
        path = Path(spec)
        check_model_file(path)
        torch = _torch()
        if allow_pickle:
            if not zipfile.is_zipfile(path):
                raise InputError(f"{path}: not a .pt2 archive (not a zip file); save it with torch.export.save()")
            loader = lambda: torch.export.load(str(path))  # noqa: E731
        else:
            arch = open_pt2(path)
            loader = lambda: build_exported_program(arch)  # noqa: E731
        try:
            with _quiet_torch_logs():
                ep = loader()
        except InputError:
            raise
        except (zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
            raise InputError(f"{path}: corrupt .pt2 archive ({first_line(exc)}); save it again with torch.export.save()") from None
        except Exception as exc:
            raise InputError(f"{path}: could not load the ExportedProgram ({first_line(exc)}); save it again with torch.export.save()") from exc
        return cls(spec, path.stem, ep, file_sha256(path))


def _raised(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}) instead of returning"
    text = str(exc).strip()
    return f"raised {type(exc).__name__}" + (f": {text.splitlines()[0]}" if text else "")


@register_source
class EntryPointSource(_TorchBase):
    description = "a Python entry point 'package.module:function' or 'file.py:function' returning (module, example_inputs)"

    @classmethod
    def claims(cls, spec: str) -> bool:
        return bool(_ENTRY.match(spec)) and not Path(spec).exists()

    @classmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source:
        torch = _torch()
        m = _ENTRY.match(spec)
        mod_name, fn_name = m["mod"], m["fn"]
        # This runs the user's code (module body, then the function): the only source kind that does.
        try:
            if mod_name.endswith(".py"):
                file = Path(mod_name)
                if not file.is_file():
                    raise InputError(f"{spec}: file {file} not found")
                loader_spec = importlib.util.spec_from_file_location(file.stem, file)
                module = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(module)
            else:
                if "" not in sys.path and str(Path.cwd()) not in sys.path:
                    sys.path.insert(0, str(Path.cwd()))
                module = importlib.import_module(mod_name)
        except InputError:
            raise
        except ModuleNotFoundError as exc:
            if exc.name and mod_name.split(".")[0] == exc.name.split(".")[0]:
                raise InputError(f"{spec}: cannot import '{mod_name}' ({exc}); run from the folder that holds the package") from exc
            raise InputError(f"{spec}: importing '{mod_name}' failed: {first_line(exc)}; install it or fix the import (--debug shows where)") from exc
        except (Exception, SystemExit) as exc:
            raise InputError(f"{spec}: importing '{mod_name}' {_raised(exc)}; fix it, then rerun (--debug shows where)") from exc
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise InputError(f"{spec}: '{mod_name}' has no function '{fn_name}'")
        try:
            result = fn()
        except (Exception, SystemExit) as exc:
            raise InputError(f"{spec}: the entry point {_raised(exc)}; fix it, then rerun (--debug shows where)") from exc
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
            raise InputError(f"{spec}: the entry point must return (torch.nn.Module, example_inputs); got {type(result).__name__}")
        module_obj, example = result
        example = tuple(example) if isinstance(example, (list, tuple)) else (example,)
        try:
            ep = torch.export.export(module_obj.eval(), example)
        except Exception as exc:
            raise ConversionError(f"{spec}: torch.export.export failed: {str(exc).strip().splitlines()[0]}") from exc
        src_file = Path(getattr(module, "__file__", "") or "")
        sha = file_sha256(src_file) if src_file.is_file() else ""
        return cls(spec, fn_name if fn_name not in ("entry_point", "main", "model") else mod_name.split(".")[-1].removesuffix(".py"), ep, sha)


@register_inspector(".pt2")
def inspect_pt2(path: Path) -> Inspection:
    """Read from the archive's JSON and weight configs alone: no torch import, nothing unpickled."""
    info = summary(open_pt2(path))
    hist, weights = info["ops"], info["weight_dtypes"]
    return Inspection(
        path=path,
        kind="PyTorch ExportedProgram (.pt2)",
        size_bytes=path.stat().st_size,
        inputs=tuple(TensorSpec(n, shape, dtype) for n, shape, dtype in info["inputs"]),
        outputs=tuple(TensorSpec(n, shape, dtype) for n, shape, dtype in info["outputs"]),
        op_histogram=hist,
        weight_dtypes=weights,
        quantization=quantization_summary(weights, hist),
        details={"parameters": info["parameters"]},
    )
