"""The command line: parse, call the library, render. The only place that maps errors to exit codes."""
from __future__ import annotations

import os
import re
import sys
import textwrap
import traceback

import click

from . import __version__
from .errors import EdgepackError, ExitCode
from .progress import StderrProgress as CliProgress  # noqa: F401  (the CLI's progress: timed lines on stderr)
from .workdirs import Terminated, catch_sigterm, restore_sigterm

_state = {"debug": False}
WIDTH = 100  # every table the terminal shows fits this many columns; the reports have the rest
# With --debug on, hints to rerun with it are dropped (the traceback is already on screen).
_DEBUG_HINTS = (
    (re.compile(r"\(rerun with --debug for the traceback, and please report it\)"), "(the traceback is above; please report it)"),
    (re.compile(r"\s*\(--debug shows where\)"), ""),
    (re.compile(r"\b([Rr])erun with --debug, or report it"), lambda m: ("R" if m[1] == "R" else "r") + "eport it"),
    (re.compile(r"[;,.]?\s*\(?[Rr]erun with --debug[^;)]*\)?"), ""),
)


def _table(columns, rows) -> str:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*columns), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    return "\n".join(ln.rstrip() for ln in lines)


def _set_debug(ctx, param, value) -> None:
    if value:
        _state["debug"] = True


def debug_option(f):
    """`--debug` is accepted after the subcommand too (main() also takes it from anywhere on the line)."""
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug, help="Show full tracebacks on errors.")(f)


def _error_text(message: str) -> str:
    """With --debug on, the traceback is already shown: drop any "rerun with --debug" hint."""
    if _state["debug"]:
        for pattern, repl in _DEBUG_HINTS:
            message = pattern.sub(repl, message)
    return message


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
@click.option("--out", "-o", required=True, help="Output folder, written whole at the end; a folder edgepack did not write is refused (see --force).")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled data from the model or calibration files (only for files you trust).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the summary.")
@click.option("--android-assets", help="Also write one target's artifacts, manifest and golden vectors here (e.g. android_demo/app/src/main/assets/edgepack).")
@click.option("--android-target", help="The target whose artifacts go to --android-assets (default: the first --target).")
@click.option("--format", "-f", "formats", multiple=True, metavar="NAME", help="Build only this format of the targets' profiles, e.g. ort (repeatable).")
@click.option("--precision", "-p", "precisions", multiple=True, metavar="NAME", help="Build only this precision of the targets' profiles, e.g. int8 (repeatable).")
@click.option("--no-latency", is_flag=True, help="Do not time the artifacts (parity only); latency budgets are then not checked.")
@click.option("--force", is_flag=True, help="Replace an --out folder that edgepack did not write (its content is moved aside to OUT.kept-TIME, not deleted).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...", help="Static shape of a dynamic input, e.g. images=1,3,320,320 (repeatable; default: from the calibration data).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first cell that fails, with its exit code (default: record it and build every other cell).")
@click.option("--diagnose", "diagnose_failed", is_flag=True, help="Name the first divergent layer of every cell that fails parity (also when a profile says [validation] diagnose = \"never\").")
@click.option("--cache", "cache", metavar="PATH|URL", help="The cell cache: a folder or an fsspec URL such as s3://bucket/prefix (default: $EDGEPACK_CACHE, else ~/.cache/edgepack/cells).")
@click.option("--no-cache", is_flag=True, help="Build every cell anew; read and write no cache.")
@click.option("--recipe", "recipes", multiple=True, metavar="FILE", help="int8_auto: reuse this .recipe.json (from an earlier build) with no search; its format's int8_auto cells apply it (repeatable, one per format).")
@debug_option
def build(model, calibration, targets, out, allow_pickle, quiet, android_assets, android_target, formats, precisions, no_latency, force, input_shapes, fail_fast, diagnose_failed, cache, no_cache, recipes):
    """Build, validate and report MODEL (.pt2, .onnx, .keras, or package.module:function) for each --target.

    --format and --precision narrow the cells the profiles list; they never add one."""
    from .api import build as run_build
    from .report.summary import failures, terminal_lines

    report = run_build(
        model,
        calibration,
        list(targets),
        out,
        formats=list(formats) or None,
        precisions=list(precisions) or None,
        latency=not no_latency,
        progress=CliProgress(quiet),
        allow_pickle=allow_pickle,
        android_assets=android_assets,
        android_target=android_target,
        force=force,
        fail_fast=fail_fast,
        input_shapes=list(input_shapes) or None,
        diagnose=diagnose_failed,
        cache=cache,
        use_cache=not no_cache,
        recipes=list(recipes) or None,
    )
    for line in terminal_lines(report.artifacts, report.failed_cells):  # the worst output per cell, a line per failing output
        click.echo(line)
    click.echo("")
    for line in _footer(report.artifacts):
        click.echo(line)
    click.echo(f"Reports (all figures, notes): {out}/")
    click.echo("  report.html, report.md, report.json; for apps: manifest.json")
    if not report.passed:
        for r in report.artifacts:
            for f in failures(r):
                click.echo(f"FAIL {r.target} {r.artifact.format} {r.artifact.precision}: {f}", err=True)
        several = len(report.failed_cells) > 1  # one failed cell: its error line says it all
        for c in report.failed_cells:
            if _state["debug"] and c.detail:
                click.echo(c.detail.rstrip(), err=True)
            if several:
                click.echo(f"FAIL {c.target} {c.format} {c.precision}: failed at {c.stage}: {_error_text(c.reason)}", err=True)
        if report.failed_cells:  # one error line, as for any other failure; the FAIL lines have the rest
            first = report.failed_cells[0]
            cells = len(report.failed_cells) + len(report.artifacts)
            lead = f"{len(report.failed_cells)} of {cells} cells failed; the first: " if len(report.failed_cells) > 1 else ""
            click.echo(_error_text(f"edgepack: error: {lead}{first.label} failed at {first.stage}: {first.reason}"), err=True)
        sys.exit(report.exit_code)


