"""Hostile and broken calibration sets and target profiles (issue #8), one generator per case.

Each `make_<case>(tmp) -> Case` builds the bad input under `tmp` and returns the CLI call that must
fail with `expect_code` and a one-line error containing `expect_text`. They are cheap: the shared
tiny CNN (tests/hostile_case.tiny_files), an ort-fp32 profile, a few KB of data. `CALIBRATION_CASES`
and `PROFILE_CASES` list them for tests/test_calibration_hostile.py, tests/test_profiles_hostile.py
and the corpus test.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from hostile_case import ORT_FP32_PROFILE, Case, tiny_files

SHAPE = (3, 16, 16)  # the tiny CNN's input without batch; its output is (1, 10)


def _x(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def _build(tmp: Path, calib: Path, profile: Path | None = None, model: str = "onnx") -> list[str]:
    files = tiny_files()
    prof = profile if profile is not None else files["profile"]
    return ["build", str(files[model]), "-c", str(calib), "-t", str(prof), "-o", str(tmp / "out"), "-q"]


def _folder(tmp: Path, name: str = "calib", n: int = 8) -> Path:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "samples.npz", image=_x(n))
    return d


def _profile(tmp: Path, body: str, name: str = "bad.toml") -> Path:
    p = tmp / name
    p.write_text(body, encoding="utf-8")
    return p


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version-1.0 .npy header claiming `shape` (no data follows)."""
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin1")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) with one tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- calibration: archives and headers ------------------------------------------------------------


def make_npz_member_without_npy_name(tmp: Path) -> Case:
    f = tmp / "samples.npz"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("image.npy", npy_header((8, *SHAPE)) + _x().tobytes())
        z.writestr("foo", b"not an array")
    return Case(_build(tmp, f), 3, "samples.npz: member 'foo' is not a .npy array", keep=[f])


def make_npz_member_nested_text(tmp: Path) -> Case:
    f = tmp / "samples.npz"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("a/b.txt", b"hello")
    return Case(_build(tmp, f), 3, "samples.npz: member 'a/b.txt' is not a .npy array")


