"""Per-user training sequences in CSR form.

``TrainingSequences`` is the one representation of the training split that the plugin
perturbs and trains on. Row ``r`` of the flat arrays is one training interaction; user
sequence ``u`` owns rows ``offsets[u]:offsets[u + 1]`` in chronological order.

Every row carries a stable interaction id (``ids``): its row index in the *original*
(unperturbed) sequences. Rows created by a perturbation (inserted interactions, replaced
items) carry id ``-1``. A training instance is identified by the id of its target row, so
reference lists built on the original data can be looked up after any perturbation, and
instances whose target was perturbed are recognised by ``id == -1``.

The training instances (prefix, sequence windows, masked windows) are built by
:class:`~recbole_finest.data.instances.InstanceLayouts`, inherited here.
"""

from dataclasses import dataclass

import numpy as np

from recbole_finest.data.instances import TARGET_ID, TARGET_SEQ, InstanceLayouts, take  # noqa: F401 (re-exported)
from recbole_finest.data.instances import field_names as _field_names  # noqa: F401 (update/periods.py)
from recbole_finest.data.instances import to_interaction as _to_interaction  # noqa: F401 (update/periods.py)


@dataclass
class TrainingSequences(InstanceLayouts):
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
        uids, targets, target_times, head_len, item_lists, time_lists, first = _first_instances(dataset)
        n_seq = len(first)
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


def _first_instances(dataset):
    """The prefix instances of a RecBole sequential training split, sorted by user (stable).

    Returns ``(uids [I], targets [I], target_times [I], head_len [U], item_lists [U, L],
    time_lists [U, L], first [U])``: per instance its user, target item and time; per user
    the number of input items of its first instance (``first``: that instance's index) and
    their items and times (timestamps 0 when the dataset has none).
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
    return uids, targets, target_times, lengths[first], item_lists, time_lists, first
