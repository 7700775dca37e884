"""Intermediate-epoch cells (``study_eval_epochs``) and per-method settings (``study_method_config``)."""

import contextlib
import json

import numpy as np
import pytest
import torch

from recbole_finest import report
from recbole_finest.config import Config
from recbole_finest.finest.method_config import method_overrides
from recbole_finest.quick_start import load_data
from recbole_finest.stability.run import StabilityRun, epoch_label
from recbole_finest.study.driver import run_study
from recbole_finest.study.epochs import cell_labels, split_label
from recbole_finest.finest.trainer import FinestTrainer
from conftest import tiny, TINY_NARROW

TINY = tiny(TINY_NARROW, drop=("finest_epochs",), perturb_ratio=0.01)
_cwd = contextlib.chdir


def _equal_states(a, b):
    return set(a) == set(b) and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_labels_and_their_errors(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "finest_epochs": 20, "study_eval_epochs": [20, 5, 5],
                                                          "study_method_config": {"acae": {"finest_epochs": 10}}})
        over = method_overrides(config)
        # 20 = finest's last epoch: its final cell; original has no epochs
        assert cell_labels(config, ["original", "finest"], over) == ["original", "finest@e5", "finest"]
        with pytest.raises(ValueError, match="study_eval_epochs.*epoch 20 exceeds finest_epochs 10 of acae"):
            cell_labels(config, ["acae"], over)
        assert split_label("apr_pgd@e50") == ("apr_pgd", 50) and split_label("finest") == ("finest", None)
        for bad in ([0, 5], "five", [2.5]):  # refused when the Config is built, before any cell
            with pytest.raises(ValueError, match="config key 'study_eval_epochs' must be a positive epoch count"):
                Config("SASRec", "ml-100k", config_dict={**TINY, "study_eval_epochs": bad})


@pytest.mark.parametrize("value, message", [
    ({"acae": {"learning_rate": 0.1}}, "'learning_rate' is not a fine-tuning key"),
    ({"acae": {"adv_epz": 0.1}}, "'adv_epz' is not a config key"),
    ({"nope": {"adv_eps": 0.1}}, "'nope' is neither a method"),
    ({"SASRec": {"acae": 0.1}}, "'SASRec' is neither a method"),
    ([1, 2], "'study_method_config' must be a mapping"),  # the Config's own check
])
def test_bad_method_config_is_one_clear_error(tmp_path, value, message):
    with _cwd(tmp_path), pytest.raises(ValueError, match=message):
        method_overrides(Config("SASRec", "ml-100k", config_dict={**TINY, "study_method_config": value}))


@pytest.mark.parametrize("entry", [{"adv_eps": -1.0}, {"apt_fake_users": 0}, {"adv_steps": 0}])
def test_bad_method_value_fails_before_any_pre_training(tmp_path, monkeypatch, entry):
    """A bad adv_* / apt_* value of one method stops the study before model A is pre-trained."""
    calls = []
    monkeypatch.setattr(FinestTrainer, "pretrain", lambda self, *a, **k: calls.append(1))
    method = "apt" if "apt_fake_users" in entry else "acae"
    cfg = {**TINY, "study_methods": ["original", method], "study_seeds": 1, "study_selections": ["random"],
           "study_dir": str(tmp_path / "study"), "study_method_config": {method: entry}}
    with _cwd(tmp_path), pytest.raises(ValueError, match=f"study_method_config.*{next(iter(entry))}"):
        run_study("SASRec", "ml-100k", config_dict=cfg)
    assert calls == [] and not (tmp_path / "study" / "states").exists()


def test_model_entries_win_over_common_ones(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "study_method_config": {
            "acae": {"adv_eps": 0.05, "finest_learning_rate": 0.01},
            "SASRec": {"acae": {"adv_eps": 0.3}, "vat": {"vat_rho": 0.5}},
            "BERT4Rec": {"acae": {"adv_eps": 0.9}}}})
    assert method_overrides(config) == {"acae": {"adv_eps": 0.3, "finest_learning_rate": 0.01}, "vat": {"vat_rho": 0.5}}
    assert method_overrides(config, "BERT4Rec") == {"acae": {"adv_eps": 0.9, "finest_learning_rate": 0.01}}


