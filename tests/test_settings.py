"""The one settings object (``config.settings``): built once, read-only, the source of the key tags."""

import contextlib
import dataclasses
import pickle

import pytest

from recbole_finest.config import Config, ConfigError, check_dataset_limits
from recbole_finest.settings import (
    ENVIRONMENT_KEYS, KEYS, RECBOLE_KEYS, RUNTIME_KEYS, FrozenMap, PluginSettings, freeze, key_name,
)
from recbole_finest.finest.trainer import FinestTrainer
from conftest import tiny, TINY_NARROW

TINY = tiny(TINY_NARROW)
_cwd = contextlib.chdir

#: the sets as they were before the settings dataclasses (literal copies: cache identity must not move)
RUNTIME_BEFORE = {"finetune_method", "perturb_selection", "perturb_kind", "perturb_ratio", "perturb_count", "seed"}
ENVIRONMENT_BEFORE = {
    "device", "gpu_id", "use_gpu", "checkpoint_dir", "results_dir", "show_progress", "state", "log_wandb",
    "wandb_project", "worker", "single_spec", "local_rank", "nproc", "world_size", "offset", "ip", "port",
    "raw_data_file", "download_datasets", "verbose", "search_space", "ray_address", "tune",
}
#: issue 40: ``finest_protocol`` only switches the RecBole keys it sets (split, filters, metrics),
#: which the identity holds, so it is left out of it like the environment keys
ENVIRONMENT_BEFORE |= {"finest_protocol"}
ENVIRONMENT_BEFORE |= {"eval_score_rows"}  # issue 44: how the stability pass scores, not what (same bits)


@pytest.fixture
def config(tmp_path):
    with _cwd(tmp_path):
        yield Config("SASRec", "ml-100k", config_dict={**TINY, "finest_topk": 7, "adv_eps": 0.25,
                                                       "study_methods": ["original", "acae"],
                                                       "checkpoint_dir": str(tmp_path / "saved")})


def test_settings_hold_every_key_of_the_config(config):
    s = config.settings
    assert (s.finest.topk, s.adversarial.eps, s.finest.lambda_, s.finest.method) == (7, 0.25, 1.0, "finest")
    assert s.study.methods == ("original", "acae")  # lists frozen as tuples
    assert isinstance(s.study.resources_per_cell, FrozenMap) and dict(s.study.resources_per_cell) == {"cpu": 1,
                                                                                                        "gpu": 0}
    by_key = s.by_key()
    assert set(by_key) == set(KEYS) | set(RECBOLE_KEYS)
    for name, value in by_key.items():
        assert value == freeze(config[name]), name


def test_settings_are_read_only(config):
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.settings.finest.topk = 3
    with pytest.raises(AttributeError):
        config.settings = PluginSettings()
    with pytest.raises(TypeError):
        config.settings.study.resources_per_cell["cpu"] = 4
    with pytest.raises(ConfigError, match="config key 'finest_topk' cannot be changed in a built Config"):
        config["finest_topk"] = 3
    assert config["finest_topk"] == config.settings.finest.topk == 7
    config["state"] = "ERROR"  # a RecBole key: RecBole's business, still writable
    assert config["state"] == "ERROR"


def test_settings_survive_pickling(config):
    """Ray ships a Config to its workers: the settings go with it, equal."""
    back = pickle.loads(pickle.dumps(config))
    assert back.settings == config.settings and back.settings.by_key() == config.settings.by_key()


def test_defaults_of_the_dataclasses_are_the_key_table():
    plain = PluginSettings()
    for group in dataclasses.fields(plain):
        group_cls = group.default_factory
        for f in dataclasses.fields(group_cls):
            name = key_name(group_cls, f)
            table = KEYS.get(name) or RECBOLE_KEYS[name]
            assert getattr(getattr(plain, group.name), f.name) == freeze(table.default), name


def test_tags_derive_the_identity_sets_unchanged():
    """RUNTIME_KEYS / ENVIRONMENT_KEYS come from the field tags and equal the sets of before."""
    assert RUNTIME_KEYS == RUNTIME_BEFORE
    assert ENVIRONMENT_KEYS == ENVIRONMENT_BEFORE
    tagged = {k.name for k in (*KEYS.values(), *RECBOLE_KEYS.values()) if k.environment}
    assert tagged == {"checkpoint_dir", "results_dir", "raw_data_file", "download_datasets", "finest_protocol",
                      "eval_score_rows"}
    assert not {k for k in (*KEYS.values(), *RECBOLE_KEYS.values()) if k.runtime and k.environment}


def test_study_fingerprint_equals_its_recomputation(config):
    """``study.fingerprint``, recomputed from its definition with the literal sets of before."""
    from recbole_finest.study.driver import _plain, fingerprint

    volatile = RUNTIME_BEFORE | {"data_path", "config_files", "model", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type"}
    expected = {k: _plain(v) for k, v in sorted(config.final_config_dict.items())
                if k not in ENVIRONMENT_BEFORE | volatile and not k.startswith("study_")}
    assert fingerprint(config) == expected
    assert "finest_topk" in expected and "seed" not in expected and "checkpoint_dir" not in expected


def test_unknown_plugin_key_keeps_its_message(tmp_path):
    with _cwd(tmp_path), pytest.raises(ConfigError, match=r"unknown config key 'adv_epz' \(did you mean 'adv_eps'\?\)"):
        Config("SASRec", "ml-100k", config_dict={**TINY, "adv_epz": 0.1})


# ------------------------------------------------------------------------- finest_topk before training
def test_topk_is_checked_for_reference_list_methods_only(config):
    n_items = 2 * 7 + 1  # 14 real items: 2 * finest_topk = 14 fits
    check_dataset_limits(config, n_items)
    with pytest.raises(ConfigError, match=r"'finest_topk' is 7: 2 \* finest_topk = 14 exceeds the number of items "
                                          r"\(13\); set finest_topk <= 6"):
        check_dataset_limits(config, n_items - 1)


def test_topk_is_not_checked_for_a_method_without_reference_lists(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "finest_topk": 50, "finetune_method": "acae"})
    check_dataset_limits(config, 31)  # acae keeps no reference lists: its 2K = 100 > 30 items is no error


