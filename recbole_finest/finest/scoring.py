"""How the trainer gets next-item scores and losses out of a RecBole sequential model.

The model's kind (``model_kind.ModelAdapter``: causal / masked / prefix-only) is chosen once
per model and decides the passes:

* causal models: one forward pass over a window scores the next item at every position
  (the adapter's ``position_hidden``; for RecBole's SASRec and GRU4Rec the adapter replaces
  ``gather_indexes`` on the instance for that call, see ``model_kind``).
* masked models (BERT4Rec): ``train_unit: sequence`` trains on whole-sequence windows with
  the model's own masked-item objective (``mask_items``, vectorized). The FINEST regularizer
  then uses the scores at *every* position of that same masked forward pass (no second
  pass), as the paper's reference implementation does for BERT4Rec; the reference lists are
  the pre-trained model's scores at every position of the clean (unmasked) window. The
  regularizer therefore preserves the masked-model outputs at each training interaction,
  not the ``full_sort_predict`` next-item lists of prefixes (docs/performance.md).
  ``train_unit: prefix`` keeps RecBole's layout: ``calculate_loss`` on masked prefixes and
  the next-item scores of ``full_sort_predict`` (vectorized, ``masked_last_scores``).
* prefix-only models (NARM, Caser, ...): RecBole's ``calculate_loss`` and
  ``full_sort_predict`` on prefix instances.

This module reads the model's public attributes (``ITEM_SEQ``, ``item_embedding``,
``loss_type``, ...) and patches nothing.

Boolean selections of valid positions (``x[mask]``) are the only host/device
synchronisations per batch (the size of the selection); everything else stays on the
model's device.
"""

from logging import getLogger

import torch
import torch.nn.functional as F

from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ, take
from recbole_finest.compat.model_kind import ModelAdapter, check_model


def disable_anomaly_detection():
    """Switch autograd anomaly detection off if an import switched it on.

    Importing RecBole's model zoo runs ``torch.autograd.set_detect_anomaly(True)`` at module
    level (``recbole/model/sequential_recommender/sine.py``), which records a Python stack
    trace for every autograd node and checks every gradient for NaN: 15-25% of a training
    epoch here (docs/performance.md). The trainer already checks the loss for NaN.
    """
    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)
        getLogger().debug("autograd anomaly detection (switched on by RecBole's SINE import) switched off")


