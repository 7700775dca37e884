# -*- coding: utf-8 -*-
"""
LRURec
################################################

Reference:
    Zhenrui Yue, Yueqi Wang, Zhankui He, Huimin Zeng, Julian McAuley and Dong Wang.
    "Linear Recurrent Units for Sequential Recommendation." in WSDM 2024.

A native RecBole ``SequentialRecommender``. Each block is a linear recurrent unit (LRU,
Orvieto et al. 2023) followed by a position-wise feed-forward network::

    b_t = gamma * (B x_t)                      complex, N = 2 * hidden_size states
    h_t = lambda * h_{t-1} + b_t               diagonal complex recurrence, h_0 = 0
    y_t = LayerNorm(Dropout(Re(C h_t)) + x_t)
    z_t = LayerNorm(Dropout(W2 Dropout(GELU(W1 y_t))) + y_t)     inner size 4 * hidden_size

with ``lambda = exp(-exp(nu_log) + i exp(theta_log))`` (stable: ``|lambda| < 1``) and
``gamma = exp(gamma_log)``, initialised ``gamma = sqrt(1 - |lambda|^2)`` on the ring
``r_min <= |lambda| <= r_max``. The input is the item embedding after dropout and a
LayerNorm (no position embedding: the recurrence orders the items). Scores are dot products
with the item embeddings, as RecBole's SASRec.

The recurrence is computed in parallel (:func:`lru_scan`): ``ceil(log2 L)`` vectorized
doubling steps, each adding ``lambda^s h_{t-s}`` to ``h_t``; it equals the step-by-step
recurrence (:func:`lru_recurrence`, used by the tests). Position ``t`` depends on items
``<= t`` only, so the model is causal: ``all_position_output`` gives every position's
hidden state and the plugin trains it in the ``sequence`` unit (``compat.model_kind``).

Differences from the paper's reference code, all deliberate:

* Padding: RecBole pads on the right; the recurrence input ``b_t`` is zeroed at padding
  positions, so a real position's output is the same whatever padding surrounds it (the
  reference pads on the left, to a power of two, and masks the carried state).
* No item output bias: the plugin's scorer reads causal models' scores as
  ``hidden @ item_embedding.weight.T`` (as SASRec's ``full_sort_predict``).
* Parameters are real tensors (the complex ``B``, ``C`` as real and imaginary parts);
  the recurrence runs in complex64 inside ``forward``. Optimisers, checkpoints and the
  adversarial baselines thus see only real parameters.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender

from recbole_finest.model.common import loss_function, next_item_loss


def lru_scan(b, lam):
    """Parallel linear recurrence ``h_t = lam * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim 1.

    Doubling (Hillis-Steele) scan: after the steps with offsets ``1, 2, ..., s``, ``h_t =
    sum_{j < 2s} lam^j b_{t-j}``; ``ceil(log2 L)`` steps, each one vectorized over the batch,
    the positions and the states; without autograd the steps write into one clone of ``b``
    (no concatenation). On a CPU at ``L = 50`` the step-by-step loop
    (:func:`lru_recurrence`) is faster (memory traffic: ``log2 L`` passes here against one);
    the scan is the paper's form and the one that parallelises on a GPU.

    Args:
        b: complex ``[B, L, N]`` inputs.
        lam: complex ``[N]`` diagonal transition.

    Returns:
        complex ``[B, L, N]`` states ``h``.
    """
    length = b.shape[1]
    in_place = not (torch.is_grad_enabled() and (b.requires_grad or lam.requires_grad))
    h, power, step = (b.clone() if in_place else b), lam, 1
    while step < length:
        if in_place:  # inference: no concatenation (the right-hand side is whole before the write)
            h[:, step:] = h[:, step:] + power * h[:, :-step]
        else:  # autograd needs every step's h unchanged
            h = torch.cat([h[:, :step], h[:, step:] + power * h[:, :-step]], dim=1)
        power, step = power * power, step * 2
    return h


def lru_recurrence(b, lam):
    """The same recurrence one step at a time (the definition; for tests): complex ``[B, L, N]``."""
    states, h = [], torch.zeros_like(b[:, 0])
    for t in range(b.shape[1]):
        h = lam * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


class LRULayer(nn.Module):
    """One linear recurrent unit with residual connection and LayerNorm: ``[B, L, H] -> [B, L, H]``."""

    def __init__(self, hidden_size, dropout, r_min=0.8, r_max=0.99, layer_norm_eps=1e-12):
        super().__init__()
        n_states = 2 * hidden_size
        # lambda uniform on the ring r_min <= |lambda| <= r_max, phase in [0, 2 pi)
        u1, u2 = torch.rand(n_states), torch.rand(n_states)
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2))
        theta_log = torch.log(u2 * 2 * math.pi)
        gamma_log = 0.5 * torch.log(1 - torch.exp(-2 * torch.exp(nu_log)))  # log sqrt(1 - |lambda|^2)
        self.params_log = nn.Parameter(torch.stack([nu_log, theta_log, gamma_log]))  # [3, N]
        self.in_re = nn.Linear(hidden_size, n_states)
        self.in_im = nn.Linear(hidden_size, n_states)
        self.out_re = nn.Linear(n_states, hidden_size)
        self.out_im = nn.Linear(n_states, hidden_size, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def transition(self):
        """``(lambda, gamma)``: complex ``[N]`` diagonal transition and real ``[N]`` input scale."""
        nu, theta, gamma = torch.exp(self.params_log)
        return torch.polar(torch.exp(-nu), theta), gamma

    def forward(self, x, valid):
        """``x [B, L, H]``, ``valid [B, L]`` bool (False at padding) -> ``[B, L, H]``."""
        lam, gamma = self.transition()
        keep = (valid.unsqueeze(-1) * gamma).to(x.dtype)  # [B, L, N]: padding feeds nothing in
        b = torch.complex(self.in_re(x) * keep, self.in_im(x) * keep)
        h = lru_scan(b, lam)
        y = self.out_re(h.real) - self.out_im(h.imag)  # Re(C h) + bias
        return self.layer_norm(self.dropout(y) + x)


class FeedForward(nn.Module):
    """Position-wise FFN with GELU, residual and LayerNorm: ``[B, L, H] -> [B, L, H]``."""

    def __init__(self, hidden_size, inner_size, dropout, layer_norm_eps=1e-12):
        super().__init__()
        self.w_1 = nn.Linear(hidden_size, inner_size)
        self.w_2 = nn.Linear(inner_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x):
        inner = self.dropout(F.gelu(self.w_1(x)))
        return self.layer_norm(self.dropout(self.w_2(inner)) + x)


class LRUBlock(nn.Module):
    """LRU layer then FFN: ``[B, L, H] -> [B, L, H]``."""

    def __init__(self, hidden_size, inner_size, hidden_dropout, lru_dropout, r_min, r_max, layer_norm_eps):
        super().__init__()
        self.lru = LRULayer(hidden_size, lru_dropout, r_min, r_max, layer_norm_eps)
        self.ffn = FeedForward(hidden_size, inner_size, hidden_dropout, layer_norm_eps)

    def forward(self, x, valid):
        return self.ffn(self.lru(x, valid))


class LRURec(SequentialRecommender):
    r"""LRURec: stacked linear recurrent units over the item sequence (module doc)."""

    def __init__(self, config, dataset):
        super(LRURec, self).__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.hidden_size = config["hidden_size"]
        self.inner_size = config["inner_size"] or 4 * self.hidden_size
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.lru_dropout_prob = config["lru_dropout_prob"]
        self.r_min, self.r_max = config["lru_r_min"], config["lru_r_max"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        self.loss_type = config["loss_type"]

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(self.hidden_dropout_prob)
        self.emb_layer_norm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.blocks = nn.ModuleList([
            LRUBlock(self.hidden_size, self.inner_size, self.hidden_dropout_prob, self.lru_dropout_prob,
                     self.r_min, self.r_max, self.layer_norm_eps)
            for _ in range(self.n_layers)
        ])
        self.loss_fct = loss_function(self.loss_type)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        """Truncated normal (``initializer_range``, cut at 2 std) on weights and biases, as the
        reference; LayerNorms at (1, 0); the LRU's ``params_log`` keep their ring initialisation."""
        std = self.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.trunc_normal_(module.bias, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def _encode(self, item_seq):
        """Hidden states ``[B, L, H]`` at every position of ``item_seq [B, L]``; position t sees items <= t."""
        valid = item_seq != 0
        x = self.emb_layer_norm(self.emb_dropout(self.item_embedding(item_seq)))
        for block in self.blocks:
            x = block(x, valid)
        return x

    def forward(self, item_seq, item_seq_len):
        """``[B, H]``: the hidden state at each sequence's last item."""
        return self.gather_indexes(self._encode(item_seq), item_seq_len - 1)

    def all_position_output(self, interaction):
        """Hidden states at every position ``[B, L, H]``; position t only sees positions <= t."""
        return self._encode(interaction[self.ITEM_SEQ])

    def calculate_loss(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return next_item_loss(self, seq_output, interaction)

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)  # [B]

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq_output @ self.item_embedding.weight.T  # [B, n_items]
