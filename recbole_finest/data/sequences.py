"""Per-user training sequences in CSR form, and the training instances built from them.

``TrainingSequences`` is the one representation of the training split that the plugin
perturbs and trains on. Row ``r`` of the flat arrays is one training interaction; user
sequence ``u`` owns rows ``offsets[u]:offsets[u + 1]`` in chronological order.

Every row carries a stable interaction id (``ids``): its row index in the *original*
(unperturbed) sequences. Rows created by a perturbation (inserted interactions, replaced
items) carry id ``-1``. A training instance is identified by the id of its target row, so
reference lists built on the original data can be looked up after any perturbation, and
instances whose target was perturbed are recognised by ``id == -1``.

Two instance layouts are built, both vectorized (no Python loop per interaction):

* prefix (RecBole's layout): one instance per target row, input = the preceding
  ``max_len`` items of the same user, left-aligned and zero-padded on the right.
* sequence windows: one instance per chunk of ``max_len`` consecutive targets of a user;
  inputs ``[W, L]`` and position-wise targets ``[W, L]``, so a causal model scores every
  target of the window in one forward pass.
* masked windows (BERT4Rec): one instance per chunk of ``max_len`` consecutive rows of a
  user, chunks aligned to the end of the sequence; every position is keyed by its own row.
"""

from dataclasses import dataclass

import numpy as np
import torch
from recbole.data.interaction import Interaction

TARGET_ID = "finest_target_id"  # [B] or [B, L] int64, stable id of the target row, -1 if none
TARGET_SEQ = "finest_target_seq"  # [B, L] int64, item id of the target at every position (0 = pad)


