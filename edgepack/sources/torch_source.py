"""PyTorch sources: a .pt2 ExportedProgram, or a Python entry point `module:function`.

Both become a torch.export ExportedProgram. A .pt2 archive is scanned before loading:
torch.export.load() unpickles tensor subclasses, custom objects and sample inputs (falling
back to weights_only=False), so edgepack refuses any pickled payload unless --allow-pickle.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, InputError, require
from ..inspect import Inspection, quantization_summary, register_inspector
from ..types import Sample, TensorSpec
from .base import Source, file_sha256, register_source

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
        out_vals = [a.meta.get("val") if hasattr(a, "meta") else None for a in out_node.args[0]]
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

    def exported_program(self) -> Any:
        return self.ep

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
                    self.ep,
                    self.example_args(),
                    dynamo=True,
                    input_names=[t.name for t in self.inputs],
                    output_names=[t.name for t in self.outputs],
                    external_data=False,
                    verbose=False,
                )
                prog.save(str(dest), external_data=False)
        except Exception as exc:  # the exporter raises many kinds
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConversionError(f"{self.spec}: torch.onnx.export (dynamo) failed: {first}") from exc
        return f"torch {torch.__version__} torch.onnx.export(dynamo=True)"


def _scan_pt2(path: Path) -> list[str]:
    """Name every pickled payload in a .pt2 archive (empty when the archive is pickle-free)."""
    torch = _torch()
    found = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        for n in names:
            base = n.split("/", 1)[-1]
            if base.endswith("_config.json") and ("/data/weights/" in f"/{base}" or "/data/constants/" in f"/{base}"):
                cfg = json.loads(z.read(n))
                for fqn, meta in (cfg.get("config") or {}).items():
                    pname = str(meta.get("path_name", ""))
                    if meta.get("use_pickle") or pname.startswith(("custom_obj", "opaque_obj")):
                        found.append(f"{fqn} ({pname})")
            elif re.match(r"^data/(weights|constants)/[^/]+\.pt$", base):
                found.append(base)
            elif re.match(r"^data/sample_inputs/[^/]+\.pt$", base):
                try:
                    torch.load(io.BytesIO(z.read(n)), weights_only=True)
                except Exception:
                    found.append(base)
    return found


@register_source
class Pt2Source(_TorchBase):
    description = "PyTorch .pt2 (torch.export.save)"

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.lower().endswith(".pt2")

    @classmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{path}: model file not found; check the path")
        torch = _torch()
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a .pt2 archive (not a zip file); save it with torch.export.save()")
        try:
            pickled = _scan_pt2(path)
        except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
            raise InputError(f"{path}: corrupt .pt2 archive ({exc}); save it again with torch.export.save()") from None
        if pickled and not allow_pickle:
            raise InputError(
                f"{path}: contains pickled data ({', '.join(pickled[:3])}), which can run code when loaded; "
                "pass --allow-pickle if you trust this file"
            )
        try:
            ep = torch.export.load(str(path))
        except Exception as exc:
            raise InputError(f"{path}: could not load the ExportedProgram ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); save it again with torch.export.save()") from exc
        return cls(spec, path.stem, ep, file_sha256(path))


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
        except ImportError as exc:
            raise InputError(f"{spec}: cannot import '{mod_name}' ({exc}); run from the folder that holds the package") from exc
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise InputError(f"{spec}: '{mod_name}' has no function '{fn_name}'")
        try:
            result = fn()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise InputError(f"{spec}: the entry point raised {type(exc).__name__}: {first}; fix it, then rerun (--debug shows where)") from exc
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
    from collections import Counter

    src = Pt2Source.load(str(path))
    ops = Counter(str(n.target).removeprefix("aten.") for n in src.ep.graph.nodes if n.op == "call_function")
    weights = Counter(str(t.dtype).replace("torch.", "") for t in src.ep.state_dict.values())
    hist = dict(ops.most_common())
    return Inspection(
        path=path,
        kind="PyTorch ExportedProgram (.pt2)",
        size_bytes=path.stat().st_size,
        inputs=src.inputs,
        outputs=src.outputs,
        op_histogram=hist,
        weight_dtypes=dict(weights),
        quantization=quantization_summary(dict(weights), hist),
        details={"parameters": int(sum(t.numel() for t in src.ep.state_dict.values()))},
    )
