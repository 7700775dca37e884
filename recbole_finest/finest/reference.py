"""Reference lists: the pre-trained model's top-2K items for every training instance."""

import numpy as np
import torch
from recbole.utils import set_color
from tqdm import tqdm

from recbole_finest.data.sequences import TARGET_ID
from recbole_finest.finest.precision import BF16, FP32, autocast, rerank_top


def reference_dtype(n_items):
    """Smallest integer dtype that holds every item id: int16 when the catalogue allows."""
    return torch.int16 if n_items <= torch.iinfo(torch.int16).max else torch.int32


class ReferenceLists:
    """Top-K and competitor items of every training instance, keyed by its target id.

    ``table[i]`` (``[2K]``, int16/int32) holds the reference top-K ``r_1..r_K`` followed by
    the competitors ``c_1..c_K`` (ranks K+1..2K) of the instance whose target row has
    stable id ``i``. Memory: ``n_ids * 2K * 2`` bytes with int16 ids (reddit, K=100:
    ~48 MB). With ``path`` the table lives in a memory-mapped file instead of RAM.
    """

    def __init__(self, table, known):
        self.table = table  # torch [n_ids, 2K] or numpy memmap
        self.known = known  # torch bool [n_ids]: row filled
        self.k = table.shape[1] // 2

    @classmethod
    def empty(cls, n_ids, k, n_items, device, path=None):
        dtype = reference_dtype(n_items)
        if path is not None:
            np_dtype = np.int16 if dtype == torch.int16 else np.int32
            table = np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=(n_ids, 2 * k))
        else:
            table = torch.zeros((n_ids, 2 * k), dtype=dtype, device=device)
        return cls(table, torch.zeros(n_ids, dtype=torch.bool, device=device))

    @property
    def on_disk(self):
        return isinstance(self.table, np.ndarray)

    def store(self, ids, items):
        """Write rows: ``ids [M]`` long, ``items [M, 2K]`` long item ids."""
        if self.on_disk:
            self.table[ids.cpu().numpy()] = items.cpu().numpy().astype(self.table.dtype)
        else:
            self.table[ids] = items.to(self.table.dtype)
        self.known[ids.to(self.known.device)] = True

    def lookup(self, ids):
        """``ids [M]`` long (all known) -> long ``[M, 2K]`` on the ids' device."""
        if self.on_disk:
            return torch.from_numpy(np.asarray(self.table[ids.cpu().numpy()])).to(ids.device).long()
        return self.table[ids].long()

    @torch.no_grad()
    def fill(self, scorer, batches, show_progress=False, precision=FP32):
        """Score every instance of ``batches`` with the model in eval mode and keep its top-2K.

        ``batches`` yields prefix or window Interactions with ``finest_target_id``; window
        batches are scored at every position in one pass (causal models: the next-item
        scores of every prefix; masked models: the clean window's scores at every row).
        ``precision`` (``train_precision``): ``bf16`` scores under bf16 autocast and sorts
        the top ``2K + margin`` candidates by their fp32 scores (:func:`_bf16_top`).
        """
        model = scorer.model
        was_training = model.training
        model.eval()
        if show_progress:
            batches = tqdm(batches, desc=set_color("reference lists", "pink"), ncols=100)
        for batch in batches:
            if precision == BF16:
                ids, top = _bf16_top(scorer, batch, 2 * self.k)
                self.store(ids, top)
                continue
            ids = batch[TARGET_ID]
            if ids.dim() == 2:  # windows: logits only at the positions with a known id
                scores, ids = scorer.kept_window_scores(batch)
            else:
                keep = ids >= 0
                scores, ids = scorer.last_scores(batch)[keep], ids[keep]
            scores[:, 0] = -torch.inf  # the padding item is never recommended
            self.store(ids, torch.topk(scores, 2 * self.k, dim=1).indices)
        model.train(was_training)
        return self


def _bf16_top(scorer, batch, n):
    """``(ids [M], items [M, n])`` of one reference batch under ``train_precision: bf16``.

    The encoder and the output layer run under bf16 autocast; the ``n + margin`` best bf16
    scores pick candidates, which are ordered by their fp32 scores from the same hidden state
    (``precision.rerank_top``: no ties from bf16's 8 significant bits). Prefix-only models
    (scores from ``full_sort_predict``, no hidden state) keep the bf16 scores' order.
    """
    ids = batch[TARGET_ID]
    with autocast(BF16, ids.device):
        if ids.dim() == 2:
            hidden, ids = scorer.kept_window_hidden(batch)
        else:
            keep = ids >= 0
            hidden, ids = scorer.last_hidden(batch), ids[keep]
            hidden = hidden[keep] if hidden is not None else None
        if hidden is None:
            coarse = scorer.model.full_sort_predict(batch)[keep]
        else:
            coarse = scorer.item_logits(hidden)
    coarse = coarse.float()
    coarse[:, 0] = -torch.inf  # the padding item is never recommended
    if hidden is None:
        return ids, torch.topk(coarse, n, dim=1).indices
    return ids, rerank_top(coarse, hidden, scorer.candidate_logits, n)
