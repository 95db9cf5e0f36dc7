"""int8_auto for .ort: the search's Backend over ONNX Runtime's QDQ quantiser.

A layer is a quantised node, named by its ONNX node name, whose output is an activation. Its
options, next better first: int16 activations (its output tensor as com.microsoft QDQ int16, the
weights stay int8), then float (the node is not quantised, nor its output: its consumers keep it
float too; their weights stay int8 all the same, weight-only: an int8 initializer and a
DequantizeLinear feeding the float op, which the .ort keeps, so a float layer does not bring its
fp32 weights back; the search's last resort gives them int16 weights (base "float_weights": "int16",
half of fp32's bytes), then fp32 ones ("float")). Cheap fixes: per-channel weights (when the profile has them off), percentile
ranges for the outputs of the most sensitive layers instead of their min/max, and a range margin (every calibrated range widened by 10% of its width
on both sides: held-out samples past the calibration's extremes then do not clip). Every
candidate is calibrated from one calibration cache per method and run in ONNX Runtime with the
session options of the .ort it would become.
"""
from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...quantize_search.search import LastSession, split_calibration, standard_fixes
from ...quantize_search.sensitivity import CAP_DB, added_db, default_axis, own_rounding_db
from .quantize import calibrate_minmax, merge_minmax, prepare_for_int8, quantised_op_types, quantize_prepared, weight_quant_params
from .quantiser_speed import QuantiserMemo

# Node types ONNX Runtime's QDQ quantiser quantises (its registry), read at first use.
_FUSED_ACTIVATIONS = {"Relu", "Clip"}
_SKIP_OUTPUT_TYPES = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "TopK"}
# node types that only move or select values: between float layers, an int8 one adds a rounding and saves nothing
_MOVERS = {
    "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Pad", "Concat", "Slice", "Split", "Gather",
    "MaxPool", "DepthToSpace", "SpaceToDepth", "Expand", "Tile", "Resize",
}


