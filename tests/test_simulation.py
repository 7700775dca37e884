"""FinestTrainer's per-epoch perturbation simulation (FINEST spec section 5, step 2).

Checked against independent computations on RecBole's bundled ml-100k (55 users with
>= 300 interactions): the number of perturbed rows, the least popular item, the ids of the
instances the regularizer sees, valid/test loaders untouched, seeded kind choice.
"""

import collections
import contextlib
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_finest.finest.trainer as trainer_module
from recbole_finest.config import Config
from recbole_finest.data.loader import SequenceLoader
from recbole_finest.data.sequences import TARGET_ID
from recbole_finest.finest.trainer import FinestTrainer
from recbole_finest.utils import get_model

from _cpu import on_cpu
from conftest import TINY

RATIO = 0.013  # 0.013 * 17955 rows = 233.4 -> 233 rows per epoch


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simulation")
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, "checkpoint_dir": str(tmp / "saved")})
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)

        def make_trainer(**overrides):
            cfg = on_cpu(Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, 
                **TINY, "checkpoint_dir": str(tmp / "saved"), "finest_sim_ratio": RATIO, **overrides}))
            init_seed(cfg["seed"], cfg["reproducibility"])
            model = get_model("SASRec")(cfg, train.dataset)
            return FinestTrainer(cfg, model)

        yield dict(train=train, valid=valid, test=test, make_trainer=make_trainer, tmp=tmp)


def _least_popular(seqs):
    """Independent: the real item with the fewest training rows, ties -> smallest id."""
    counts = collections.Counter(seqs.items.tolist())
    return min(range(1, seqs.n_items), key=lambda item: (counts.get(item, 0), item))


def _expected_n(seqs):
    return int(round(RATIO * seqs.n_rows))


@pytest.mark.parametrize("kind", ["deletion", "replacement", "insertion"])
def test_simulation_perturbs_exactly_n_rows_with_least_popular_item(env, kind):
    trainer = env["make_trainer"](finest_sim_kind=kind)
    seqs = trainer.sequences_of(env["train"])
    before = (seqs.items.copy(), seqs.ids.copy(), seqs.offsets.copy())
    n = _expected_n(seqs)
    assert 100 < n < seqs.n_rows
    out = trainer._simulation()(seqs, 0)
    least = _least_popular(seqs)
    new_rows = out.ids == -1
    if kind == "deletion":
        assert out.n_rows == seqs.n_rows - n
        assert not new_rows.any()
        kept = out.ids
        assert len(np.unique(kept)) == len(kept)
        assert np.array_equal(out.items, seqs.items[kept])  # surviving rows unchanged
    elif kind == "replacement":
        assert out.n_rows == seqs.n_rows
        assert int(new_rows.sum()) == n
        assert np.all(out.items[new_rows] == least)
        assert np.array_equal(out.items[~new_rows], seqs.items[~new_rows])
        assert np.array_equal(out.offsets, seqs.offsets)
    else:
        assert out.n_rows == seqs.n_rows + n
        assert int(new_rows.sum()) == n
        assert np.all(out.items[new_rows] == least)
        # removing the inserted rows gives back the original sequences exactly
        assert np.array_equal(out.ids[~new_rows], seqs.ids)
        assert np.array_equal(out.items[~new_rows], seqs.items)
        # each inserted row sits right before an original row of the same user, same timestamp
        pos = np.flatnonzero(new_rows)
        assert np.all(out.ids[pos + 1] >= 0)
        assert np.array_equal(out.seq_of_row()[pos], out.seq_of_row()[pos + 1])
        assert np.array_equal(out.timestamps[pos], out.timestamps[pos + 1])
    # the input sequences were not mutated
    assert all(np.array_equal(a, b) for a, b in zip(before, (seqs.items, seqs.ids, seqs.offsets)))


def _kind_of(seqs, out):
    delta = out.n_rows - seqs.n_rows
    return {-_expected_n(seqs): "deletion", 0: "replacement", _expected_n(seqs): "insertion"}[delta]


