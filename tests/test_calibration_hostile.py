"""Hostile and broken calibration sets (issue #8): each is a one-line error with exit 2 or 3 that
names the file, found from headers before any data is read."""
from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from conftest import ROOT, run_cli
from edgepack.calibration import check_labels, load_calibration, precheck_calibration
from edgepack.calibration_files import os_problem, read_headers
from edgepack.errors import ConfigError, ExitCode, InputError
from edgepack.preprocess import MAX_IMAGE_PIXELS, load_preprocess
from edgepack.types import TensorSpec
from hostile_inputs import CALIBRATION_CASES, npy_header, png_header_only, restore_permissions, unreadable_file, unreadable_folder

IMG = (TensorSpec("image", (1, 3, 16, 16), "float32"),)
LOGITS = (TensorSpec("logits", (1, 10), "float32"),)


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def assert_one_line_error(case, code, err):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgepack: error: "), err
    assert case.expect_text in lines[0], err
    assert code == case.expect_code, err


@pytest.mark.parametrize("make", CALIBRATION_CASES, ids=lambda f: f.__name__[len("make_"):])
def test_hostile_calibration_through_the_cli(make, tmp_path):
    case = make(tmp_path)
    kept = {p: _digest(p) for p in case.keep}
    try:
        code, _, err = run_cli(*case.argv)
    finally:
        restore_permissions(tmp_path)
    assert_one_line_error(case, code, err)
    assert code in (ExitCode.USAGE, ExitCode.BAD_INPUT)
    assert not (tmp_path / "out").exists()
    assert {p: _digest(p) for p in case.keep} == kept


@pytest.mark.parametrize("build_case", [unreadable_file, unreadable_folder], ids=["file", "folder"])
def test_permission_denied_without_privileges(build_case, tmp_path):
    """chmod 000 says "permission denied". Root reads such files, so as root the CLI runs in a child
    without the capabilities that override file permissions (util-linux setpriv)."""
    import os
    import shutil

    case = build_case(tmp_path)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop the permission-override capabilities")
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
    code = "import sys; from edgepack.cli import main; sys.exit(main(sys.argv[1:]))"
    try:
        res = subprocess.run([*prefix, sys.executable, "-c", code, *case.argv], capture_output=True, text=True, cwd=ROOT, timeout=300)
    finally:
        restore_permissions(tmp_path)
    assert_one_line_error(case, res.returncode, res.stderr)


# --- headers first ---------------------------------------------------------------------------------


def test_claimed_size_is_refused_from_the_header_in_milliseconds(tmp_path):
    f = tmp_path / "x.npy"
    f.write_bytes(npy_header((2**50,)) + b"\0" * 16)  # 4 PiB claimed
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"x.npy: its header claims shape \(1125899906842624,\) float32 = 4,503,599,627,370,496 bytes \(4503.6 TB\), but the file holds only 16 bytes"):
        load_calibration(f, IMG)
    assert time.perf_counter() - t0 < 0.5


def test_bound_counts_every_file_and_targets(tmp_path):
    for i in range(3):
        np.savez(tmp_path / f"s{i}.npz", image=np.zeros((1, 3, 16, 16), np.float32))  # 3072 bytes each
    precheck_calibration(tmp_path, max_bytes=3 * 3072)
    with pytest.raises(InputError, match=r"claim 9,216 bytes .* more than the limit of 0 MB"):
        precheck_calibration(tmp_path, max_bytes=9215)
    np.save(tmp_path / "targets.npy", np.arange(3))
    with pytest.raises(InputError, match=r"claim 9,240 bytes"):
        load_calibration(tmp_path, IMG, max_bytes=3 * 3072)


def test_member_smaller_than_its_header_claims(tmp_path):
    f = tmp_path / "x.npz"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("image.npy", npy_header((4, 3, 16, 16)) + b"\0" * 100)
    with pytest.raises(InputError, match=r"x.npz \(member 'image.npy'\): its header claims .* = 12,288 bytes .* holds only 100 bytes"):
        read_headers(f)


def test_headers_read_no_array_data(tmp_path):
    """read_headers reads each member's first bytes only: a corrupt body is not noticed until load."""
    f = tmp_path / "x.npz"
    np.savez_compressed(f, image=np.zeros((40, 3, 16, 16), np.float32))
    heads = read_headers(f)
    assert [(h.key, h.shape, h.dtype.name, h.nbytes) for h in heads] == [("image", (40, 3, 16, 16), "float32", 122880)]


