"""edgepack never deletes what it did not write: the signed output marker, kept files, --force,
cleanup after SIGTERM / SIGKILL, disk full and permission errors."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import DIGITS_DATA, DIGITS_PT2, ROOT, run_cli, write_profile
from edgepack.errors import ConfigError
from edgepack.outdir import RESERVED_NAMES, StagedOutput
from edgepack.outmarker import MARKER, read_marker, write_marker
from edgepack.workdirs import OWNER_FILE, WORK_PREFIX, is_stale, process_start, remove_stale, work_folder

ORT_FP32 = """
name = "fast"
threads = 1
[formats.ort]
precisions = ["fp32"]
mobile_eps = []
[latency]
warmup = 1
runs = 2
[validation]
max_samples = 20
"""
EDGEPACK = ROOT / ".venv" / "bin" / "edgepack"


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    """Each test has its own per-user marker key (in its own config folder)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture
def profile(tmp_path):
    return str(write_profile(tmp_path / "fast.toml", ORT_FP32))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_build(out: Path, files: dict[str, str], force: bool = False, during=None) -> list[str]:
    """What build() does with StagedOutput, without the slow part: write into staging, commit."""
    staged = StagedOutput(out, force=force)
    with staged as staging:
        for rel, text in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text)
        if during is not None:
            during()
        return staged.commit()


OUTPUT = {"report.json": "{}", "report.md": "# report\n", "fast/model.ort": "ORT1", "model.mlpackage/Data/weights.bin": "W1"}


def _one_line_error(code, err, want, *needles):
    errors = [ln for ln in err.splitlines() if ln.startswith("edgepack: error: ")]
    assert code == want, err
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert "Traceback" not in err
    for n in needles:
        assert n in errors[0], errors[0]


def _leftovers(parent: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(prefix))


# -- the marker


def test_marker_lists_every_file_with_its_digest(tmp_path):
    out = tmp_path / "out"
    assert _fake_build(out, OUTPUT) == []
    doc = json.loads((out / MARKER).read_text())
    assert doc["files"] == {rel: hashlib.sha256(text.encode()).hexdigest() for rel, text in OUTPUT.items()}
    assert doc["dirs"] == ["fast", "model.mlpackage", "model.mlpackage/Data"]
    assert doc["scheme"] == "hmac-sha256" and len(doc["signature"]) == 64
    assert not (out / OWNER_FILE).exists()  # the staging folder's owner file does not reach the output
    assert read_marker(out) is not None
    assert {"report.json", "manifest.json", "report.md", "report.html", MARKER} <= RESERVED_NAMES


def test_forged_markers_are_refused(tmp_path, own_key, monkeypatch):
    built = tmp_path / "built"
    _fake_build(built, OUTPUT)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.jpg").write_bytes(b"\xff\xd8JPEG")
    # 1. copied from a real output and edited to claim the photo: the signature no longer matches
    doc = json.loads((built / MARKER).read_text())
    doc["files"]["photo.jpg"] = _sha(photos / "photo.jpg")
    (photos / MARKER).write_text(json.dumps(doc))
    assert read_marker(photos) is None
    with pytest.raises(ConfigError, match="did not write.*use --force to replace it"):
        StagedOutput(photos).__enter__()
    # 2. a hand-made marker with a correct plain digest: refused where a key exists (no downgrade)
    payload = json.dumps({"version": 1, "files": {"photo.jpg": doc["files"]["photo.jpg"]}, "dirs": []}, sort_keys=True, separators=(",", ":"))
    forged = {"files": {"photo.jpg": doc["files"]["photo.jpg"]}, "dirs": [], "scheme": "sha256", "signature": hashlib.sha256(payload.encode()).hexdigest()}
    (photos / MARKER).write_text(json.dumps(forged))
    assert read_marker(photos) is None
    # 3. a real marker signed with another user's key
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other-user"))
    assert read_marker(built) is None
    monkeypatch.setenv("XDG_CONFIG_HOME", str(own_key))
    assert read_marker(built) is not None
    assert (photos / "photo.jpg").read_bytes() == b"\xff\xd8JPEG"


