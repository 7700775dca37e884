"""The training instances built from ``TrainingSequences``, vectorized (no Python loop per interaction).

Three layouts (:class:`InstanceLayouts`, the instance half of
:class:`~recbole_finest.data.sequences.TrainingSequences`):

* prefix (RecBole's layout): one instance per target row, input = the preceding
  ``max_len`` items of the same user, left-aligned and zero-padded on the right.
* sequence windows: one instance per chunk of ``max_len`` consecutive targets of a user;
  inputs ``[W, L]`` and position-wise targets ``[W, L]``, so a causal model scores every
  target of the window in one forward pass.
* masked windows (BERT4Rec): one instance per chunk of ``max_len`` consecutive rows of a
  user, chunks aligned to the end of the sequence; every position is keyed by its own row.

Every instance carries ``finest_target_id``: the stable id of its target row (-1 = pad,
context only or perturbed), so reference lists built on the original data can be looked up.
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction

TARGET_ID = "finest_target_id"  # [B] or [B, L] int64, stable id of the target row, -1 if none
TARGET_SEQ = "finest_target_seq"  # [B, L] int64, item id of the target at every position (0 = pad)


class InstanceLayouts:
    """Instance layouts over CSR rows: ``offsets [U + 1]``, ``user_ids [U]``, ``items [N]``,
    ``timestamps [N]``, ``ids [N]`` and the views ``lengths``, ``seq_of_row()``,
    ``target_rows()`` of :class:`~recbole_finest.data.sequences.TrainingSequences`."""

    def _gather(self, starts, lengths, width, values, fill):
        """``[len(starts), width]`` matrix of ``values[starts + j]`` for ``j < lengths``, else ``fill``."""
        cols = np.arange(width)
        valid = cols[None, :] < lengths[:, None]
        idx = np.where(valid, starts[:, None] + cols[None, :], 0)
        out = values[idx] if len(values) else np.zeros(idx.shape, dtype=values.dtype)
        out[~valid] = fill
        return out

    def _instances(self, config, seq, starts, lengths, width, last, extra):
        """``Interaction`` of instances ``[B]`` with RecBole's field names, then the fields ``extra``.

        Instance ``b``: user of sequence ``seq[b]``, inputs ``[B, width]`` = rows
        ``starts[b] .. starts[b] + lengths[b] - 1`` (items and timestamps, 0-padded), target
        item / timestamp of row ``last[b]``.
        """
        fields = field_names(config)
        return to_interaction({
            fields["uid"]: self.user_ids[seq],
            fields["item_list"]: self._gather(starts, lengths, width, self.items, 0),
            fields["length"]: lengths,
            fields["item"]: self.items[last],
            fields["time_list"]: self._gather(starts, lengths, width, self.timestamps, 0.0),
            fields["time"]: self.timestamps[last],
            **extra,
        })

    def prefix_instances(self, max_len, config):
        """RecBole's prefix layout: one instance per target row.

        Returns an ``Interaction`` with RecBole's field names:
        ``uid [T]``, ``item_id_list [T, L]``, ``item_length [T]``, ``item_id [T]``,
        ``timestamp_list [T, L]``, ``timestamp [T]`` and ``finest_target_id [T]``.
        """
        rows = self.target_rows()
        seq = self.seq_of_row()[rows]
        starts = np.maximum(self.offsets[seq], rows - max_len)
        return self._instances(config, seq, starts, rows - starts, max_len, rows, {TARGET_ID: self.ids[rows]})

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
        target_seq = self._gather(starts + 1, width, max_len, self.items, 0)
        target_id = self._gather(starts + 1, width, max_len, self.ids, -1)
        context_only = np.arange(max_len)[None, :] < context[:, None]
        target_seq[context_only], target_id[context_only] = 0, -1
        return self._instances(config, seq, starts, width, max_len, first + count - 1,
                               {TARGET_SEQ: target_seq, TARGET_ID: target_id})

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
        return self._instances(config, seq, first, count, max_len, first + count - 1, {
            TARGET_SEQ: self._gather(first, count, max_len, self.items, 0),  # = the inputs
            TARGET_ID: self._gather(first, count, max_len, self.ids, -1),
        })


def take(interaction, index):
    """Rows ``index`` (long or bool tensor, or slice) of every field of an ``Interaction``.

    RecBole's ``Interaction.__getitem__`` turns tensor indices into Python lists; this
    indexes the tensors directly.
    """
    return Interaction({key: value[index] for key, value in interaction.interaction.items()})


def field_names(config):
    """RecBole's field names of an instance (``uid``, ``item``, ``item_list``, ``length``, ``time``, ``time_list``)."""
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


def to_interaction(data):
    """``Interaction`` of numpy arrays (float64 -> float32 tensors)."""
    out = {}
    for key, value in data.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = tensor.float() if tensor.dtype == torch.float64 else tensor
    return Interaction(out)
