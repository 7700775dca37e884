"""What the plugin's native sequential models share with RecBole's SASRec: the next-item loss."""

from recbole.model.loss import BPRLoss
from torch import nn


def loss_function(loss_type):
    """RecBole's loss module for ``loss_type``: ``BPRLoss`` (``BPR``) or cross-entropy (``CE``)."""
    if loss_type == "BPR":
        return BPRLoss()
    if loss_type == "CE":
        return nn.CrossEntropyLoss()
    raise NotImplementedError("Make sure 'loss_type' in ['BPR', 'CE']!")


def next_item_loss(model, seq_output, interaction):
    """RecBole SASRec's ``calculate_loss`` from ``seq_output [B, H]``: BPR over (positive, negative)
    item scores ``[B]``, or cross-entropy over the scores of every item ``[B, n_items]``."""
    pos_items = interaction[model.POS_ITEM_ID]
    if model.loss_type == "BPR":
        neg_items = interaction[model.NEG_ITEM_ID]
        pos_score = (seq_output * model.item_embedding(pos_items)).sum(-1)  # [B]
        neg_score = (seq_output * model.item_embedding(neg_items)).sum(-1)  # [B]
        return model.loss_fct(pos_score, neg_score)
    logits = seq_output @ model.item_embedding.weight.T  # [B, n_items]
    return model.loss_fct(logits, pos_items)
