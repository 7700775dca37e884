"""``train_unit: sequence`` against ``train_unit: prefix``, and the reference-list storage.

* On sequences of at most ``max_len + 1`` rows every prefix instance sees exactly the
  items its window position sees, so with dropout off both units must give the same
  next-item loss and the same scores (SASRec, GRU4Rec, TiSASRec).
* Reference lists = top-2K of RecBole's own ``full_sort_predict`` on the prefix instances
  (causal models, both units; BERT4Rec prefix unit); BERT4Rec sequence unit = top-2K of a
  clean ``forward`` of each window at each row, computed window by window here.
* BERT4Rec helpers: the vectorized ``full_sort_predict`` / ``calculate_loss`` replacements
  equal RecBole's with the same masks.
* Memory-mapped reference lists equal the in-memory ones; int16 ids when the catalogue allows.
"""

import contextlib
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import init_seed

from recbole_finest.config import Config
from recbole_finest.data.loader import PREFIX, SEQUENCE, SequenceLoader, bucketed_batches
from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ, TrainingSequences
from recbole_finest.fileio import run_file
from recbole_finest.finest.reference import ReferenceLists, reference_dtype
from recbole_finest.finest.scoring import mask_items, masked_item_loss
from recbole_finest.finest.trainer import FinestTrainer
from recbole_finest.utils import get_model

from _cpu import on_cpu
from conftest import tiny

MAX_LEN = 12
K = 5
TINY = tiny(n_heads=2, MAX_ITEM_LIST_LENGTH=MAX_LEN, finest_topk=K, train_batch_size=100000,
            eval_batch_size=64, seed=7, hidden_dropout_prob=0.0, attn_dropout_prob=0.0,
            dropout_prob=0.0, loss_type="CE")


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_unit")
    with _cwd(tmp):
        config = Config("SASRec", "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved")})
        train, _, _ = data_preparation(config, create_dataset(config))

    def make_config(model_name, unit, **overrides):
        return on_cpu(Config(model_name, "ml-100k", config_dict={
            **TINY, "checkpoint_dir": str(tmp / "saved"), "train_unit": unit, **overrides}))

    def make_trainer(model_name, unit, **overrides):
        cfg = make_config(model_name, unit, **overrides)
        init_seed(cfg["seed"], cfg["reproducibility"])
        construct_transform(cfg)  # BERT4Rec's mask field names, as data_preparation does
        model = get_model(model_name)(cfg, train.dataset)
        model.eval()  # dropout off
        return FinestTrainer(cfg, model)

    yield dict(train=train, make_trainer=make_trainer, make_config=make_config, tmp=tmp)


def short_sequences(n_items, max_rows=MAX_LEN + 1, n_seq=23, seed=0):
    """Random sequences of 1..``max_rows`` rows (one of each length up to ``max_rows``)."""
    rng = np.random.default_rng(seed)
    n_seq = max(n_seq, max_rows + 3)
    lengths = np.r_[np.arange(1, max_rows + 1), rng.integers(1, max_rows + 1, n_seq - max_rows)]
    seq_of_row = np.repeat(np.arange(n_seq), lengths)
    n = len(seq_of_row)
    items = rng.integers(1, n_items, n)
    times = np.sort(rng.random(n) * 1e6) + seq_of_row * 1e7
    ids = np.arange(n)
    ids[rng.choice(n, 5, replace=False)] = -1  # a few perturbed rows
    return TrainingSequences.from_rows(seq_of_row, items, times, ids, np.arange(1, n_seq + 1), n_items)


def _single_batch(trainer, seqs, unit, config=None):
    """The one batch of ``seqs`` in ``unit`` (loader keys from ``config``, default the trainer's)."""
    loader = SequenceLoader(None, seqs, config or trainer.config, unit, masked=trainer.scorer.masked)
    batches = list(loader)
    assert len(batches) == 1  # train_batch_size holds every target
    return batches[0]