class OrtBackend:
    fallback_options = ("int16", "float")

    def __init__(self, fp32: Path, work: Path, quant, input_names: dict[str, str], track, level: str, platform: str):
        self.work = work
        self.quant = quant
        self.input_names = input_names
        self.track = track
        self.level, self.platform = level, platform
        self._prepared: dict[bool, tuple[Path, list[str]]] = {}
        self.fp32 = fp32
        self._n = 0
        self._last = LastSession()  # the search runs a candidate in two goes
        self._tmp = Path(tempfile.mkdtemp(prefix="int8_auto.", dir=work))
        self._layers: list[dict[str, Any]] | None = None
        self._consumers: dict[str, list[str]] = {}
        self._made_from: dict[Path, bool] = {}
        self._weights: dict[bool, dict[str, list[dict]]] = {}  # per_channel -> weight_quant_params
        self._memo = QuantiserMemo()  # the quantised weights and the shape-inferred model, reused by every candidate
        self._at21: dict[Path, Path] = {}  # prepared model -> the same at opset 21 (int16 candidates)
        self._clips: dict[tuple, dict[str, tuple[float, float]]] = {}  # clip_ranges, per sample set

    # -- the model -------------------------------------------------------------------------
    def prepared(self, per_channel: bool) -> tuple[Path, list[str]]:
        if per_channel not in self._prepared:
            dest = self.work / f"{self.fp32.stem.removesuffix('.fp32')}.int8_auto{'' if per_channel else '.pt'}.onnx"
            self._prepared[per_channel] = prepare_for_int8(self.fp32, dest, per_channel=per_channel)
        return self._prepared[per_channel]

    def at_int16_opset(self, pre: Path) -> Path:
        """`pre` at opset 21. ONNX Runtime's quantiser converts a model below opset 21 whenever a
        tensor is int16 (update_opset_version; even with its com.microsoft Q/DQ), once per
        quantisation, a second of each MiniLM candidate: converted here once. Where the converter
        fails, `pre` itself (the quantiser then fails the same way)."""
        if pre not in self._at21:
            import onnx
            from onnx import version_converter

            from .quantize import default_opset

            model = onnx.load(str(pre))
            self._at21[pre] = pre
            if default_opset(model) < INT16_OPSET:
                try:
                    newer = version_converter.convert_version(model, INT16_OPSET)
                except Exception:  # noqa: BLE001 - the quantiser's own conversion reports it
                    return pre
                dest = pre.with_name(pre.stem + f".opset{INT16_OPSET}.onnx")
                onnx.save(newer, str(dest))
                self._at21[pre] = dest
        return self._at21[pre]

    def layers(self) -> list[dict[str, Any]]:
        if self._layers is None:
            import onnx
            from onnx import helper

            model = onnx.load(str(self.prepared(self.quant.per_channel)[0]))
            quantisable = quantised_op_types()
            inits = {t.name for t in model.graph.initializer}
            nodes = list(model.graph.node)
            for i, node in enumerate(nodes):
                for t in node.input:
                    self._consumers.setdefault(t, []).append(node.name or f"node{i}")
            by_name = {(n.name or f"node{i}"): n for i, n in enumerate(nodes)}
            out, absorbed = [], set()
            for inp in model.graph.input:  # an input's own rounding (its consumers quantise it) is a layer too
                if inp.name not in inits and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and self._consumers.get(inp.name):
                    out.append({"name": inp.name, "op_type": "input", "tensor": inp.name, "members": []})
            for i, node in enumerate(nodes):
                name = node.name or f"node{i}"
                if name in absorbed or node.op_type not in quantisable or node.op_type in _SKIP_OUTPUT_TYPES or not node.output or node.output[0] in inits:
                    continue
                la = {"name": name, "op_type": node.op_type, "tensor": node.output[0], "members": [name]}
                # an activation that alone consumes the output is fused into the layer (the quantiser
                # drops it and quantises its output): the layer's tensor is the activation's output
                users = self._consumers.get(node.output[0], [])
                if len(users) == 1 and by_name[users[0]].op_type in _FUSED_ACTIVATIONS:
                    act = by_name[users[0]]
                    la.update(op_type=f"{node.op_type}+{act.op_type}", tensor=act.output[0], members=[name, users[0]])
                    absorbed.add(users[0])
                out.append(la)
            made_by = {la["tensor"]: la["name"] for la in out}
            for la in out:  # what a mover reads: its data input (a Pad's/Resize's other inputs are sizes)
                node = by_name.get(la["name"])
                mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"nearest") if node is not None else None
                if node is None or node.op_type not in _MOVERS or (node.op_type == "Resize" and mode != b"nearest"):
                    continue
                ins = [t for t in node.input if t and t not in inits] if node.op_type == "Concat" else [node.input[0]]
                if ins and all(t in made_by for t in ins):
                    la["reads"] = list(dict.fromkeys(made_by[t] for t in ins))
            self._layers = out
        return [{"name": la["name"], "op_type": la["op_type"]} for la in self._layers]

    def movers(self) -> dict[str, list[str]]:
        """{layer: [the layers whose outputs it reads]} for the layers of _MOVERS nodes."""
        self.layers()
        return {la["name"]: la["reads"] for la in self._layers if la.get("reads")}

    def base(self) -> dict[str, Any]:
        q = self.quant
        return {"method": q.method, "per_channel": q.per_channel, "percentile": q.percentile, "range_margin": 0.0, "float_weights": "int8"}

    def fixes(self, base: dict[str, Any], sensitive: Callable[[], tuple[str, ...]] = tuple) -> list[tuple[str, dict[str, Any]]]:
        """Per-channel weights, then a percentile range on the CLIP_LAYERS most sensitive layers'
        outputs (not the whole model's: ONNX Runtime's histogram calibration took 53 s on the
        layout net, four times a min/max one; edgepack's exact percentiles of a few tensors cost one
        float run), then the range margin."""
        out = standard_fixes(base, percentile=False)
        ranked = sensitive() if base.get("method") == "minmax" and not base.get("clip_tensors") else ()
        if ranked:
            self.layers()
            by_name = {la["name"]: la for la in self._layers}
            inner = [n for n in ranked if n in by_name and by_name[n]["op_type"] != "input"]  # an input is the user's data
            tensors = list(dict.fromkeys(by_name[n]["tensor"] for n in inner[:CLIP_LAYERS]))
            fix = (f"percentile range ({CLIP_PERCENTILE:g}) on the {len(tensors)} most sensitive layers",
                   {**base, "clip_tensors": tensors, "clip_percentile": CLIP_PERCENTILE})
            out.insert(1 if not base["per_channel"] else 0, fix)
        return out

    def clip_ranges(self, base: dict[str, Any], samples: list) -> dict[str, tuple[float, float]]:
        """{tensor: (lo, hi)} of base["clip_tensors"]: the clip_percentile-th percentiles (low and
        high) of each tensor's values over `samples`, from the float model's run."""
        tensors, p = tuple(base.get("clip_tensors") or ()), float(base.get("clip_percentile", CLIP_PERCENTILE))
        if not tensors:
            return {}
        key = (tensors, p, bool(base["per_channel"]), tuple(map(id, samples)))
        if key not in self._clips:
            pre = self.prepared(bool(base["per_channel"]))[0]
            sess = self.session(pre, list(tensors))
            names = [o.name for o in sess.get_outputs()]
            got: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
            for smp in samples:
                outs = dict(zip(names, sess.run(None, {self.input_names[k]: v for k, v in smp.items()})))
                for t in tensors:
                    got[t].append(np.asarray(outs[t], np.float32).ravel())
            ranges = {}
            for t, parts in got.items():
                x = np.concatenate(parts)
                lo, hi = np.percentile(x, [100 - p, p])
                ranges[t] = (float(min(lo, 0.0)), float(max(hi, 0.0)))
            self._clips[key] = ranges
        return self._clips[key]

    def last_resort(self, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """When no count of float layers meets the budget with their weights int8 (a weight that
        int8 itself ruins, e.g. one input channel read with tiny weights): int16 weights (half of
        fp32's bytes; a com.microsoft DequantizeLinear, which the .ort keeps unfolded), then fp32."""
        wider = ("int8", "int16", "float")  # a float layer's weights, narrowest first
        later = wider[wider.index(base.get("float_weights", "int8")) + 1:]
        return [(f"float layers keep {'fp32' if w == 'float' else w} weights", {**base, "float_weights": w}) for w in later]

    # -- candidates ------------------------------------------------------------------------
    def ranges_path(self, base: dict[str, Any], samples: list) -> Path:
        """The calibration cache of `base`'s method over `samples` (these very sample objects: the
        search's fit part, the final's parts)."""
        key = hashlib.sha1(repr([id(s) for s in samples]).encode()).hexdigest()[:12]
        return self._tmp / f"ranges.{base['method']}.{base['percentile']}.{base['per_channel']}.{len(samples)}.{key}.json"

    def final(self, base: dict[str, Any], precisions: dict[str, str], samples: list, dest: Path) -> Path:
        """The artifact: `base` and `precisions` quantised over every calibration sample. With
        min/max ranges, those over all the samples are the merge of the search's fit part's (made
        by the search, or here when a recipe is reused) and the check part's (merge_minmax: the same
        values), so only the check part is calibrated again (layout: 4 of 12 samples; below 3
        samples both parts are all of them, the search's cache); other methods calibrate over all."""
        if base["method"] != "minmax":
            return self.quantise(base, precisions, samples, dest, cache=False)
        pre = self.prepared(bool(base["per_channel"]))[0]
        parts = []
        for part in split_calibration(samples):
            path = self.ranges_path(base, part)
            if not path.is_file():
                calibrate_minmax(pre, part, self.input_names, path)
            parts.append(path)
        merged = merge_minmax(parts, self._tmp / f"ranges.minmax.{base['per_channel']}.all.{len(samples)}.json")
        return self.quantise(base, precisions, samples, dest, ranges=merged)

    def quantise(self, base: dict[str, Any], precisions: dict[str, str], samples: list, dest: Path, cache: bool = True,
                 reuse_weights: bool = True, ranges: Path | None = None) -> Path:
        """`base` and `precisions` quantised over `samples` into `dest`. `reuse_weights`: the weight
        scales and zero points of the first candidate with the same per-channel setting go to the
        quantiser (weight_quant_params: they depend on the weights alone; the same bytes).
        `ranges`: a calibration cache of `samples` to take instead of calibrating (`cache`: keep
        the one made here for the next candidate over the same samples)."""
        self.layers()
        pre, _ = self.prepared(bool(base["per_channel"]))
        by_name = {la["name"]: la for la in self._layers}
        exclude, int16, floats = [], [], []
        for name, p in precisions.items():
            la = by_name.get(name)
            if la is None or p == "int8":
                continue
            if p == "int16":
                int16.append(la["tensor"])
            else:  # float: the layer and the consumers of its output stay float
                exclude += [*la["members"], *self._consumers.get(la["tensor"], [])]
                floats += la["members"]
        quant = dataclasses.replace(self.quant, method=base["method"], per_channel=bool(base["per_channel"]), percentile=float(base["percentile"]))
        calib = ranges or (self.ranges_path(base, samples) if cache else None)
        clips = self.clip_ranges(base, samples)
        if int16:
            pre = self.at_int16_opset(pre)
        quantize_prepared(
            pre, dest, samples=samples, quant=quant, input_names=self.input_names, track=lambda it, n, label: it,
            exclude=tuple(dict.fromkeys(exclude)), int16_tensors=tuple(int16), calibration_cache=calib,
            range_margin=float(base.get("range_margin", 0.0)),
            weight_params=self._weights.get(bool(base["per_channel"])) if reuse_weights else None,
            weight_memo=self._memo if reuse_weights else None, range_overrides=clips or None,
        )
        bits = WEIGHT_ONLY_BITS.get(base.get("float_weights", "int8"))
        if exclude and bits:
            weight_only(dest, set(exclude), per_channel=bool(base["per_channel"]), bits=bits)
        return dest

    def build(self, base, precisions, samples) -> Path:
        self._n += 1
        per_channel = bool(base["per_channel"])
        path = self.quantise(base, precisions, samples, self._tmp / f"cand{self._n}.onnx")
        if per_channel not in self._weights:
            self._weights[per_channel] = weight_quant_params(self.prepared(per_channel)[0], path)
        self._made_from[path] = per_channel
        return path

    def _per_channel_of(self, candidate: Path) -> bool:
        return self._made_from.get(candidate, self.quant.per_channel)

    def _prepared_path_of(self, candidate: Path) -> Path:
        return self.prepared(self._per_channel_of(candidate))[0]

    def session(self, path: Path, extra_outputs: list[str] = ()):
        import onnx
        import onnxruntime as ort

        model = str(path)  # the file itself, unless outputs are added
        if extra_outputs:
            model = onnx.load(str(path))
            have = {o.name for o in model.graph.output}
            for t in extra_outputs:
                if t not in have:
                    model.graph.output.append(onnx.ValueInfoProto(name=t))
            model = model.SerializeToString()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if self.level == "all" else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if extra_outputs:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Q/DQ tensor visible
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.add_session_config_entry("session.qdqisint8allowed", "1" if self.platform == "arm" else "0")
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    def run(self, candidate: Path, samples: list) -> list[list[np.ndarray]]:
        sess = self._last.of(candidate, self.session)
        names = [o.name for o in sess.get_outputs()]
        feeds = [{self.input_names[k]: v for k, v in s.items()} for s in samples]
        return [sess.run(names, f) for f in feeds]

    def size(self, candidate: Path) -> int:
        return Path(candidate).stat().st_size

    def layer_errors(self, candidate: Path, samples: list) -> dict[str, float] | None:
        """Each layer's own error, as the SQNR (dB) of the noise it adds: its output's worst-channel
        noise (against the float model's same tensor) less its inputs' worst, so weight rounding
        and output rounding both count, and what came before does not."""
        import onnx

        model = onnx.load(str(candidate))
        q_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
        dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
        outputs = {o.name for o in model.graph.output}

        def quantised(t: str) -> str | None:
            dq = dq_of.get(q_of.get(t, ""))
            return dq or (t if t in outputs else None)

        pre = onnx.load(str(self.prepared(True if candidate is None else self._per_channel_of(candidate))[0]))
        inits = {t.name for t in pre.graph.initializer}
        node_inputs = {(n.name or n.output[0]): [x for x in n.input if x and x not in inits] for n in pre.graph.node}
        plan = {}
        for la in self._layers:
            out_q = quantised(la["tensor"])
            ins = [(x, quantised(x) or x) for x in node_inputs.get(la["members"][0], [])] if la["members"] else [(la["tensor"], la["tensor"])]
            pre_q = la["tensor"] if la["tensor"] in q_of else la["tensor"] + "_QuantizeLinear_Input"
            if out_q and ins:
                plan[la["name"]] = ((la["tensor"], out_q), ins, pre_q if pre_q in q_of else None)
        if not plan:
            return None
        ref_names = sorted({n for (t, _), ins, _p in plan.values() for n in [t, *(x for x, _ in ins)]})
        art_names = sorted({n for (_, q), ins, p in plan.values() for n in [q, *(y for _, y in ins), *([p] if p else [])]})
        fs = self.session(self._prepared_path_of(candidate), ref_names)
        qs = self.session(candidate, art_names)
        acc: dict[str, list[float]] = {}
        fetched = 0
        for i, smp in enumerate(samples):
            if i >= MAP_MIN_SAMPLES and fetched >= MAP_MAX_VALUES:
                break  # a big net: every tensor of a sample is gigabytes, and fetching them costs most of the map
            feed = {self.input_names[k]: v for k, v in smp.items()}
            ref = dict(zip([o.name for o in fs.get_outputs()], fs.run(None, feed)))
            art = dict(zip([o.name for o in qs.get_outputs()], qs.run(None, feed)))
            fetched += sum(x.size for x in ref.values()) + sum(x.size for x in art.values())
            for layer, ((t, tq), ins, pre_q) in plan.items():
                axis = default_axis(ref[t].shape)
                # its own output rounding, in the same run (blind to what came before) ...
                q = art[tq]
                own = own_rounding_db(art[pre_q], q, axis) if pre_q else CAP_DB
                # ... and, while its inputs are still sound, all it adds (weights too)
                added = added_db(ref[t], q, axis, [(ref[x], art[y]) for x, y in ins])
                acc.setdefault(layer, []).append(min(own, added))
        return {k: float(min(v)) for k, v in acc.items()}


# The error map fetches every tensor of both models per sample (layout: 490 M values, 2 GB a
# sample, most of its run being their copies); once MAP_MAX_VALUES are fetched it stops, after
# MAP_MIN_SAMPLES samples. On layout one sample gave the same recipe as three (207 fallbacks, the
# same size and held-out cosine), the map 6 s instead of 17 and the build's peak memory 2.8 GB
# instead of 5; smaller nets still take up to MAP_SAMPLES.
MAP_MIN_SAMPLES = 1
MAP_MAX_VALUES = 400_000_000
CLIP_LAYERS = 8  # the percentile fix clips the outputs of this many of the most sensitive layers
CLIP_PERCENTILE = 99.99
INT16_OPSET = 21  # the opset from which ONNX Runtime's quantiser takes 16-bit types as native

# op type -> (weight input, output-channel axis of that weight; None: per-tensor)
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1, "Gemm": None}


