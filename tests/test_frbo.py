"""FRBO@k, finite rank-biased overlap (Betello, Siciliano, Mishra, Silvestri, ECIR 2024).

The reference here is written from the paper's formula, one list pair and one depth at a time:
``FRBO@k = (1 - p) / (1 - p^k) * sum_{d=1..k} p^(d-1) |a[:d] & b[:d]| / d``. The authors'
code (federicosiciliano/finite_rank_biased_rbo) is not published on PyPI (``pip download
frbo`` / ``finite-rank-biased-rbo`` find nothing), so there is no package to compare with.
"""
import numpy as np
import pytest
import torch

from conftest import TINY, perturbed_permutations
from recbole_finest.stability.metrics import frbo, rank_lists, stability_values, stream_stability


def _paper_frbo(x, y, k, p):
    """The paper's formula, literally: a loop over depths with Python sets."""
    k = min(k, len(x), len(y))
    total, weight_sum = 0.0, 0.0
    for d in range(1, k + 1):
        w = 1.0 if p == 1.0 else p ** (d - 1)
        total += w * len(set(x[:d]) & set(y[:d])) / d
        weight_sum += w
    return total / weight_sum  # = (1 - p) / (1 - p^k) * sum for p < 1, 1 / k * sum for p = 1


def _pairs(seed, n, m, swaps):
    return perturbed_permutations(torch.Generator().manual_seed(seed), n, m, swaps)


def test_hand_computation():
    # A_1 = 0, A_2 = 1, A_3 = 2/3; (1 - .5) / (1 - .5^3) * (0 + .5 * 1 + .25 * 2/3) = 4/7 * 2/3
    got = frbo(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 1, 4]]), k=3, p=0.5)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(8 / 21, abs=1e-15)
    # p = 1: the mean of the agreements, (0 + 1 + 2/3) / 3
    assert frbo(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 1, 4]]), k=3, p=1.0).item() == pytest.approx(5 / 9)


@pytest.mark.parametrize("p", [0.9, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("k", [1, 5, 10, 37])
def test_equals_the_papers_formula(p, k):
    a, b = _pairs(seed=k, n=40, m=60, swaps=12)
    got = frbo(a, b, k=k, p=p)
    want = np.array([_paper_frbo(x, y, k, p) for x, y in zip(a.tolist(), b.tolist())])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    if k > 1:
        assert got.std() > 0  # the pairs really differ in their top-k


@pytest.mark.parametrize("p", [0.9, 0.5, 1.0])
def test_identical_is_one_and_disjoint_is_zero(p):
    a, _ = _pairs(seed=3, n=8, m=30, swaps=0)
    assert torch.allclose(frbo(a, a, k=10, p=p), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-12)
    # plain (truncated) RBO of identical top-10 lists is 1 - p^10 < 1: FRBO's normalisation is what makes it 1
    disjoint = a + 1000
    assert torch.equal(frbo(a, disjoint, k=10, p=p), torch.zeros(8, dtype=torch.float64))
    # identical top-k, everything after it different: still 1
    tail_changed = torch.cat([a[:, :10], a[:, 10:] + 1000], 1)
    assert torch.allclose(frbo(a, tail_changed, k=10, p=p), torch.ones(8, dtype=torch.float64), atol=1e-12)


def test_depends_only_on_the_top_k():
    """Permuting each list's items beyond rank k (and replacing them) never changes FRBO@k;
    permuting inside the top k does."""
    gen = torch.Generator().manual_seed(9)
    a, b = _pairs(seed=4, n=50, m=80, swaps=30)
    k = 10
    base = frbo(a, b, k=k, p=0.9)
    for _ in range(5):
        perm_a, perm_b = torch.randperm(80 - k, generator=gen), torch.randperm(80 - k, generator=gen)
        a2 = torch.cat([a[:, :k], a[:, k:][:, perm_a]], 1)
        b2 = torch.cat([b[:, :k], b[:, k:][:, perm_b] + 5000], 1)  # tail of b even replaced by new ids
        assert torch.equal(frbo(a2, b2, k=k, p=0.9), base)
    # a change inside the top-k is seen (the property above is not vacuous)
    swapped = a.clone()
    swapped[:, [0, k - 1]] = swapped[:, [k - 1, 0]]
    changed = frbo(swapped, b, k=k, p=0.9) != base
    assert changed.float().mean() > 0.5


def test_short_lists_use_their_common_depth():
    a, b = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3]])
    assert frbo(a, b, k=10, p=0.9).item() == pytest.approx(1.0)
    assert frbo(torch.tensor([[1, 2]]), torch.tensor([[2, 3]]), k=10, p=0.9).item() == pytest.approx(
        _paper_frbo([1, 2], [2, 3], 10, 0.9))
    with pytest.raises(ValueError):
        frbo(a, b, k=0)