class SequenceScorer:
    """Scores and next-item loss of one model, on prefix or window batches."""

    def __init__(self, model, ft_ratio=0.0):
        check_model(model)
        self.model = model
        self.ft_ratio = ft_ratio or 0.0  # BERT4Rec: share of batches that mask only the last item
        self.adapter = ModelAdapter(model)  # the model's kind, chosen once
        # after the adapter: its first use imports RecBole's model zoo (SINE) for the registry,
        # which for a plugin model (LRURec, TiSASRec) built without that zoo switches detection on
        disable_anomaly_detection()
        self.position_wise = self.adapter.causal
        self.masked = self.adapter.masked

    # ------------------------------------------------------------------ scores
    def position_hidden(self, interaction):
        """float ``[B, L, H]``: hidden state at every input position.

        Causal models: position ``t`` sees items ``<= t``. Masked models: the bidirectional
        encoding of the (unmasked) ``ITEM_SEQ`` (``ModelAdapter.position_hidden``).
        """
        return self.adapter.position_hidden(interaction)

    def item_logits(self, hidden):
        """``hidden [..., H]`` -> scores ``[..., n_items]`` against every item embedding
        (plus the output bias of masked models, as their ``full_sort_predict``)."""
        model = self.model
        logits = hidden @ model.item_embedding.weight[: model.n_items].T
        if self.masked:
            logits = logits + model.output_bias
        return logits

    def candidate_logits(self, hidden, items):
        """fp32 scores ``[M, C]`` of ``items [M, C]`` from ``hidden [M, H]``: :meth:`item_logits` at
        those items only (the fp32 re-ranking of bf16 reference candidates, ``precision.rerank_top``)."""
        model = self.model
        weight = model.item_embedding.weight.float()
        scores = torch.einsum("mh,mch->mc", hidden.float(), weight[items])
        if self.masked:
            scores = scores + model.output_bias.float()[items]
        return scores

    def last_hidden(self, interaction):
        """float ``[B, H]`` hidden state the next-item scores after each (prefix) input are read
        from, or None for prefix-only models (their scores come from ``full_sort_predict``)."""
        if self.masked:
            return self.masked_last_hidden(interaction)
        if not self.position_wise:
            return None
        hidden = self.position_hidden(interaction)
        last = (interaction[self.model.ITEM_SEQ_LEN] - 1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def last_scores(self, interaction):
        """float ``[B, n_items]`` scores of the next item after each (prefix) input."""
        hidden = self.last_hidden(interaction)
        if hidden is None:
            return self.model.full_sort_predict(interaction)
        return self.item_logits(hidden)

    def masked_last_scores(self, interaction):
        """BERT4Rec's ``full_sort_predict`` with its per-row Python loop vectorized.

        RecBole's ``reconstruct_test_data`` appends a padding column, writes the mask token
        at column ``length`` and drops the first column; the scores are read at column
        ``length - 1`` (the mask). Same inputs, same numbers, one scatter instead of a loop.
        """
        return self.item_logits(self.masked_last_hidden(interaction))

    def masked_last_hidden(self, interaction):
        """``[B, H]`` hidden state at the mask of :meth:`masked_last_scores`."""
        model = self.model
        seq, length = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
        ext = torch.cat([seq, seq.new_zeros((seq.shape[0], 1))], dim=1)
        ext.scatter_(1, length[:, None], model.mask_token)
        hidden = model.forward(ext[:, 1:])
        last = (length - 1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def window_scores(self, interaction):
        """float ``[B, L, n_items]`` scores at every position of window instances."""
        return self.item_logits(self.position_hidden(interaction))

    def kept_window_scores(self, interaction):
        """Scores of the window positions whose target id is known, and those ids.

        Returns ``(scores [M, n_items], ids [M])``; the item logits are computed only at
        those ``M`` positions (windows are mostly padding for short sequences).
        """
        hidden, ids = self.kept_window_hidden(interaction)
        return self.item_logits(hidden), ids

    def kept_window_hidden(self, interaction):
        """``(hidden [M, H], ids [M])`` of :meth:`kept_window_scores`, before the item logits."""
        ids = interaction[TARGET_ID]
        keep = ids >= 0
        return self.position_hidden(interaction)[keep], ids[keep]

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
        logits = logits.float()  # bf16 autocast (train_precision): the loss in fp32; fp32: the same tensor
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
        Masked models in sequence unit: the scores at the ``M`` window positions holding a
        known training interaction, from the masked forward pass of the loss.
        With ``with_scores=False`` models that need a second pass skip it (``scores`` None).
        """
        model = self.model
        if self.position_wise and unit == "sequence":
            hidden = self.position_hidden(batch)  # [B, L, H]
            targets, ids = batch[TARGET_SEQ], batch[TARGET_ID]
            valid = targets > 0
            logits = self.item_logits(hidden[valid])  # [T, n]: only positions with a target
            loss = self.next_item_loss(logits, targets[valid])
            ids = ids[valid]
            keep = ids >= 0
            return loss, logits[keep], ids[keep]
        if self.position_wise:
            logits = self.last_scores(batch)  # [B, n]
            ids = batch[TARGET_ID]
            loss = self.next_item_loss(logits, batch[model.POS_ITEM_ID])
            keep = ids >= 0
            return loss, logits[keep], ids[keep]
        if self.masked and unit == "sequence":
            masked = mask_items(batch, model, self._last_only())
            if not with_scores:
                return model.calculate_loss(masked), None, None
            # one forward pass: the masked-item loss and the scores at every position
            hidden = model.forward(masked[model.MASK_ITEM_SEQ])  # [B, L, H]
            loss = masked_item_loss(model, hidden, masked)
            ids = batch[TARGET_ID]
            keep = ids >= 0
            return loss, self.item_logits(hidden[keep]), ids[keep]
        loss = model.calculate_loss(mask_items(batch, model, self._last_only()) if self.masked else batch)
        if not with_scores:
            return loss, None, None
        ids = batch[TARGET_ID]
        keep = ids >= 0
        if self.masked:  # vectorized full_sort_predict; a 0-row batch is fine
            return loss, self.masked_last_scores(take(batch, keep)), ids[keep]
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


def masked_item_loss(model, hidden, masked):
    """RecBole ``BERT4Rec.calculate_loss`` from an already computed encoding.

    Args:
        hidden: float ``[B, L, H]`` = ``model.forward(masked[MASK_ITEM_SEQ])``.
        masked: the fields of ``mask_items``.

    Same formula as RecBole (CE or BPR over the masked positions, a position counts when
    its ``MASK_INDEX > 0``); the masked positions are gathered instead of multiplied by a
    one-hot matrix.
    """
    index = masked[model.MASK_INDEX]  # [B, m]
    pos_items, neg_items = masked[model.POS_ITEMS], masked[model.NEG_ITEMS]
    seq_output = hidden.gather(1, index[:, :, None].expand(-1, -1, hidden.shape[-1]))  # [B, m, H]
    targets = (index > 0).float()  # fp32 (hidden is bf16 under train_precision: bf16)
    if model.loss_type == "BPR":
        pos = (seq_output * model.item_embedding(pos_items)).sum(-1) + model.output_bias[pos_items]
        neg = (seq_output * model.item_embedding(neg_items)).sum(-1) + model.output_bias[neg_items]
        return -torch.sum(torch.log(1e-14 + torch.sigmoid(pos - neg)) * targets) / torch.sum(targets)
    logits = (seq_output @ model.item_embedding.weight[: model.n_items].T + model.output_bias).float()
    ce = F.cross_entropy(logits.view(-1, model.n_items), pos_items.view(-1), reduction="none")
    return torch.sum(ce * targets.view(-1)) / torch.sum(targets)