def test_kind_per_epoch_is_deterministic_for_a_seed(env):
    first = env["make_trainer"]()._simulation()
    second = env["make_trainer"]()._simulation()
    other = env["make_trainer"](seed=7)._simulation()
    seqs = env["make_trainer"]().sequences_of(env["train"])
    kinds, kinds_other = [], []
    for epoch in range(12):
        a, b = first(seqs, epoch), second(seqs, epoch)
        for field in ("offsets", "items", "ids", "timestamps"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (epoch, field)
        kinds.append(_kind_of(seqs, a))
        kinds_other.append(_kind_of(seqs, other(seqs, epoch)))
    assert set(kinds) == {"deletion", "replacement", "insertion"}  # one kind drawn per epoch
    assert kinds != kinds_other  # the draw follows the seed
    # different epochs perturb different rows
    assert not np.array_equal(first(seqs, 0).ids, first(seqs, 3).ids) or kinds[0] != kinds[3]


def test_loader_rebuilds_instances_from_perturbed_sequences(env):
    trainer = env["make_trainer"](finest_sim_kind="replacement")
    seqs = trainer.sequences_of(env["train"])
    simulation = trainer._simulation()
    loader = SequenceLoader(env["train"].dataset, seqs, trainer.config, "sequence", perturb_fn=simulation,
                            masked=trainer.scorer.masked)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        ids = torch.cat([batch[TARGET_ID].reshape(-1) for batch in loader]).numpy()
        perturbed = simulation(seqs, epoch)
        target_ids = perturbed.ids[perturbed.target_rows()]
        # every target appears once; replaced targets are -1 (as are window pads)
        assert np.array_equal(np.sort(ids[ids >= 0]), np.sort(target_ids[target_ids >= 0]))
        n_replaced_targets = int((target_ids == -1).sum())
        assert n_replaced_targets > 0


@pytest.mark.parametrize("unit", ["sequence", "prefix"])
def test_perturbed_targets_are_excluded_from_the_regularizer(env, unit, monkeypatch):
    trainer = env["make_trainer"](finest_sim_kind="replacement", train_unit=unit)
    seqs = trainer.sequences_of(env["train"])
    reference = trainer.build_reference(env["train"])
    looked_up, rank_rows = [], []
    lookup = reference.lookup
    monkeypatch.setattr(reference, "lookup", lambda ids: (looked_up.append(ids.clone()), lookup(ids))[1])
    original_loss = trainer_module.rank_preserving_loss

    def counting_loss(scores, ref, *args, **kwargs):
        rank_rows.append((scores.shape[0], ref.shape[0]))
        return original_loss(scores, ref, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "rank_preserving_loss", counting_loss)
    with _cwd(env["tmp"]):
        trainer.finetune(env["train"], None, reference, verbose=False, saved=False)

    epoch0 = trainer._simulation()(seqs, 0)  # the data of fine-tuning epoch 0
    targets = epoch0.ids[epoch0.target_rows()]
    replaced = seqs.ids[seqs.items != epoch0.items]  # rows whose item was replaced
    ids = torch.cat(looked_up).numpy()
    assert ids.min() >= 0
    assert np.array_equal(np.sort(ids), np.sort(targets[targets >= 0]))
    assert not np.isin(ids, replaced).any()
    assert int((targets == -1).sum()) > 0  # some targets really were perturbed
    assert sum(m for m, _ in rank_rows) == len(ids) == sum(r for _, r in rank_rows)


def _snapshot(loader):
    fields = {k: v.clone() for k, v in loader.dataset.inter_feat.interaction.items()}
    batches = []
    for interaction, idx, positive_u, positive_i in loader:
        batches.append(({k: v.clone() for k, v in interaction.interaction.items()}, idx,
                        positive_u.clone(), positive_i.clone()))
    return fields, batches


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_finetuning_epoch_never_touches_valid_or_test(env, kind):
    trainer = env["make_trainer"](finest_sim_kind=kind)
    seqs = trainer.sequences_of(env["train"])
    seq_copy = seqs.copy()
    train_feat = {k: v.clone() for k, v in env["train"].dataset.inter_feat.interaction.items()}
    before = {name: _snapshot(env[name]) for name in ("valid", "test")}
    with _cwd(env["tmp"]):
        trainer.finetune(env["train"], env["valid"], verbose=False, saved=False)
    after = {name: _snapshot(env[name]) for name in ("valid", "test")}
    for name in ("valid", "test"):
        assert _same(before[name], after[name]), name
    assert _same(train_feat, dict(env["train"].dataset.inter_feat.interaction))
    for field in ("offsets", "items", "ids", "timestamps", "user_ids"):
        assert np.array_equal(getattr(seqs, field), getattr(seq_copy, field))
