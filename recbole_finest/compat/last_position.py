"""RecBole's ``SASRec.full_sort_predict`` with the last layer computed at the read position only.

SASRec scores an instance from its encoder output at one position (``item_seq_len - 1``).
RecBole computes every layer at all ``W`` positions; the last layer needs its keys and values
at all of them, but its query, attention row, output projection, layer norms and feed-forward
only at that one. :func:`last_position_predict` runs RecBole's own modules in RecBole's order
on the read row (``[B, W, H] -> [B, 1, H]``) from the last layer's query on: about a third
less encoder FLOP, half the gelu work and one fiftieth of the last softmax at ``W = 50``.

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
    """``predict(interaction, out=None) -> [B, n_items]`` (into ``out`` when given) for RecBole's
    own SASRec in eval mode, else None."""
    if type(model) is not SASRec or model.training or not _plain_encoder(model.trm_encoder):
        return None

    def predict(interaction, out=None):
        return _scores(model, interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN], out)

    predict.writes_out = True
    return predict


def _plain_encoder(encoder):
    return type(encoder) is TransformerEncoder and len(encoder.layer) > 0 and all(
        type(layer) is TransformerLayer and type(layer.multi_head_attention) is MultiHeadAttention
        and type(layer.feed_forward) is FeedForward for layer in encoder.layer)


def _scores(model, item_seq, item_seq_len, out=None):
    """``SASRec.full_sort_predict``: ``item_seq [B, W]``, ``item_seq_len [B]`` -> scores ``[B, n_items]``
    (written into ``out`` when given)."""
    position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
    position_ids = position_ids.unsqueeze(0).expand_as(item_seq)
    input_emb = model.item_embedding(item_seq) + model.position_embedding(position_ids)
    hidden = model.dropout(model.LayerNorm(input_emb))
    mask = model.get_attention_mask(item_seq)  # [B, 1, W, W]
    *first, last = model.trm_encoder.layer
    for layer in first:
        hidden = layer(hidden, mask)
    read = (item_seq_len - 1).view(-1, 1, 1)
    row = hidden.gather(1, read.expand(-1, -1, hidden.shape[-1]))  # [B, 1, H]
    row_mask = mask.gather(2, read.unsqueeze(1).expand(-1, 1, 1, mask.shape[-1]))  # [B, 1, 1, W]
    attention = last.multi_head_attention
    context = _context(attention, row, hidden, row_mask)  # [B, 1, H]
    hidden = attention.LayerNorm(attention.out_dropout(attention.dense(context)) + row)
    seq_output = last.feed_forward(hidden).squeeze(1)  # [B, H]
    return torch.matmul(seq_output, model.item_embedding.weight.transpose(0, 1), out=out)


def _context(attention, query_input, input_tensor, attention_mask):
    """``MultiHeadAttention.forward`` up to the context (before ``dense``) of one query row per
    instance, ``query_input [B, 1, H]``, over the keys and values of ``input_tensor [B, W, H]``
    with ``attention_mask [B, 1, 1, W]`` -> ``[B, 1, H]``.

    The two attention products run on the row repeated ``_PRODUCT_ROWS`` times (the first copy
    kept): with one row the BLAS takes a matrix-vector path that sums in another order, with
    eight the row gets the bits it has among all ``W`` (measured; ``SlicedScoring`` checks).
    """
    query = attention.transpose_for_scores(attention.query(query_input)).permute(0, 2, 1, 3)  # [B, heads, 1, d]
    key = attention.transpose_for_scores(attention.key(input_tensor)).permute(0, 2, 3, 1)  # [B, heads, d, W]
    value = attention.transpose_for_scores(attention.value(input_tensor)).permute(0, 2, 1, 3)  # [B, heads, W, d]
    scores = _row_matmul(query, key)
    scores = scores / attention.sqrt_attention_head_size
    scores = scores + attention_mask
    probs = attention.attn_dropout(attention.softmax(scores))  # [B, heads, 1, W]
    context = _row_matmul(probs, value).permute(0, 2, 1, 3).contiguous()
    return context.view(context.size()[:-2] + (attention.all_head_size,))


_PRODUCT_ROWS = 8


def _row_matmul(row, matrix):
    """``row [..., 1, K] @ matrix [..., K, N] -> [..., 1, N]`` computed as ``_PRODUCT_ROWS`` rows."""
    rows = row.expand(*row.shape[:-2], _PRODUCT_ROWS, row.shape[-1]).contiguous()
    return torch.matmul(rows, matrix)[..., :1, :]
