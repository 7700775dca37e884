"""Tests for recbole_finest.stability.metrics (stability metrics)."""
import numpy as np
import pytest
import torch
from rbo import RankingSimilarity

from recbole_finest.stability.metrics import jaccard, rank_lists, rbo

from conftest import perturbed_permutations


def _reference_rbo(a, b, p):
    return np.array([RankingSimilarity(x.tolist(), y.tolist()).rbo(p=p) for x, y in zip(a, b)])


@pytest.mark.parametrize("p", [1.0, 0.9, 0.5])
def test_rbo_full_permutations_match_package(p):
    gen = torch.Generator().manual_seed(0)
    a, b = perturbed_permutations(gen, 30, 60, swaps=15)
    # plus fully independent permutations
    c = torch.stack([torch.randperm(60, generator=gen) + 1 for _ in range(10)])
    a, b = torch.cat([a, c]), torch.cat([b, c.flip(1)])
    got = rbo(a, b, p=p)
    assert got.dtype == torch.float64 and got.shape == (40,)
    np.testing.assert_allclose(got.numpy(), _reference_rbo(a, b, p), rtol=0, atol=1e-9)
    assert got.std() > 0  # not a degenerate test


@pytest.mark.parametrize("p", [1.0, 0.9])
def test_rbo_truncated_lists_partial_overlap_match_package(p):
    gen = torch.Generator().manual_seed(1)
    n, m, d = 40, 200, 25
    a, b = perturbed_permutations(gen, n, m, swaps=40)
    a, b = a[:, :d], b[:, :d]  # truncated top-D lists: not permutations of each other
    overlap = [len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b)]
    assert min(overlap) < d  # really partial overlap
    # also different widths (package uses k = min(len))
    for bb in (b, torch.cat([b, torch.randperm(m, generator=gen)[:5].expand(n, 5) + 10_000], 1)):
        got = rbo(a, bb, p=p)
        np.testing.assert_allclose(got.numpy(), _reference_rbo(a, bb, p), rtol=0, atol=1e-9)


def test_rbo_disjoint_and_identical():
    a = torch.arange(1, 21).view(2, 10)
    assert torch.equal(rbo(a, a), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(rbo(a, a, p=0.9), torch.tensor([1 - 0.9 ** 10] * 2, dtype=torch.float64))
    np.testing.assert_allclose(rbo(a, a, p=0.9).numpy(), _reference_rbo(a, a, 0.9), atol=1e-12)
    assert torch.equal(rbo(a, a.flip(0)), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError):
        rbo(a, a, p=1.5)


def test_jaccard_matches_sets():
    gen = torch.Generator().manual_seed(2)
    a, b = perturbed_permutations(gen, 50, 40, swaps=10)
    for k in (1, 5, 10, 40, 100):
        got = jaccard(a, b, k=k)
        exp = []
        for x, y in zip(a.tolist(), b.tolist()):
            sx, sy = set(x[:k]), set(y[:k])
            exp.append(len(sx & sy) / len(sx | sy))
        np.testing.assert_allclose(got.numpy(), np.array(exp), rtol=0, atol=1e-12)
    assert torch.equal(jaccard(a, a, k=10), torch.ones(50, dtype=torch.float64))


def test_rank_lists_matches_numpy_and_breaks_ties_by_id():
    gen = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (20, 31), generator=gen).float()  # many ties
    scores[:, 0] = 100.0  # padding item must never appear, even with top score
    scores[:3, 5:9] = -float("inf")
    exp = np.argsort(-scores[:, 1:].numpy(), axis=1, kind="stable") + 1
    full = rank_lists(scores)
    assert full.dtype == torch.long and full.shape == (20, 30)
    np.testing.assert_array_equal(full.numpy(), exp)
    np.testing.assert_array_equal(rank_lists(scores, depth=7).numpy(), exp[:, :7])
    assert rank_lists(scores, depth=1000).shape == (20, 30)
    assert not (full == 0).any()
