"""Tests for recbole_finest.metrics (stability metrics) and their RecBole registration."""
import numpy as np
import pytest
import torch
from rbo import RankingSimilarity

from recbole_finest.metrics import (
    RBO,
    Jaccard,
    StabilityReference,
    jaccard,
    rank_lists,
    rbo,
)
from recbole_finest.registry import register, register_metrics


@pytest.fixture(autouse=True)
def _clean_reference():
    StabilityReference.clear()
    yield
    StabilityReference.clear()


def _perturbed_perms(gen, n, m, swaps):
    """n pairs of permutations of 1..m, the second a locally perturbed copy of the first."""
    a = torch.stack([torch.randperm(m, generator=gen) + 1 for _ in range(n)])
    b = a.clone()
    for i in range(n):
        for _ in range(swaps):
            x, y = torch.randint(0, m, (2,), generator=gen).tolist()
            b[i, x], b[i, y] = b[i, y].clone(), b[i, x].clone()
    return a, b


def _reference_rbo(a, b, p):
    return np.array([RankingSimilarity(x.tolist(), y.tolist()).rbo(p=p) for x, y in zip(a, b)])


@pytest.mark.parametrize("p", [1.0, 0.9, 0.5])
def test_rbo_full_permutations_match_package(p):
    gen = torch.Generator().manual_seed(0)
    a, b = _perturbed_perms(gen, 30, 60, swaps=15)
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
    a, b = _perturbed_perms(gen, n, m, swaps=40)
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
    a, b = _perturbed_perms(gen, 50, 40, swaps=10)
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


def _metric_config(**extra):
    from recbole.config import Config

    register()
    cfg = {
        "metrics": ["RBO", "Jaccard", "MRR"],
        "topk": [10],
        "valid_metric": "MRR@10",
        "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "device": "cpu",
        "use_gpu": False,
    }
    cfg.update(extra)
    return Config(model="SASRec", dataset="toy", config_dict=cfg)


def _evaluate_through_recbole(config, score_batches, pos_items):
    """Mimic Trainer.evaluate: Collector per batch, then Evaluator on the DataStruct."""
    from recbole.evaluator import Collector, Evaluator

    collector = Collector(config)
    row0 = 0
    for scores in score_batches:
        n = scores.shape[0]
        pu = torch.arange(n)
        pi = pos_items[row0:row0 + n]
        collector.eval_batch_collect(scores.clone(), None, pu, pi)
        row0 += n
    return Evaluator(config).evaluate(collector.get_data_struct())


def _scores(seed, n=24, n_items=51):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(n, n_items, generator=gen)
    s[:, 0] = -float("inf")
    return s


@pytest.mark.parametrize("extra", [{}, {"rbo_p": 0.9, "rbo_depth": 20, "jaccard_k": 5}])
def test_recbole_machinery_matches_functions(extra):
    config = _metric_config(**extra)
    assert config["eval_type"] is not None
    sa = _scores(10)
    sb = sa + 0.7 * _scores(11)
    pos = torch.randint(1, 51, (24,), generator=torch.Generator().manual_seed(12))
    p = extra.get("rbo_p", 1.0)
    depth = extra.get("rbo_depth", None)
    k = extra.get("jaccard_k", 10)

    ref = rank_lists(sa)
    StabilityReference.set(ref)
    result = _evaluate_through_recbole(config, [sb[:10], sb[10:]], pos)

    rb = rank_lists(sb)
    exp_rbo = rbo(rb[:, :depth] if depth else rb, ref[:, :depth] if depth else ref, p=p).mean().item()
    exp_jac = jaccard(rb, ref, k=k).mean().item()
    assert set(result) == {"rbo", f"jaccard@{k}", "mrr@10"}
    assert result["rbo"] == pytest.approx(round(exp_rbo, 4), abs=1e-12)
    assert result[f"jaccard@{k}"] == pytest.approx(round(exp_jac, 4), abs=1e-12)
    # package agreement end to end
    exp_pkg = _reference_rbo(rb[:, :depth] if depth else rb, ref[:, :depth] if depth else ref, p).mean()
    assert result["rbo"] == pytest.approx(exp_pkg, abs=1e-4)
    assert 0 < result["rbo"] < 1 and result[f"jaccard@{k}"] < 1

    # same model as reference -> 1.0 (for p < 1 the package's truncated RBO of identical
    # depth-D lists is 1 - p**D)
    result_same = _evaluate_through_recbole(config, [sa], pos)
    d_eff = depth or 50
    assert result_same["rbo"] == pytest.approx(round(1.0 - (p ** d_eff if p < 1 else 0.0), 4), abs=1e-12)
    assert result_same[f"jaccard@{k}"] == 1.0


def test_recording_reference_through_recbole():
    config = _metric_config()
    sa, sb = _scores(20), _scores(21)
    pos = torch.ones(24, dtype=torch.long)
    with StabilityReference.recording():
        rec = _evaluate_through_recbole(config, [sa[:7], sa[7:]], pos)
    assert rec["rbo"] == 1.0
    assert torch.equal(StabilityReference.get(), rank_lists(sa))  # deepest list kept
    result = _evaluate_through_recbole(config, [sb], pos)
    assert result["rbo"] == pytest.approx(round(rbo(rank_lists(sb), rank_lists(sa)).mean().item(), 4))


def test_clear_errors_without_or_with_mismatched_reference():
    config = _metric_config()
    sb = _scores(30)
    pos = torch.ones(24, dtype=torch.long)
    with pytest.raises(RuntimeError, match="StabilityReference.set"):
        _evaluate_through_recbole(config, [sb], pos)
    StabilityReference.set(rank_lists(_scores(31, n=23)))
    with pytest.raises(RuntimeError, match="23 rows but the evaluation has 24"):
        _evaluate_through_recbole(config, [sb], pos)
    StabilityReference.set(rank_lists(_scores(31), depth=10))
    with pytest.raises(RuntimeError, match="depth"):
        _evaluate_through_recbole(config, [sb], pos)
    with pytest.raises(ValueError):
        StabilityReference.set(sb)  # scores instead of rank lists


def test_register_is_idempotent_and_config_accepts_metrics():
    from recbole.evaluator import register as rb_register

    register_metrics()
    register_metrics()
    register()
    assert rb_register.metrics_dict["rbo"] is RBO
    assert rb_register.metrics_dict["jaccard"] is Jaccard
    assert "rbo" not in rb_register.smaller_metrics
    config = _metric_config(valid_metric="RBO")
    assert config["valid_metric_bigger"] is True


def test_metric_config_defaults():
    cfg = {"metric_decimal_place": 4}
    m = RBO(cfg)
    assert m.p == 1.0 and m.depth is None
    assert Jaccard(cfg).k == 10
    m = RBO({"metric_decimal_place": 4, "rbo_p": 0.9, "rbo_depth": 50})
    assert m.p == 0.9 and m.depth == 50
