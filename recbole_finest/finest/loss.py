"""The rank-preserving regularizer of FINEST (spec section 5, step 3)."""

import torch


def rank_preserving_loss(scores, reference, beta1=0.1, beta2=0.1, order_term=True, score_term=True):
    """Hinge losses that keep the reference top-K order and keep it above the competitors.

    Args:
        scores: float ``[M, n_items]`` model scores of ``M`` training instances.
        reference: integer ``[M, 2K]`` item ids; ``[:, :K]`` is the reference top-K
            ``r_1..r_K`` in rank order, ``[:, K:]`` the competitors ``c_1..c_K``
            (ranks K+1..2K).
        beta1: margin of the order term, ``max(0, beta1 - (s(r_k) - s(r_{k+1})))``.
        beta2: margin of the score term, ``max(0, beta2 - (s(r_k) - s(c_k)))``.
        order_term / score_term: switch each term off for the ablations.

    Returns:
        Scalar tensor: mean over the ``M * (K - 1)`` order pairs plus mean over the
        ``M * K`` competitor pairs (torch ``MarginRankingLoss(margin)`` semantics, as the
        reference implementation). Zero (with a graph) when ``M == 0``.
    """
    if scores.dtype in (torch.bfloat16, torch.float16):  # autocast (train_precision): the margins in fp32
        scores = scores.float()  # fp32 / fp64 scores stay the same tensor
    if scores.shape[0] == 0 or not (order_term or score_term):
        return scores.sum() * 0.0
    k = reference.shape[1] // 2
    picked = scores.gather(1, reference.long())  # [M, 2K]
    top, competitors = picked[:, :k], picked[:, k:]
    loss = scores.new_zeros(())
    if order_term and k > 1:
        loss = loss + torch.relu(beta1 - (top[:, :-1] - top[:, 1:])).mean()
    if score_term:
        loss = loss + torch.relu(beta2 - (top - competitors)).mean()
    return loss