def test_a_valid_marker_copied_alone_protects_nothing_it_does_not_list(tmp_path):
    built = tmp_path / "built"
    _fake_build(built, OUTPUT)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.jpg").write_bytes(b"JPEG")
    (photos / "report.json").write_text("my own report")
    (photos / MARKER).write_bytes((built / MARKER).read_bytes())  # verifies, but lists none of these
    messages = _fake_build(photos, OUTPUT)
    kept = next(tmp_path.glob("photos.kept-*"))
    assert (photos / "photo.jpg").read_bytes() == b"JPEG"
    assert (kept / "report.json").read_text() == "my own report"
    assert any("photo.jpg" in m for m in messages) and any(str(kept) in m and "report.json" in m for m in messages)


# -- refusing, keeping, --force (unit level: StagedOutput)


def test_non_empty_folder_without_marker_is_refused_before_staging(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "photo.jpg").write_bytes(b"JPEG")
    with pytest.raises(ConfigError) as exc:
        StagedOutput(out).__enter__()
    msg = str(exc.value)
    assert msg.startswith(f"{out}: --out is a non-empty folder that edgepack did not write") and "\n" not in msg
    assert "choose a new or empty folder, or use --force to replace it" in msg
    assert _leftovers(tmp_path, ".photos.partial") == []


def test_force_moves_the_old_content_aside(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "report.json").write_text("theirs")
    (out / "photo.jpg").write_bytes(b"JPEG")
    messages = _fake_build(out, OUTPUT, force=True)
    kept = next(tmp_path.glob("photos.kept-*"))
    assert (kept / "photo.jpg").read_bytes() == b"JPEG" and (kept / "report.json").read_text() == "theirs"
    assert (out / "report.json").read_text() == "{}" and read_marker(out) is not None
    assert len(messages) == 1 and "replaced with --force" in messages[0] and str(kept) in messages[0]
    assert "photo.jpg" in messages[0] and "report.json" in messages[0]
    assert _leftovers(tmp_path, ".photos.") == []


def test_rebuild_keeps_added_and_edited_files(tmp_path):
    out = tmp_path / "out"
    _fake_build(out, OUTPUT)
    (out / "notes.txt").write_text("my notes")
    (out / "report.md").write_text("# report\nmy edit\n")
    (out / "fast" / "mine.txt").write_text("inside a target folder")
    (out / "model.mlpackage" / "Data" / "weights.bin").write_text("edited weights")
    messages = _fake_build(out, {**OUTPUT, "report.json": '{"v": 2}'})
    kept = next(tmp_path.glob("out.kept-*"))
    assert (out / "notes.txt").read_text() == "my notes" and (out / "fast" / "mine.txt").read_text() == "inside a target folder"
    assert (out / "report.md").read_text() == "# report\n" and (kept / "report.md").read_text() == "# report\nmy edit\n"
    assert (kept / "model.mlpackage" / "Data" / "weights.bin").read_text() == "edited weights"
    assert (out / "report.json").read_text() == '{"v": 2}'
    into_new = next(m for m in messages if "at the same place in the new output" in m)
    aside = next(m for m in messages if "aside to" in m)
    assert "notes.txt" in into_new and "fast/mine.txt" in into_new and "2 files" in into_new
    assert str(kept) in aside and "report.md" in aside and "model.mlpackage/Data/weights.bin" in aside
    assert "notes.txt" not in read_marker(out).files  # kept files stay the user's in the next rebuild too
    messages = _fake_build(out, OUTPUT)
    assert (out / "notes.txt").read_text() == "my notes" and any("notes.txt" in m for m in messages)
    assert _leftovers(tmp_path, ".out.") == []


def test_file_that_appears_during_the_build_is_kept(tmp_path):
    out = tmp_path / "out"
    _fake_build(out, OUTPUT)
    (out / "report.md").unlink()  # also: a file of edgepack's the user deleted is simply not there
    messages = _fake_build(out, OUTPUT, during=lambda: (out / "late.csv").write_text("written while building"))
    assert (out / "late.csv").read_text() == "written while building"
    assert any("late.csv" in m for m in messages)
    assert not list(tmp_path.glob("out.kept-*"))


def test_marker_edited_during_the_build_refuses_the_commit(tmp_path):
    out = tmp_path / "out"
    _fake_build(out, OUTPUT)
    (out / "photo.jpg").write_bytes(b"JPEG")

    def tamper():
        (out / MARKER).write_text("{}")

    with pytest.raises(ConfigError, match="changed during the build"):
        _fake_build(out, OUTPUT, during=tamper)
    assert (out / "photo.jpg").read_bytes() == b"JPEG" and (out / "report.json").read_text() == "{}"
    assert _leftovers(tmp_path, ".out.") == []


