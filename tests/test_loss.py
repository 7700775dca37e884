"""``rank_preserving_loss`` against hand computations (FINEST spec section 5, step 3)."""

import pytest
import torch

from recbole_finest.finest.loss import rank_preserving_loss

# Two instances, K = 3, items 0..6 (0 = padding, never in a reference list).
# Reference rows are [r1, r2, r3, c1, c2, c3].
#
# Instance 1: reference [1, 2, 3, 4, 5, 6]
#   s(r1)=1.00  s(r2)=0.95  s(r3)=0.50  s(c1)=0.98  s(c2)=0.30  s(c3)=0.45
#   order (beta1=0.1): 0.1-(1.00-0.95)= 0.05 active | 0.1-(0.95-0.50)=-0.35 -> 0
#   score (beta2=0.1): 0.1-(1.00-0.98)= 0.08 active | 0.1-(0.95-0.30)=-0.55 -> 0
#                      0.1-(0.50-0.45)= 0.05 active
#   order mean over 2 pairs = 0.05/2 = 0.025; score mean over 3 pairs = 0.13/3
#   loss(instance 1 alone) = 0.025 + 0.13/3 = 0.0683333...
#
# Instance 2: reference [6, 5, 4, 3, 2, 1]
#   s(r1)=s(6)=0.90  s(r2)=s(5)=0.30  s(r3)=s(4)=0.35  s(c1)=s(3)=1.20  s(c2)=s(2)=0.00  s(c3)=s(1)=0.30
#   order: 0.1-(0.90-0.30)=-0.50 -> 0 | 0.1-(0.30-0.35)= 0.15 active (r2, r3 inverted)
#   score: 0.1-(0.90-1.20)= 0.40 active | 0.1-(0.30-0.00)=-0.20 -> 0 | 0.1-(0.35-0.30)=0.05 active
#
# Both instances (mean over M * (K-1) = 4 order pairs and M * K = 6 score pairs):
#   order = (0.05 + 0 + 0 + 0.15) / 4 = 0.05
#   score = (0.08 + 0 + 0.05 + 0.40 + 0 + 0.05) / 6 = 0.58 / 6
#   loss  = 0.05 + 0.58/6 = 0.1466666...
SCORES = torch.tensor(
    [
        [-9.0, 1.00, 0.95, 0.50, 0.98, 0.30, 0.45],
        [-9.0, 0.30, 0.00, 1.20, 0.35, 0.30, 0.90],
    ],
    dtype=torch.float64,
)
REFERENCE = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])


def test_single_instance_matches_hand_computation():
    loss = rank_preserving_loss(SCORES[:1], REFERENCE[:1], beta1=0.1, beta2=0.1)
    assert loss.item() == pytest.approx(0.025 + 0.13 / 3, abs=1e-12)


def test_two_instances_mean_over_pairs():
    loss = rank_preserving_loss(SCORES, REFERENCE, beta1=0.1, beta2=0.1)
    assert loss.item() == pytest.approx(0.05 + 0.58 / 6, abs=1e-12)


def test_agrees_with_margin_ranking_loss():
    """Reference implementation: two torch ``MarginRankingLoss(0.1)``, competitors element-wise."""
    picked = SCORES.gather(1, REFERENCE)
    top, comp = picked[:, :3], picked[:, 3:]
    mrl = torch.nn.MarginRankingLoss(margin=0.1)
    expected = mrl(top[:, :-1].reshape(-1), top[:, 1:].reshape(-1), torch.ones(4, dtype=torch.float64)) + mrl(
        top.reshape(-1), comp.reshape(-1), torch.ones(6, dtype=torch.float64)
    )
    assert rank_preserving_loss(SCORES, REFERENCE).item() == pytest.approx(expected.item(), abs=1e-12)


def test_order_only_and_score_only():
    order = rank_preserving_loss(SCORES, REFERENCE, order_term=True, score_term=False)
    score = rank_preserving_loss(SCORES, REFERENCE, order_term=False, score_term=True)
    assert order.item() == pytest.approx(0.05, abs=1e-12)
    assert score.item() == pytest.approx(0.58 / 6, abs=1e-12)


def test_margins_are_not_swapped():
    # instance 1, beta1 = 0.3, beta2 = 0:
    #   order: 0.3-0.05 = 0.25 | 0.3-0.45 -> 0           -> mean 0.125
    #   score: 0-0.02, 0-0.65, 0-0.05 all negative -> 0  -> 0
    loss = rank_preserving_loss(SCORES[:1], REFERENCE[:1], beta1=0.3, beta2=0.0)
    assert loss.item() == pytest.approx(0.125, abs=1e-12)
    # beta1 = 0, beta2 = 0.3: order 0; score (0.28 + 0 + 0.25) / 3
    loss = rank_preserving_loss(SCORES[:1], REFERENCE[:1], beta1=0.0, beta2=0.3)
    assert loss.item() == pytest.approx(0.53 / 3, abs=1e-12)


def test_k_equal_one_has_no_order_pairs():
    # reference [r1, c1] = [1, 4]: score 0.1-(1.00-0.98) = 0.08; no order pair
    loss = rank_preserving_loss(SCORES[:1], torch.tensor([[1, 4]]))
    assert loss.item() == pytest.approx(0.08, abs=1e-12)


def test_int16_reference_ids_are_accepted():
    loss = rank_preserving_loss(SCORES, REFERENCE.to(torch.int16))
    assert loss.item() == pytest.approx(0.05 + 0.58 / 6, abs=1e-12)


@pytest.mark.parametrize("switches", [dict(), dict(order_term=False, score_term=False)])
def test_empty_batch_or_no_term_is_zero_with_a_graph(switches):
    weights = torch.randn(4, 7, requires_grad=True)
    scores = weights[:0] if not switches else weights
    reference = REFERENCE[:0] if not switches else torch.tensor([[1, 2, 3, 4, 5, 6]] * 4)
    loss = rank_preserving_loss(scores, reference, **switches)
    assert loss.item() == 0.0
    assert loss.requires_grad and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(weights.grad, torch.zeros_like(weights))


def test_gradient_signs_and_values():
    """d loss / d s for instance 1 (active pairs: (r1,r2) order; (r1,c1), (r3,c3) score).

    order mean over 2 pairs:  ds(r1) -= 1/2, ds(r2) += 1/2
    score mean over 3 pairs:  ds(r1) -= 1/3, ds(c1) += 1/3, ds(r3) -= 1/3, ds(c3) += 1/3
    => grad = [pad 0, r1 -5/6, r2 +1/2, r3 -1/3, c1 +1/3, c2 0, c3 +1/3]
    A gradient step raises r1 and r3, lowers r2 (too close to r1) and the competitors c1, c3.
    """
    scores = SCORES[:1].clone().requires_grad_(True)
    rank_preserving_loss(scores, REFERENCE[:1]).backward()
    expected = torch.tensor([[0.0, -5 / 6, 1 / 2, -1 / 3, 1 / 3, 0.0, 1 / 3]], dtype=torch.float64)
    assert torch.allclose(scores.grad, expected, atol=1e-12)