@cli.command()
@click.argument("artifact")
@click.option("--model", "-m", required=True, help="The source model the artifact was made from (.pt2, .onnx, .keras, or module:function).")
@click.option("--calibration", "-c", required=True, help="Calibration data; its held-out part is used, as in build.")
@click.option("--target", "-t", help="A target name or profile .toml: threads, tolerances, latency runs, budgets (default: edgepack's defaults).")
@click.option("--precision", "-p", default=None, help="Which precision's tolerances apply (e.g. int8); default: the precision edgepack stored in the artifact, else fp32.")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact's report entry as JSON.")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled data (only for files you trust).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--no-latency", is_flag=True, help="Do not time the artifact (parity only).")
@debug_option
def check(artifact, model, calibration, target, precision, as_json, allow_pickle, quiet, no_latency):
    """Check an existing ARTIFACT (.ort, .tflite, .mlpackage) against its source model: parity and latency."""
    import json

    from .check_artifact import check as run_check
    from .report.json_report import artifact_json
    from .report.summary import failures, notes, terminal_lines

    result = run_check(
        artifact, model, calibration, target=target, precision=precision, latency=not no_latency, progress=CliProgress(quiet), allow_pickle=allow_pickle
    )
    if as_json:
        click.echo(json.dumps(artifact_json(result), indent=2))
    else:
        for line in terminal_lines([result]):
            click.echo(line)
        for n in notes(result):
            click.echo(f"note: {n}", err=True)
    for f in failures(result):
        click.echo(f"FAIL {result.file} {result.precision}: {f}", err=True)
    if not result.passed:
        sys.exit(ExitCode.GATE_FAILED)