def test_snapshot_equals_a_run_stopped_there(tmp_path):
    """The states after epochs 1 and 2 of a 3-epoch run are those of separate 1- and 2-epoch runs."""
    with _cwd(tmp_path):
        configs = {e: Config("SASRec", "ml-100k", config_dict={**TINY, "finest_epochs": e,
                                                                "checkpoint_dir": str(tmp_path / "saved")})
                   for e in (1, 2, 3)}
        _, (train, valid, test) = load_data(configs[3])
        long_run = StabilityRun(configs[3], train, valid, test, saved=False)
        final = long_run.finetune("finest", epochs=[2, 1])
        for e in (1, 2):
            short = StabilityRun(configs[e], train, valid, test, saved=False)
            short.pretrained = long_run.pretrained
            row = short.finetune("finest")
            for side in ("A", "B"):
                assert _equal_states(long_run.sides[side]["states"][epoch_label("finest", e)],
                                     short.sides[side]["states"]["finest"]), (side, e)
            assert long_run.rows[epoch_label("finest", e)] == {**row, "method": epoch_label("finest", e)}
            assert np.array_equal(long_run.instances[epoch_label("finest", e)]["rbo"], short.instances["finest"]["rbo"])
        # the final state is what a run without intermediate evaluation gives
        plain = StabilityRun(configs[3], train, valid, test, saved=False)
        plain.pretrained = long_run.pretrained
        assert plain.finetune("finest") == final
        assert final != long_run.rows["finest@e2"]  # later epochs did change the model
        with pytest.raises(ValueError, match=r"evaluation epochs \[3\] must lie in 1..2"):
            long_run.finetune("finest_no_sim", epochs=[3])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """SASRec, one seed: original, finest and acae over 2 epochs, evaluated after epoch 1 too; acae tuned."""
    tmp = tmp_path_factory.mktemp("epochs")
    seen = []
    finetune = FinestTrainer.finetune

    def spy(self, *args, **kwargs):
        cfg = self.settings  # the method's settings reach its trainer as an argument
        seen.append((cfg.name, cfg["adv_eps"], cfg["finest_learning_rate"], cfg["finest_lambda"]))
        return finetune(self, *args, **kwargs)

    cfg = {**TINY, "finest_epochs": 2, "study_eval_epochs": [1, 2], "study_models": ["SASRec"],
           "study_methods": ["original", "finest", "acae"], "study_selections": ["random"],
           "study_kinds": ["deletion"], "study_ratios": [0.01], "study_seeds": 1,
           "study_method_config": {"acae": {"adv_eps": 0.5, "finest_learning_rate": 0.003}},
           "study_dir": str(tmp / "study"), "checkpoint_dir": str(tmp / "saved")}
    FinestTrainer.finetune = spy
    try:
        with _cwd(tmp):
            first = run_study(dataset="ml-100k", config_dict=cfg)
            n_seen = len(seen)
            resumed = run_study(dataset="ml-100k", config_dict=cfg)
    finally:
        FinestTrainer.finetune = finetune
    return dict(first=first, resumed=resumed, seen=seen[:n_seen], seen_resumed=seen[n_seen:], cfg=cfg, tmp=tmp,
                folder=tmp / "study")


def test_cells_at_every_epoch_are_written_and_resumed(study):
    cells = study["folder"] / "cells" / "SASRec" / "random-deletion-r0.01" / "seed2020"
    assert sorted(p.name for p in cells.glob("*.json")) == ["acae.json", "acae@e1.json", "finest.json",
                                                           "finest@e1.json", "original.json"]
    assert all((cells / f"{m}.npz").is_file() for m in ("finest@e1", "acae@e1"))
    records = {r["method"]: r for r in study["first"]["cells"]}
    assert {m: (r["base_method"], r["epoch"]) for m, r in records.items()} == {
        "original": ("original", 0), "finest@e1": ("finest", 1), "finest": ("finest", 2),
        "acae@e1": ("acae", 1), "acae": ("acae", 2)}
    # one fine-tuning run per method and side gives both epochs; the resumed study trains nothing
    assert sorted(m for m, *_ in study["seen"]) == ["acae", "acae", "finest", "finest"]
    assert study["seen_resumed"] == [] and study["resumed"]["computed"] == 0
    assert study["resumed"]["summary"] == study["first"]["summary"]
    # the main tables hold the final cells; the epoch curve the rest
    assert [r["method"] for r in study["first"]["summary"]] == ["original", "finest", "acae"]
    for name in ("epochs.md", "epochs.csv", "epoch_gain.png"):
        assert (study["folder"] / name).is_file(), name
    assert "epoch_gain" in study["first"]["plots"]


def test_a_study_stopped_during_a_method_keeps_the_methods_before_it(study, tmp_path, monkeypatch):
    """Cells land method by method: a stop while acae fine-tunes keeps original's and finest's
    cells; the resumed study computes acae's alone and every number equals the uninterrupted study's."""
    finetune, tuned = StabilityRun.finetune, []

    def stop_at_acae(self, method, *args, **kwargs):
        if method == "acae":
            raise KeyboardInterrupt("stopped")
        return finetune(self, method, *args, **kwargs)

    def recording(self, method, *args, **kwargs):
        tuned.append(method)
        return finetune(self, method, *args, **kwargs)

    cfg = {**study["cfg"], "study_dir": str(tmp_path / "study"), "checkpoint_dir": str(tmp_path / "saved")}
    cells = tmp_path / "study" / "cells" / "SASRec" / "random-deletion-r0.01" / "seed2020"
    with _cwd(tmp_path):
        monkeypatch.setattr(StabilityRun, "finetune", stop_at_acae)
        with pytest.raises(KeyboardInterrupt):
            run_study(dataset="ml-100k", config_dict=cfg)
        assert sorted(p.name for p in cells.glob("*.json")) == ["finest.json", "finest@e1.json", "original.json"]
        monkeypatch.setattr(StabilityRun, "finetune", recording)
        resumed = run_study(dataset="ml-100k", config_dict=cfg)
    assert tuned == ["acae"]  # original and finest come from their cells
    metrics = {r["method"]: r["metrics"] for r in study["first"]["cells"]}
    assert {r["method"]: r["metrics"] for r in resumed["cells"]} == metrics


