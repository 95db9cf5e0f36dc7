"""Profile keys of the cell grid: [limits] cell_timeout_s and input_shapes."""
import pytest

from conftest import write_profile
from edgepack.errors import ConfigError
from edgepack.profiles import load_profile

BASE = 'name = "t"\n[formats.ort]\nprecisions = ["fp32"]\n'


def test_defaults_and_values(tmp_path):
    p = load_profile(write_profile(tmp_path / "a.toml", BASE))
    assert p.limits.cell_timeout_s == 1800.0 and p.input_shapes == {}
    p = load_profile(write_profile(tmp_path / "b.toml", 'input_shapes = { x = [1, 3, 48, 192] }\n' + BASE + "[limits]\ncell_timeout_s = 60\n"))
    assert p.limits.cell_timeout_s == 60.0 and p.input_shapes == {"x": (1, 3, 48, 192)}
    assert p.to_json()["input_shapes"] == {"x": [1, 3, 48, 192]} and p.to_json()["limits"] == {"cell_timeout_s": 60.0}


@pytest.mark.parametrize(
    "body, text",
    [
        ('input_shapes = { x = [1, 0] }\n', "'input_shapes.x' must be a list of positive sizes"),
        ('input_shapes = { x = "1,3" }\n', "'input_shapes.x' must be a list of positive sizes"),
        (BASE + "[limits]\ncell_timeout_s = 0\n", "'limits.cell_timeout_s' must be > 0"),
        (BASE + "[limits]\ncell_timeout_s = 1e9\n", "limits.cell_timeout_s' is 1000000000.0; it must be 1..86,400"),
        (BASE + "[limits]\ntimeout = 5\n", "unknown key 'limits.timeout'"),
    ],
)
def test_bad_values_are_refused(tmp_path, body, text):
    if "formats" not in body:
        body = body + BASE
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_profile(write_profile(tmp_path / "p.toml", body))
