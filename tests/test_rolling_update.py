"""Rolling updates (recbole_finest/update/chain.py, budget.py): chains of versions, BCWI interpolation, churn budget."""

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data import create_dataset

from recbole_finest.config import Config
from recbole_finest.update import interpolate_states, rolling_update, run_update, update_model
from recbole_finest.update.budget import ChurnBudget, weakest_meeting
from recbole_finest.update.periods import cut_periods, dataset_sequences, period_names
from recbole_finest.update.report import V1
from conftest import tiny

TINY = tiny(drop=("finest_epochs",), update_epochs=1, train_neg_sample_args=None)
ALL = ["retrain", "warm_start", "distill", "finest", "interpolate"]
MEASURES = ("rbo", "frbo@10", "jaccard@10", "changed", "rbo (no new data)", "mrr", "recall@10", "ndcg@10",
            "ndcg@10 vs retrain")
_cwd = contextlib.chdir  # RecBole writes log/ and log_tensorboard/ into the working directory


def _setup(tmp, **keys):
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved"), **keys})
        config["device"] = torch.device("cpu")
        return config, create_dataset(config)


def _rows(report, version=None):
    return {r["strategy"]: r for r in report["rows"] if version is None or r.get("version") == version}


# ---------------------------------------------------------------------------------- periods
def test_n_cuts_give_n_plus_one_periods_in_time_order(tmp_path):
    config, dataset = _setup(tmp_path)
    seqs = dataset_sequences(dataset)
    cuts = [0.6, 0.7, 0.8, 0.9]
    periods = cut_periods(seqs, cuts)
    times = seqs.timestamps
    bounds = [float(np.quantile(times, q)) for q in cuts]
    expected = np.searchsorted(np.asarray(bounds), times, side="left")  # number of bounds strictly below t
    np.testing.assert_array_equal(periods.period, expected)
    assert list(periods.counts()) == list(period_names(4)) == ["old", "new 1", "new 2", "new 3", "test"]
    assert sum(periods.counts().values()) == seqs.n_rows and min(periods.counts().values()) > 0
    # two cuts keep the single update's names
    assert list(cut_periods(seqs, [0.8, 0.9]).counts()) == ["old", "new", "test"]


# ---------------------------------------------------------------------------------- interpolate
def test_interpolated_states_are_exactly_the_ends_at_alpha_one_and_zero():
    gen = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen), "steps": torch.tensor([7])}
    b = {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(3, generator=gen), "steps": torch.tensor([9])}
    one, zero, half = (interpolate_states(a, b, alpha) for alpha in (1.0, 0.0, 0.5))
    assert all(torch.equal(one[k], a[k]) for k in ("w", "b"))
    assert all(torch.equal(zero[k], b[k]) for k in ("w", "b"))
    assert torch.allclose(half["w"], (a["w"] + b["w"]) / 2)
    assert int(one["steps"]) == 9  # integer buffers: the trained end's
    with pytest.raises(ValueError, match="different parameters"):
        interpolate_states(a, {"w": b["w"]}, 0.5)


@pytest.fixture(scope="module")
def single_and_chain(tmp_path_factory):
    """The single update and the chain of two versions of one config: every strategy, alpha 0 / 0.5 / 1."""
    config, dataset = _setup(tmp_path_factory.mktemp("two"), update_methods=ALL,
                             update_interpolate_alpha=[0.0, 0.5, 1.0])
    return update_model(config, dataset=dataset), rolling_update(config, dataset=dataset)


