"""A format plug-in for tests of converter isolation: it crashes, hangs, raises or builds, as told.

It is never registered (the registry stays as shipped); the worker imports it by module and name,
as it does every format."""
from __future__ import annotations

import os
import signal
import time

from edgepack.errors import ConversionError
from edgepack.formats.base import Format, Option
from edgepack.types import Artifact


class Crashy(Format):
    name = "crashy"
    title = "test format"
    suffix = ".crashy"
    runtime = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32", "int8")
    options = {"mode": Option(str, "ok", "segv | abort | hang | raise | memory | timed | ok")}
    warm_imports = ("crashy_warm",)  # a module that records, in the worker, that the warm-up imported it

    def build(self, job):
        mode = job.options["mode"]
        job.progress.step(f"crashy: {mode}")
        if mode == "timed":  # 0.3 s converting, 0.5 s quantising
            time.sleep(0.3)
        if job.precisions == ("int8",):
            job.enter("quantise")
        if mode == "timed":
            time.sleep(0.5)
        if mode == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "abort":
            os.abort()
        if mode == "hang":
            time.sleep(3600)
        if mode == "raise":
            raise ConversionError(f"{job.source.spec}: crashy cannot express op 'Weird'; export it differently")
        if mode == "memory":
            raise MemoryError()
        import sys

        job.progress.step(f"crashy: pid {os.getpid()}, warmed up: {'crashy_warm' in sys.modules}")
        counter = job.shared.setdefault("builds", [])
        counter.append(job.precisions[0])
        path = job.workdir / f"{job.stem}.{job.precisions[0]}.crashy"
        path.write_text(f"{len(job.calibration)} samples; build {len(counter)} in this worker")
        yield Artifact(path=path, format=self.name, precision=job.precisions[0], runtime=self.runtime, route="crashy")