@pytest.mark.parametrize("frbo_k,depth", [(10, None), (20, 5), (3, 40)])
def test_streamed_with_rbo_and_jaccard_from_one_ranking(frbo_k, depth):
    """``stream_stability`` returns FRBO@k next to RBO / Jaccard@k, batch by batch, equal to
    :func:`frbo` of the stacked scores' rank lists, also when ``frbo_k`` exceeds ``rbo_depth``."""
    gen = torch.Generator().manual_seed(13)
    n, n_items = 77, 50
    sa = torch.randn(n, n_items, generator=gen)
    sb = sa + 0.4 * torch.randn(n, n_items, generator=gen)
    bounds = [0, 5, 40, 77]
    out = stream_stability(((sa[i:j], sb[i:j]) for i, j in zip(bounds[:-1], bounds[1:])),
                           p=1.0, depth=depth, k=10, frbo_k=frbo_k, frbo_p=0.9)
    key = f"frbo@{frbo_k}"
    assert set(out) == {"rbo", "jaccard@10", key} and out[key].shape == (n,)
    la, lb = rank_lists(sa), rank_lists(sb)
    want = np.array([_paper_frbo(x, y, frbo_k, 0.9) for x, y in zip(la.tolist(), lb.tolist())])
    np.testing.assert_allclose(out[key].numpy(), want, rtol=0, atol=1e-12)
    assert 0.0 < float(out[key].mean()) < 1.0
    # without frbo_k the pass is as before
    assert set(stability_values(sa, sb, k=10)) == {"rbo", "jaccard@10"}
    empty = stream_stability(iter(()), k=5, frbo_k=7)
    assert empty["frbo@7"].numel() == 0


def test_config_keys_defaults_and_checks(tmp_path):
    import contextlib

    from recbole_finest.checks import ConfigError
    from recbole_finest.config import Config
    from recbole_finest.tune.setup import _frbo_k

    with contextlib.chdir(tmp_path):
        config = Config("SASRec", "ml-100k", config_dict=TINY)
        assert (config["frbo_k"], config["frbo_p"]) == (10, 0.9)
        assert (config.settings.metrics.frbo_k, config.settings.metrics.frbo_p) == (10, 0.9)
        with pytest.raises(ConfigError, match="frbo_p"):
            Config("SASRec", "ml-100k", config_dict={**TINY, "frbo_p": 1.5})
        with pytest.raises(ConfigError, match="frbo_kk"):
            Config("SASRec", "ml-100k", config_dict={**TINY, "frbo_kk": 5})
    base = {"frbo_k": 5, "tune_metric": "frbo@5", "tune_accuracy_metric": "ndcg@10"}
    assert _frbo_k(base) == 5
    with pytest.raises(ConfigError, match="frbo_k is 5"):
        _frbo_k({**base, "tune_metric": "frbo@10"})


def test_update_churn_reports_frbo():
    from recbole_finest.update.churn import churn

    a, b = _pairs(seed=6, n=20, m=40, swaps=8)
    out = churn(a, b, k=10, frbo_k=10, frbo_p=0.9)
    want = np.array([_paper_frbo(x, y, 10, 0.9) for x, y in zip(a.tolist(), b.tolist())])
    np.testing.assert_allclose(out["frbo@10"].numpy(), want, rtol=0, atol=1e-12)
    assert "frbo@10" not in churn(a, b, k=10)
