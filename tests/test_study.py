"""The stability study: grid, reuse of trained models, resume, statistics and report files."""

import contextlib
import csv
import json
import math
import os
import shutil

import numpy as np
import pytest
import yaml
from scipy import stats

from recbole_finest import report
from recbole_finest.config import Config
from recbole_finest.study.driver import grid_cells, resolve_grid, run_study
from recbole_finest.finest.trainer import FinestTrainer
from conftest import TINY_NARROW as TINY

GRID = dict(
    study_models=["SASRec"], study_methods=["original", "finest"], study_selections=["random"],
    study_kinds=["deletion"], study_ratios=[0.01], study_seeds=2,
    # sub-grid: a second perturbation of the first seed, so model A of that seed is reused
    study_grids=[{"study_selections": ["casper"], "study_seeds": [2020]}],
)


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


# ---------------------------------------------------------------------------------- statistics
def _welch_by_hand(a, b):
    """Welch's t and one-tailed p from the textbook formulas (t distribution survival function)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, stats.t.sf(t, df)


def test_welch_matches_the_textbook_formula():
    a, b = [0.83, 0.85, 0.84], [0.75, 0.78, 0.74]
    t, p = report.welch(a, b)
    t_hand, p_hand = _welch_by_hand(a, b)
    assert t == pytest.approx(t_hand, rel=1e-12) and p == pytest.approx(p_hand, rel=1e-9)
    # by hand: mean diff 1/12, variances 1e-4 and 13/30000, sqrt((1e-4 + 13/30000) / 3) = 1/75
    assert t == pytest.approx(75 / 12, rel=1e-9)
    # one-tailed "greater": the reverse direction is 1 - p
    assert report.welch(b, a)[1] == pytest.approx(1 - p, rel=1e-9)
    # unequal sizes and variances
    a2, b2 = [1.0, 2.0, 4.0, 8.0], [1.5, 1.6]
    assert report.welch(a2, b2)[1] == pytest.approx(_welch_by_hand(a2, b2)[1], rel=1e-9)
    # undefined: one sample, or no variance on either side
    assert all(math.isnan(v) for v in report.welch([0.8], [0.7, 0.6]))
    assert all(math.isnan(v) for v in report.welch([0.8, 0.8], [0.7, 0.7]))


def _cell(method, seed, rbo, mrr, selection="random"):
    return dict(model="M", selection=selection, kind="deletion", ratio=0.001, seed=seed, method=method,
                metrics={"rbo": rbo, "mrr": mrr})


def test_summary_means_stds_improvements_and_tests():
    cells = [_cell("original", s, r, m) for s, r, m in ((1, 0.70, 0.10), (2, 0.74, 0.12), (3, 0.72, 0.11))]
    cells += [_cell("finest", s, r, m) for s, r, m in ((1, 0.80, 0.11), (2, 0.81, 0.11), (3, 0.85, 0.14))]
    cells += [_cell("original", 1, 0.5, 0.2, selection="casper")]  # another group, one seed, no finest
    out = report.summarize(cells, methods=["original", "finest"])
    orig, fine, casper = out["summary"]
    assert (orig["method"], fine["method"], casper["selection"]) == ("original", "finest", "casper")
    assert orig["rbo_mean"] == pytest.approx(0.72) and orig["rbo_std"] == pytest.approx(0.02)
    assert fine["rbo_mean"] == pytest.approx(0.82) and fine["n_seeds"] == 3 and fine["seeds"] == [1, 2, 3]
    assert casper["rbo_std"] == 0.0 and casper["n_seeds"] == 1
    tests = {t["metric"]: t for t in out["tests"]}
    assert set(tests) == {"rbo", "mrr"} and all(t["versus"] == "original" for t in out["tests"])
    assert tests["rbo"]["improvement_pct"] == pytest.approx(100 * 0.10 / 0.72)
    assert tests["rbo"]["p"] == pytest.approx(_welch_by_hand([0.80, 0.81, 0.85], [0.70, 0.74, 0.72])[1])
    md = report.markdown(out)
    assert "| FINEST | 0.8200 ± 0.0265 |" in md and "FINEST vs Original: improvement | +13.89%" in md
    assert "best other method" not in md  # one other method only
    # a second baseline: the best-other row picks, per metric, the other method with the highest mean
    cells += [_cell("random", s, r, m) for s, r, m in ((1, 0.76, 0.09), (2, 0.78, 0.10), (3, 0.77, 0.08))]
    out = report.summarize(cells, methods=["original", "random", "finest"])
    best = {t["metric"]: t for t in report.best_tests(out["tests"])}
    assert (best["rbo"]["versus"], best["mrr"]["versus"]) == ("random", "original")
    assert best["rbo"]["improvement_pct"] == pytest.approx(100 * (0.82 - 0.77) / 0.77)
    assert "| FINEST vs best other method | +6.49% (random, p " in report.markdown(out)


def test_user_groups_by_original_mrr():
    # users 10..14; user MRR under A: 10 -> 0.1, 11 -> 0.9, 12 -> 0.5, 13 -> 0.05, 14 -> 0.7
    user = np.array([10, 10, 11, 12, 13, 13, 14])
    rr_a = np.array([0.2, 0.0, 0.9, 0.5, 0.1, 0.0, 0.7])
    original = {"user": user, "rr_a": rr_a, "rbo": np.array([0.5, 0.6, 0.9, 0.7, 0.2, 0.4, 0.8])}
    finetuned = {"user": user, "rr_a": rr_a * 0, "rbo": np.array([0.6, 0.7, 0.95, 0.7, 0.5, 0.7, 0.9])}
    out = report.user_group_stability(original, finetuned, fraction=0.2, metrics=("rbo",))
    # 20% of 5 users = 1 user: lowest MRR = user 13, highest = user 11
    assert out["low"]["n_users"] == 1 and out["low"]["n_instances"] == 2
    assert out["low"]["original"]["rbo"] == pytest.approx(0.3) and out["low"]["finetuned"]["rbo"] == pytest.approx(0.6)
    assert out["high"]["original"]["rbo"] == pytest.approx(0.9) and out["high"]["mrr"] == pytest.approx(0.9)
    out = report.user_group_stability(original, finetuned, fraction=0.4, metrics=("rbo",))
    assert out["low"]["original"]["rbo"] == pytest.approx((0.5 + 0.6 + 0.2 + 0.4) / 4)  # users 13, 10
    assert out["high"]["finetuned"]["rbo"] == pytest.approx((0.95 + 0.9) / 2)  # users 11, 14


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("key, value, message", [
    ("study_selections", ["random", "oldest"], "study_selections"),
    ("study_kinds", ["swap"], "study_kinds"),
    ("study_ratios", [0.001, 1.5], "study_ratios"),
    ("study_ratios", [0], "study_ratios"),
    ("study_methods", ["original", "nope"], "study_methods"),
    ("study_seeds", 0, "study_seeds"),
])
def test_bad_grid_is_one_clear_error(tmp_path, key, value, message):
    with _cwd(tmp_path), pytest.raises(ValueError, match=message):  # the Config or the grid, before any data
        resolve_grid(Config("SASRec", "ml-100k", config_dict={**TINY, key: value}))


@pytest.mark.parametrize("key, value", [("perturb_selection", "oldest"), ("perturb_kind", "swap"),
                                        ("perturb_ratio", 1.0), ("perturb_ratio", 0.0)])
def test_bad_perturbation_keys_fail_in_config(tmp_path, key, value):
    with _cwd(tmp_path), pytest.raises(ValueError, match=key):
        Config("SASRec", "ml-100k", config_dict={**TINY, key: value})


def test_more_perturbations_than_training_rows_fails_before_training(tmp_path, monkeypatch):
    from recbole_finest.quick_start import run_recbole_finest

    monkeypatch.setattr(FinestTrainer, "pretrain", lambda *a, **k: pytest.fail("trained despite bad input"))
    with _cwd(tmp_path), pytest.raises(ValueError, match=r"count=10000000 asks for 10000000 perturbations"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={
            **TINY, "perturb_count": 10_000_000, "checkpoint_dir": str(tmp_path / "saved"),
            "results_dir": str(tmp_path / "results")})


def test_grid_union_keeps_order_and_deduplicates(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, **GRID})
    cells = grid_cells(resolve_grid(config))
    assert list(cells) == ["SASRec"] and list(cells["SASRec"]) == [2020, 2021]
    assert list(cells["SASRec"][2020]) == [("random", "deletion", 0.01), ("casper", "deletion", 0.01)]
    assert list(cells["SASRec"][2021]) == [("random", "deletion", 0.01)]
    assert cells["SASRec"][2020][("random", "deletion", 0.01)] == ["original", "finest"]


# ---------------------------------------------------------------------------------- the grid end to end
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny grid run twice; trainings are counted by phase."""
    tmp = tmp_path_factory.mktemp("study")
    counts = []
    pretrain, finetune = FinestTrainer.pretrain, FinestTrainer.finetune

    def counting(phase, fn):
        def wrapper(self, *args, **kwargs):
            counts[-1][phase] += 1
            return fn(self, *args, **kwargs)
        return wrapper

    FinestTrainer.pretrain = counting("pretrain", pretrain)
    FinestTrainer.finetune = counting("finetune", finetune)
    cfg = {**TINY, **GRID, "study_dir": str(tmp / "study"), "checkpoint_dir": str(tmp / "saved")}
    runs = []
    try:
        with _cwd(tmp):
            counts.append({"pretrain": 0, "finetune": 0})
            runs.append(run_study(dataset="ml-100k", config_dict=cfg))
            # resume an interrupted run: one finished cell lost (its trained states kept), the
            # other five finished
            lost = os.path.join(tmp, "study", "cells", "SASRec", "casper-deletion-r0.01", "seed2020", "finest.json")
            with open(lost, encoding="utf-8") as f:
                lost_record = json.load(f)
            os.remove(lost)
            stamps = {str(p): p.stat().st_mtime_ns for p in (tmp / "study" / "cells").rglob("*.json")}
            counts.append({"pretrain": 0, "finetune": 0})
            runs.append(run_study(dataset="ml-100k", config_dict=cfg))
    finally:
        FinestTrainer.pretrain, FinestTrainer.finetune = pretrain, finetune
    after = {str(p): p.stat().st_mtime_ns for p in (tmp / "study" / "cells").rglob("*.json")}
    return dict(runs=runs, counts=counts, folder=tmp / "study", lost=lost, lost_record=lost_record,
                stamps=stamps, after=after)


