import pytest

from edgepack.errors import ConfigError, ExitCode
from edgepack.profiles import DEFAULT_TOLERANCES, load_profile, resolve_profile, shipped_profiles

MINIMAL = """
name = "t"
threads = 2
[formats.ort]
precisions = ["fp32", "int8"]
"""


def test_shipped_profiles_load_and_cover_android_and_linux():
    profiles = {p.name: p for p in shipped_profiles()}
    assert {"android-arm64", "linux-arm64"} <= set(profiles)
    android = profiles["android-arm64"]
    assert android.threads == 4
    assert [f.name for f in android.formats][0] == "ort"
    assert android.tolerance_for("fp32")["max_abs"] == 1e-4
    assert android.tolerance_for("int8")["min_cosine"] == 0.99
    assert profiles["linux-arm64"].formats[0].options["mobile_eps"] == []


def test_resolve_by_name_and_by_path(tmp_path):
    assert resolve_profile("android-arm64").name == "android-arm64"
    p = tmp_path / "mine.toml"
    p.write_text(MINIMAL)
    prof = resolve_profile(str(p))
    assert prof.name == "t" and prof.threads == 2
    assert prof.formats[0].precisions == ("fp32", "int8")
    assert prof.formats[0].options["target_platform"] == "arm"  # the format's default
    assert prof.quantization.method == "minmax" and prof.quantization.per_channel is True
    assert prof.tolerance_for("int8") == DEFAULT_TOLERANCES["int8"]


def test_unknown_target_name_lists_shipped():
    with pytest.raises(ConfigError) as e:
        resolve_profile("no-such-phone")
    assert "android-arm64" in str(e.value) and "linux-arm64" in str(e.value)
    assert e.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "extra, key, allowed",
    [
        ("thread = 4", "'thread'", "threads"),
        ("[quantization]\nmethd = 'minmax'", "'quantization.methd'", "method"),
        ("[tolerances.int8]\nmin_cosin = 0.9", "'tolerances.int8.min_cosin'", "min_cosine"),
        ("[budgets]\nmax_size = 3", "'budgets.max_size'", "max_size_mb"),
    ],
)
def test_unknown_key_names_key_and_allowed(tmp_path, extra, key, allowed):
    p = tmp_path / "bad.toml"
    p.write_text(extra + "\n" + MINIMAL if not extra.startswith("[") else MINIMAL + extra)
    with pytest.raises(ConfigError) as e:
        load_profile(p)
    msg = str(e.value)
    assert str(p) in msg and key in msg and allowed in msg
    assert "\n" not in msg


def test_unknown_format_option_and_precision(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[formats.ort]\nprecisions = ["fp32"]\nplatform = "arm"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'formats.ort.platform'.*target_platform"):
        load_profile(p)
    p.write_text('[formats.ort]\nprecisions = ["int3"]\n')
    with pytest.raises(ConfigError, match=r"precision 'int3'.*fp32, fp16, int8"):
        load_profile(p)
    p.write_text('[formats.nope]\nprecisions = ["fp32"]\n')
    with pytest.raises(ConfigError, match=r"unknown key 'formats.nope'; allowed formats are: .*ort"):
        load_profile(p)


def test_wrong_types_and_ranges(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('threads = "four"\n' + MINIMAL.replace("threads = 2\n", ""))
    with pytest.raises(ConfigError, match="'threads' must be int"):
        load_profile(p)
    p.write_text(MINIMAL + "[quantization]\nmethod = 'distribution'\n")
    with pytest.raises(ConfigError, match="minmax, percentile, entropy"):
        load_profile(p)
    p.write_text(MINIMAL + "[validation]\nsplit = 1.5\n")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        load_profile(p)
    p.write_text(MINIMAL + "[formats.ort.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(p)