def test_method_settings_reach_only_their_method(study, tmp_path):
    seen = {m: rest for m, *rest in study["seen"]}
    default = Config("SASRec", "ml-100k", config_dict=TINY)
    assert seen["acae"][:2] == [0.5, 0.003]
    assert seen["finest"][:2] == [default["adv_eps"], default["finest_learning_rate"]]
    records = {r["method"]: r for r in study["first"]["cells"]}
    assert records["acae"]["method_config"] == {"adv_eps": 0.5, "finest_learning_rate": 0.003}
    assert records["finest"]["method_config"] == {}
    assert records["acae@e1"]["method_config"] == records["acae"]["method_config"]
    # the numbers: acae's final cell is a plain run with those keys; finest's one without them
    with _cwd(tmp_path):
        runs = {}
        for method, keys in (("acae", {"adv_eps": 0.5, "finest_learning_rate": 0.003}), ("finest", {})):
            config = Config("SASRec", "ml-100k", config_dict={**TINY, "finest_epochs": 2, "finetune_method": method,
                                                               "checkpoint_dir": str(tmp_path / "saved"), **keys})
            _, (train, valid, test) = load_data(config)
            run = StabilityRun(config, train, valid, test, saved=False)
            if runs:
                run.pretrained = next(iter(runs.values())).pretrained
            runs[method] = run
            for key in ("rbo", "jaccard@10", "mrr", "ndcg@10 (B)"):
                assert run.finetune(method)[key] == pytest.approx(records[method]["metrics"][key], abs=1e-12), key


def test_changed_method_settings_are_refused_on_resume(study):
    cfg = {**study["cfg"], "study_method_config": {"acae": {"adv_eps": 0.2}}}
    with _cwd(study["tmp"]), pytest.raises(ValueError, match=r"study_method_config.*SASRec acae"):
        run_study(dataset="ml-100k", config_dict=cfg)
    with open(study["folder"] / "configs" / "SASRec.methods.json", encoding="utf-8") as f:
        assert json.load(f)["acae"] == {"adv_eps": 0.5, "finest_learning_rate": 0.003}


# ---------------------------------------------------------------------------------- report
def _cell(method, seed, rbo, epoch, base=None):
    return dict(model="M", selection="random", kind="deletion", ratio=0.001, seed=seed, method=method,
                base_method=base or method, epoch=epoch, metrics={"rbo": rbo})


def test_epoch_curves_and_plot_on_synthetic_records(tmp_path):
    cells = [_cell("original", 1, 0.80, 0), _cell("original", 2, 0.50, 0)]
    for e, (r1, r2) in ((5, (0.84, 0.55)), (20, (0.88, 0.60))):
        cells += [_cell(f"finest@e{e}", 1, r1, e, "finest"), _cell(f"finest@e{e}", 2, r2, e, "finest")]
    cells += [_cell("finest", 1, 0.96, 50), _cell("finest", 2, 0.55, 50)]
    cells += [_cell("acae", 1, 0.72, 50), _cell("acae", 2, 0.45, 50)]  # final epoch only: a single point
    rows = report.epoch_curves(cells, methods=["finest", "acae"])
    got = {(r["method"], r["epoch"]): r for r in rows}
    assert [(r["method"], r["epoch"]) for r in rows] == [("finest", 5), ("finest", 20), ("finest", 50), ("acae", 50),
                                                           ("original", 0)]
    # gains are paired by seed: seed 1 +5%, seed 2 +10% at epoch 5
    assert got[("finest", 5)]["gain_pct_mean"] == pytest.approx(7.5)
    assert got[("finest", 5)]["gain_pct_std"] == pytest.approx(np.std([5.0, 10.0], ddof=1))
    assert got[("finest", 20)]["gain_pct_mean"] == pytest.approx((10 + 20) / 2)
    assert got[("finest", 50)]["gain_pct_mean"] == pytest.approx((20 + 10) / 2)
    assert got[("acae", 50)]["gain_pct_mean"] == pytest.approx(-10.0)
    assert got[("original", 0)]["gain_pct_mean"] == 0.0 and got[("finest", 20)]["rbo_mean"] == pytest.approx(0.74)
    assert report.is_final(cells[-1]) and not report.is_final(cells[2])
    assert "| FINEST | 5 | 0.6950 ± 0.2051 | +7.50% ± 3.54 |" in report.epoch_markdown(rows)
    path = tmp_path / "gain.png"
    assert report.plot_epoch_gain(cells, str(path), methods=["finest", "acae"]) == 1
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # no method with more than one epoch: nothing to draw, no file
    assert report.plot_epoch_gain([c for c in cells if report.is_final(c)], str(tmp_path / "none.png")) == 0
    assert not (tmp_path / "none.png").exists()