def test_special_files_are_kept_not_deleted(tmp_path):
    out = tmp_path / "out"
    _fake_build(out, OUTPUT)
    target = tmp_path / "elsewhere.txt"
    target.write_text("outside")
    (out / "report.json").unlink()
    (out / "report.json").symlink_to(target)  # a link where edgepack's file was: kept (the link itself)
    os.mkfifo(out / "pipe")
    messages = _fake_build(out, OUTPUT)
    kept = next(tmp_path.glob("out.kept-*"))
    assert (kept / "report.json").is_symlink() and target.read_text() == "outside"
    assert (out / "pipe").exists() and any("pipe" in m for m in messages)


def test_interrupted_swap_is_finished_by_the_next_run(tmp_path):
    """A run killed between moving the old output away and moving the new one in."""
    out = tmp_path / "out"
    _fake_build(out, OUTPUT)
    (out / "notes.txt").write_text("mine")
    holder = tmp_path / ".out.old-abc123"
    holder.mkdir()
    _dead_owner(holder)
    os.replace(out, holder / "previous")
    messages = _fake_build(out, {**OUTPUT, "report.json": "new"})
    assert not holder.exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.json").read_text() == "new"
    assert any("restored the previous output" in m for m in messages)


# -- owner files and stale folders


def _dead_owner(folder: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(proc.stdout)
    (folder / OWNER_FILE).write_text(json.dumps({"pid": pid, "start": process_start(os.getpid()) - 1, "host": socket.gethostname()}))
    return pid


def test_stale_folders_are_told_apart(tmp_path):
    assert process_start(os.getpid()) is not None
    dead, live, reused, unmarked, garbage = (tmp_path / f"edgepack-work-{n}" for n in ("dead", "live", "reused", "unmarked", "garbage"))
    for d in (dead, live, reused, unmarked, garbage):
        d.mkdir()
        (d / "data.bin").write_bytes(b"x")
    _dead_owner(dead)
    host = socket.gethostname()
    (live / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": process_start(os.getpid()), "host": host}))
    (reused / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": process_start(os.getpid()) + 7, "host": host}))
    (garbage / OWNER_FILE).write_text("not json")
    other_host = tmp_path / "edgepack-work-host"
    other_host.mkdir()
    (other_host / OWNER_FILE).write_text(json.dumps({"pid": 999999, "start": 1, "host": host + "-elsewhere"}))
    assert [is_stale(d) for d in (dead, live, reused, unmarked, garbage, other_host)] == [True, False, True, False, False, False]
    assert sorted(remove_stale(tmp_path, WORK_PREFIX)) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert (live / "data.bin").exists() and (unmarked / "data.bin").exists() and (garbage / "data.bin").exists() and other_host.exists()


def test_work_folder_has_an_owner_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with work_folder() as work:
        owner = json.loads((work / OWNER_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["start"] == process_start(os.getpid())
        assert work.parent == tmp_path and work.name.startswith(WORK_PREFIX)
    assert not work.exists()


# -- end to end through the CLI


def test_cli_refuses_a_foreign_folder_and_force_replaces_it(tmp_path, profile):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "report.json").write_text('{"mine": true}')
    photo = bytes(range(256)) * 40
    (out / "photo.jpg").write_bytes(photo)
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out), "-q")
    _one_line_error(code, err, 2, str(out), "did not write", "use --force to replace it")
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "report.json"] and (out / "photo.jpg").read_bytes() == photo
    assert _leftovers(tmp_path, ".photos.") == []
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out), "-q", "--force")
    assert code == 0, err
    kept = next(tmp_path.glob("photos.kept-*"))
    assert (kept / "photo.jpg").read_bytes() == photo and json.loads((kept / "report.json").read_text()) == {"mine": True}
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and "replaced with --force" in warnings[0] and str(kept) in warnings[0], err
    assert json.loads((out / "report.json").read_text())["passed"] is True and read_marker(out) is not None


def test_cli_rebuild_keeps_user_files(tmp_path, profile):
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out), "-q")
    assert code == 0, err
    (out / "notes.txt").write_text("to do")
    (out / "report.md").write_text((out / "report.md").read_text() + "\nreviewed by me\n")
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out), "-q")
    assert code == 0, err
    kept = next(tmp_path.glob("out.kept-*"))
    assert (out / "notes.txt").read_text() == "to do"
    assert (kept / "report.md").read_text().endswith("reviewed by me\n") and "reviewed by me" not in (out / "report.md").read_text()
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert any("notes.txt" in w and "same place in the new output" in w for w in warnings), err
    assert any("report.md" in w and str(kept) in w for w in warnings), err


