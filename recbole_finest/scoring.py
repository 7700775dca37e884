"""How the trainer gets next-item scores and losses out of a RecBole sequential model.

Two kinds of models:

* position-wise causal models (``POSITION_WISE_MODELS`` and any model with an
  ``all_position_output(interaction) -> [B, L, H]`` method, like the plugin's TiSASRec):
  the hidden state at position ``t`` depends only on items ``<= t``, so one forward pass
  over a window scores the next item at every position. RecBole's SASRec and GRU4Rec
  compute all positions and then pick the last one with ``gather_indexes``; the adapter
  runs their own ``forward`` with that pick disabled on the instance (no model code is
  copied, the class is not patched).
* every other model (BERT4Rec, NARM, ...): RecBole's ``calculate_loss`` and
  ``full_sort_predict`` on prefix instances.
"""

import contextlib

import torch
import torch.nn.functional as F

from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ, take

POSITION_WISE_MODELS = ("SASRec", "GRU4Rec")
MASKED_MODELS = ("BERT4Rec",)


@contextlib.contextmanager
def _keep_all_positions(model):
    """Within the block ``model.gather_indexes(output, idx)`` returns ``output`` unchanged."""
    model.gather_indexes = lambda output, gather_index: output
    try:
        yield
    finally:
        del model.gather_indexes


def is_position_wise(model):
    return hasattr(model, "all_position_output") or type(model).__name__ in POSITION_WISE_MODELS


def supports_sequence_unit(model):
    """True when the model can train on whole-sequence windows (``train_unit: sequence``)."""
    return is_position_wise(model) or type(model).__name__ in MASKED_MODELS


def check_model(model):
    """Refuse models FinestTrainer cannot fine-tune, with the reason."""
    from recbole.utils import ModelType

    name = type(model).__name__
    if getattr(model, "type", None) != ModelType.SEQUENTIAL:
        raise ValueError(f"FINEST needs a RecBole sequential model; '{name}' is of type {getattr(model, 'type', None)}")
    if not hasattr(model, "ITEM_SEQ") or not hasattr(model, "full_sort_predict"):
        raise ValueError(f"FINEST needs a model with item-sequence input and full_sort_predict; '{name}' has neither")


class SequenceScorer:
    """Scores and next-item loss of one model, on prefix or window batches."""

    def __init__(self, model, ft_ratio=0.0):
        check_model(model)
        self.model = model
        self.ft_ratio = ft_ratio or 0.0  # BERT4Rec: share of batches that mask only the last item
        self.position_wise = is_position_wise(model)
        self.masked = type(model).__name__ in MASKED_MODELS

    # ------------------------------------------------------------------ scores
    def position_hidden(self, interaction):
        """float ``[B, L, H]``: hidden state at every input position."""
        model = self.model
        if hasattr(model, "all_position_output"):
            return model.all_position_output(interaction)
        with _keep_all_positions(model):
            return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])

    def item_logits(self, hidden):
        """``hidden [..., H]`` -> scores ``[..., n_items]`` against every item embedding."""
        return hidden @ self.model.item_embedding.weight[: self.model.n_items].T

    def last_scores(self, interaction):
        """float ``[B, n_items]`` scores of the next item after each (prefix) input."""
        if not self.position_wise:
            return self.model.full_sort_predict(interaction)
        hidden = self.position_hidden(interaction)
        last = (interaction[self.model.ITEM_SEQ_LEN] - 1).clamp(min=0)
        return self.item_logits(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])

    def window_scores(self, interaction):
        """float ``[B, L, n_items]`` scores at every position of window instances."""
        return self.item_logits(self.position_hidden(interaction))

    def _last_only(self):
        """RecBole's BERT4Rec recipe: with probability ``ft_ratio`` a batch masks only its last item."""
        return self.ft_ratio > 0 and float(torch.rand(())) < self.ft_ratio

    # ------------------------------------------------------------------ losses
    def next_item_loss(self, logits, targets):
        """Model's own next-item loss from precomputed scores.

        Args:
            logits: float ``[M, n_items]`` scores of ``M`` instances.
            targets: long ``[M]`` target items.
        """
        model = self.model
        if model.loss_type == "CE":
            return F.cross_entropy(logits, targets)
        negatives = torch.randint(1, model.n_items, targets.shape, device=targets.device)
        pos = logits.gather(1, targets[:, None]).squeeze(1)
        neg = logits.gather(1, negatives[:, None]).squeeze(1)
        return model.loss_fct(pos, neg)

    def batch_outputs(self, batch, unit, with_scores=True):
        """Next-item loss and the scores the regularizer needs, from as few passes as possible.

        Returns ``(loss, scores [M, n_items], target_ids [M])``: ``scores`` are the
        next-item scores of the ``M`` instances of the batch whose target id is known
        (``>= 0``), from the same forward pass as the loss where the model allows it.
        With ``with_scores=False`` models that need a second pass skip it (``scores`` None).
        """
        model = self.model
        if self.position_wise and unit == "sequence":
            logits = self.window_scores(batch)  # [B, L, n]
            targets, ids = batch[TARGET_SEQ], batch[TARGET_ID]
            valid = targets > 0
            loss = self.next_item_loss(logits[valid], targets[valid])
            keep = valid & (ids >= 0)
            return loss, logits[keep], ids[keep]
        if self.position_wise:
            logits = self.last_scores(batch)  # [B, n]
            ids = batch[TARGET_ID]
            loss = self.next_item_loss(logits, batch[model.POS_ITEM_ID])
            keep = ids >= 0
            return loss, logits[keep], ids[keep]
        if self.masked and unit == "sequence":
            loss = model.calculate_loss(mask_items(batch, model, self._last_only()))
            if not with_scores:
                return loss, None, None
            cut, ids = random_prefix(batch, model)
            keep = ids >= 0
            return loss, model.full_sort_predict(cut)[keep], ids[keep]
        loss = model.calculate_loss(mask_items(batch, model, self._last_only()) if self.masked else batch)
        if not with_scores:
            return loss, None, None
        ids = batch[TARGET_ID]
        keep = ids >= 0
        scores = model.full_sort_predict(take(batch, keep)) if bool(keep.any()) else None
        if scores is None:
            scores = torch.zeros((0, model.n_items), device=ids.device)
        return loss, scores, ids[keep]


