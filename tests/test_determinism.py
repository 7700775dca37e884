"""Same config + seed -> identical numbers; models A and B start from identical parameters."""

import contextlib
import os

import pytest
import torch
from recbole.utils import init_seed

from recbole_finest.quick_start import run_recbole_finest
from recbole_finest.finest.trainer import FinestTrainer
from recbole_finest.utils import get_model
from conftest import tiny

TINY = tiny(perturb_ratio=0.01)


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


def _run(folder):
    folder.mkdir()
    with _cwd(folder):
        return run_recbole_finest("SASRec", "ml-100k", config_dict={
            **TINY, "checkpoint_dir": str(folder / "saved"), "results_dir": str(folder / "results")})


def _state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two runs of one config; the first records each model's parameters when pre-training starts."""
    tmp = tmp_path_factory.mktemp("determinism")
    starts, ends = {}, {}
    original = FinestTrainer.pretrain

    def recording_pretrain(self, train_data, *args, **kwargs):
        starts[self.tag] = _state(self.model)
        result = original(self, train_data, *args, **kwargs)
        ends[self.tag] = _state(self.model)
        return result

    FinestTrainer.pretrain = recording_pretrain
    try:
        first = _run(tmp / "first")
    finally:
        FinestTrainer.pretrain = original
    second = _run(tmp / "second")
    return dict(first=first, second=second, starts=starts, ends=ends)


def test_same_config_and_seed_give_identical_rows(two_runs):
    rows_1 = two_runs["first"]["results"]["rows"]
    rows_2 = two_runs["second"]["results"]["rows"]
    assert [r["method"] for r in rows_1] == ["original", "finest"]
    assert rows_1 == rows_2  # exact float equality, every metric of A and B
    assert two_runs["first"]["results"]["perturbation"] == two_runs["second"]["results"]["perturbation"]
    assert two_runs["first"]["results"]["perturbation"]["n_perturbed"] > 0


def test_a_and_b_start_from_identical_parameters(two_runs):
    starts, ends = two_runs["starts"], two_runs["ends"]
    tag_a = next(t for t in starts if t.endswith("A"))
    tag_b = next(t for t in starts if t.endswith("B"))
    assert _same_state(starts[tag_a], starts[tag_b])
    # B was really trained on different (perturbed) data: the recording is of the start
    assert not _same_state(ends[tag_a], ends[tag_b])


def test_initial_parameters_are_the_seeded_initialisation(two_runs, tmp_path):
    """Independent: a fresh model built right after ``init_seed(seed)`` has those parameters."""
    from recbole.data import create_dataset, data_preparation

    from recbole_finest.config import Config

    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp_path)})
        init_seed(config["seed"], config["reproducibility"])
        train, _, _ = data_preparation(config, create_dataset(config))
        init_seed(config["seed"], config["reproducibility"])
        fresh = get_model("SASRec")(config, train.dataset).state_dict()
    start_a = next(v for t, v in two_runs["starts"].items() if t.endswith("A"))
    assert _same_state(start_a, fresh)


def test_stability_run_initial_state_is_used_for_both(tmp_path, monkeypatch):
    """``StabilityRun.initial_state`` is what A's and B's trainers are built from."""
    from recbole.data import create_dataset, data_preparation

    from recbole_finest.config import Config
    from recbole_finest.stability.run import StabilityRun

    with _cwd(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp_path)})
        init_seed(config["seed"], config["reproducibility"])
        train, valid, test = data_preparation(config, create_dataset(config))
        run = StabilityRun(config, train, valid, test, saved=False)
        initial = {k: v.clone() for k, v in run.initial_state.items()}
        seen = []
        monkeypatch.setattr(FinestTrainer, "pretrain",
                            lambda self, *a, **k: seen.append(_state(self.model)))
        run.pretrain()
    assert len(seen) == 2
    assert _same_state(seen[0], initial) and _same_state(seen[1], initial)