def test_nothing_is_trained_twice(study):
    first, resumed = study["counts"]
    # model A: one pre-training and one FINEST fine-tuning per seed (2 seeds), shared by both
    # perturbations of seed 2020; model B: one of each per perturbation (3)
    assert first == {"pretrain": 2 + 3, "finetune": 2 + 3}
    # resumed: the five finished cells are not recomputed; the lost one is evaluated again from
    # the stored model states, nothing is trained
    assert resumed == {"pretrain": 0, "finetune": 0}
    assert study["runs"][0]["computed"] == 3 and study["runs"][1]["computed"] == 1
    assert len(study["stamps"]) == 5 and all(study["after"][p] == t for p, t in study["stamps"].items())
    assert study["lost"] in study["after"]


def test_resumed_study_gives_identical_results(study):
    first, resumed = study["runs"]
    assert first["summary"] == resumed["summary"] and first["tests"] == resumed["tests"]
    with open(study["lost"], encoding="utf-8") as f:
        assert json.load(f)["metrics"] == study["lost_record"]["metrics"]


def test_cells_share_model_a_and_match_their_per_instance_values(study):
    cells = {(c["seed"], c["selection"], c["method"]): c for c in study["runs"][0]["cells"]}
    assert len(cells) == 6
    # model A is the same for both perturbations of seed 2020: same accuracy, different stability
    for method in ("original", "finest"):
        a, b = cells[(2020, "random", method)]["metrics"], cells[(2020, "casper", method)]["metrics"]
        assert a["mrr"] == b["mrr"] and a["recall@10"] == b["recall@10"]
        assert a["mrr (B)"] != b["mrr (B)"] or a["rbo"] != b["rbo"]
    assert cells[(2020, "random", "finest")]["metrics"]["mrr"] != cells[(2020, "random", "original")]["metrics"]["mrr"]
    folder = study["folder"] / "cells" / "SASRec" / "casper-deletion-r0.01" / "seed2020"
    with np.load(folder / "original.npz") as inst:
        record = cells[(2020, "casper", "original")]
        assert len(inst["rbo"]) == record["n_test_instances"] > 0
        assert float(inst["rbo"].astype(np.float64).mean()) == pytest.approx(record["metrics"]["rbo"], abs=1e-6)
        assert float(inst["rr_a"].astype(np.float64).mean()) == pytest.approx(record["metrics"]["mrr"], abs=1e-6)
    assert record["n_perturbed"] == round(0.01 * record["n_training_interactions"])