def mask_items(batch, model, last_only=False):
    """BERT4Rec's masked-item training fields, vectorized (RecBole's transform loops in Python).

    Every real item of ``ITEM_SEQ`` is masked with probability ``mask_ratio``; at most
    ``int(mask_ratio * max_len)`` masks per row are kept (the last ones), the size of
    RecBole's mask fields. ``last_only``: only the last real item of each row is masked
    (RecBole's ``ft_ratio`` batches, the next-item task). Adds ``MASK_ITEM_SEQ [B, L]`` and
    ``POS_ITEMS / NEG_ITEMS / MASK_INDEX [B, mask_len]`` (left-padded with 0 as RecBole).
    """
    item_seq = batch[model.ITEM_SEQ]
    bsz, width = item_seq.shape
    device = item_seq.device
    mask_len = max(1, int(model.mask_ratio * model.max_seq_length))
    cols = torch.arange(width, device=device)
    if last_only:
        chosen = cols[None, :] == (batch[model.ITEM_SEQ_LEN] - 1)[:, None]
    else:
        chosen = (torch.rand(item_seq.shape, device=device) < model.mask_ratio) & (item_seq > 0)
    rank_from_end = chosen.flip(1).cumsum(1).flip(1)
    chosen &= rank_from_end <= mask_len
    masked_seq = torch.where(chosen, torch.full_like(item_seq, model.mask_token), item_seq)
    # right-aligned lists of the masked positions (RecBole pads on the left)
    n_masked = chosen.sum(1)
    slot = chosen.cumsum(1) - 1 + (mask_len - n_masked)[:, None]
    rows = torch.arange(bsz, device=device)[:, None].expand_as(chosen)[chosen]
    slots = slot[chosen]
    index = torch.zeros((bsz, mask_len), dtype=torch.long, device=device)
    pos_items = torch.zeros_like(index)
    index[rows, slots] = cols[None, :].expand_as(chosen)[chosen]
    pos_items[rows, slots] = item_seq[chosen]
    neg_items = torch.where(pos_items > 0, torch.randint(1, model.n_items, index.shape, device=device), 0)
    out = type(batch)(dict(batch.interaction))
    out.update(type(batch)({
        model.MASK_ITEM_SEQ: masked_seq,
        model.POS_ITEMS: pos_items,
        model.NEG_ITEMS: neg_items,
        model.MASK_INDEX: index,
    }))
    return out


def random_prefix(batch, model):
    """One random prefix instance per window: ``(Interaction, target_ids [B])``.

    For window ``w`` with ``n`` targets a position ``p`` in ``1..n`` is drawn; the instance's
    input is the window's first ``p`` inputs and its target the ``p``-th target.
    """
    item_seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    device = item_seq.device
    p = (torch.rand(lengths.shape, device=device) * lengths).long() + 1  # 1..n
    cols = torch.arange(item_seq.shape[1], device=device)
    cut = type(batch)({
        model.ITEM_SEQ: torch.where(cols[None, :] < p[:, None], item_seq, 0),
        model.ITEM_SEQ_LEN: p,
    })
    ids = batch[TARGET_ID].gather(1, (p - 1)[:, None]).squeeze(1)
    return cut, ids
