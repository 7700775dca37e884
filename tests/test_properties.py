"""The plugin's YAML properties: found in a checkout and in a wheel layout, shipped, documented."""

import ast
import importlib.util
import os
import re
import shutil
from pathlib import Path

import yaml

from recbole_finest.config import Config, properties_dir

REPO = Path(__file__).resolve().parents[1]
PROPERTIES = REPO / "properties"


def _all_property_files():
    return sorted(
        str(p.relative_to(PROPERTIES)) for p in PROPERTIES.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    )


def _setup_property_files():
    """Run ``property_files()`` from setup.py without running ``setup()``."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "property_files")
    namespace = {"os": os}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "setup.py", "exec"), namespace)
    old = os.getcwd()
    os.chdir(REPO)  # setup.py runs from the repository root
    try:
        return sorted(namespace["property_files"]())
    finally:
        os.chdir(old)


def test_properties_dir_in_source_checkout():
    assert Path(properties_dir()) == PROPERTIES.resolve()
    assert (Path(properties_dir()) / "overall" / "finest.yaml").is_file()


def test_properties_dir_in_wheel_layout(tmp_path):
    """Installed: ``recbole_finest/properties`` next to ``config.py`` (setup.py's package_dir)."""
    package = tmp_path / "site-packages" / "recbole_finest"
    (package / "properties" / "overall").mkdir(parents=True)
    shutil.copy(REPO / "recbole_finest" / "config.py", package / "config.py")
    spec = importlib.util.spec_from_file_location("wheel_config", package / "config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert Path(module.properties_dir()) == (package / "properties").resolve()


def test_setup_ships_every_properties_file():
    files = _all_property_files()
    assert "overall/finest.yaml" in files
    assert _setup_property_files() == files


def _plugin_defaults():
    defaults = {}
    for name in ("finest.yaml", "update.yaml"):
        with open(PROPERTIES / "overall" / name, encoding="utf-8") as f:
            defaults.update(yaml.safe_load(f))
    return defaults


def test_every_plugin_default_reaches_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True})
    ml100k = yaml.safe_load((PROPERTIES / "dataset" / "ml-100k.yaml").read_text(encoding="utf-8"))
    for key, value in _plugin_defaults().items():
        if key in ml100k or key == "finest_protocol":  # the protocol is given (it sets train_neg_sample_args)
            continue
        if key == "train_neg_sample_args":  # RecBole expands it; ~ means no negative sampling
            assert config[key]["distribution"] == "none"
            continue
        assert config[key] == value, key


def test_every_plugin_key_is_documented():
    """docs/config.md has a table row ``| `key` | default | ...`` for every key of finest.yaml."""
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*`([A-Za-z_][\w]*)`\s*\|\s*([^|]*?)\s*\|", doc, flags=re.M))
    missing = [k for k in _plugin_defaults() if k not in rows]
    assert not missing, f"keys of properties/overall/finest.yaml without a row in docs/config.md: {missing}"
    for key, value in _plugin_defaults().items():
        shown = rows[key].strip("`")
        assert yaml.safe_load(shown) == value or (value is None and shown in ("~", "None", "null")), (key, shown)