def make_npy_header_claims_160_tib(tmp: Path) -> Case:
    f = tmp / "samples.npy"
    f.write_bytes(npy_header((160 * 2**40 // 4 // 768, *SHAPE)) + b"\0" * 64)
    return Case(_build(tmp, f), 3, "samples.npy: its header claims shape (57266230613, 3, 16, 16) float32 = 175,921,860,443,136 bytes (175.9 TB)")


def make_npz_header_claims_160_tib(tmp: Path) -> Case:
    f = tmp / "samples.npz"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("image.npy", npy_header((160 * 2**40 // 4 // 768, *SHAPE)) + b"\0" * 64)
    return Case(_build(tmp, f), 3, "samples.npz (member 'image.npy'): its header claims shape (57266230613, 3, 16, 16) float32")


def make_npz_zeros_bomb(tmp: Path) -> Case:
    """A 49 kB .npz holding 50 MB of zeros, against a profile that allows 16 MB of calibration data."""
    d = tmp / "calib"
    d.mkdir()
    np.savez_compressed(d / "samples.npz", image=np.zeros((16384, *SHAPE), np.float32))
    prof = _profile(tmp, ORT_FP32_PROFILE + "\n[validation]\nmax_calibration_mb = 16\n")
    return Case(_build(tmp, d, prof), 3, "calib: the arrays' headers claim 50,331,648 bytes (50.3 MB) of decompressed data")


def make_npz_truncated(tmp: Path) -> Case:
    f = tmp / "samples.npz"
    np.savez(f, image=_x(40))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return Case(_build(tmp, f), 3, "samples.npz: not a readable .npz")


def make_npy_named_npz(tmp: Path) -> Case:
    f = tmp / "samples.npz"
    with open(f, "wb") as fh:
        np.save(fh, _x())
    return Case(_build(tmp, f), 3, "samples.npz: is a .npy file named .npz; rename it")


def make_npy_of_strings(tmp: Path) -> Case:
    f = tmp / "samples.npy"
    np.save(f, np.array(["a", "b"]))
    return Case(_build(tmp, f), 3, "samples.npy: holds an array of dtype <U1 (not numbers)")


def make_npy_pickled_objects(tmp: Path) -> Case:
    f = tmp / "samples.npy"
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return Case(_build(tmp, f), 3, "samples.npy: holds pickled objects")


# --- calibration: what a path is ------------------------------------------------------------------


def make_npy_symlink_to_etc_shadow(tmp: Path) -> Case:
    """A .npy that is a symlink to a system file: as root readable (not a .npy), else permission denied."""
    d = tmp / "calib"
    d.mkdir()
    target = Path("/etc/shadow") if Path("/etc/shadow").exists() else Path("/etc/passwd")
    (d / "samples.npy").symlink_to(target)
    readable = os.access(target, os.R_OK)
    text = "samples.npy: " + ("not a .npy file (it does not start with numpy's magic bytes)" if readable else "permission denied")
    return Case(_build(tmp, d), 3, text)


def make_npy_symlink_to_dev_zero(tmp: Path) -> Case:
    d = tmp / "calib"
    d.mkdir()
    (d / "samples.npy").symlink_to("/dev/zero")
    return Case(_build(tmp, d), 3, "samples.npy: is a symlink to /dev/zero, which is a character device")


def make_npz_fifo(tmp: Path) -> Case:
    """A named pipe with a data file's name: opening it would block forever."""
    d = _folder(tmp)
    os.mkfifo(d / "more.npz")
    return Case(_build(tmp, d), 3, "more.npz: is a named pipe (FIFO)")


def _skip_as_root() -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop root from reading")


def make_calibration_path_too_long(tmp: Path) -> Case:
    return Case(_build(tmp, tmp / ("x" * 300)), 3, "path too long")


def unreadable_file(tmp: Path) -> Case:
    d = _folder(tmp)
    (d / "samples.npz").chmod(0)
    return Case(_build(tmp, d), 3, "samples.npz: permission denied")


def unreadable_folder(tmp: Path) -> Case:
    d = _folder(tmp)
    d.chmod(0)
    return Case(_build(tmp, d), 3, "calib: permission denied")


def make_calibration_file_unreadable(tmp: Path) -> Case:
    """A chmod-000 data file. Root reads it anyway, so the generator skips (pytest.skip) as root;
    tests/test_calibration_hostile.py runs it as root without the DAC capabilities (setpriv)."""
    _skip_as_root()
    return unreadable_file(tmp)


def make_calibration_folder_unreadable(tmp: Path) -> Case:
    _skip_as_root()
    return unreadable_folder(tmp)


# --- calibration: images --------------------------------------------------------------------------

_PREPROCESS = 'size = [16, 16]\nlayout = "nchw"\nchannels = "rgb"\nscale = 0.00392156862745098\n'


def _image_folder(tmp: Path, preprocess: str = _PREPROCESS) -> Path:
    from PIL import Image

    d = tmp / "calib"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"img_{i}.png")
    (d / "preprocess.toml").write_text(preprocess, encoding="utf-8")
    return d


def make_png_15000x15000(tmp: Path) -> Case:
    d = _image_folder(tmp)
    (d / "huge.png").write_bytes(png_header_only(15000, 15000))
    return Case(_build(tmp, d), 3, "huge.png: the image is 225,000,000 pixels, more than the limit of 89,478,485")


def make_png_10000x10000(tmp: Path) -> Case:
    """Between Pillow's warning and its error: edgepack refuses it from the header, with the size."""
    d = _image_folder(tmp)
    (d / "big.png").write_bytes(png_header_only(10000, 10000))
    return Case(_build(tmp, d), 3, "big.png: the image is 10000x10000 = 100,000,000 pixels")


def make_png_corrupt(tmp: Path) -> Case:
    d = _image_folder(tmp)
    (d / "img_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return Case(_build(tmp, d), 3, "img_1.png: cannot decode the image")


# --- calibration: labels, targets, preprocess.toml ------------------------------------------------


def make_labels_not_utf8(tmp: Path) -> Case:
    d = _folder(tmp)
    (d / "labels.txt").write_bytes("cat\ndog\n".encode() + b"caf\xe9\n")
    return Case(_build(tmp, d), 3, "labels.txt: not UTF-8 text (byte 0xe9 at byte offset 11)")


def make_labels_3_for_10_classes(tmp: Path) -> Case:
    d = _folder(tmp)
    (d / "labels.txt").write_text("a\nb\nc\n", encoding="utf-8")
    return Case(_build(tmp, d), 3, "labels.txt: has 3 class names, but the model's class-score output")


def make_labels_25_for_10_classes(tmp: Path) -> Case:
    d = _folder(tmp)
    (d / "labels.txt").write_text("".join(f"c{i}\n" for i in range(25)), encoding="utf-8")
    return Case(_build(tmp, d), 3, "labels.txt: has 25 class names")


def make_targets_negative(tmp: Path) -> Case:
    d = _folder(tmp)
    np.save(d / "targets.npy", np.array([0, 1, 2, -3, 4, 5, 6, 7]))
    return Case(_build(tmp, d), 3, "targets.npy: class id -3 at position 3 is negative")


def make_targets_out_of_range(tmp: Path) -> Case:
    d = _folder(tmp)
    np.save(d / "targets.npy", np.array([0, 1, 2, 3, 4, 5, 6, 10]))
    return Case(_build(tmp, d), 3, "targets.npy: class id 10 is out of range; the model's output 'logits' has 10 classes")


def make_targets_not_integers(tmp: Path) -> Case:
    d = _folder(tmp)
    np.save(d / "targets.npy", np.arange(8) + 0.5)
    return Case(_build(tmp, d), 3, "targets.npy: must be a 1-D integer array")


def _with_preprocess(tmp: Path, extra: str) -> Path:
    d = _folder(tmp)
    (d / "preprocess.toml").write_text(_PREPROCESS + extra, encoding="utf-8")
    return d


def make_preprocess_std_negative(tmp: Path) -> Case:
    return Case(_build(tmp, _with_preprocess(tmp, "std = [-1.0, 1.0, 1.0]\n")), 2, "preprocess.toml: 'std' must be positive finite numbers")


def make_preprocess_std_zero(tmp: Path) -> Case:
    return Case(_build(tmp, _with_preprocess(tmp, "std = [0.0, 1.0, 1.0]\n")), 2, "preprocess.toml: 'std' must be positive finite numbers")


def make_preprocess_mean_nan(tmp: Path) -> Case:
    return Case(_build(tmp, _with_preprocess(tmp, "mean = [nan, 0.0, 0.0]\n")), 2, "preprocess.toml: 'mean' must be finite numbers")


def make_preprocess_scale_zero(tmp: Path) -> Case:
    d = _folder(tmp)
    (d / "preprocess.toml").write_text(_PREPROCESS.replace("scale = 0.00392156862745098", "scale = 0"), encoding="utf-8")
    return Case(_build(tmp, d), 2, "preprocess.toml: 'scale' must be a positive finite number")


# --- profiles -------------------------------------------------------------------------------------


def _bad_profile(tmp: Path, body: str) -> Case:
    prof = _profile(tmp, body)
    return Case(_build(tmp, tiny_files()["calib"], prof), 2, str(prof))


def _fast(extra_top: str = "", extra: str = "", name: str = 'name = "t"\n') -> str:
    return f'{name}{extra_top}threads = 1\n[formats.ort]\nprecisions = ["fp32"]\n[latency]\nwarmup = 1\nruns = 2\n{extra}'


def _case(tmp: Path, body: str, text: str) -> Case:
    """The error names the profile file first, then `text`."""
    c = _bad_profile(tmp, body)
    c.expect_text = f"{c.expect_text}: {text}"
    return c


def make_profile_threads_2_pow_63(tmp: Path) -> Case:
    return _case(tmp, _fast().replace("threads = 1", f"threads = {2**63 - 1}"), "key 'threads' is 9223372036854775807; it must be 1..64")


def make_profile_threads_10000(tmp: Path) -> Case:
    return _case(tmp, _fast().replace("threads = 1", "threads = 10000"), "key 'threads' is 10000; it must be 1..64")


def make_profile_latency_runs_1e11(tmp: Path) -> Case:
    return _case(tmp, _fast().replace("runs = 2", "runs = 100000000000"), "key 'latency.runs' is 100000000000; it must be 0..10,000")


def make_profile_latency_runs_float(tmp: Path) -> Case:
    return _case(tmp, _fast().replace("runs = 2", "runs = 1e11"), "key 'latency.runs' must be int")


def make_profile_warmup_huge(tmp: Path) -> Case:
    return _case(tmp, _fast().replace("warmup = 1", "warmup = 1000000"), "key 'latency.warmup' is 1000000; it must be 0..1,000")


def make_profile_max_samples_huge(tmp: Path) -> Case:
    return _case(tmp, _fast(extra="[validation]\nmax_samples = 1000000000\n"), "key 'validation.max_samples' is 1000000000; it must be 1..100,000")


def make_profile_calibration_samples_zero(tmp: Path) -> Case:
    return _case(tmp, _fast(extra="[quantization]\ncalibration_samples = 0\n"), "key 'quantization.calibration_samples' must be > 0")


def make_profile_max_calibration_mb_zero(tmp: Path) -> Case:
    return _case(tmp, _fast(extra="[validation]\nmax_calibration_mb = 0\n"), "key 'validation.max_calibration_mb' must be > 0")


def make_profile_name_report_json(tmp: Path) -> Case:
    return _case(tmp, _fast(name='name = "report.json"\n'), "'name' is 'report.json', a file edgepack writes in --out")


def make_profile_name_manifest_json_upper(tmp: Path) -> Case:
    return _case(tmp, _fast(name='name = "MANIFEST.json"\n'), "'name' is 'MANIFEST.json', a file edgepack writes")


def make_profile_name_hidden(tmp: Path) -> Case:
    return _case(tmp, _fast(name='name = ".edgepack-output.json"\n'), "'name' is '.edgepack-output.json'; it names the target's output folder")


def make_profile_name_trailing_newline(tmp: Path) -> Case:
    return _case(tmp, _fast(name='name = "nl\\n"\n'), "'name' is 'nl\\n'")


def make_profile_name_too_long(tmp: Path) -> Case:
    return _case(tmp, _fast(name=f'name = "{"n" * 300}"\n'), f"'name' is '{'n' * 300}'; it names the target's output folder, so use 1 to 100 letters")


def make_profile_description_multiline(tmp: Path) -> Case:
    return _case(tmp, _fast(extra_top='description = """two\nlines"""\n'), "key 'description' must be a single line")


def make_profile_device_control_char(tmp: Path) -> Case:
    return _case(tmp, _fast(extra_top='device = "phone\\u001b[31m"\n'), "key 'device' must be a single line")


def make_profile_precisions_nested_list(tmp: Path) -> Case:
    return _case(tmp, _fast().replace('precisions = ["fp32"]', "precisions = [[1]]"), "formats.ort.precisions must be a list of names")


def make_profile_not_utf8(tmp: Path) -> Case:
    prof = tmp / "bad.toml"
    prof.write_bytes(_fast().encode() + b"# caf\xe9\n")
    return Case(_build(tmp, tiny_files()["calib"], prof), 2, "bad.toml: not UTF-8 text (byte offset")


def make_target_name_typo(tmp: Path) -> Case:
    argv = _build(tmp, tiny_files()["calib"])
    argv[argv.index("-t") + 1] = "iphne"
    return Case(argv, 2, "unknown target 'iphne'; did you mean 'iphone'?")


def _coreml_profile(tmp: Path, block: int) -> Path:
    return _profile(
        tmp,
        f'name = "c"\nthreads = 1\n[formats.coreml]\nprecisions = ["int4_weights"]\ndeployment_target = "iOS18"\nint4_block_size = {block}\n',
    )


def make_coreml_int4_block_size_zero(tmp: Path) -> Case:
    prof = _coreml_profile(tmp, 0)
    return Case(_build(tmp, tiny_files()["calib"], prof, model="pt2"), 2, f"{prof}: int4_block_size = 0 in [formats.coreml]")


def make_coreml_int4_block_size_divides_nothing(tmp: Path) -> Case:
    prof = _coreml_profile(tmp, 7)
    return Case(
        _build(tmp, tiny_files()["calib"], prof, model="pt2"), 2, "'fc.weight' (10, 1024) has 1024), so int4_weights would compress nothing"
    )


CALIBRATION_CASES = [
    make_npz_member_without_npy_name,
    make_npz_member_nested_text,
    make_npy_header_claims_160_tib,
    make_npz_header_claims_160_tib,
    make_npz_zeros_bomb,
    make_npz_truncated,
    make_npy_named_npz,
    make_npy_of_strings,
    make_npy_pickled_objects,
    make_npy_symlink_to_etc_shadow,
    make_npy_symlink_to_dev_zero,
    make_npz_fifo,
    make_calibration_path_too_long,
    make_calibration_file_unreadable,
    make_calibration_folder_unreadable,
    make_png_15000x15000,
    make_png_10000x10000,
    make_png_corrupt,
    make_labels_not_utf8,
    make_labels_3_for_10_classes,
    make_labels_25_for_10_classes,
    make_targets_negative,
    make_targets_out_of_range,
    make_targets_not_integers,
    make_preprocess_std_negative,
    make_preprocess_std_zero,
    make_preprocess_mean_nan,
    make_preprocess_scale_zero,
]

PROFILE_CASES = [
    make_profile_threads_2_pow_63,
    make_profile_threads_10000,
    make_profile_latency_runs_1e11,
    make_profile_latency_runs_float,
    make_profile_warmup_huge,
    make_profile_max_samples_huge,
    make_profile_calibration_samples_zero,
    make_profile_max_calibration_mb_zero,
    make_profile_name_report_json,
    make_profile_name_manifest_json_upper,
    make_profile_name_hidden,
    make_profile_name_trailing_newline,
    make_profile_name_too_long,
    make_profile_description_multiline,
    make_profile_device_control_char,
    make_profile_precisions_nested_list,
    make_profile_not_utf8,
    make_target_name_typo,
    make_coreml_int4_block_size_zero,
    make_coreml_int4_block_size_divides_nothing,
]

def restore_permissions(tmp: Path) -> None:
    """Undo chmod 000 so that pytest can remove tmp."""
    for root, dirs, _files in os.walk(tmp):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o755)
            except OSError:
                pass
    for p in Path(tmp).rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                p.chmod(0o644)
        except OSError:
            pass
