"""Runs INSIDE the emulated arm64 Python (qemu-aarch64): one artifact on saved feeds.

Usage: python run.py JOB_DIR. JOB_DIR/job.json says
  {"artifact": PATH, "runtime": "litert" | "onnxruntime", "inputs": [names], "outputs": [names] | null,
   "samples": N, "count": bool}
and JOB_DIR/in/<sample>_<input>.npy hold the raw feeds (the artifact's own dtypes and layout).
Writes JOB_DIR/out/<sample>_<output>.npy and JOB_DIR/result.json {"outputs": [names], "versions": {...},
"sample_cpu_s": [the emulator's CPU time of each sample's inference]}.
With "count", sample 0 runs once more inside the counted region: syscall(0x7151, 1) before the
inference and syscall(0x7151, 2) after (QEMU answers ENOSYS; the counting plugin sees the calls),
so start-up, loading and the first run's one-time work are not counted.
Single-threaded: LiteRT with XNNPACK (its default delegate), ONNX Runtime's CPU provider.
This file imports nothing from edgepack: only the standard library, numpy and the runtime.
"""
import ctypes
import json
import os
import sys
import time

import numpy as np

MARK = 0x7151


def _litert(path, input_names, output_names):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.AUTO)
    interp.allocate_tensors()
    sigs = interp._get_full_signature_list()  # {key: {"inputs": {name: index}, "outputs": {...}}}
    if sigs:
        sig = next(iter(sigs.values()))
        ins, outs = dict(sig["inputs"]), dict(sig["outputs"])
    else:
        ins = {d["name"]: d["index"] for d in interp.get_input_details()}
        outs = {d["name"]: d["index"] for d in interp.get_output_details()}
    names = list(output_names or outs)

    def run(feeds):
        for name, x in feeds.items():
            interp.set_tensor(ins[name], x)
        interp.invoke()
        return [np.array(interp.get_tensor(outs[n])) for n in names]

    from importlib.metadata import version

    return run, names, {"ai-edge-litert": version("ai-edge-litert")}


def _onnxruntime(path, input_names, output_names):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = list(output_names or [o.name for o in sess.get_outputs()])
    return (lambda feeds: sess.run(names, feeds)), names, {"onnxruntime": ort.__version__}


RUNTIMES = {"litert": _litert, "onnxruntime": _onnxruntime}


def main(job_dir):
    job = json.load(open(os.path.join(job_dir, "job.json")))
    run, names, versions = RUNTIMES[job["runtime"]](job["artifact"], job["inputs"], job["outputs"])
    os.makedirs(os.path.join(job_dir, "out"), exist_ok=True)
    feeds_of, cpu_s = [], []
    for s in range(job["samples"]):
        feeds = {n: np.load(os.path.join(job_dir, "in", f"{s}_{k}.npy")) for k, n in enumerate(job["inputs"])}
        feeds_of.append(feeds)
        t = time.process_time()
        outs = run(feeds)
        cpu_s.append(time.process_time() - t)
        for j, y in enumerate(outs):
            np.save(os.path.join(job_dir, "out", f"{s}_{j}.npy"), np.asarray(y))
    if job["count"] and feeds_of:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall(ctypes.c_long(MARK), ctypes.c_long(1))
        run(feeds_of[0])
        libc.syscall(ctypes.c_long(MARK), ctypes.c_long(2))
    versions["numpy"] = np.__version__
    with open(os.path.join(job_dir, "result.json"), "w") as f:
        json.dump({"outputs": names, "versions": versions, "sample_cpu_s": cpu_s}, f)


if __name__ == "__main__":
    main(sys.argv[1])
