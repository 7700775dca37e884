"""Per-method tuning (recbole_finest.tune_methods): each method's space, the chosen-settings YAML, end to end."""

import glob
import json
import os
import sys

import pytest
import yaml

ray = pytest.importorskip("ray")

from test_tune import write_tiny_config, write_tiny_dataset  # noqa: E402

from recbole_finest.config import properties_dir, run_config  # noqa: E402
from recbole_finest.finest.method_config import method_overrides  # noqa: E402
from recbole_finest.methods import METHODS  # noqa: E402
from recbole_finest.tune import load_search_space  # noqa: E402
from recbole_finest.tune.methods import LEARNING_RATE, method_space, methods_yaml, run_tune_methods  # noqa: E402

SPACE = os.path.join(properties_dir(), "tune", "methods.yaml")
KNOBS = {"finest": "finest_lambda", "finest_no_sim": "finest_lambda", "finest_no_reg": "finest_sim_ratio",
         "random": "finest_sim_ratio", "acae": "adv_eps", "apr_pgd": "adv_eps", "apr_fgsm": "adv_eps",
         "pamacf": "pamacf_rho", "vat": "vat_rho", "apt": "apt_fake_users"}


@pytest.fixture(scope="module")
def space():
    """The bundled per-method search space, read against a plain plugin ``Config``."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return load_search_space(SPACE, run_config("SASRec", "ml-100k", config_dict={"show_progress": False}))
    finally:
        sys.argv = argv


def test_each_method_searches_exactly_its_learning_rate_and_strength_knob(space):
    for method, knob in KNOBS.items():
        sub = method_space(space, method)
        assert set(sub) == {LEARNING_RATE, knob}, method
        assert sub[knob] == space[knob] and sub[LEARNING_RATE] == space[LEARNING_RATE]
    # every method with fine-tuning has a knob the bundled file covers
    for name, method in METHODS.items():
        if name != "original":
            assert set(method_space(space, name)) == {LEARNING_RATE, method.strength}
    with pytest.raises(ValueError, match="original has no fine-tuning settings"):
        method_space(space, "original")
    with pytest.raises(ValueError, match="vat needs a range for vat_rho"):
        method_space({LEARNING_RATE: space[LEARNING_RATE]}, "vat")


def test_chosen_settings_yaml_is_a_study_method_config(tmp_path, monkeypatch):
    chosen = [{"model": "SASRec", "method": "acae", "params": {LEARNING_RATE: 0.002, "adv_eps": 0.07}},
              {"model": "SASRec", "method": "finest", "params": {LEARNING_RATE: 0.0004, "finest_lambda": 5.0}},
              {"model": "BERT4Rec", "method": "acae", "params": {LEARNING_RATE: 0.0001, "adv_eps": 0.3}}]
    path = tmp_path / "methods.yaml"
    path.write_text(methods_yaml(chosen, ["a header"]))
    assert path.read_text().startswith("# a header\n")
    monkeypatch.chdir(tmp_path)
    config = run_config("SASRec", "ml-100k", config_file_list=[str(path)], config_dict={"show_progress": False})
    assert method_overrides(config) == {"acae": {LEARNING_RATE: 0.002, "adv_eps": 0.07},
                                        "finest": {LEARNING_RATE: 0.0004, "finest_lambda": 5.0}}
    assert method_overrides(config, "BERT4Rec") == {"acae": {LEARNING_RATE: 0.0001, "adv_eps": 0.3}}


def _trial_methods(search_folder):
    """``finetune_method`` that every trial of a Ray search reported (Ray's per-trial result.json)."""
    out = []
    for path in glob.glob(os.path.join(search_folder, "trial_*", "result.json")):
        with open(path) as f:
            out += [json.loads(line)["finetune_method"] for line in f if line.strip()]
    return out


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tune_methods"))
    write_tiny_dataset(root)
    config_file = write_tiny_config(root)
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = argv[:1]
    overrides = {"tune_methods": ["finest", "acae"], "tune_name": "paper"}
    try:
        first = run_tune_methods("SASRec", "tiny", [config_file], overrides)
        from recbole_finest.tune import driver

        real, driver.run_tune = driver.run_tune, lambda *a, **k: pytest.fail("searched again")
        try:
            again = run_tune_methods("SASRec", "tiny", [config_file], overrides)
        finally:
            driver.run_tune = real
    finally:
        os.chdir(cwd)
        sys.argv = argv
        ray.shutdown()
    return {"root": root, "first": first, "again": again, "config_file": config_file}


def test_every_method_is_searched_over_its_own_space(tuned, space):
    first = tuned["first"]
    assert first["searched"] == [("SASRec", "finest"), ("SASRec", "acae")]
    for record in first["chosen"]:
        method = record["method"]
        assert set(record["params"]) == {LEARNING_RATE, KNOBS[method]}
        for key, value in record["params"].items():  # inside the file's loguniform range
            low, high = space[key]["loguniform"]
            assert low <= value <= high
        with open(os.path.join(record["search"], "search_space.yaml")) as f:
            assert set(yaml.safe_load(f)) == {LEARNING_RATE, KNOBS[method]}
        trials = _trial_methods(record["search"])
        assert trials and set(trials) == {method}


def test_methods_yaml_holds_the_chosen_settings_and_resume_skips_finished_searches(tuned, monkeypatch):
    first, again = tuned["first"], tuned["again"]
    assert again["searched"] == [] and again["chosen"] == first["chosen"]
    with open(first["methods_yaml"]) as f:
        loaded = yaml.safe_load(f)
    assert loaded == {"study_method_config": {"SASRec": {r["method"]: r["params"] for r in first["chosen"]}}}
    monkeypatch.chdir(tuned["root"])
    config = run_config("SASRec", "tiny", config_file_list=[tuned["config_file"], first["methods_yaml"]])
    assert method_overrides(config) == {r["method"]: r["params"] for r in first["chosen"]}


def test_only_complete_searches_are_chosen(tmp_path, monkeypatch):
    """An interrupted search (fewer finished trials than the budget) is not chosen, so a rerun searches it again."""
    from recbole_finest.tune import cluster, driver
    from recbole_finest.tune.methods import expected_trials

    assert expected_trials({"a": {"grid": [1, 2, 3]}, "b": {"loguniform": [0.1, 1.0]}, "c": 4}, 2) == 6
    n_rows = {"acae": 1, "vat": 2}  # acae: 1 of 2 trials reported (interrupted); vat complete
    calls = []

    def fake_run_tune(model, dataset, files, overrides, search_space=None, ray_address=None):
        method = overrides["finetune_method"]
        calls.append(method)
        rows = [{"status": "ok", LEARNING_RATE: 0.001, METHODS[method].strength: 0.1 * (i + 1), "rbo": 0.8 - i / 10,
                 "feasible": True, "objective": 0.8 - i / 10} for i in range(n_rows[method])]
        return {"rows": rows, "best": rows[0], "folder": str(tmp_path / method), "table_md": "-"}

    monkeypatch.setattr(cluster, "init_ray", lambda *a, **k: False)
    monkeypatch.setattr(driver, "run_tune", fake_run_tune)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    cfg = {"tune_methods": ["acae", "vat"], "tune_num_samples": 2, "tune_dir": str(tmp_path / "tune"),
           "show_progress": False}
    out = run_tune_methods("SASRec", "ml-100k", config_dict=cfg)
    assert calls == ["acae", "vat"]
    assert [(r["method"], r["params"]) for r in out["chosen"]] == [("vat", {LEARNING_RATE: 0.001, "vat_rho": 0.1})]
    n_rows["acae"] = 2
    again = run_tune_methods("SASRec", "ml-100k", config_dict=cfg)
    assert calls == ["acae", "vat", "acae"] and [r["method"] for r in again["chosen"]] == ["acae", "vat"]
