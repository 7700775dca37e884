"""Reference lists (FINEST spec section 5, step 1) against RecBole's own ``full_sort_predict``.

The expected lists are computed from RecBole's training instances
(``train_data.dataset.inter_feat``, RecBole's prefix augmentation), not from the plugin's
instance builders. Scores are compared at the chosen ids, so ties cannot fail the test.
"""

import contextlib
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_finest.config import Config
from recbole_finest.finest.trainer import FinestTrainer
from recbole_finest.utils import get_model

from _cpu import on_cpu
from conftest import tiny

K = 10
TINY = tiny(finest_topk=K)


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved")})
        init_seed(config["seed"], config["reproducibility"])
        train, _, _ = data_preparation(config, create_dataset(config))

        def make_trainer(**overrides):
            cfg = on_cpu(Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved"),
                                                                  **overrides}))
            init_seed(cfg["seed"], cfg["reproducibility"])
            return FinestTrainer(cfg, get_model("SASRec")(cfg, train.dataset))

        yield dict(train=train, make_trainer=make_trainer)


def _recbole_instances(train, seqs):
    """RecBole's prefix instances and the stable target id of each (its row in the CSR).

    Returns ``(interaction, ids [T], position [T])``; ``position`` is the target's 0-based
    position in its user's training sequence.
    """
    inter = train.dataset.inter_feat
    uids = inter["user_id"].numpy()
    order = np.argsort(uids, kind="stable")
    sorted_uids = uids[order]
    first = np.r_[True, sorted_uids[1:] != sorted_uids[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(uids)), 0))
    rank = np.empty(len(uids), dtype=np.int64)
    rank[order] = np.arange(len(uids)) - start  # rank of the instance within its user
    seq_index = {int(u): i for i, u in enumerate(seqs.user_ids)}
    position = rank + 1  # RecBole's first instance of a user has one input item
    ids = seqs.offsets[[seq_index[int(u)] for u in uids]] + position
    assert np.array_equal(seqs.items[ids], inter["item_id"].numpy())  # the id mapping is right
    return inter, torch.as_tensor(ids), position


@torch.no_grad()
def _assert_top2k(model, inter, ids, reference):
    model.eval()
    scores = model.full_sort_predict(inter)
    scores[:, 0] = -torch.inf
    best = torch.topk(scores, 2 * K, dim=1).values  # [T, 2K] descending
    chosen = reference.lookup(ids)  # [T, 2K] ids in reference order
    assert chosen.shape == (len(ids), 2 * K)
    assert not (chosen == 0).any()
    assert torch.allclose(scores.gather(1, chosen), best, atol=1e-5, rtol=0)
    # distinct items per row
    assert (chosen.sort(1).values.diff(dim=1) > 0).all()


def test_prefix_unit_reference_is_top_2k_of_full_sort_predict(env):
    trainer = env["make_trainer"](train_unit="prefix")
    seqs = trainer.sequences_of(env["train"])
    reference = trainer.build_reference(env["train"])
    inter, ids, _ = _recbole_instances(env["train"], seqs)
    assert bool(reference.known[ids].all())
    assert int(reference.known.sum()) == len(ids)  # first rows of sequences are no targets
    _assert_top2k(trainer.model, inter, ids, reference)


def test_sequence_unit_reference_uses_window_contexts(env):
    """``train_unit: sequence``: targets are scored in windows of ``MAX_ITEM_LIST_LENGTH``.

    A target in its user's first window sees its whole prefix (= RecBole's instance); a
    target at position q > L sees only the window's items ``(q-1) // L * L .. q-1``, i.e.
    the last ``(q-1) % L + 1`` items of RecBole's instance input.
    """
    trainer = env["make_trainer"](train_unit="sequence")
    seqs = trainer.sequences_of(env["train"])
    reference = trainer.build_reference(env["train"])
    inter, ids, position = _recbole_instances(env["train"], seqs)
    max_len = TINY["MAX_ITEM_LIST_LENGTH"]
    first_window = torch.as_tensor(position <= max_len)
    assert 0 < int(first_window.sum()) < len(ids)
    _assert_top2k(trainer.model, inter[first_window], ids[first_window], reference)

    # independent window contexts: keep the last c items of RecBole's input, left-aligned
    items, lengths = inter["item_id_list"], inter["item_length"]
    c = torch.as_tensor((position - 1) % max_len + 1)
    assert torch.all(c <= lengths)
    cols = torch.arange(max_len)
    src = (lengths - c)[:, None] + cols[None, :]
    window = torch.where(cols[None, :] < c[:, None], items.gather(1, src.clamp(max=max_len - 1)), 0)
    cut = type(inter)(dict(inter.interaction))  # shallow copy: RecBole's dataset stays as it is
    cut.update(type(inter)({"item_id_list": window, "item_length": c}))
    _assert_top2k(trainer.model, cut, ids, reference)


def test_topk_too_large_is_a_clear_error(env):
    n_real_items = env["train"].dataset.item_num - 1  # 1597
    trainer = env["make_trainer"](finest_topk=n_real_items // 2)  # 2K = 1596 <= 1597: fine
    assert trainer.config["finest_topk"] == 798
    with pytest.raises(ValueError, match=r"finest_topk.*799.*1597.*finest_topk <= 798"):
        trainer = env["make_trainer"](finest_topk=n_real_items // 2 + 1)
        trainer.build_reference(env["train"])
