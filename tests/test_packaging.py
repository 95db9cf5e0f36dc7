"""The wheel must carry every package and the shipped target profiles."""
import tomllib

from conftest import ROOT


def test_pyproject_lists_every_package():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "edgepack").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    listed = set(conf["packages"])
    assert found <= listed, f"add to pyproject [tool.setuptools] packages: {sorted(found - listed)}"
    assert conf["package-dir"]["edgepack._targets"] == "targets"
    assert sorted(p.name for p in (ROOT / "targets").glob("*.toml"))
