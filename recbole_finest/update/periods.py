"""Global time cuts of a dataset into an old, a new and a test period, and the inputs built on them.

``update_cuts: [q1, q2]`` are quantiles of all interaction timestamps: ``T1 = quantile(q1)``,
``T2 = quantile(q2)``. An interaction at time ``t`` is *old* when ``t <= T1``, *new* when
``T1 < t <= T2`` and *test* when ``t > T2``, so every interaction lies in exactly one period
and no test interaction is earlier than a training one. v1 trains on the old period, v2 on
old + new; the test period is only ever a target, never an input or a training row.

A rolling chain (``update_cuts: [q1, ..., qn]``, n >= 2) cuts the same way into n + 1
periods: period ``0`` (``t <= T1``), period ``j`` (``T_j < t <= T_{j+1}``) and the test
period ``n`` (``t > T_n``); version ``v_c`` trains on the periods ``< c`` (``t <= T_c``).
With two cuts the periods are ``OLD``, ``NEW``, ``TEST``.
"""

from dataclasses import dataclass

import numpy as np

from recbole_finest.data.sequences import TrainingSequences, _field_names, _to_interaction

OLD, NEW, TEST = 0, 1, 2
PERIOD_NAMES = ("old", "new", "test")


def period_names(n_cuts):
    """Names of the ``n_cuts + 1`` periods: ``old``, ``new`` (``new 1`` ... ``new n-1`` for a chain), ``test``."""
    if n_cuts == 2:
        return PERIOD_NAMES
    return ("old", *(f"new {j}" for j in range(1, n_cuts)), "test")


@dataclass
class Periods:
    """Every interaction of a dataset in per-user time order, with its period.

    Attributes:
        sequences: ``TrainingSequences`` of *all* interactions (stable ids ``0..N-1``).
        period: int8 ``[N]`` period of each row (``OLD`` / ``NEW`` / ``TEST`` with two cuts; ``0..n``).
        bounds: ``(T1, ..., Tn)`` timestamps of the cuts.
    """

    sequences: TrainingSequences
    period: np.ndarray
    bounds: tuple

    def upto(self, last):
        """``TrainingSequences`` of the rows in periods ``<= last`` (ids kept, users kept)."""
        seqs, keep = self.sequences, self.period <= last
        return TrainingSequences.from_rows(seqs.seq_of_row()[keep], seqs.items[keep], seqs.timestamps[keep],
                                           seqs.ids[keep], seqs.user_ids, seqs.n_items)

    def first_of(self, period):
        """int64 ``[U]`` item of each user's first row in ``period`` (0 = the user has none)."""
        seqs = self.sequences
        rows = np.flatnonzero(self.period == period)
        seq = seqs.seq_of_row()[rows]
        out = np.zeros(seqs.n_sequences, dtype=np.int64)
        first = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]]) if len(rows) else rows
        out[seq[first]] = seqs.items[rows[first]]
        return out

    @property
    def names(self):
        return period_names(len(self.bounds))

    def counts(self):
        """``{"old": n, "new": n, "test": n}`` interactions per period (``period_names``)."""
        return {name: int((self.period == p).sum()) for p, name in enumerate(self.names)}


def dataset_sequences(dataset):
    """``TrainingSequences`` of every interaction of a RecBole dataset (before its split).

    Rows are grouped by user and ordered by time (ties keep the file order); ids ``0..N-1``.
    """
    feat = dataset.inter_feat  # a DataFrame before RecBole's build(), an Interaction after it

    def column(field, dtype):
        values = feat[field]
        return np.asarray(values.numpy() if hasattr(values, "numpy") else values).astype(dtype)

    if dataset.time_field is None or dataset.time_field not in feat.columns if hasattr(feat, "columns") \
            else dataset.time_field not in feat.interaction:
        raise ValueError(f"dataset '{dataset.dataset_name}' has no TIME_FIELD: the update mode cuts by time")
    uids, items = column(dataset.uid_field, np.int64), column(dataset.iid_field, np.int64)
    times = column(dataset.time_field, np.float64)
    order = np.lexsort((times, uids))  # stable: by user, then time, then file order
    users, seq_of_row = np.unique(uids[order], return_inverse=True)
    return TrainingSequences.from_rows(seq_of_row, items[order], times[order], np.arange(len(order)),
                                       users, int(dataset.item_num))


def cut_periods(sequences, cuts):
    """``Periods`` of ``sequences`` at the timestamp quantiles ``cuts = (q1, ..., qn)``.

    Raises:
        ValueError: a period is empty (naming ``update_cuts`` and the timestamps).
    """
    times = sequences.timestamps
    bounds = tuple(float(np.quantile(times, q)) for q in cuts)
    period = np.zeros(len(times), dtype=np.int8)
    for t in bounds:
        period += times > t
    out = Periods(sequences, period, bounds)
    for name, n in out.counts().items():
        if n == 0:
            named = ", ".join(f"T{j + 1} = {t:g}" for j, t in enumerate(bounds))
            raise ValueError(
                f"config key 'update_cuts' is {list(cuts)}: the {name} period is empty ({named}, "
                f"timestamps {times.min():g}..{times.max():g}); move the cuts apart")
    return out


class ContextSet:
    """The last ``MAX_ITEM_LIST_LENGTH`` items of each user's history, with an optional next item.

    Attributes:
        inter: RecBole ``Interaction`` of ``U'`` prefix inputs (``item_id_list [U', L]``,
            ``item_length [U']``, ``item_id [U']`` = target, 0 when the user has none).
        seq: int64 ``[U']`` sequence index of each row (users with an empty history are left out).
    """

    def __init__(self, history, config, targets=None):
        max_len = config["MAX_ITEM_LIST_LENGTH"]
        lengths = history.lengths
        seq = np.flatnonzero(lengths > 0)
        if targets is not None:
            seq = seq[targets[seq] > 0]
        n_in = np.minimum(lengths[seq], max_len)
        starts = history.offsets[seq + 1] - n_in
        fields = _field_names(config)
        target = np.zeros(len(seq), np.int64) if targets is None else targets[seq]
        self.seq = seq
        self.inter = _to_interaction({
            fields["uid"]: history.user_ids[seq],
            fields["item_list"]: history._gather(starts, n_in, max_len, history.items, 0),
            fields["length"]: n_in,
            fields["item"]: target,
            fields["time_list"]: history._gather(starts, n_in, max_len, history.timestamps, 0.0),
        })
        self.target = self.inter[fields["item"]]

    def __len__(self):
        return len(self.seq)