def test_folder_records_read_back_every_finished_cell(study, tmp_path):
    """StudyFolder.records (partial tables of a running study) = the run's cell records; an
    unreadable cell file is left out with a warning naming it."""
    import shutil

    from recbole_finest.study.folder import StudyFolder

    def key(c):
        return c["selection"], c["seed"], c["method"]

    expected = sorted(study["runs"][1]["cells"], key=key)  # the resumed run: the folder as it is now
    assert sorted(StudyFolder(str(study["folder"])).records(), key=key) == expected
    shutil.copytree(study["folder"] / "cells", tmp_path / "cells")
    broken = tmp_path / "cells" / "SASRec" / "random-deletion-r0.01" / "seed2021" / "finest.json"
    broken.write_text('{"metrics": ')
    (tmp_path / "cells" / "SASRec" / "random-deletion-r0.01" / "seed2021" / "original.npz").unlink()  # .json is enough
    records = StudyFolder(str(tmp_path)).records()
    assert sorted(records, key=key) == [c for c in expected if key(c) != ("random", 2021, "finest")]


def test_study_matches_an_independent_stability_run(study, tmp_path):
    """Reusing model A across perturbations changes no number: a fresh run of the casper cell agrees."""
    from recbole_finest.quick_start import run_recbole_finest

    with _cwd(tmp_path):
        fresh = run_recbole_finest("SASRec", "ml-100k", config_dict={
            **TINY, "perturb_selection": "casper", "perturb_ratio": 0.01, "finetune_method": "finest",
            "checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")})
    rows = {r["method"]: r for r in fresh["results"]["rows"]}
    cells = {c["method"]: c for c in study["runs"][0]["cells"] if c["seed"] == 2020 and c["selection"] == "casper"}
    for method in ("original", "finest"):
        for key in ("rbo", "jaccard@10", "mrr", "recall@10", "mrr (B)"):
            assert cells[method]["metrics"][key] == pytest.approx(rows[method][key], abs=1e-12), (method, key)


