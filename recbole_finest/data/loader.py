"""Training batches built from ``TrainingSequences`` each epoch.

``SequenceLoader`` stands in for RecBole's training ``DataLoader`` inside
``FinestTrainer``: it keeps the RecBole training dataset (``.dataset``, used by RecBole's
collector), rebuilds the instances every epoch from the current (possibly perturbed)
sequences and yields shuffled ``Interaction`` batches.

Layouts: ``prefix`` (RecBole's, one instance per target), ``sequence`` (one window per
``max_len`` targets, causal models) and, for masked models (BERT4Rec) in ``sequence``
unit, whole-sequence windows of rows (``TrainingSequences.masked_windows``).

Masked windows can be repeated: with ``mask_copies: k`` every window appears ``k`` times
per epoch (each copy masked independently when the batch is masked) in batches of ``k x
train_batch_size`` rows, so an epoch keeps its number of optimizer steps and each step
carries ``k`` times the masked-item predictions. A RecBole prefix epoch of BERT4Rec masks
every prefix's input list (about 17x the predictions of one mask per window on reddit);
``k`` moves the sequence unit toward that budget at ``k`` times the cost of an epoch.

Causal windows can be split: with ``target_split: k`` every window appears ``k`` times per
epoch and copy ``c`` scores only the positions drawn for it (each position goes to one copy
at random, every epoch anew), in batches of ``k x train_batch_size`` rows. Every target is
still scored once per epoch in the same number of steps, but a batch's targets come from
``k`` times as many windows, closer to a prefix batch (one target per instance), at ``k``
times the encoder cost.

Sequence-unit batches are length-bucketed: windows are shuffled, sorted by length within
pools of ``BUCKET_POOL_BATCHES`` batches, cut into batches of about ``train_batch_size``
targets, the batch order is shuffled, and every batch is cut to the width of its longest
window. Most windows are much shorter than ``max_len`` (reddit: 37% of the ``[W, L]``
slots hold a target), so this removes most of the padding the encoder would otherwise
process; trailing padding never changes the outputs at real positions (causal models look
only left, masked models mask padded keys). ``length_bucketing: False`` keeps the shuffled
order (batches of windows of any length, as a prefix batch), at the cost of that padding.
"""

import numpy as np
import torch

from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ, take

SEQUENCE = "sequence"
PREFIX = "prefix"
BUCKET_POOL_BATCHES = 50  # windows are sorted by length within pools of this many batches


def uses_masked_windows(unit, masked):
    """True when ``unit`` is ``sequence`` and the model is masked (``ModelAdapter.masked``)."""
    return unit == SEQUENCE and masked


def uses_target_split(config, unit, masked):
    """True when ``unit`` is ``sequence``, the model is causal and ``target_split`` > 1."""
    return unit == SEQUENCE and not masked and int(config["target_split"] or 1) > 1


def window_stride(config, unit, masked):
    """The ``window_stride`` the loader applies: causal models in the sequence unit, else None."""
    return config["window_stride"] if unit == SEQUENCE and not masked else None


def split_targets(inter, copy, assign):
    """Keep the targets of the positions drawn for each row's copy, blank the others.

    Args:
        inter: window ``Interaction`` of ``B`` rows with ``TARGET_SEQ`` / ``TARGET_ID [B, L]``.
        copy: int64 ``[B]`` the copy each row is.
        assign: int64 ``[B, L]`` the copy each position of the row's window belongs to.

    Returns ``inter`` with ``TARGET_SEQ`` = 0 and ``TARGET_ID`` = -1 where ``assign != copy``.
    """
    keep = assign == copy[:, None]
    inter.update(type(inter)({
        TARGET_SEQ: torch.where(keep, inter[TARGET_SEQ], torch.zeros_like(inter[TARGET_SEQ])),
        TARGET_ID: torch.where(keep, inter[TARGET_ID], torch.full_like(inter[TARGET_ID], -1)),
    }))
    return inter


def trim_width(inter, width, max_len):
    """Copy of ``inter`` whose ``[B, max_len]`` fields keep only their first ``width`` columns."""
    if width >= max_len:
        return inter
    return type(inter)({
        key: value[:, :width] if value.dim() == 2 and value.shape[1] == max_len else value
        for key, value in inter.interaction.items()
    })