@cli.command()
@click.argument("artifact")
@click.option("--model", "-m", required=True, help="The source model the artifact was made from (.pt2, .onnx, .keras, or module:function).")
@click.option("--calibration", "-c", required=True, help="Calibration data; the held-out samples whose outputs agree worst are diagnosed.")
@click.option("--target", "-t", help="The target profile the artifact was built with (tolerances, calibration split; default: edgepack's defaults).")
@click.option("--precision", "-p", default=None, help="The artifact's precision (default: from its file name, e.g. model.int8.tflite, else fp32).")
@click.option("--against", metavar="OTHER_ARTIFACT", help="Also diagnose another artifact of the same model and say which diverges first.")
@click.option("--samples", "-n", default=4, show_default=True, help="How many of the worst-agreeing samples to run.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON (the report.json 'diagnosis' entry).")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled data (only for files you trust).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@debug_option
def diagnose(artifact, model, calibration, target, precision, against, samples, as_json, allow_pickle, quiet):
    """Find the first layer where ARTIFACT (.ort, .tflite, .mlpackage) diverges from its source model.

    Exit 0 when the diagnosis is made (whatever it finds); errors exit as usual."""
    import json

    from .diagnose import diagnose_artifact, render_table

    result = diagnose_artifact(
        artifact, model, calibration, target=target, precision=precision, against=against, samples=samples, allow_pickle=allow_pickle, progress=CliProgress(quiet)
    )
    click.echo(json.dumps(result, indent=2) if as_json else render_table(result, WIDTH))
    for n in result.get("notes", []):
        click.echo(f"note: {n}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print every shipped profile as JSON (all settings).")
@debug_option
def targets(as_json):
    """List the shipped target profiles (one line per format; `--json` for every setting)."""
    import json

    from .profiles import shipped_dir, shipped_profiles
    from .report.summary import clip

    profiles = shipped_profiles()
    if as_json:
        click.echo(json.dumps([p.to_json() for p in profiles], indent=2))
        return
    rows = []
    for p in profiles:
        fmts = [f"{f.name}[{'/'.join(f.precisions)}]" for f in p.formats] or [""]
        rows.append([p.name, f"{p.threads}", fmts[0], p.description])
        rows += [["", "", f, ""] for f in fmts[1:]]
    columns = ("Name", "Threads", "Formats", "Description")
    used = sum(max(len(c), *(len(r[i]) for r in rows)) + 2 for i, c in enumerate(columns[:3]))
    for r in rows:
        r[3] = clip(r[3], max(WIDTH - used, 12))
    click.echo(_table(columns, rows))
    click.echo(f"\n(from {shipped_dir()}; `edgepack targets --json` shows every setting)")