def test_report_files(study):
    folder = study["folder"]
    for name in ("results.md", "results.csv", "tests.csv", "results.json", "study.json", "study.log",
                 "config-SASRec.yaml", "user_groups.png", "methods.png"):
        assert (folder / name).is_file(), name
    assert not (folder / "scale_rbo.png").exists()  # one ratio only: no scale plot
    assert not list(folder.rglob("*.tmp"))
    with open(folder / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["selection"], r["method"]) for r in rows] == [
        ("random", "original"), ("random", "finest"), ("casper", "original"), ("casper", "finest")]
    by_key = {(c["selection"], c["method"], c["seed"]): c["metrics"]["rbo"] for c in study["runs"][0]["cells"]}
    assert float(rows[1]["rbo_mean"]) == pytest.approx((by_key[("random", "finest", 2020)]
                                                         + by_key[("random", "finest", 2021)]) / 2)
    with open(folder / "tests.csv", newline="") as f:
        tests = [r for r in csv.DictReader(f) if r["selection"] == "random" and r["metric"] == "rbo"]
    a = [by_key[("random", "finest", s)] for s in (2020, 2021)]
    b = [by_key[("random", "original", s)] for s in (2020, 2021)]
    assert float(tests[0]["p"]) == pytest.approx(report.welch(a, b)[1])
    with open(folder / "results.json") as f:
        data = json.load(f)
    assert len(data["cells"]) == 6 and data["user_groups"][0]["selection"] == "random"
    with open(folder / "user_groups.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_changed_settings_are_refused_on_resume(study, tmp_path):
    with _cwd(tmp_path), pytest.raises(ValueError, match="hidden_size"):
        run_study(dataset="ml-100k", config_dict={**TINY, **GRID, "hidden_size": 16,
                                                  "study_dir": str(study["folder"])})


def test_config_and_grid_files_describe_the_latest_run(study, tmp_path):
    """A run whose cells are all cached still rewrites config-<model>.yaml, so it agrees with study.json."""
    folder = tmp_path / "study"
    shutil.copytree(study["folder"], folder, ignore=shutil.ignore_patterns("states"))
    cfg = {**TINY, **GRID, "study_dir": str(folder), "checkpoint_dir": str(tmp_path / "saved")}
    for seeds in ([2020], [2020, 2021]):
        with _cwd(tmp_path):
            result = run_study(dataset="ml-100k", config_dict={**cfg, "study_seeds": seeds, "study_grids": []})
        assert result["computed"] == 0  # every cell cached: nothing trained or evaluated
        with open(folder / "config-SASRec.yaml", encoding="utf-8") as f:
            assert yaml.safe_load(f)["study_seeds"] == seeds
        with open(folder / "study.json", encoding="utf-8") as f:
            assert json.load(f)["grids"][0]["seeds"] == seeds