@dataclass
class TrainingSequences:
    """CSR training data.

    Attributes:
        offsets: int64 ``[U + 1]``; rows of sequence ``u`` are ``offsets[u]:offsets[u+1]``.
        user_ids: int64 ``[U]``; RecBole internal user id of each sequence.
        items: int64 ``[N]``; internal item id of each row.
        timestamps: float64 ``[N]``; timestamp of each row (non-decreasing within a user).
        ids: int64 ``[N]``; stable interaction id, ``-1`` for rows made by a perturbation.
        n_items: number of item ids including the padding id 0 (RecBole's ``item_num``).
    """

    offsets: np.ndarray
    user_ids: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ids: np.ndarray
    n_items: int

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataset(cls, dataset):
        """Recover the per-user training sequences from a RecBole sequential dataset.

        ``dataset`` is the (augmented) training split made by RecBole's
        ``SequentialDataset``: one row per prefix instance, grouped by user in time
        order. Sequence of a user = the input items of its first instance followed by all
        of its targets. Ids are assigned ``0..N-1`` in row order.
        """
        cfg = dataset.config
        uid_field, iid_field = dataset.uid_field, dataset.iid_field
        list_field = iid_field + cfg["LIST_SUFFIX"]
        len_field = cfg["ITEM_LIST_LENGTH_FIELD"]
        time_field = dataset.time_field
        feat = dataset.inter_feat
        uids = feat[uid_field].numpy().astype(np.int64)
        if len(uids) == 0:
            raise ValueError("the training split is empty: no training sequences to build")
        order = np.argsort(uids, kind="stable")
        uids = uids[order]
        targets = feat[iid_field].numpy().astype(np.int64)[order]
        lengths = feat[len_field].numpy().astype(np.int64)[order]
        has_time = time_field is not None and time_field in feat.interaction
        target_times = (feat[time_field].numpy().astype(np.float64)[order] if has_time
                        else np.zeros(len(uids), dtype=np.float64))
        first = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]])  # first instance of each user
        # input lists of the first instances only: dataset[...] builds them when the dataset
        # stores no per-prefix lists (registry.PrefixFreeSequentialDataset)
        heads = dataset.__getitem__(order[first], join=False)
        item_lists = heads[list_field].numpy().astype(np.int64)
        time_lists = (heads[time_field + cfg["LIST_SUFFIX"]].numpy().astype(np.float64) if has_time
                      else np.zeros(item_lists.shape, dtype=np.float64))
        n_seq = len(first)
        head_len = lengths[first]  # items before the first target
        n_targets = np.diff(np.r_[first, len(uids)])
        seq_len = head_len + n_targets
        offsets = np.zeros(n_seq + 1, dtype=np.int64)
        np.cumsum(seq_len, out=offsets[1:])
        n = int(offsets[-1])

        items = np.empty(n, dtype=np.int64)
        times = np.empty(n, dtype=np.float64)
        # head rows: the first instance's input items
        seq_of_head = np.repeat(np.arange(n_seq), head_len)
        pos_in_head = np.arange(int(head_len.sum())) - np.repeat(np.cumsum(head_len) - head_len, head_len)
        head_rows = offsets[seq_of_head] + pos_in_head
        items[head_rows] = item_lists[seq_of_head, pos_in_head]
        times[head_rows] = time_lists[seq_of_head, pos_in_head]
        # target rows follow the head of their sequence
        seq_of_inst = np.repeat(np.arange(n_seq), n_targets)
        inst_rank = np.arange(len(uids)) - first[seq_of_inst]
        target_rows = offsets[seq_of_inst] + head_len[seq_of_inst] + inst_rank
        items[target_rows] = targets
        times[target_rows] = target_times
        return cls(
            offsets=offsets,
            user_ids=uids[first],
            items=items,
            timestamps=times,
            ids=np.arange(n, dtype=np.int64),
            n_items=int(dataset.item_num),
        )

    @classmethod
    def from_rows(cls, seq_of_row, items, timestamps, ids, user_ids, n_items):
        """Build from flat rows already grouped by sequence (``seq_of_row`` non-decreasing).

        Args:
            seq_of_row: int64 ``[N]`` sequence index of each row, sorted.
            user_ids: int64 ``[U]``; sequences left with no rows keep an empty slice.
        """
        counts = np.bincount(seq_of_row, minlength=len(user_ids))
        offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets, np.asarray(user_ids, np.int64), np.asarray(items, np.int64),
                   np.asarray(timestamps, np.float64), np.asarray(ids, np.int64), int(n_items))

    # ------------------------------------------------------------------ views
    @property
    def n_rows(self):
        return len(self.items)

    @property
    def n_sequences(self):
        return len(self.user_ids)

    @property
    def lengths(self):
        """int64 ``[U]`` number of rows per sequence."""
        return np.diff(self.offsets)

    def seq_of_row(self):
        """int64 ``[N]`` sequence index of every row."""
        return np.repeat(np.arange(self.n_sequences), self.lengths)

    def position_in_sequence(self):
        """int64 ``[N]`` 0-based position of every row within its sequence."""
        return np.arange(self.n_rows) - np.repeat(self.offsets[:-1], self.lengths)

    def target_rows(self):
        """int64 ``[T]`` rows that are targets of an instance (every row but each sequence's first)."""
        return np.flatnonzero(self.position_in_sequence() >= 1)

    def item_popularity(self):
        """int64 ``[n_items]`` number of rows per item id."""
        return np.bincount(self.items, minlength=self.n_items)

    def least_popular_item(self):
        """The least frequent real item id (>= 1) in these sequences; ties -> smallest id."""
        pop = self.item_popularity()[1:]
        return int(np.argmin(pop)) + 1

    def copy(self):
        return TrainingSequences(self.offsets.copy(), self.user_ids.copy(), self.items.copy(),
                                 self.timestamps.copy(), self.ids.copy(), self.n_items)

    # ------------------------------------------------------------------ instances
    def _gather(self, starts, lengths, width, values, fill):
        """``[len(starts), width]`` matrix of ``values[starts + j]`` for ``j < lengths``, else ``fill``."""
        cols = np.arange(width)
        valid = cols[None, :] < lengths[:, None]
        idx = np.where(valid, starts[:, None] + cols[None, :], 0)
        out = values[idx] if len(values) else np.zeros(idx.shape, dtype=values.dtype)
        out[~valid] = fill
        return out

    def prefix_instances(self, max_len, config):
        """RecBole's prefix layout: one instance per target row.

        Returns an ``Interaction`` with RecBole's field names:
        ``uid [T]``, ``item_id_list [T, L]``, ``item_length [T]``, ``item_id [T]``,
        ``timestamp_list [T, L]``, ``timestamp [T]`` and ``finest_target_id [T]``.
        """
        rows = self.target_rows()
        seq = self.seq_of_row()[rows]
        starts = np.maximum(self.offsets[seq], rows - max_len)
        lengths = rows - starts
        fields = _field_names(config)
        data = {
            fields["uid"]: self.user_ids[seq],
            fields["item_list"]: self._gather(starts, lengths, max_len, self.items, 0),
            fields["length"]: lengths,
            fields["item"]: self.items[rows],
            fields["time_list"]: self._gather(starts, lengths, max_len, self.timestamps, 0.0),
            fields["time"]: self.timestamps[rows],
            TARGET_ID: self.ids[rows],
        }
        return _to_interaction(data)

    def window_bounds(self, chunk):
        """Split every sequence's targets into chunks of at most ``chunk`` targets.

        Returns ``(seq, first_target_row, n_targets)``, each int64 ``[W]``: window ``w``
        belongs to sequence ``seq[w]`` and predicts rows
        ``first_target_row[w] .. first_target_row[w] + n_targets[w] - 1`` from the rows one
        position earlier. Chunks start at each sequence's first target.
        """
        n_t = np.maximum(self.lengths - 1, 0)
        n_w = -(-n_t // chunk)
        seq = np.repeat(np.arange(self.n_sequences), n_w)
        k = np.arange(int(n_w.sum())) - np.repeat(np.cumsum(n_w) - n_w, n_w)
        first = self.offsets[seq] + 1 + k * chunk
        count = np.minimum(chunk, n_t[seq] - k * chunk)
        return seq, first, count

    def window_instances(self, max_len, config, stride=None):
        """Sequence-level layout: every target predicted once, at most ``stride`` new targets per window.

        With ``stride`` None (default) windows are disjoint: a target at position ``j`` of
        its window sees only the ``j + 1`` inputs of that window. With a ``stride`` a new
        window starts every ``stride`` targets and reaches back up to
        ``max_len`` inputs; its first positions are context only (target 0 / id -1), so
        every target sees at least ``max_len - stride + 1`` inputs (or its whole history),
        closer to the prefix layout's ``min(t, max_len)``.

        Returns an ``Interaction`` with ``uid [W]``, ``item_id_list [W, L]`` (inputs),
        ``item_length [W]``, ``timestamp_list [W, L]``, ``finest_target_seq [W, L]`` (the
        target item at each input position, 0 = pad or context only), ``finest_target_id
        [W, L]`` (-1 = pad, context only or perturbed target), plus ``item_id [W]`` /
        ``timestamp [W]`` = the window's last target (so prefix-style code sees a valid last
        instance).
        """
        seq, first, count = self.window_bounds(max_len if stride is None else min(int(stride), max_len))
        context = np.zeros_like(count)  # context-only inputs before the window's first target
        if stride is not None:
            context = np.minimum(max_len - count, first - 1 - self.offsets[seq])
        starts, width = first - 1 - context, context + count
        fields = _field_names(config)
        last = first + count - 1
        target_seq = self._gather(starts + 1, width, max_len, self.items, 0)
        target_id = self._gather(starts + 1, width, max_len, self.ids, -1)
        context_only = np.arange(max_len)[None, :] < context[:, None]
        target_seq[context_only], target_id[context_only] = 0, -1
        data = {
            fields["uid"]: self.user_ids[seq],
            fields["item_list"]: self._gather(starts, width, max_len, self.items, 0),
            fields["length"]: width,
            fields["item"]: self.items[last],
            fields["time_list"]: self._gather(starts, width, max_len, self.timestamps, 0.0),
            fields["time"]: self.timestamps[last],
            TARGET_SEQ: target_seq,
            TARGET_ID: target_id,
        }
        return _to_interaction(data)


    def row_window_bounds(self, chunk):
        """Split every sequence's rows into chunks of at most ``chunk`` rows, aligned to its end.

        Returns ``(seq, first_row, n_rows)``, each int64 ``[W]``: window ``w`` holds rows
        ``first_row[w] .. first_row[w] + n_rows[w] - 1`` of sequence ``seq[w]``. The last
        window of a sequence is its last ``chunk`` rows (the test-time context); only the
        first window of a sequence can be shorter than ``chunk``.
        """
        m = self.lengths
        n_w = -(-m // chunk)
        seq = np.repeat(np.arange(self.n_sequences), n_w)
        after = np.repeat(np.cumsum(n_w), n_w) - 1 - np.arange(int(n_w.sum()))  # windows after w
        end = self.offsets[seq + 1] - after * chunk
        first = np.maximum(self.offsets[seq], end - chunk)
        return seq, first, end - first

    def masked_windows(self, max_len, config):
        """Whole-sequence layout of masked models (BERT4Rec), every row at one position.

        Returns an ``Interaction`` with ``uid [W]``, ``item_id_list [W, L]`` (the rows of
        the window, left-aligned), ``item_length [W]``, ``timestamp_list [W, L]``,
        ``finest_target_seq [W, L]`` (= the items: the masked-item labels),
        ``finest_target_id [W, L]`` (the id of the row at each position, -1 = pad or
        perturbed), and ``item_id [W]`` / ``timestamp [W]`` = the window's last row.
        """
        seq, first, count = self.row_window_bounds(max_len)
        fields = _field_names(config)
        last = first + count - 1
        item_list = self._gather(first, count, max_len, self.items, 0)
        data = {
            fields["uid"]: self.user_ids[seq],
            fields["item_list"]: item_list,
            fields["length"]: count,
            fields["item"]: self.items[last],
            fields["time_list"]: self._gather(first, count, max_len, self.timestamps, 0.0),
            fields["time"]: self.timestamps[last],
            TARGET_SEQ: item_list.copy(),
            TARGET_ID: self._gather(first, count, max_len, self.ids, -1),
        }
        return _to_interaction(data)


def take(interaction, index):
    """Rows ``index`` (long or bool tensor, or slice) of every field of an ``Interaction``.

    RecBole's ``Interaction.__getitem__`` turns tensor indices into Python lists; this
    indexes the tensors directly.
    """
    return Interaction({key: value[index] for key, value in interaction.interaction.items()})


def _field_names(config):
    iid, suffix = config["ITEM_ID_FIELD"], config["LIST_SUFFIX"]
    time = config["TIME_FIELD"] or "timestamp"
    return {
        "uid": config["USER_ID_FIELD"],
        "item": iid,
        "item_list": iid + suffix,
        "length": config["ITEM_LIST_LENGTH_FIELD"],
        "time": time,
        "time_list": time + suffix,
    }


def _to_interaction(data):
    out = {}
    for key, value in data.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = tensor.float() if tensor.dtype == torch.float64 else tensor
    return Interaction(out)