def _mount_tmpfs(where: Path, size: str, ro: bool = False) -> None:
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(where)], capture_output=True, text=True)
    if res.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs to simulate the condition (needs root): {res.stderr.strip()}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=False)
    where.rmdir()


def test_disk_full_is_a_config_error(tmp_path, profile):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "64k")  # the .ort alone is 84 KB
    try:
        code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(disk / "out"), "-q")
        _one_line_error(code, err, 2, "disk full", str(disk / "out"))
        assert os.listdir(disk) == []
    finally:
        _umount(disk)


def test_read_only_folder_is_permission_denied(tmp_path, profile):
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "1m", ro=True)
    try:
        code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(ro / "out"), "-q")
        _one_line_error(code, err, 2, "permission denied", str(ro / "out"))
    finally:
        _umount(ro)


def test_disk_full_in_the_staging_folder_names_out(tmp_path):
    out = tmp_path / "out"
    staged = StagedOutput(out)
    with pytest.raises(ConfigError) as exc:
        with staged as staging:
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "report.json"))
    assert str(exc.value).startswith(f"{out}: disk full while writing the output folder --out")
    assert _leftovers(tmp_path, ".out.") == [] and not out.exists()


# -- signals, with a real `edgepack build` subprocess


def _start_build(tmp_path, profile, out):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
    proc = subprocess.Popen(
        [str(EDGEPACK), "build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not (_leftovers(out.parent, f".{out.name}.partial-") and _leftovers(tmp, WORK_PREFIX)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc, tmp


def test_sigterm_cleans_up_and_exits_143(tmp_path, profile):
    out = tmp_path / "out"
    proc, tmp = _start_build(tmp_path, profile, out)
    time.sleep(0.3)  # mid-build: loading the model
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
    assert _leftovers(tmp_path, ".out.") == [] and _leftovers(tmp, WORK_PREFIX) == [] and not out.exists()


def test_sigkill_leftovers_are_removed_by_the_next_run(tmp_path, profile, monkeypatch):
    out = tmp_path / "out"
    proc, tmp = _start_build(tmp_path, profile, out)
    proc.kill()
    proc.communicate(timeout=60)
    partial, work = _leftovers(tmp_path, ".out.partial-"), _leftovers(tmp, WORK_PREFIX)
    assert len(partial) == 1 and len(work) == 1  # SIGKILL cannot be caught: they stay, with their owner files
    assert (tmp_path / partial[0] / OWNER_FILE).exists() and (tmp / work[0] / OWNER_FILE).exists()
    # stale-looking folders without an owner file are someone else's: never touched
    (tmp_path / ".out.partial-handmade").mkdir()
    (tmp_path / ".out.partial-handmade" / "keep.txt").write_text("x")
    (tmp / "edgepack-work-handmade").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(out), "-q")
    assert code == 0, err
    assert _leftovers(tmp_path, ".out.partial-") == [".out.partial-handmade"]
    assert _leftovers(tmp, WORK_PREFIX) == ["edgepack-work-handmade"]
    assert (tmp_path / ".out.partial-handmade" / "keep.txt").read_text() == "x"


def test_names_too_long_for_the_staging_suffixes_are_refused_up_front(tmp_path):
    out = tmp_path / ("o" * 240)  # fits NAME_MAX, but not with ".kept-<time>" added
    with pytest.raises(ConfigError, match="too long .*240 bytes.*at most 231"):
        StagedOutput(out).__enter__()
    deep = tmp_path.joinpath(*(["d" * 200] * 22))  # past PATH_MAX
    with pytest.raises(ConfigError, match="path of --out is too long"):
        StagedOutput(deep).__enter__()
    assert os.listdir(tmp_path) == []


def test_foreign_android_assets_folder_is_refused_before_building(tmp_path, profile):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "manifest.json").write_text('{"app": "mine"}')  # the old marker, by mere presence: not enough
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", profile, "-o", str(tmp_path / "out"), "--android-assets", str(assets))
    _one_line_error(code, err, 2, str(assets), "--android-assets is a non-empty folder that edgepack did not write", "--force")
    assert "loading" not in err  # refused before any slow work
    assert (assets / "manifest.json").read_text() == '{"app": "mine"}' and not (tmp_path / "out").exists()