@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec", "TiSASRec"])
def test_prefix_and_sequence_give_the_same_loss_and_scores(env, model_name):
    trainer = env["make_trainer"](model_name, "sequence")
    seqs = short_sequences(trainer.model.n_items)
    scorer = trainer.scorer
    with torch.no_grad():
        loss_p, scores_p, ids_p = scorer.batch_outputs(_single_batch(trainer, seqs, PREFIX), PREFIX)
        loss_s, scores_s, ids_s = scorer.batch_outputs(_single_batch(trainer, seqs, SEQUENCE), SEQUENCE)
    # CE over every target: the mean over the same T instances
    assert torch.allclose(loss_p, loss_s, rtol=1e-5, atol=1e-6), (float(loss_p), float(loss_s))
    known = np.sort(seqs.ids[seqs.target_rows()])
    known = known[known >= 0]
    for ids, scores in ((ids_p, scores_p), (ids_s, scores_s)):
        order = torch.argsort(ids)
        assert np.array_equal(ids[order].numpy(), known)
    order_p, order_s = torch.argsort(ids_p), torch.argsort(ids_s)
    assert torch.allclose(scores_p[order_p], scores_s[order_s], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec"])
def test_window_stride_one_gives_the_prefix_contexts_on_long_sequences(env, model_name):
    """Sequences longer than max_len: disjoint windows cut contexts, stride 1 restores them all."""
    trainer = env["make_trainer"](model_name, "sequence")
    seqs = short_sequences(trainer.model.n_items, max_rows=3 * MAX_LEN)
    scorer, out = trainer.scorer, {}
    with torch.no_grad():
        out["prefix"] = scorer.batch_outputs(_single_batch(trainer, seqs, PREFIX), PREFIX)
        for stride in (None, 1, 4):  # the same model, loaders of Configs built with each stride
            strided = env["make_config"](model_name, "sequence", window_stride=stride)
            out[stride] = scorer.batch_outputs(_single_batch(trainer, seqs, SEQUENCE, strided), SEQUENCE)
    by_id = {key: (loss, scores[torch.argsort(ids)], ids.sort().values) for key, (loss, scores, ids) in out.items()}
    for stride in (None, 1, 4):  # every target scored once, whatever the stride
        assert torch.equal(by_id[stride][2], by_id["prefix"][2])
    assert torch.allclose(by_id[1][0], by_id["prefix"][0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(by_id[1][1], by_id["prefix"][1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(by_id[None][1], by_id["prefix"][1], rtol=1e-3, atol=1e-3)  # disjoint windows differ


def test_window_stride_windows_see_at_least_max_len_minus_stride_plus_one_inputs(env):
    seqs = short_sequences(1000, max_rows=3 * MAX_LEN)
    stride = 4
    inter = seqs.window_instances(MAX_LEN, env["make_trainer"]("SASRec", "sequence").config, stride)
    targets, lengths = inter[TARGET_SEQ], inter["item_length"]
    assert int(((targets > 0).sum(1) <= stride).sum()) == len(inter)  # at most `stride` new targets
    pos = torch.arange(MAX_LEN)[None, :].expand_as(targets)
    seen = (pos + 1)[targets > 0]  # inputs a scored position sees
    # ids are global row numbers here (perturbed rows -1): t = the row's index in its sequence
    t = torch.as_tensor(np.arange(len(seqs.items)) - np.repeat(seqs.offsets[:-1], seqs.lengths))
    want = torch.clamp(t, max=MAX_LEN - stride + 1)  # at least this, or the whole history t
    ids = inter[TARGET_ID][targets > 0]
    known = ids >= 0
    assert (seen[known] >= want[ids[known]]).all()
    assert (seen <= MAX_LEN).all() and (lengths <= MAX_LEN).all()


def test_sequence_loss_differs_from_an_unrelated_loss(env):
    """The equality above is not vacuous: other data gives another loss."""
    trainer = env["make_trainer"]("SASRec", "sequence")
    a = short_sequences(trainer.model.n_items, seed=0)
    b = short_sequences(trainer.model.n_items, seed=1)
    with torch.no_grad():
        la = trainer.scorer.batch_outputs(_single_batch(trainer, a, SEQUENCE), SEQUENCE)[0]
        lb = trainer.scorer.batch_outputs(_single_batch(trainer, b, SEQUENCE), SEQUENCE)[0]
    assert abs(float(la) - float(lb)) > 1e-4


@torch.no_grad()
def _expected_prefix_top2k(model, seqs, config):
    """Top-2K of RecBole's ``full_sort_predict`` on every prefix instance, by target id."""
    inter = seqs.prefix_instances(MAX_LEN, config)
    keep = inter[TARGET_ID] >= 0
    scores = model.full_sort_predict(inter)[keep]
    scores[:, 0] = -torch.inf
    return inter[TARGET_ID][keep], scores


def _assert_reference(reference, ids, scores):
    """The stored lists are a top-2K of ``scores`` (compared by score, so ties cannot fail)."""
    got = reference.lookup(ids)
    want = torch.topk(scores, 2 * K, dim=1)
    assert torch.allclose(scores.gather(1, got), want.values, rtol=1e-5, atol=1e-6)
    assert bool(reference.known[ids].all())


@pytest.mark.parametrize("model_name,unit", [
    ("SASRec", "sequence"), ("SASRec", "prefix"), ("GRU4Rec", "sequence"), ("BERT4Rec", "prefix"),
])
def test_reference_lists_equal_full_sort_predict(env, model_name, unit):
    trainer = env["make_trainer"](model_name, unit)
    seqs = short_sequences(trainer.model.n_items)
    reference = trainer.build_reference(seqs)
    ids, scores = _expected_prefix_top2k(trainer.model, seqs, trainer.config)
    _assert_reference(reference, ids, scores)


@torch.no_grad()
def test_bert4rec_sequence_reference_is_the_clean_window_at_every_row(env):
    trainer = env["make_trainer"]("BERT4Rec", "sequence")
    model = trainer.model
    seqs = short_sequences(model.n_items, max_rows=3 * MAX_LEN + 2)
    reference = trainer.build_reference(seqs)
    weights = model.item_embedding.weight[: model.n_items]
    ids, rows = [], []
    for u in range(seqs.n_sequences):  # windows of MAX_LEN rows, the last one ends the sequence
        start, end = seqs.offsets[u], seqs.offsets[u + 1]
        while end > start:
            first = max(start, end - MAX_LEN)
            items = torch.as_tensor(seqs.items[first:end])[None, :]
            hidden = model.forward(items)[0]
            rows.append(hidden @ weights.T + model.output_bias)
            ids.append(torch.as_tensor(seqs.ids[first:end]))
            end = first
    ids, scores = torch.cat(ids), torch.cat(rows)
    keep = ids >= 0
    scores[:, 0] = -torch.inf
    _assert_reference(reference, ids[keep], scores[keep])


@torch.no_grad()
def test_bert4rec_vectorized_helpers_equal_recbole(env):
    trainer = env["make_trainer"]("BERT4Rec", "prefix")
    model, scorer = trainer.model, trainer.scorer
    seqs = short_sequences(model.n_items, max_rows=2 * MAX_LEN)
    inter = seqs.prefix_instances(MAX_LEN, trainer.config)
    assert torch.allclose(scorer.last_scores(inter), model.full_sort_predict(inter), rtol=1e-5, atol=1e-5)
    torch.manual_seed(3)
    masked = mask_items(seqs.masked_windows(MAX_LEN, trainer.config), model)
    assert int((masked[model.MASK_INDEX] > 0).sum()) > 0
    hidden = model.forward(masked[model.MASK_ITEM_SEQ])
    for loss_type in ("CE", "BPR"):
        model.loss_type = loss_type
        assert torch.allclose(masked_item_loss(model, hidden, masked), model.calculate_loss(masked), rtol=1e-5)
    model.loss_type = "CE"


def test_bert4rec_sequence_batch_scores_every_known_row_from_one_pass(env):
    trainer = env["make_trainer"]("BERT4Rec", "sequence")
    seqs = short_sequences(trainer.model.n_items, max_rows=2 * MAX_LEN)
    batch = _single_batch(trainer, seqs, SEQUENCE)
    calls, forward = [], trainer.model.forward
    trainer.model.forward = lambda *args: calls.append(1) or forward(*args)
    try:
        with torch.no_grad():
            loss, scores, ids = trainer.scorer.batch_outputs(batch, SEQUENCE)
    finally:
        del trainer.model.forward
    assert len(calls) == 1 and torch.isfinite(loss)
    known = seqs.ids[seqs.ids >= 0]
    assert np.array_equal(np.sort(ids.numpy()), np.sort(known))  # every known row, first rows included
    assert scores.shape == (len(known), trainer.model.n_items)


def test_row_window_bounds_by_hand():
    seqs = TrainingSequences.from_rows(np.repeat([0, 1, 2], [7, 3, 0]), np.arange(1, 11), np.zeros(10),
                                       np.arange(10), np.array([1, 2, 3]), 20)
    seq, first, count = seqs.row_window_bounds(3)
    assert seq.tolist() == [0, 0, 0, 1]
    assert first.tolist() == [0, 1, 4, 7]  # 7 rows -> [0], [1..3], [4..6]: the last window ends the sequence
    assert count.tolist() == [1, 3, 3, 3]


def test_bucketed_batches_cover_every_window_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 51, 1000)
    batches = bucketed_batches(lengths, 512, rng.permutation(1000), pool_batches=50)
    flat = np.concatenate(batches)
    assert np.array_equal(np.sort(flat), np.arange(1000))
    sizes = np.array([lengths[b].sum() for b in batches])
    assert (np.abs(sizes[:-1] - 512) < 50).all()  # within one window of the budget
    assert sizes.sum() == lengths.sum()
    # padding: slots of [len(batch), longest] per target; unsorted batches of this data: 1.84
    slots = sum(len(b) * lengths[b].max() for b in batches)
    assert slots < 1.3 * lengths.sum()


def _window_keys(batches):
    """One hashable key per window row of the batches: (user, its items without padding)."""
    keys = []
    for batch in batches:
        for uid, items in zip(batch["user_id"].tolist(), batch["item_id_list"].tolist()):
            keys.append((uid, tuple(i for i in items if i)))
    return keys


def _config(env, model_name, **overrides):
    return on_cpu(Config(model_name, "ml-100k", config_dict={**TINY, "checkpoint_dir": str(env["tmp"] / "saved"),
                                                             **overrides}))


def _epoch(env, seqs, model_name, unit=SEQUENCE, **overrides):
    """One epoch of ``SequenceLoader`` batches over ``seqs`` with config ``overrides``."""
    return list(SequenceLoader(None, seqs, _config(env, model_name, **overrides), unit,
                               masked=model_name == "BERT4Rec"))


def test_mask_copies_repeat_every_window_in_the_same_number_of_steps(env):
    seqs = short_sequences(1000, max_rows=3 * MAX_LEN, n_seq=120)
    runs = {copies: _epoch(env, seqs, "BERT4Rec", train_batch_size=60, mask_copies=copies) for copies in (1, 3)}
    once, thrice = _window_keys(runs[1]), _window_keys(runs[3])
    n_windows = len(seqs.row_window_bounds(MAX_LEN)[0])
    assert len(once) == len(set(once)) == n_windows  # windows are distinct: keys identify them
    assert sorted(thrice) == sorted(once * 3)  # every window exactly three times
    assert abs(len(runs[3]) - len(runs[1])) <= 1  # same number of optimizer steps, give or take one
    rows = np.sort([int(b["item_length"].sum()) for b in runs[3]])[1:]  # all but the remainder batch
    assert (np.abs(rows - 3 * 60) <= MAX_LEN).all()  # batches of about 3 x train_batch_size rows


@pytest.mark.parametrize("key,layouts", [
    ("mask_copies", (("SASRec", SEQUENCE), ("BERT4Rec", PREFIX))),
    ("target_split", (("BERT4Rec", SEQUENCE), ("SASRec", PREFIX))),
])
def test_copy_keys_leave_other_models_and_the_prefix_unit_alone(env, key, layouts):
    seqs = short_sequences(1000, max_rows=3 * MAX_LEN, n_seq=60)
    for model_name, unit in layouts:
        batches = {copies: _window_keys(_epoch(env, seqs, model_name, unit, train_batch_size=50, **{key: copies}))
                   for copies in (1, 3)}
        assert batches[3] == batches[1], (key, model_name, unit)


@pytest.mark.parametrize("key", ["mask_copies", "target_split"])
@pytest.mark.parametrize("value", [0, -2, 1.5, "two"])
def test_copy_counts_must_be_positive_integers(env, key, value):
    with pytest.raises(ValueError, match=rf"'{key}' must be a positive integer"):
        _config(env, "BERT4Rec", **{key: value})


def _scored_targets(batches):
    """Multiset of the (target id, target item) pairs the batches score, and the row count."""
    ids = torch.cat([b[TARGET_ID][b[TARGET_SEQ] > 0] for b in batches])
    items = torch.cat([b[TARGET_SEQ][b[TARGET_SEQ] > 0] for b in batches])
    return sorted(zip(ids.tolist(), items.tolist())), sum(len(b) for b in batches)


def test_target_split_scores_every_target_once_from_more_windows_per_batch(env):
    seqs = short_sequences(1000, max_rows=3 * MAX_LEN, n_seq=120)
    runs = {split: _epoch(env, seqs, "SASRec", train_batch_size=60, target_split=split) for split in (1, 4)}
    (once, rows_1), (split_4, rows_4) = _scored_targets(runs[1]), _scored_targets(runs[4])
    assert split_4 == once  # each target scored exactly once per epoch, by one of the copies
    assert rows_4 == 4 * rows_1  # every window four times
    assert sorted(_window_keys(runs[4])) == sorted(_window_keys(runs[1]) * 4)
    assert abs(len(runs[4]) - len(runs[1])) <= 1  # same number of optimizer steps, give or take one
    per_batch = [len(b) for b in runs[4]]
    assert np.mean(per_batch) > 3 * np.mean([len(b) for b in runs[1]])  # about 4x the windows per batch
    targets = [int((b[TARGET_SEQ] > 0).sum()) for b in runs[4]]
    assert np.median(targets) == pytest.approx(60, rel=0.35)  # still about train_batch_size targets
    for b in runs[4]:  # a blanked position has no target id either (the regularizer skips it)
        assert (b[TARGET_ID][b[TARGET_SEQ] == 0] == -1).all()


def test_length_bucketing_off_mixes_window_lengths_in_a_batch(env):
    seqs = short_sequences(1000, max_rows=3 * MAX_LEN, n_seq=400)
    spread, targets = {}, {}
    for bucketing in (True, False):
        batches = _epoch(env, seqs, "SASRec", train_batch_size=60, length_bucketing=bucketing)
        lengths = [b["item_length"] for b in batches]
        spread[bucketing] = np.mean([int(x.max() - x.min()) for x in lengths])
        targets[bucketing] = sorted(torch.cat([b[TARGET_ID][b[TARGET_SEQ] > 0] for b in batches]).tolist())
        n_targets = np.array([int((b[TARGET_SEQ] > 0).sum()) for b in batches])
        assert (np.abs(n_targets[:-1] - 60) <= MAX_LEN).all() or bucketing  # about 60 targets each
    assert targets[False] == targets[True]  # the same targets, each once
    assert spread[True] <= 2 and spread[False] > 3 * max(spread[True], 1)


def test_memmap_reference_equals_in_memory(env, tmp_path):
    trainer = env["make_trainer"]("SASRec", "sequence")
    seqs = short_sequences(trainer.model.n_items)
    in_memory = trainer.build_reference(seqs)
    disk = env["make_trainer"]("SASRec", "sequence", finest_reference_file=str(tmp_path / "ref.npy"))
    on_disk = disk.build_reference(seqs)
    assert on_disk.on_disk and not in_memory.on_disk
    path = run_file(tmp_path / "ref.npy", disk.run_id, disk.tag)  # one file per run and model
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    assert os.path.getsize(path) >= on_disk.table.size * on_disk.table.itemsize
    assert np.array_equal(np.asarray(on_disk.table), in_memory.table.numpy())
    ids = torch.as_tensor(seqs.ids[seqs.ids >= 0][1:])
    assert torch.equal(on_disk.lookup(ids), in_memory.lookup(ids))
    assert on_disk.lookup(ids).dtype == torch.long
    reread = np.load(path, mmap_mode="r")
    assert np.array_equal(reread, in_memory.table.numpy())


def test_reference_ids_are_int16_when_the_catalogue_allows(env, tmp_path):
    assert reference_dtype(32767) == torch.int16
    assert reference_dtype(32768) == torch.int32
    trainer = env["make_trainer"]("SASRec", "sequence")
    ref = trainer.build_reference(short_sequences(trainer.model.n_items))
    assert ref.table.dtype == torch.int16
    assert ref.table.element_size() * ref.table.shape[1] == 2 * 2 * K  # instances x 2K x 2 bytes
    big = ReferenceLists.empty(4, K, 40000, "cpu")
    assert big.table.dtype == torch.int32
    big.store(torch.tensor([1]), torch.full((1, 2 * K), 39999))
    assert int(big.lookup(torch.tensor([1]))[0, 0]) == 39999
    disk = ReferenceLists.empty(4, K, 100, "cpu", str(tmp_path / "r.npy"))
    assert disk.table.dtype == np.int16


def test_prefix_parity_example_turns_on_split_targets_and_shuffled_batches(env):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "properties", "examples", "prefix_parity.yaml")
    cfg = on_cpu(Config("SASRec", "ml-100k", config_file_list=[path],
                        config_dict={**TINY, "checkpoint_dir": str(env["tmp"] / "saved")}))
    loader = SequenceLoader(None, short_sequences(1000), cfg, cfg["train_unit"], masked=False)
    assert (loader.unit, loader.split, loader.copies, cfg["length_bucketing"]) == (SEQUENCE, True, 8, False)


def test_sequence_ft_ratio_sets_the_last_item_batches_of_the_sequence_unit_only(env):
    # RecBole's ft_ratio keeps the prefix unit's recipe; the sequence unit reads sequence_ft_ratio
    last_only = env["make_trainer"]("BERT4Rec", "sequence", sequence_ft_ratio=1.0, ft_ratio=0.0)
    masked = env["make_trainer"]("BERT4Rec", "sequence", ft_ratio=1.0)  # default sequence_ft_ratio: 0
    prefix = env["make_trainer"]("BERT4Rec", "prefix", ft_ratio=1.0, sequence_ft_ratio=0.0)
    assert (last_only.scorer.ft_ratio, masked.scorer.ft_ratio, prefix.scorer.ft_ratio) == (1.0, 0.0, 1.0)
    model = last_only.model
    batch = _single_batch(last_only, short_sequences(model.n_items, max_rows=2 * MAX_LEN), SEQUENCE)
    with torch.no_grad():
        # independent: mask the last real item of every window, RecBole's masked-item loss on it
        fields = mask_items(batch, model, last_only=True)
        expected = masked_item_loss(model, model.forward(fields[model.MASK_ITEM_SEQ]), fields)
        got_last, _, _ = last_only.scorer.batch_outputs(batch, SEQUENCE)
        got_masked, _, _ = masked.scorer.batch_outputs(batch, SEQUENCE)  # same parameters (same seed)
    assert torch.allclose(got_last, expected, rtol=1e-5)
    assert not torch.allclose(got_masked, expected, rtol=1e-3)


@pytest.mark.parametrize("value", [-0.1, 1.5, "half"])
def test_sequence_ft_ratio_must_be_a_probability(env, value):
    with pytest.raises(ValueError, match=r"'sequence_ft_ratio' must be a number in \[0, 1\]"):
        _config(env, "BERT4Rec", sequence_ft_ratio=value)
