"""Tolerances keyed by precision, format and output (issue #10): precedence, sources, errors."""
import pytest

from edgepack.errors import ConfigError
from edgepack.profiles import DEFAULT_TOLERANCES, load_profile
from edgepack.validate.tolerances import check_output_names

BASE = """
name = "t"
[formats.ort]
precisions = ["fp32", "fp16", "int8"]
[formats.tflite]
precisions = ["fp16", "int8", "dynamic_int8"]
"""


def _load(tmp_path, extra):
    p = tmp_path / "t.toml"
    p.write_text(BASE + extra, encoding="utf-8")
    return load_profile(p)


def test_most_specific_level_wins_per_key(tmp_path):
    prof = _load(tmp_path, """
[tolerances.int8]
min_cosine = 0.98
min_top1_agreement = 0.9
[tolerances.int8.tflite]
min_cosine = 0.97
[tolerances.int8.outputs.boxes]
min_sqnr_db = 25
max_abs = 0.5
[tolerances.int8.tflite.outputs.boxes]
max_abs = 0.75
""")
    src = {k: (t.value, t.source) for k, t in prof.tolerance_sources("int8", format="tflite", output="boxes").items()}
    assert src == {
        "min_cosine": (0.97, "tolerances.int8.tflite"),
        "min_top1_agreement": (0.9, "tolerances.int8"),
        "min_sqnr_db": (25.0, "tolerances.int8.outputs.boxes"),
        "max_abs": (0.75, "tolerances.int8.tflite.outputs.boxes"),
    }
    assert prof.tolerance_for("int8", format="ort", output="boxes") == {"min_cosine": 0.98, "min_top1_agreement": 0.9, "min_sqnr_db": 25.0, "max_abs": 0.5}
    assert prof.tolerance_for("int8", format="ort", output="scores") == {"min_cosine": 0.98, "min_top1_agreement": 0.9}
    assert prof.tolerance_for("int8") == {"min_cosine": 0.98, "min_top1_agreement": 0.9}  # the old call still works
    assert prof.to_json()["tolerance_overrides"]["int8.tflite.outputs.boxes"] == {"max_abs": 0.75}


def test_format_and_output_tables_stack_on_the_defaults(tmp_path):
    """Only nested tables: edgepack's defaults stay the base, overridden key by key."""
    prof = _load(tmp_path, """
[tolerances.fp16.ort.outputs.logits]
max_abs = 0.2
""")
    got = prof.tolerance_sources("fp16", format="ort", output="logits")
    assert got["max_abs"].value == 0.2 and got["max_abs"].source == "tolerances.fp16.ort.outputs.logits"
    assert got["min_cosine"].value == DEFAULT_TOLERANCES["fp16"]["min_cosine"]
    assert got["min_cosine"].source.startswith("defaults.fp16")
    assert prof.tolerance_for("fp16", format="tflite", output="logits")["max_abs"] != 0.2
    dyn = prof.tolerance_sources("dynamic_int8", format="tflite")  # the plug-in's own default, named as such
    assert dyn["min_cosine"].value == 0.99 and dyn["min_cosine"].source == "defaults.dynamic_int8.tflite"


def test_tflite_fp16_default_differs_from_compute_fp16(tmp_path):
    """tflite fp16 is weight-only (fp32 compute): its default is the plug-in's, not the compute formats'."""
    prof = _load(tmp_path, "")
    tfl, ort = prof.tolerance_sources("fp16", format="tflite"), prof.tolerance_sources("fp16", format="ort")
    assert ort["min_cosine"].source == "defaults.fp16" and ort["min_cosine"].value == 0.999
    assert tfl["min_cosine"].source == "defaults.fp16.tflite" and tfl["min_cosine"].value > ort["min_cosine"].value


@pytest.mark.parametrize(
    "extra, message",
    [
        ("[tolerances.int8.tflit]\nmin_cosine = 0.9\n", "unknown key 'tolerances.int8.tflit'; allowed keys in tolerances.int8 are: "),
        ("[tolerances.int8_weights.tflite]\nmin_cosine = 0.9\n", "unknown key 'tolerances.int8_weights.tflite'; allowed keys in tolerances.int8_weights are: "),
        ("[tolerances.int8.outputs.boxes]\nmin_cosin = 0.9\n", "unknown key 'tolerances.int8.outputs.boxes.min_cosin'"),
        ("[tolerances.int8.ort.outputs.boxes]\nmin_cosine = 1.5\n", "key 'tolerances.int8.ort.outputs.boxes.min_cosine' is 1.5; it must be between 0 and 1"),
        ("[outputs.boxes]\nkind = \"box\"\n", "key 'outputs.boxes.kind' has 'box'; choose from: class_scores, probabilities, boxes"),
        ("[validation]\nmin_samples = 0\n", "key 'validation.min_samples' must be > 0, got 0"),
    ],
)
def test_profile_mistakes_are_one_line_config_errors(tmp_path, extra, message):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, extra)
    text = str(exc.value)
    assert message in text and "\n" not in text and text.startswith(str(tmp_path / "t.toml"))


def test_output_names_are_checked_against_the_model(tmp_path):
    prof = _load(tmp_path, "[outputs.boxes]\nkind = \"boxes\"\n[tolerances.int8.ort.outputs.scors]\nmin_cosine = 0.9\n")
    assert prof.output_kinds == {"boxes": "boxes"} and prof.validation.min_samples == 8
    with pytest.raises(ConfigError) as exc:
        check_output_names([prof], ["scores", "boxes"], "det.onnx")
    assert str(exc.value) == (
        f"{tmp_path / 't.toml'}: key 'tolerances.int8.ort.outputs.scors' names output 'scors', which det.onnx does not have; "
        "did you mean 'scores'? its outputs are: scores, boxes"
    )
    check_output_names([prof], ["scors", "boxes"], "det.onnx")  # no error