@pytest.mark.parametrize("entry", ["run", "study"])
def test_too_large_topk_fails_before_any_pre_training(tmp_path, monkeypatch, entry):
    from recbole_finest.quick_start import run_recbole_finest
    from recbole_finest.study.driver import run_study

    calls = []
    monkeypatch.setattr(FinestTrainer, "pretrain", lambda self, *a, **k: calls.append(1))
    monkeypatch.setattr(FinestTrainer, "__init__", lambda self, *a, **k: calls.append(0))
    dirs = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}
    run = {"run": lambda d: run_recbole_finest("SASRec", "ml-100k", config_dict=d),
           "study": lambda d: run_study("SASRec", "ml-100k", config_dict={
               **d, "study_methods": ["original", "finest"], "study_selections": ["random"], "study_seeds": [1],
               "study_dir": str(tmp_path / "study")})}[entry]
    with _cwd(tmp_path), pytest.raises(ConfigError, match=r"config key 'finest_topk' is 900.*finest_topk <= \d+"):
        run({**TINY, **dirs, "finest_topk": 900})
    assert calls == []  # no trainer was even built


# ------------------------------------------------------------------------- jaccard_k names the metric
def test_tune_metric_follows_jaccard_k(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "jaccard_k": 5, "tune_metric": "jaccard@5"})
        assert config.settings.tune.metric == "jaccard@5"
        with pytest.raises(ConfigError, match=r"config key 'tune_metric' is jaccard@10 but jaccard_k is 5"):
            Config("SASRec", "ml-100k", config_dict={**TINY, "jaccard_k": 5, "tune_metric": "jaccard@10"})
        with pytest.raises(ConfigError, match=r"config key 'tune_accuracy_metric' must be one of rbo, "
                                              r"frbo@<frbo_k>, jaccard@<jaccard_k>, ndcg@10"):
            Config("SASRec", "ml-100k", config_dict={**TINY, "tune_accuracy_metric": "jaccard@x"})


class _Result:
    """What ``collect_rows`` reads from a Ray ``Result``."""

    def __init__(self, trial, lam, metrics):
        self.path, self.config, self.metrics, self.error = f"/x/{trial}", {"finest_lambda": lam}, metrics, None


def test_a_jaccard_at_5_search_reports_jaccard_at_5(tmp_path):
    """``jaccard_k: 5``: the search's table, summary and chosen record carry jaccard@5 (and no jaccard@10)."""
    import json

    from recbole_finest.tune import TuneSetup, reported, score, write_outputs
    from recbole_finest.tune.methods import MethodSearch

    assert reported(5) == ("rbo", "frbo@10", "jaccard@5", "ndcg@10", "mrr", "mrr@10", "recall@10")
    assert reported(5, 20) == ("rbo", "frbo@20", "jaccard@5", "ndcg@10", "mrr", "mrr@10", "recall@10")
    baseline = {"rbo": 0.5, "jaccard@5": 0.4, "ndcg@10": 0.30, "mrr": 0.2}
    setup = TuneSetup(model="SASRec", dataset="ml-100k", config_files=[], overrides={}, seeds=[1], cache_dir="",
                      budgets=[2], metric="jaccard@5", jaccard_k=5)
    results = []
    for i, (jac, ndcg) in enumerate(((0.61, 0.30), (0.72, 0.20), (0.55, 0.299))):
        metrics = {"rbo": 0.6, "jaccard@5": jac, "jaccard@5_B": 0.1, "ndcg@10": ndcg, "mrr": 0.2, "finest_epochs": 2,
                   **score({"jaccard@5": jac, "ndcg@10": ndcg}, baseline, "jaccard@5")}
        results.append(_Result(f"t{i}", float(i), metrics))
    out = write_outputs(str(tmp_path), setup, {"finest_lambda": {"grid": [0.0, 1.0, 2.0]}}, "space.yaml", {},
                        results, baseline)
    # 0.72 drops ndcg by a third (infeasible): the best is the feasible 0.61
    assert [r["jaccard@5"] for r in out["rows"]] == [0.61, 0.55, 0.72]
    with open(out["table_md"], encoding="utf-8") as f:
        text = f.read()
    assert "jaccard@5" in text and "jaccard@10" not in text
    search = MethodSearch(str(tmp_path), "m", "SASRec", "finest", {"finest_lambda": None})
    search.choose(out)
    with open(search.done, encoding="utf-8") as f:
        assert json.load(f)["metrics"] == {"rbo": 0.6, "jaccard@5": 0.61, "ndcg@10": 0.30, "mrr": 0.2}