def bucketed_batches(lengths, budget, order, pool_batches=BUCKET_POOL_BATCHES, targets=None):
    """Batches of window indices of about ``budget`` targets each, windows of similar length together.

    Window ``i`` (in the sorted order) goes to batch ``(targets before it) // budget``, so a
    batch holds ``budget`` targets give or take one window.

    Args:
        lengths: int64 ``[W]`` positions per window (the sort key).
        budget: targets per batch.
        order: int64 ``[W]`` a random permutation of the windows.
        targets: int64 ``[W]`` targets per window (default ``lengths``; fewer where a
            window has context-only positions, ``window_stride``).

    Returns a list of int64 index arrays (every window exactly once), in pool order; the
    caller shuffles the batch order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    targets = lengths if targets is None else np.asarray(targets, dtype=np.int64)
    if len(order) == 0:
        return []
    mean = max(1.0, float(targets.mean()))
    pool = max(1, int(round(pool_batches * budget / mean)))
    pool_of = np.arange(len(order)) // pool
    # within each pool (of the shuffled order): longest windows first, stable
    order = order[np.lexsort((-lengths[order], pool_of))]
    ends = np.cumsum(targets[order])
    batch_of = (ends - targets[order]) // max(1, budget)  # by the targets before the window
    cuts = np.flatnonzero(np.diff(batch_of)) + 1
    return np.split(order, cuts)


class SequenceLoader:
    """Iterable of training batches over ``TrainingSequences``.

    Args:
        dataset: the RecBole training dataset the sequences came from.
        sequences: ``TrainingSequences``.
        config: RecBole config (field names, ``MAX_ITEM_LIST_LENGTH``, batch size, seed).
        unit: ``"sequence"`` (window instances, every target scored once) or ``"prefix"``.
        perturb_fn: optional ``f(sequences, epoch) -> sequences``, the per-epoch
            perturbation simulation.
        masked: the model is a masked model (``ModelAdapter.masked``, asked by the trainer):
            the sequence unit then uses whole-sequence masked windows.
        seed: the run's seed of the batch order and draws (default: ``config["seed"]``).

    In sequence mode a batch holds about as many *targets* as a prefix batch of
    ``train_batch_size`` instances (length-bucketed, see the module doc).
    """

    def __init__(self, dataset, sequences, config, unit, perturb_fn=None, seed=None, *, masked):
        self.dataset = dataset
        self.seed = int(config["seed"] if seed is None else seed)
        self.sequences = sequences
        self.config = config
        self.unit = unit
        self.perturb_fn = perturb_fn
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        self.batch_size = config["train_batch_size"]
        self.masked = uses_masked_windows(unit, masked)
        self.split = uses_target_split(config, unit, masked)
        copies_key = "mask_copies" if self.masked else "target_split" if self.split else None
        self.copies = int(config[copies_key] or 1) if copies_key else 1
        self.epoch = 0
        self.current = sequences

    def set_epoch(self, epoch):
        self.epoch = epoch

    def instances(self, sequences=None):
        """All instances of ``sequences`` (default: this epoch's) as one Interaction."""
        seqs = self.current if sequences is None else sequences
        if self.masked:
            return seqs.masked_windows(self.max_len, self.config)
        if self.unit == SEQUENCE:
            return seqs.window_instances(self.max_len, self.config, window_stride(self.config, self.unit, masked=False))
        return seqs.prefix_instances(self.max_len, self.config)

    def _batch_indices(self, inter, gen):
        """Index arrays into ``inter``, one per batch, each window ``self.copies`` times.

        Copy ``c`` of window ``i`` is index ``c * n + i`` (``n = len(inter)``)."""
        n = len(inter)
        order = torch.randperm(n * self.copies, generator=gen).numpy()  # copy c of window i = c * n + i
        if self.unit == PREFIX:
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        lengths = np.tile(inter[self.config["ITEM_LIST_LENGTH_FIELD"]].numpy(), self.copies)
        targets = None if self.masked else np.tile((inter[TARGET_SEQ] > 0).sum(1).numpy(), self.copies)
        pool = BUCKET_POOL_BATCHES if self.config["length_bucketing"] else 0  # 0: one window per pool, no sort
        batches = bucketed_batches(lengths, self.batch_size * self.copies, order, pool, targets)
        shuffle = torch.randperm(len(batches), generator=gen).numpy()
        return [batches[i] for i in shuffle]

    def __iter__(self):
        seqs = self.sequences if self.perturb_fn is None else self.perturb_fn(self.sequences, self.epoch)
        self.current = seqs
        inter = self.instances(seqs)
        if self.config["loss_type"] == "BPR" and self.unit == PREFIX:
            n_items = seqs.n_items
            gen = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            inter.update(type(inter)({
                self.config["NEG_PREFIX"] + self.config["ITEM_ID_FIELD"]:
                    torch.randint(1, n_items, (len(inter),), generator=gen)
            }))
        gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        lengths = inter[self.config["ITEM_LIST_LENGTH_FIELD"]]
        n = len(inter)
        assign = torch.randint(self.copies, inter[TARGET_SEQ].shape, generator=gen) if self.split else None
        for index in self._batch_indices(inter, gen):
            index = torch.from_numpy(index)
            rows = index % n
            width = max(1, int(lengths[rows].max()))
            batch = take(inter, rows)
            if self.split:
                batch = split_targets(batch, index // n, assign[rows])
            yield trim_width(batch, width, self.max_len)


def eval_batches(sequences, config, unit, batch_size, *, masked):
    """Unshuffled batches of all instances of ``sequences`` for scoring (reference lists).

    Sequence unit: windows sorted by length, about ``batch_size`` targets per batch, each
    batch cut to its longest window.
    """
    loader = SequenceLoader(None, sequences, config, unit, masked=masked)
    inter = loader.instances()
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    lengths = inter[config["ITEM_LIST_LENGTH_FIELD"]]
    if unit == PREFIX:
        batches = [np.arange(s, min(s + batch_size, len(inter))) for s in range(0, len(inter), batch_size)]
    else:
        batches = bucketed_batches(lengths.numpy(), batch_size, np.arange(len(inter)), pool_batches=len(inter) + 1)
    for index in batches:
        index = torch.from_numpy(index)
        width = max(1, int(lengths[index].max()))
        yield trim_width(take(inter, index), width, max_len)