def test_interpolate_with_alpha_one_is_v1_and_with_alpha_zero_is_warm_start(single_and_chain):
    result = single_and_chain[0]
    rows = _rows(result.report)
    v1_state, warm_state = result.v1.state_dict(), result.models["warm_start"].state_dict()
    one, zero = result.models["interpolate (1)"].state_dict(), result.models["interpolate (0)"].state_dict()
    assert all(torch.equal(one[k], v1_state[k]) for k in v1_state)
    assert all(torch.equal(zero[k], warm_state[k]) for k in warm_state)
    assert any(not torch.equal(warm_state[k], v1_state[k]) for k in v1_state)  # the ends differ
    for key in MEASURES[:-1]:
        assert rows["interpolate (0)"][key] == rows["warm_start"][key], key
        assert rows["interpolate (1)"][key] == pytest.approx(rows[V1][key], abs=1e-12), key
    assert rows["interpolate (1)"]["changed"] == 0.0
    assert rows["interpolate (0.5)"]["rbo"] >= rows["warm_start"]["rbo"] - 0.02  # halfway stays close to v1


# ---------------------------------------------------------------------------------- chains
def test_a_chain_of_two_versions_equals_the_single_update(single_and_chain):
    single, chain = single_and_chain
    one, two = _rows(single.report), _rows(chain.report, version=2)
    assert list(one) == list(two) == [V1, "retrain", "warm_start", "distill (1)", "finest (1)", "interpolate (0)",
                                      "interpolate (0.5)", "interpolate (1)"]
    for name in one:
        for key in MEASURES:
            assert two[name][key] == one[name][key], (name, key)
        # at the first step the previous version is v1: drift and churn are one measure
        for key in ("rbo", "frbo@10", "jaccard@10", "changed"):
            assert two[name][f"drift {key}"] == pytest.approx(two[name][key], abs=1e-12), (name, key)
    for name, model in single.models.items():
        state = chain.models[name].state_dict()
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), name


def test_each_step_of_a_chain_is_the_update_of_the_previous_version(tmp_path):
    """v2 of [q1, q2, q3] is the single update [q1, q2]'s v2 (the later cut changes only what accuracy is
    measured on); v3 continues from v2 of its own strategy; retrain starts over; drift at v3 is v3 against v1."""
    cuts = [0.7, 0.8, 0.9]
    config, dataset = _setup(tmp_path, update_methods=["retrain", "finest"], update_cuts=cuts)
    chain = rolling_update(config, dataset=dataset)
    config2, _ = _setup(tmp_path, update_methods=["retrain", "finest"], update_cuts=cuts[:2])
    single = update_model(config2, dataset=dataset)
    assert [(r["version"], r["strategy"]) for r in chain.report["rows"]] == [
        (2, V1), (2, "retrain"), (2, "finest (1)"), (3, V1), (3, "retrain"), (3, "finest (1)")]
    step2, step3, one = _rows(chain.report, 2), _rows(chain.report, 3), _rows(single.report)
    for name in ("retrain", "finest (1)"):
        for key in ("rbo", "frbo@10", "jaccard@10", "changed"):
            assert step2[name][key] == one[name][key], (name, key)
    # accuracy at v2 is on the next period (T2, T3], not on the single update's test period t > T2
    periods = cut_periods(dataset_sequences(dataset), cuts)
    assert chain.report["steps"][0]["n_test_users"] != single.report["n_test_users"] or \
        step2["finest (1)"]["mrr"] != one["finest (1)"]["mrr"]
    assert chain.report["counts"] == periods.counts()
    # v3 is a different model from v2 and its drift from v1 is measured against v1, not v2
    assert step3["finest (1)"]["drift rbo"] != pytest.approx(step3["finest (1)"]["rbo"], abs=1e-9)
    assert step3[V1]["changed"] == 0.0 and step3[V1]["drift rbo"] == 1.0


