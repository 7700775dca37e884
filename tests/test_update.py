"""Stable model updates (recbole_finest/update): time cuts, churn, strategies, deployed checkpoints."""

import contextlib
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_finest.config import Config
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.fileio import load_checkpoint, save_checkpoint
from recbole_finest.update import Strategy, distillation_loss, run_update, update_model
from recbole_finest.update.churn import churn, score_contexts
from recbole_finest.update.periods import NEW, OLD, TEST, ContextSet, cut_periods, dataset_sequences
from recbole_finest.update.strategies import UpdateTrainer
from recbole_finest.utils import get_model
from conftest import tiny

TINY = tiny(drop=("finest_epochs",), update_epochs=1, train_neg_sample_args=None)
_cwd = contextlib.chdir  # RecBole writes log/ and log_tensorboard/ into the working directory


@pytest.fixture
def env(tmp_path):
    dirs = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}
    with _cwd(tmp_path):
        yield tmp_path, dirs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Config, dataset and periods of the tiny ml-100k subset."""
    tmp = tmp_path_factory.mktemp("update")
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved")})
        config["device"] = torch.device("cpu")
        dataset = create_dataset(config)
    seqs = dataset_sequences(dataset)
    return config, dataset, seqs, cut_periods(seqs, config["update_cuts"])


def _model(config, dataset, seed=2020):
    init_seed(seed, True)
    return get_model("SASRec")(config, dataset)


def _files(folder):
    folder = Path(folder)
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------------- time cuts
def test_cuts_put_every_interaction_in_one_period(tiny):
    config, dataset, seqs, periods = tiny
    assert seqs.n_rows == len(dataset.inter_feat)
    assert periods.period.shape == (seqs.n_rows,) and set(np.unique(periods.period)) == {OLD, NEW, TEST}
    counts = periods.counts()
    assert sum(counts.values()) == seqs.n_rows and min(counts.values()) > 0
    t1, t2 = periods.bounds
    times = seqs.timestamps
    np.testing.assert_array_equal(periods.period == OLD, times <= t1)
    np.testing.assert_array_equal(periods.period == NEW, (times > t1) & (times <= t2))
    np.testing.assert_array_equal(periods.period == TEST, times > t2)
    # the shares follow the quantiles (ties may move a few rows)
    assert abs(counts["old"] / seqs.n_rows - 0.8) < 0.02 and abs(counts["test"] / seqs.n_rows - 0.1) < 0.02


def test_cuts_never_leak_test_interactions_into_training(tiny):
    config, dataset, seqs, periods = tiny
    t1, t2 = periods.bounds
    old, history = periods.upto(OLD), periods.upto(NEW)
    test_ids = set(seqs.ids[periods.period == TEST].tolist())
    assert test_ids and not test_ids & set(history.ids.tolist())
    assert old.timestamps.max() <= t1 < history.timestamps.max() <= t2 < seqs.timestamps[periods.period == TEST].min()
    # every row of the training sequences is the same interaction as in the full data
    np.testing.assert_array_equal(history.items, seqs.items[history.ids])
    # test inputs are the history at T2: no test-period item and no item after T2 in any input
    test = ContextSet(history, config, periods.first_of(TEST))
    times = test.inter["timestamp_list"]
    assert float(times[test.inter["item_id_list"] > 0].max()) <= t2
    # each test target is the user's first test-period item
    first_test = periods.first_of(TEST)
    assert (test.target.numpy() == first_test[test.seq]).all() and (test.target > 0).all()


def test_per_user_time_order_and_hand_made_periods():
    seqs = TrainingSequences.from_rows(np.array([0, 0, 0, 1, 1, 1]), np.array([1, 2, 3, 1, 2, 3]),
                                       np.array([1.0, 2.0, 9.0, 3.0, 5.0, 10.0]), np.arange(6), np.array([7, 8]), 4)
    periods = cut_periods(seqs, (0.4, 0.8))  # T1 = quantile 0.4 = 3.0, T2 = quantile 0.8 = 9.0
    assert periods.bounds == (3.0, 9.0)
    assert periods.period.tolist() == [OLD, OLD, NEW, OLD, NEW, TEST]
    assert periods.first_of(NEW).tolist() == [3, 2] and periods.first_of(TEST).tolist() == [0, 3]


def test_empty_new_period_is_one_clear_error():
    seqs = TrainingSequences.from_rows(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 1]),
                                       np.array([1.0, 1.0, 1.0, 2.0]), np.arange(4), np.array([0]), 4)
    with pytest.raises(ValueError, match=r"'update_cuts'.*new period is empty"):
        cut_periods(seqs, (0.2, 0.5))


@pytest.mark.parametrize("cuts", [[0.9, 0.8], [0.0, 0.5], [0.5, 1.0], [0.5], "0.8", [0.8, 0.8]])
def test_bad_cuts_fail_before_training(env, cuts):
    tmp, dirs = env
    with pytest.raises(ValueError, match="'update_cuts'"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, "update_cuts": cuts})
    assert _files(dirs["checkpoint_dir"]) == [] and _files(dirs["results_dir"]) == []


def test_empty_new_period_in_a_run_fails_before_training(env):
    tmp, dirs = env
    with pytest.raises(ValueError, match="new period is empty"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, "update_cuts": [0.5, 0.5000001]})
    assert _files(dirs["checkpoint_dir"]) == [] and _files(dirs["results_dir"]) == []


# ---------------------------------------------------------------------------------- churn
def test_self_churn_is_zero_and_another_model_is_not(tiny):
    config, dataset, seqs, periods = tiny
    contexts = ContextSet(periods.upto(NEW), config)
    model = _model(config, dataset)
    lists_a, _ = score_contexts(model, contexts, 64)
    lists_b, _ = score_contexts(copy.deepcopy(model), contexts, 37)  # other batches, same model
    same = churn(lists_a, lists_b, k=10)
    assert torch.allclose(same["rbo"], torch.ones(len(contexts), dtype=same["rbo"].dtype))
    assert (same["jaccard@10"] == 1).all() and not same["changed"].any()
    other = churn(lists_a, score_contexts(_model(config, dataset, seed=7), contexts, 64)[0], k=10)
    assert float(other["rbo"].mean()) < 1 and float(other["jaccard@10"].mean()) < 1


def test_changed_share_counts_more_than_half_replaced():
    a = torch.arange(1, 11)[None].repeat(3, 1)
    b = torch.stack([a[0], torch.cat([a[0, :5], torch.arange(20, 25)]), torch.cat([a[0, :4], torch.arange(20, 26)])])
    out = churn(a, b, k=10)
    assert out["changed"].tolist() == [False, False, True]  # 0, 5 (half, not more) and 6 items replaced


# ---------------------------------------------------------------------------------- strategies
def test_distillation_term_equals_hand_computation():
    student = torch.tensor([[9.0, 1.0, 2.0, 0.0], [5.0, 0.5, -1.0, 1.5]])
    teacher = torch.tensor([[-3.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    temperature = 2.0

    def softmax(row):
        e = [math.exp(v / temperature) for v in row[1:]]  # column 0 = padding, left out
        return [x / sum(e) for x in e]

    kl = [sum(p * math.log(p / q) for p, q in zip(softmax(t), softmax(s)))
          for s, t in zip(student.tolist(), teacher.tolist())]
    expected = temperature ** 2 * sum(kl) / 2
    assert float(distillation_loss(student, teacher, temperature)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation_loss(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-7)


def _train(config, dataset, sequences, state, strategy, teacher_state=None):
    model = get_model("SASRec")(config, dataset)
    model.load_state_dict(state)
    teacher = None
    if teacher_state is not None:
        teacher = get_model("SASRec")(config, dataset)
        teacher.load_state_dict(teacher_state)
    trainer = UpdateTrainer(config, model, strategy, teacher)
    init_seed(config["seed"] + 1, True)
    trainer.update(sequences, 2, 0.01, verbose=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_finest_with_weight_zero_equals_warm_start(tmp_path):
    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "finest_simulation": False,
                                                          "checkpoint_dir": str(tmp_path)})
        config["device"] = torch.device("cpu")
        dataset = create_dataset(config)
    periods = cut_periods(dataset_sequences(dataset), config["update_cuts"])
    history = periods.upto(NEW)
    v1 = _model(config, dataset).state_dict()
    warm = _train(config, dataset, history, v1, Strategy("warm_start"))
    zero = _train(config, dataset, history, v1, Strategy("finest", 0.0))
    strong = _train(config, dataset, history, v1, Strategy("finest", 5.0))
    assert all(torch.equal(warm[k], zero[k]) for k in warm)
    assert any(not torch.allclose(warm[k], strong[k]) for k in warm)  # the weight does act
    assert any(not torch.equal(warm[k], v1[k]) for k in warm)  # and training did happen


def test_distill_teacher_scores_align_with_the_student(tiny):
    """A teacher equal to the student (no dropout) gives a zero distillation term on real batches."""
    config, dataset, seqs, periods = tiny
    model = _model(config, dataset)
    trainer = UpdateTrainer(config, model, Strategy("distill", 1.0), copy.deepcopy(model))
    trainer.phase = "finetune"
    model.eval()  # no dropout: student == teacher
    loader = trainer.make_loader(periods.upto(NEW))
    batch = next(iter(loader))
    losses = trainer.batch_losses(batch)
    assert len(losses) == 2 and float(losses[1]) == pytest.approx(0.0, abs=1e-5)
    other = UpdateTrainer(config, model, Strategy("distill", 1.0), _model(config, dataset, seed=3))
    other.phase = "finetune"
    assert float(other.batch_losses(batch)[1]) > 1e-3


# ---------------------------------------------------------------------------------- deployed v1
@pytest.fixture(scope="module")
def recbole_checkpoint(tmp_path_factory):
    """A v1 written by plain RecBole ``run_recbole`` (1 epoch) on the tiny ml-100k subset."""
    from recbole.quick_start import run_recbole

    tmp = tmp_path_factory.mktemp("recbole_v1")
    # RecBole reloads its best checkpoint through compat.checkpoints.safe_load (compat.stack)
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict=TINY)  # the same dataset keys as the plugin's run
        keys = {k: config[k] for k in ("load_col", "user_inter_num_interval", "USER_ID_FIELD", "ITEM_ID_FIELD",
                                       "TIME_FIELD", "MAX_ITEM_LIST_LENGTH", "eval_args")}
        run_recbole("SASRec", "ml-100k", config_dict={**TINY, **keys, "checkpoint_dir": str(tmp / "saved"),
                                                      "metrics": ["MRR"], "topk": [10], "valid_metric": "MRR@10"})
    (path,) = (tmp / "saved").glob("*.pth")
    return path


def test_v1_written_by_plain_recbole_loads(env, recbole_checkpoint):
    tmp, dirs = env
    checkpoint = load_checkpoint(recbole_checkpoint)
    out = run_update("SASRec", "ml-100k", config_dict={
        **TINY, **dirs, "deployed_model_path": str(recbole_checkpoint), "update_methods": ["warm_start"]})
    report = out["report"]
    assert report["deployed"] == str(recbole_checkpoint) and report["epochs"] == TINY["epochs"]
    assert [r["strategy"] for r in report["rows"]] == ["v1 (no update)", "warm_start"]
    folder = Path(out["results_dir"])
    assert {"results.md", "results.csv", "results.json", "churn.npz", "churn_hist.png", "frontier.png"} <= set(
        _files(folder))
    # v1 is the checkpoint's model: its test accuracy is recomputed from the checkpoint's weights
    config = Config("SASRec", "ml-100k", config_dict=TINY)
    dataset = create_dataset(config)
    result = update_model(config, deployed=str(recbole_checkpoint), dataset=dataset,
                          strategies=[Strategy("warm_start")])
    state = result.v1.state_dict()
    assert all(torch.equal(state[k].cpu(), v.cpu()) for k, v in checkpoint["state_dict"].items())
    assert result.report["rows"][0] == report["rows"][0]


def test_checkpoint_of_another_model_or_dataset_is_one_clear_error(env, recbole_checkpoint):
    tmp, dirs = env
    checkpoint = load_checkpoint(recbole_checkpoint)
    other_model = tmp / "gru.pth"
    save_checkpoint({"state_dict": checkpoint["state_dict"], "config": {"model": "GRU4Rec", "dataset": "ml-100k"}},
                    other_model)
    with pytest.raises(ValueError, match=r"gru.pth' is a checkpoint of model 'GRU4Rec'.*updates model 'SASRec'"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, "deployed_model_path": str(other_model)})
    other_data = tmp / "other.pth"
    state = dict(checkpoint["state_dict"])
    state["item_embedding.weight"] = torch.zeros(5, 16)  # another catalogue
    save_checkpoint({"state_dict": state}, other_data)
    with pytest.raises(ValueError, match=r"'item_embedding.weight' has shape \(5, 16\).*another dataset"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, "deployed_model_path": str(other_data)})
    with pytest.raises(FileNotFoundError, match="deployed_model_path"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, "deployed_model_path": str(tmp / "no.pth")})
    assert _files(dirs["checkpoint_dir"]) == [] and _files(dirs["results_dir"]) == []


@pytest.mark.parametrize("key, value", [("update_methods", ["retrain", "bagging"]), ("update_distill_weight", -1),
                                        ("update_finest_weight", [1.0, "x"]), ("update_distill_temperature", 0),
                                        ("update_epochs", 0), ("update_learning_rate", -0.1)])
def test_bad_update_keys_are_named(env, key, value):
    tmp, dirs = env
    with pytest.raises(ValueError, match=f"'{key}'"):
        run_update("SASRec", "ml-100k", config_dict={**TINY, **dirs, key: value})
    assert _files(dirs["checkpoint_dir"]) == [] and _files(dirs["results_dir"]) == []


def test_cache_resumes_without_training(env, monkeypatch):
    tmp, dirs = env
    keys = {**TINY, **dirs, "update_methods": ["retrain", "finest"], "update_cache_dir": str(tmp / "cache")}
    first = run_update("SASRec", "ml-100k", config_dict=keys)["report"]
    assert sorted(_files(tmp / "cache")) == ["finest-1-e1-lr0.001.pth", "fingerprint.json", "retrain-e1-lr0.001.pth",
                                             "v1.pth"]
    monkeypatch.setattr(UpdateTrainer, "update", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(UpdateTrainer, "pretrain", lambda *a, **k: pytest.fail("trained again"))
    assert run_update("SASRec", "ml-100k", config_dict=keys)["report"]["rows"] == first["rows"]
    with pytest.raises(ValueError, match="update_cache_dir.*hidden_size"):
        run_update("SASRec", "ml-100k", config_dict={**keys, "hidden_size": 32})


def test_update_methods_from_the_command_line():
    from recbole_finest.update.strategies import method_names, strategies_of

    assert method_names("[retrain,warm_start, 'finest']") == ["retrain", "warm_start", "finest"]
    assert method_names(["distill"]) == ["distill"]
    config = {"update_methods": "[retrain,distill]", "update_distill_weight": [0.5, 2], "update_finest_weight": 1.0,
              "update_distill_temperature": 2.0}
    assert [s.label for s in strategies_of(config)] == ["retrain", "distill (0.5)", "distill (2)"]


def test_update_is_a_mode_of_the_command_line():
    import run_recbole_finest

    assert run_recbole_finest.parse_args(["--update", "--model=SASRec"]).update
    with pytest.raises(SystemExit):
        run_recbole_finest.parse_args(["--update", "--study"])