@cli.command()
@click.argument("fleet_file", metavar="FLEET.toml")
@click.option("--out", "-o", help="Output folder (default: [defaults] out of FLEET.toml).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="local: a process pool here; ray: a Ray cluster (pip install 'edgepack[ray]').")
@click.option("--ray-address", metavar="ray://HOST:PORT", help="The Ray cluster to use (default: a local Ray started here).")
@click.option("--workers", type=int, help="Processes (local) or CPUs of the local Ray (default: this machine's cores).")
@click.option("--shard", metavar="I/N", help="Build only shard I of N (task k of the sorted tasks goes to shard k mod N + 1); join the shards with `edgepack merge`.")
@click.option("--cache", "cache", metavar="PATH|URL", help="The cell cache every task uses (default: $EDGEPACK_CACHE, else the user's cache folder).")
@click.option("--no-cache", is_flag=True, help="Use no cell cache.")
@click.option("--force", is_flag=True, help="Replace an --out folder that edgepack did not write (its content is moved aside, not deleted).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the summary.")
@debug_option
def fleet(fleet_file, out, executor, ray_address, workers, shard, cache, no_cache, force, quiet):
    """Build every model × target of FLEET.toml, one task per model × target × format, in parallel.

    Writes OUT/<model>/ (artifacts and report) per model and OUT/fleet.json|md|html; exits with the worst cell's code."""
    from .fleet import run_fleet

    report = run_fleet(
        fleet_file, out=out, executor=executor, ray_address=ray_address, workers=workers, shard=shard,
        cache=cache, use_cache=not no_cache, force=force, progress=CliProgress(quiet),
    )
    _fleet_summary(report)


@cli.command()
@click.argument("shards", nargs=-1, required=True, metavar="SHARD_OUT...")
@click.option("--out", "-o", required=True, help="The merged fleet output folder.")
@click.option("--force", is_flag=True, help="Replace an --out folder that edgepack did not write (its content is moved aside, not deleted).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@debug_option
def merge(shards, out, force, quiet):
    """Join the outputs of `edgepack fleet --shard I/N` (every I) into one fleet output and report."""
    from .fleet import merge_outputs

    _fleet_summary(merge_outputs(list(shards), out, force=force, progress=CliProgress(quiet)))


def _fleet_summary(report) -> None:
    rows = [[c["model"], c["target"], c["format"], c["precision"], c["status"], c["exit_code"]] for c in report.cells]
    click.echo(_table(("Model", "Target", "Format", "Precision", "Status", "Exit"), rows) if rows else "no cells in this output")
    click.echo(f"\nFleet summary: {report.out}/fleet.html, fleet.md, fleet.json; per model: {report.out}/<model>/report.html")
    failed = [c for c in report.cells if c["exit_code"]]
    for c in failed:
        why = f": {c['reason']}" if c.get("reason") else ""
        click.echo(f"FAIL {c['model']} {c['target']} {c['format']} {c['precision']}: {c['status']} (exit {c['exit_code']}){why}", err=True)
    if failed:
        click.echo(f"edgepack: error: {len(failed)} of {len(report.cells)} cells failed; exit code {report.exit_code} is the worst cell's", err=True)
        sys.exit(report.exit_code)


def _footer(results) -> list[str]:
    """Short lines under the build table: what the latency column means, and the notes that apply to all."""
    lines = []
    if any(r.latency for r in results):
        emu = any(r.latency and r.latency.measured_on == "emulator" for r in results)
        where = "in the host runtime" + (" (emu: in edgepack's Core ML emulator)" if emu else "")
        lines.append(f"p50 ms: timed on this machine {where}, never on the device.")
    skipped = sorted({r.latency_skipped for r in results if r.latency is None and r.latency_skipped})
    if skipped:
        lines.append(f"Latency not measured ({', '.join(skipped)}).")
    seen = set()
    for r in results:
        for n in r.notes:
            if n.startswith("threads: ") and r.target not in seen:
                seen.add(r.target)
                lines += textwrap.wrap(f"Note: {r.target}: {n.removeprefix('threads: ')}", WIDTH, subsequent_indent="  ")
    return lines


@cli.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@debug_option
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


@cli.command()
@click.argument("what", type=click.Choice(["arm64"]))
@click.option("--force", is_flag=True, help="Set it up again from nothing.")
@debug_option
def setup(what, force):
    """Set up an emulated runtime: `arm64` = qemu-user, an arm64 Python with the host's LiteRT and
    ONNX Runtime versions, and the instruction-counting plugin, in ~/.cache/edgepack/arm64
    (EDGEPACK_ARM64_HOME). Uses the network; builds never do."""
    from .arm64.setup import setup_arm64

    home = setup_arm64(CliProgress(), force=force)
    click.echo(f"arm64 runtime: {home.root}")


def main(argv: list[str] | None = None) -> int:
    # TensorFlow (pulled in by coremltools) logs INFO lines to stderr from C++ unless told not to.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = list(argv if argv is not None else sys.argv[1:])
    cut = args.index("--") if "--" in args else len(args)  # after "--", "--debug" would be an argument
    _state["debug"] = os.environ.get("EDGEPACK_DEBUG") == "1" or "--debug" in args[:cut]
    argv = [a for a in args[:cut] if a != "--debug"] + args[cut:]  # accepted anywhere on the line
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
        click.echo(f"edgepack: error: {_error_text(str(exc))}", err=True)
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
        click.echo(_error_text(f"edgepack: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback, and please report it)"), err=True)
        return ExitCode.INTERNAL
    finally:
        restore_sigterm(previous_sigterm)


def run() -> None:
    sys.exit(main())