# ---------------------------------------------------------------------------------- the budget
def test_the_search_returns_the_weakest_strength_that_meets_the_budget_on_a_monotone_curve():
    def churn_at(s):  # share of mostly replaced users, falling with the strength
        return 0.1 * math.exp(-s)

    calls = []

    def meets(s):
        calls.append(s)
        return churn_at(s) <= 0.02

    threshold = math.log(5)  # churn_at(threshold) == 0.02
    strength, met, tried = weakest_meeting(meets, 0.0, 3.0, trials=12)
    assert met and len(calls) == 12 and [s for s, _ in tried] == calls
    assert churn_at(strength) <= 0.02 and threshold <= strength <= threshold + 3.0 / 2 ** 10
    # the weakest meeting strength among those tried, and every tried weaker one failed
    assert strength == min(s for s, ok in tried if ok)
    assert all(not ok for s, ok in tried if s < strength)
    # more trials never give a stronger answer
    assert weakest_meeting(meets, 0.0, 3.0, trials=6)[0] >= strength
    # the interval's ends
    assert weakest_meeting(lambda s: True, 0.0, 3.0, trials=5)[:2] == (0.0, True)
    assert weakest_meeting(lambda s: False, 0.0, 3.0, trials=5)[:2] == (3.0, False)
    with pytest.raises(ValueError):
        weakest_meeting(meets, 1.0, 0.0, trials=3)


def test_the_budget_is_met_by_a_row_within_both_bounds():
    assert ChurnBudget(max_changed=0.02).met({"changed": 0.02, "rbo": 0.1})
    assert not ChurnBudget(max_changed=0.02).met({"changed": 0.021, "rbo": 1.0})
    assert not ChurnBudget(max_changed=0.02, min_rbo=0.9).met({"changed": 0.0, "rbo": 0.89})
    assert ChurnBudget.of({"update_max_changed": None, "update_min_rbo": None}) is None


def test_budget_mode_chooses_a_strength_per_step_and_checks_it_on_the_test_contexts(tmp_path):
    """A rolling run under a budget (through the --update job): strengths per step, the budget's columns, the
    report's files (a table and a plot per metric)."""
    dirs = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}
    with _cwd(tmp_path):
        out = run_update("SASRec", "ml-100k", config_dict={
            **TINY, **dirs, "update_methods": ["warm_start", "interpolate"], "update_interpolate_alpha": 1.0,
            "update_cuts": [0.7, 0.8, 0.9], "update_max_changed": 0.0, "update_budget_trials": 3})
    report = out["report"]
    assert report["budget"] and report["budget_trials"] == 3
    for version in (2, 3):
        row = _rows(report, version)["interpolate (budget)"]
        tried = [(float(s), ok == "yes") for s, ok in (t.split(":") for t in row["tried"].split())]
        assert tried[0][0] == 0.0 and len(tried) <= 3
        assert row["strength"] == min(s for s, ok in tried if ok)  # alpha 1 (= the previous version) always meets
        assert row["changed"] == 0.0 and row["budget held (valid)"] is True
        assert isinstance(row["budget held (test)"], bool) and 0.0 <= row["test changed"] <= 1.0
        warm = _rows(report, version)["warm_start"]
        assert warm["strength"] is None and warm["budget held (valid)"] == (warm["changed"] <= 0.0)
    folder = Path(out["results_dir"])
    names = {p.name for p in folder.iterdir()}
    assert {"results.md", "results.csv", "results.json", "churn.npz", "chain-rbo.png", "chain-changed.png",
            "chain-drift-rbo.png", "chain-ndcg10.png", "chain-frbo10.png"} <= names
    text = (folder / "results.md").read_text()
    assert "## drift rbo by version" in text and "| interpolate (budget) |" in text and "budget held" in text
    with np.load(folder / "churn.npz") as npz:
        assert {"v2/warm_start/rbo", "v3/warm_start/drift_rbo", "v3/warm_start/rr_next"} <= set(npz.files)
        assert npz["v3/warm_start/rbo"].mean() == pytest.approx(_rows(report, 3)["warm_start"]["rbo"])


@pytest.mark.parametrize("key, value", [("update_interpolate_alpha", 1.5), ("update_budget_trials", 1),
                                        ("update_max_changed", 2), ("update_min_rbo", 0),
                                        ("update_cuts", [0.6, 0.6, 0.9]), ("update_cuts", [0.5, 0.9, 0.8])])
def test_bad_rolling_keys_are_named_before_training(tmp_path, key, value):
    dirs = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}
    with _cwd(tmp_path), pytest.raises(ValueError, match=f"'{key}'"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, key: value})
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").rglob("*.pth"))
    assert not (tmp_path / "results").exists()
