"""RecBole's ``SASRec.full_sort_predict`` with the last layer computed at the read position only.

SASRec scores an instance from its encoder output at one position (``item_seq_len - 1``).
RecBole computes every layer at all ``W`` positions; the last layer's attention needs its keys
and values at all of them, but its output projection, layer norms and feed-forward only at
that one. :func:`last_position_predict` runs RecBole's own modules in RecBole's order and
gathers the row right after the last attention's context (``[B, W, H] -> [B, 1, H]``): about a
third less encoder FLOP and half the gelu work at ``W = 50``.

The values equal ``full_sort_predict``'s when the matrix products give each row the same bits
whatever the number of rows (true of the BLAS measured here, not a guarantee), so the caller
checks (``stability.evaluate.SlicedScoring``) and falls back. This module follows RecBole
1.2.1's ``SASRec.forward``, ``TransformerLayer``, ``MultiHeadAttention`` and ``FeedForward``
line by line; it is the one place that does.
"""

import torch
from recbole.model.layers import FeedForward, MultiHeadAttention, TransformerEncoder, TransformerLayer
from recbole.model.sequential_recommender.sasrec import SASRec


def last_position_predict(model):
    """``predict(interaction) -> [B, n_items]`` for RecBole's own SASRec in eval mode, else None."""
    if type(model) is not SASRec or model.training or not _plain_encoder(model.trm_encoder):
        return None

    def predict(interaction):
        return _scores(model, interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])

    return predict


def _plain_encoder(encoder):
    return type(encoder) is TransformerEncoder and len(encoder.layer) > 0 and all(
        type(layer) is TransformerLayer and type(layer.multi_head_attention) is MultiHeadAttention
        and type(layer.feed_forward) is FeedForward for layer in encoder.layer)


def _scores(model, item_seq, item_seq_len):
    """``SASRec.full_sort_predict``: ``item_seq [B, W]``, ``item_seq_len [B]`` -> scores ``[B, n_items]``."""
    position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
    position_ids = position_ids.unsqueeze(0).expand_as(item_seq)
    input_emb = model.item_embedding(item_seq) + model.position_embedding(position_ids)
    hidden = model.dropout(model.LayerNorm(input_emb))
    mask = model.get_attention_mask(item_seq)
    *first, last = model.trm_encoder.layer
    for layer in first:
        hidden = layer(hidden, mask)
    attention = last.multi_head_attention
    context = _context(attention, hidden, mask)  # [B, W, H]
    index = (item_seq_len - 1).view(-1, 1, 1).expand(-1, -1, hidden.shape[-1])
    context, hidden = context.gather(1, index), hidden.gather(1, index)  # [B, 1, H]
    out = attention.LayerNorm(attention.out_dropout(attention.dense(context)) + hidden)
    seq_output = last.feed_forward(out).squeeze(1)  # [B, H]
    return torch.matmul(seq_output, model.item_embedding.weight.transpose(0, 1))


def _context(attention, input_tensor, attention_mask):
    """``MultiHeadAttention.forward`` up to the context ``[B, W, H]`` (before ``dense``)."""
    query = attention.transpose_for_scores(attention.query(input_tensor)).permute(0, 2, 1, 3)
    key = attention.transpose_for_scores(attention.key(input_tensor)).permute(0, 2, 3, 1)
    value = attention.transpose_for_scores(attention.value(input_tensor)).permute(0, 2, 1, 3)
    scores = torch.matmul(query, key)
    scores = scores / attention.sqrt_attention_head_size
    scores = scores + attention_mask
    probs = attention.attn_dropout(attention.softmax(scores))
    context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
    return context.view(context.size()[:-2] + (attention.all_head_size,))
