"""The software stack: RecBole 1.2.1 under NumPy 2 (the alias shim), its requirements, the install message."""

import os
import re
import subprocess
import sys
import sysconfig
from importlib import metadata

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


# ---------------------------------------------------------------------------------- the NumPy shim
def test_recbole_config_builds_under_numpy_2(tmp_path, monkeypatch):
    """RecBole's own ``Config`` (not only the plugin's) builds once the shim is in place."""
    from recbole.config import Config as RecBoleConfig

    from recbole_finest.compat.registry import register

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    if NUMPY_2:  # what RecBole 1.2.1's compatibility_settings assigns from is gone
        assert not hasattr(np, "float_") and not hasattr(np, "unicode_") and not hasattr(np, "complex_")
    register()
    config = RecBoleConfig(model="SASRec", dataset="ml-100k",
                           config_dict={"show_progress": False, "train_neg_sample_args": None})
    assert config["model"] == "SASRec" and config["topk"] == [10]


def test_aliases_map_to_the_types_numpy_1_had():
    from recbole_finest.compat.stack import set_numpy_aliases

    set_numpy_aliases()
    assert set_numpy_aliases() == []  # idempotent: nothing left to add
    assert np.float is np.float64 and np.int is np.int_ and np.long is np.int_
    assert np.complex is np.complex128 and np.object is np.object_ and np.str is np.str_ and np.unicode is np.str_
    assert np.dtype(np.bool) == np.dtype(bool)


def test_recbole_metric_functions_resolve_their_aliases():
    """RecBole's MRR / NDCG / MAP read ``np.float`` when called; values by hand.

    One user, 3 ranked items, the 2nd and 3rd relevant (2 relevant items in all).
    """
    from recbole.evaluator import metrics as rb_metrics

    from recbole_finest.compat.registry import register

    register()
    hits = np.array([[False, True, True]])
    mrr = rb_metrics.MRR.metric_info(None, hits)
    assert mrr.tolist() == [[0.0, 0.5, 0.5]]
    ndcg = rb_metrics.NDCG.metric_info(None, hits, np.array([2]))
    d2 = 1 / np.log2(3)  # gain of the hit at rank 2; rank 3 adds 1/log2(4) = 1/2
    assert ndcg[0] == pytest.approx([0.0, d2 / (1 + d2), (d2 + 0.5) / (1 + d2)])
    ap = rb_metrics.MAP.metric_info(None, hits, np.array([2]))
    assert ap[0] == pytest.approx([0.0, (1 / 2) / 2, (1 / 2 + 2 / 3) / 2])
    # GAUC builds a boolean mask with np.bool. 2 users of 3 items, 2 positives each, ranked
    # (descending) 1st + 2nd (AUC 1) and 1st + 3rd (AUC 1/2); weighted by positives: 0.75
    gauc = rb_metrics.GAUC.metric_info(None, np.array([3, 4]), np.array([3, 3]), np.array([2, 2]))
    assert gauc == pytest.approx(0.75)


# ---------------------------------------------------------------------------------- requirements
def _requirements(dist):
    """``dist``'s requirements as installed in site-packages (not a stale ``*.egg-info`` of the checkout)."""
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    found = next(iter(metadata.distributions(name=dist, path=site)))
    return [Requirement(r) for r in found.requires or [] if "extra ==" not in r]


def test_recbole_requirements_are_listed_without_the_ray_pin():
    """setup.py lists RecBole 1.2.1's own requirements (RecBole itself is installed --no-deps) but Ray."""
    ours = {}
    for req in _requirements("recbole-finest"):  # a name listed twice (pandas) holds both bounds
        ours[req.name.lower()] = ours.get(req.name.lower(), SpecifierSet()) & req.specifier
    assert "recbole" not in ours
    for req in _requirements("recbole"):
        name = req.name.lower()
        assert name in ours, f"RecBole requires {req} and setup.py does not list {name}"
        if name in ("colorlog", "colorama"):  # RecBole's exact pins are lower bounds here
            pinned = next(iter(req.specifier)).version
            assert ours[name].contains(pinned) and ours[name].contains("99.0"), f"{name}: ours {ours[name]}"
        elif name not in ("ray", "numpy", "torch"):  # ours: ray >= 2.41, numpy >= 2, torch >= 2.5
            assert set(req.specifier) <= set(ours[name]), f"{name}: RecBole {req.specifier}, ours {ours[name]}"
    assert not ours["ray"].contains("2.6.3") and ours["ray"].contains("2.60.0")
    # pandas 3 is allowed: recbole_finest.compat.stack fixes RecBole's dataset code for it
    assert not ours["numpy"].contains("1.26.4") and ours["pandas"].contains("3.1.1")


def test_installed_stack_meets_setup_py():
    """Every requirement of the plugin is met by what pip installed (RecBole's Ray pin is not ours).

    Read from this environment's site-packages: once Ray is started, ``sys.path`` also holds
    Ray's vendored ``thirdparty_files`` (its own colorama, ...), which pip does not manage.
    """
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for req in _requirements("recbole-finest"):
        version = next(iter(metadata.distributions(name=req.name, path=site))).version
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} does not meet {req}"


def test_missing_recbole_names_the_install_step():
    """``import recbole_finest`` where RecBole is not installed: one error naming the command."""
    code = ("import sys; sys.path = [p for p in sys.path if 'site-packages' not in p and 'dist-packages' not in p]; "
            f"sys.path.insert(0, {REPO_ROOT!r}); import recbole_finest")
    no_hook = {**os.environ, "RECBOLE_FINEST_NO_HOOK": "1"}  # the start-up hook would import the plugin first
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=no_hook)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install --no-deps recbole==1.2.1" in out.stderr
    assert "docs/install.md" in out.stderr
    assert re.search(r"ray<=2\.6\.3", out.stderr)


# ---------------------------------------------------------------------------------- torch.amp, Ray
def test_recbole_amp_uses_torch_amp():
    """RecBole's trainer module builds its GradScaler / autocast through torch.amp (no deprecation warning)."""
    import warnings

    import recbole.trainer.trainer as trainer_module
    import torch

    from recbole_finest.compat import stack

    stack.apply()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.cuda.amp.GradScaler(...) warns FutureWarning
        scaler = trainer_module.amp.GradScaler(enabled=False)
        with trainer_module.amp.autocast(enabled=False):
            pass
    assert isinstance(scaler, torch.amp.GradScaler) and not scaler.is_enabled()


def test_recbole_tune_report_reaches_ray_in_its_new_form(monkeypatch):
    """RecBole's objective_function calls tune.report(**metrics); Ray >= 2.41 takes report(metrics)."""
    import ray.tune

    import recbole.quick_start.quick_start as quick_start
    from recbole_finest.compat import stack

    stack.apply()
    calls = []

    def report(metrics, *, checkpoint=None):  # Ray >= 2.41's signature
        calls.append(metrics)

    monkeypatch.setattr(ray.tune, "report", report)
    quick_start.tune.report(**{"recall@10": 0.5, "mrr@10": 0.25})
    assert calls == [{"recall@10": 0.5, "mrr@10": 0.25}]