WEIGHT_ONLY_BITS = {"int8": 8, "int16": 16}  # base "float_weights" -> the bits of a float layer's weights


def weight_only(path: Path, nodes: set[str], per_channel: bool, bits: int = 8) -> int:
    """Rewrite `path` so that the float weights of `nodes` (the ones the quantiser excluded) are
    int8 (or int16: `bits`) with a DequantizeLinear before the float op: symmetric, per output
    channel when `per_channel` and the opset allows (13+), else per tensor. int16 weights use
    com.microsoft's DequantizeLinear (ONNX's takes int16 from opset 21 only), as the quantiser's
    int16 activations do. A weight shared with a node outside `nodes` is left alone. Returns how
    many weights were rewritten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .quantize import PER_CHANNEL_MIN_OPSET, default_opset

    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    users: dict[str, set[str]] = {}
    for i, n in enumerate(g.node):
        for t in n.input:
            users.setdefault(t, set()).add(n.name or f"node{i}")
    channel_ok = per_channel and default_opset(model) >= PER_CHANNEL_MIN_OPSET
    added, done = [], {}
    for i, n in enumerate(g.node):
        name = n.name or f"node{i}"
        if name not in nodes or n.op_type not in _WEIGHT_AXIS or len(n.input) < 2:
            continue
        w_name = n.input[1]
        t = inits.get(w_name)
        if w_name not in done and (t is None or t.data_type != TensorProto.FLOAT or len(t.dims) < 2 or not users[w_name] <= nodes):
            continue
        if w_name not in done:
            w = numpy_helper.to_array(t).astype(np.float64)
            axis = _WEIGHT_AXIS[n.op_type]
            if n.op_type == "Gemm":
                axis = 0 if any(a.name == "transB" and a.i for a in n.attribute) else 1
            if n.op_type == "MatMul" and w.ndim != 2:
                axis = None
            if not channel_ok:
                axis = None
            amax = np.abs(w).max() if axis is None else np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(axis=1)
            top, dtype = (127, np.int8) if bits == 8 else (32767, np.int16)
            scale = np.where(amax > 0, amax / top, 1.0).astype(np.float32)
            shape = [1] * w.ndim
            if axis is not None:
                shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape)), -top, top).astype(dtype)
            base = f"{w_name}_weight_only"
            g.initializer.extend([
                numpy_helper.from_array(q, base + "_quantized"),
                numpy_helper.from_array(scale if axis is not None else np.float32(scale), base + "_scale"),
                numpy_helper.from_array(np.zeros(scale.shape, dtype) if axis is not None else dtype(0), base + "_zero_point"),
            ])
            attrs = {"axis": axis} if axis is not None else {}
            if bits == 16:
                attrs["domain"] = "com.microsoft"
            added.append(helper.make_node("DequantizeLinear", [base + "_quantized", base + "_scale", base + "_zero_point"], [base], name=base + "_DequantizeLinear", **attrs))
            g.initializer.remove(t)
            done[w_name] = base
        n.input[1] = done[w_name]
    if added:
        if bits == 16 and not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        nodes_now = [*added, *g.node]
        del g.node[:]
        g.node.extend(nodes_now)
        onnx.save(model, str(path))
    return len(added)