def test_zero_bomb_keeps_memory_small(tmp_path):
    """A .npz of 100 MB of zeros (about 100 kB on disk) is refused with a 10 MB bound without
    decompressing it: the process grows by far less than the data."""
    f = tmp_path / "bomb.npz"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z, z.open("image.npy", "w", force_zip64=True) as m:
        n = 100_000_000 // 3072
        m.write(npy_header((n, 3, 16, 16)))
        chunk = bytes(3072 * 1000)
        for _ in range(n // 1000):
            m.write(chunk)
        m.write(bytes(3072 * (n % 1000)))
    assert f.stat().st_size < 1_000_000
    script = textwrap.dedent(
        f"""
        import resource, sys
        from edgepack.calibration import load_calibration
        from edgepack.errors import InputError
        from edgepack.types import TensorSpec
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_calibration({str(f)!r}, (TensorSpec("image", (1, 3, 16, 16), "float32"),), max_bytes=10_000_000)
        except InputError as e:
            print(e)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    msg, grown_mb = res.stdout.strip().splitlines()
    assert "bomb.npz: the arrays' headers claim 99,999,744 bytes (100.0 MB)" in msg and "limit of 10 MB" in msg
    assert int(grown_mb) < 20, res.stdout


def test_array_must_match_its_header_after_reading(tmp_path):
    from edgepack.calibration_files import ArrayHeader, read_arrays

    f = tmp_path / "x.npy"
    np.save(f, np.zeros((2, 3), np.float32))
    lie = ArrayHeader(f, "", (3, 2), np.dtype("float32"))
    with pytest.raises(InputError, match=r"x.npy: read \(2, 3\) float32, but its header claimed shape \(3, 2\) float32"):
        read_arrays(f, [lie])


# --- what a path is ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "err, text",
    [
        (PermissionError(errno.EACCES, "Permission denied", "/d/a.npz"), "/d/a.npz: permission denied"),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/d/x"), "/d/x: path too long"),
        (OSError(errno.ELOOP, "Too many levels", "/d/l"), "/d/l: a symlink loop"),
        (OSError(errno.EIO, "Input/output error", "/d/io"), "/d/io: cannot read (Input/output error)"),
    ],
)
def test_os_errors_say_what_happened(err, text):
    e = os_problem("/fallback", err)
    assert str(e).startswith(text) and e.exit_code == ExitCode.BAD_INPUT


def test_broken_symlink_and_hidden_files(tmp_path):
    np.savez(tmp_path / "s.npz", image=np.zeros((2, 3, 16, 16), np.float32))
    (tmp_path / "._s.npz").write_bytes(b"AppleDouble junk")  # macOS resource forks are skipped
    assert len(load_calibration(tmp_path, IMG)) == 2
    (tmp_path / "gone.npz").symlink_to(tmp_path / "nowhere.npz")
    with pytest.raises(InputError, match=r"gone.npz: a broken symlink"):
        load_calibration(tmp_path, IMG)


def test_folder_with_a_data_name(tmp_path):
    np.savez(tmp_path / "s.npz", image=np.zeros((2, 3, 16, 16), np.float32))
    (tmp_path / "sub.npz").mkdir()
    with pytest.raises(InputError, match=r"sub.npz: is a folder with a data file's name"):
        precheck_calibration(tmp_path)


# --- images --------------------------------------------------------------------------------------


def test_image_size_is_checked_before_decoding(tmp_path):
    (tmp_path / "preprocess.toml").write_text('size = [16, 16]\nlayout = "nchw"\nchannels = "rgb"\n')
    (tmp_path / "a.png").write_bytes(png_header_only(9500, 9500))  # 90.25 MP: just over the bound
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=rf"a.png: the image is 9500x9500 = 90,250,000 pixels, more than the limit of {MAX_IMAGE_PIXELS:,}"):
        precheck_calibration(tmp_path)
    assert time.perf_counter() - t0 < 0.5


def test_decoded_images_count_towards_the_bound(tmp_path):
    from PIL import Image

    (tmp_path / "preprocess.toml").write_text('size = [64, 64]\nlayout = "nchw"\nchannels = "rgb"\n')
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    with pytest.raises(InputError, match=r"3 images at 64x64 become 147,456 bytes"):
        precheck_calibration(tmp_path, max_bytes=100_000)


# --- preprocess.toml -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, text",
    [
        ("std = [-1.0, 1.0, 1.0]", "'std' must be positive finite numbers"),
        ("std = [inf, 1.0, 1.0]", "'std' must be positive finite numbers"),
        ("mean = [0.0, -inf, 0.0]", "'mean' must be finite numbers"),
        ("scale = -0.5", "'scale' must be a positive finite number"),
        ("scale = nan", "'scale' must be a positive finite number"),
    ],
)
def test_preprocess_numbers(tmp_path, extra, text):
    p = tmp_path / "preprocess.toml"
    p.write_text(f'size = [4, 4]\nlayout = "nchw"\nchannels = "rgb"\n{extra}\n')
    with pytest.raises(ConfigError) as e:
        load_preprocess(p)
    assert str(e.value).startswith(f"{p}: {text}")


def test_preprocess_size_bounded_and_utf8(tmp_path):
    p = tmp_path / "preprocess.toml"
    p.write_text('size = [100000, 100000]\nlayout = "nchw"\nchannels = "rgb"\n')
    with pytest.raises(ConfigError, match=r"'size' \[100000, 100000\] is 10,000,000,000 pixels"):
        load_preprocess(p)
    p.write_bytes(b'size = [4, 4]\nlayout = "nchw"\nchannels = "rgb"\n# \xff\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff at byte offset 49\)"):
        load_preprocess(p)


# --- labels and targets against the model's outputs -----------------------------------------------


def _set(tmp_path, labels=None, targets=None, n=6):
    np.savez(tmp_path / "s.npz", image=np.zeros((n, 3, 16, 16), np.float32))
    if labels is not None:
        (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    if targets is not None:
        np.save(tmp_path / "targets.npy", np.asarray(targets))
    return tmp_path


def test_labels_match_the_class_output(tmp_path):
    cs = load_calibration(_set(tmp_path, [f"c{i}" for i in range(10)], [0, 1, 2, 3, 9, 5]), IMG, outputs=LOGITS)
    assert len(cs.labels) == 10 and cs.targets.tolist() == [0, 1, 2, 3, 9, 5]
    (tmp_path / "labels.txt").write_text("\ufeffa\nb\n", encoding="utf-8")  # a BOM is fine, 2 names are not
    with pytest.raises(InputError, match=r"labels.txt: has 2 class names, but the model's class-score output 'logits' \(1, 10\) has 10 classes"):
        load_calibration(tmp_path, IMG, outputs=LOGITS)


def test_labels_with_several_outputs(tmp_path):
    cs = load_calibration(_set(tmp_path, ["a", "b", "c"]), IMG)
    two = (TensorSpec("boxes", (1, 4), "float32"), TensorSpec("scores", (1, 3), "float32"))
    check_labels(cs, two)  # the second output has 3 classes
    with pytest.raises(InputError, match=r"has 3 class names, but the model's class-score output 'boxes' \(1, 4\) / 'scores' \(1, 5\)"):
        check_labels(cs, (TensorSpec("boxes", (1, 4), "float32"), TensorSpec("scores", (1, 5), "float32")))
    with pytest.raises(InputError, match=r"the model has no class-score output .*'mask' \(1, 1, 8, 8\)\); remove labels.txt"):
        check_labels(cs, (TensorSpec("mask", (1, 1, 8, 8), "float32"),))
    check_labels(cs, (TensorSpec("logits", (1, "classes"), "float32"),))  # unknown size: cannot tell, accepted


def test_targets_range_without_labels(tmp_path):
    cs = load_calibration(_set(tmp_path, targets=[0, 1, 2, 3, 4, 9]), IMG, outputs=LOGITS)
    assert cs.targets.max() == 9
    np.save(tmp_path / "targets.npy", np.array([0, 1, 2, 3, 4, 10]))
    with pytest.raises(InputError, match=r"targets.npy: class id 10 is out of range; the model's output 'logits' has 10 classes \(ids 0..9\)"):
        load_calibration(tmp_path, IMG, outputs=LOGITS)
    np.save(tmp_path / "targets.npy", np.array([0, 1, 2, 3, 4, -1]))
    with pytest.raises(InputError, match=r"class id -1 at position 5 is negative"):
        load_calibration(tmp_path, IMG)  # negative ids need no model outputs


def test_empty_labels_and_pickled_targets(tmp_path):
    _set(tmp_path, labels=[""])
    with pytest.raises(InputError, match=r"labels.txt: holds no class names"):
        precheck_calibration(tmp_path)
    (tmp_path / "labels.txt").unlink()
    np.save(tmp_path / "targets.npy", np.array([object()] * 6, dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"targets.npy: holds pickled objects"):
        load_calibration(tmp_path, IMG, allow_pickle=True)  # never unpickled, even with --allow-pickle


def test_precheck_runs_before_the_model_loads(tmp_path, monkeypatch):
    """A broken calibration path fails before the (slow) model load."""
    import os

    import edgepack
    import edgepack.api
    from hostile_case import tiny_files

    files = tiny_files()
    fifo = tmp_path / "data.npy"
    os.mkfifo(fifo)

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the calibration path was checked")

    monkeypatch.setattr(edgepack.api, "load_source", no_load)
    with pytest.raises(InputError, match="data.npy: is a named pipe"):
        edgepack.build(files["onnx"], fifo, [files["profile"]], tmp_path / "out")


def test_precheck_never_unpickles_and_judges_pickles_only_when_told(tmp_path):
    f = tmp_path / "obj.npy"
    np.save(f, np.array([{"a": 1}] * 2, dtype=object), allow_pickle=True)
    precheck_calibration(f)  # headers only: a pickle is left to load_calibration
    precheck_calibration(f, allow_pickle=True)
    with pytest.raises(InputError, match=r"obj.npy: holds pickled objects \(dtype object\)"):
        precheck_calibration(f, allow_pickle=False)
