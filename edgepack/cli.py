"""The command line: parse, call the library, render. The only place that maps errors to exit codes."""
from __future__ import annotations

import os
import sys
import time
import traceback

import click

from . import __version__
from .errors import EdgepackError, ExitCode
from .workdirs import Terminated, catch_sigterm, restore_sigterm

_state = {"debug": False}


class CliProgress:
    """Steps as timed lines on stderr; long loops as a progress bar when stderr is a terminal."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def _line(self, text: str) -> None:
        if not self.quiet:
            click.echo(f"[{time.perf_counter() - self.t0:6.1f}s] {text}", err=True)

    def step(self, message: str) -> None:
        self._line(message)

    def track(self, items, total, label):
        if self.quiet or not self.tty:
            self._line(f"{label} ({total})")
            yield from items
            return
        with click.progressbar(items, length=total, label=f"[{time.perf_counter() - self.t0:6.1f}s] {label}", file=sys.stderr) as bar:
            yield from bar

    def warn(self, message: str) -> None:
        click.echo(f"warning: {message}", err=True)


def _table(columns, rows) -> str:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*columns), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepack")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Package a trained model for phones and edge boxes: convert, quantise, check parity, time it.

    Exit codes: 0 ok, 1 parity or budget failed, 2 usage or config error, 3 bad input,
    4 conversion failed or unsupported op, 5 missing dependency, 70 internal error,
    130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM); both remove their partial output.
    """
    _state["debug"] = _state["debug"] or debug


@cli.command()
@click.argument("model")
@click.option("--calibration", "-c", required=True, help="Calibration data: a folder or a .npz/.npy file.")
@click.option("--target", "-t", "targets", multiple=True, required=True, help="A shipped target name or a profile .toml path (repeatable).")
@click.option("--out", "-o", required=True, help="Output folder (replaced whole on success).")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled data from the model or calibration files (only for files you trust).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the summary.")
@click.option("--android-assets", help="Also write one target's artifacts, manifest and golden vectors here (e.g. android_demo/app/src/main/assets/edgepack).")
@click.option("--android-target", help="The target whose artifacts go to --android-assets (default: the first --target).")
@click.option("--force", is_flag=True, help="Replace an --out folder that edgepack did not write (its content is moved aside to OUT.kept-TIME, not deleted).")
def build(model, calibration, targets, out, allow_pickle, quiet, android_assets, android_target, force):
    """Build, validate and report MODEL (.pt2, .onnx, .keras, or package.module:function) for each --target."""
    from .api import build as run_build
    from .report.summary import COLUMNS, failures, row

    report = run_build(
        model,
        calibration,
        list(targets),
        out,
        progress=CliProgress(quiet),
        allow_pickle=allow_pickle,
        android_assets=android_assets,
        android_target=android_target,
        force=force,
    )
    click.echo(_table(COLUMNS, [row(r) for r in report.results]))
    click.echo(f"\nLatency is measured on this machine (host runtimes, or the Core ML emulator), never on the device. Reports: {out}/report.html, report.md, report.json; manifest: {out}/manifest.json")
    if not report.passed:
        for r in report.results:
            for f in failures(r):
                click.echo(f"FAIL {r.target} {r.artifact.format} {r.artifact.precision}: {f}", err=True)
        sys.exit(ExitCode.GATE_FAILED)


@cli.command()
@click.argument("artifact")
@click.option("--model", "-m", required=True, help="The source model the artifact was made from (.pt2, .onnx, .keras, or module:function).")
@click.option("--calibration", "-c", required=True, help="Calibration data; its held-out part is used, as in build.")
@click.option("--target", "-t", help="A target name or profile .toml: threads, tolerances, latency runs, budgets (default: edgepack's defaults).")
@click.option("--precision", "-p", default="fp32", show_default=True, help="Which precision's tolerances apply (e.g. int8).")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact's report entry as JSON.")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled data (only for files you trust).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def check(artifact, model, calibration, target, precision, as_json, allow_pickle, quiet):
    """Check an existing ARTIFACT (.ort, .tflite, .mlpackage) against its source model: parity and latency."""
    import json

    from .api import check as run_check
    from .report.json_report import artifact_json
    from .report.summary import COLUMNS, failures, row

    result = run_check(
        artifact, model, calibration, target=target, precision=precision, progress=CliProgress(quiet), allow_pickle=allow_pickle
    )
    if as_json:
        click.echo(json.dumps(artifact_json(result), indent=2))
    else:
        click.echo(_table(COLUMNS, [row(result)]))
    for f in failures(result):
        click.echo(f"FAIL {result.file} {precision}: {f}", err=True)
    if not result.passed:
        sys.exit(ExitCode.GATE_FAILED)


@cli.command()
def targets():
    """List the shipped target profiles."""
    from .profiles import shipped_dir, shipped_profiles

    rows = []
    for p in shipped_profiles():
        fmts = ", ".join(f"{f.name}[{'/'.join(f.precisions)}]" for f in p.formats)
        rows.append((p.name, fmts, f"{p.threads} thr", p.description))
    click.echo(_table(("Name", "Formats", "Threads", "Description"), rows))
    click.echo(f"\n(from {shipped_dir()})")


@cli.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect(file, as_json):
    """Show the inputs, outputs, op histogram, size and quantisation of a model or artifact."""
    import json

    from .inspect import inspect_file
    from .report.summary import human_size

    info = inspect_file(file)
    if as_json:
        click.echo(json.dumps(info.to_json(), indent=2))
        return
    click.echo(f"{info.path}: {info.kind}, {human_size(info.size_bytes)} ({info.size_bytes} bytes)")
    for title, specs in (("inputs", info.inputs), ("outputs", info.outputs)):
        click.echo(f"{title}:")
        for t in specs:
            click.echo(f"  {t.name}: {t.dtype} {list(t.shape)}")
    click.echo(f"quantisation: {info.quantization}")
    click.echo("weights: " + (", ".join(f"{n} {d}" for d, n in sorted(info.weight_dtypes.items())) or "none"))
    click.echo(f"ops ({sum(info.op_histogram.values())}):")
    for op, n in info.op_histogram.items():
        click.echo(f"  {n:5d}  {op}")


def main(argv: list[str] | None = None) -> int:
    # TensorFlow (pulled in by coremltools) logs INFO lines to stderr from C++ unless told not to.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _state["debug"] = os.environ.get("EDGEPACK_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
    previous_sigterm = catch_sigterm()  # SIGTERM unwinds like Ctrl-C: staging and work folders are removed
    try:
        cli.main(args=argv, prog_name="edgepack", standalone_mode=False)
        return ExitCode.OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.INTERNAL
    except EdgepackError as exc:
        if _state["debug"]:
            traceback.print_exc()
        click.echo(f"edgepack: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Terminated:
        click.echo("terminated", err=True)
        return 143
    except Exception as exc:  # a bug: say so, and how to see it
        if _state["debug"]:
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"edgepack: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback, and please report it)", err=True)
        return ExitCode.INTERNAL
    finally:
        restore_sigterm(previous_sigterm)


def run() -> None:
    sys.exit(main())
