"""Streaming stability evaluation equals the full-matrix path (issue 19).

The full-matrix path is what the stability run did before: rank lists ``[N, depth]`` of
both models over all test instances (``test_outputs``), then ``rbo`` / ``jaccard`` over
the stacked lists (``compare_instances``). The streaming path (``compare_models`` ->
``metrics.stream_stability``) scores, ranks and compares one eval batch at a time.
"""
import contextlib

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from _cpu import on_cpu
from recbole_finest.stability.metrics import jaccard, rank_lists, rbo, stability_values, stream_stability
from recbole_finest.stability import run as stability
from recbole_finest.utils import get_model
from conftest import tiny

TINY = tiny(drop=("epochs", "finest_epochs", "finest_topk", "seed"),
            user_inter_num_interval="[200,inf)", eval_batch_size=64)


def _full_matrix(scores_a, scores_b, p, depth, k):
    la, lb = rank_lists(scores_a, depth), rank_lists(scores_b, depth)
    return rbo(la, lb, p=p), jaccard(la, lb, k=k)


@pytest.mark.parametrize("p,depth", [(1.0, None), (0.9, None), (1.0, 40), (0.8, 25)])
def test_stream_over_uneven_batches_equals_full_matrix(p, depth):
    gen = torch.Generator().manual_seed(7)
    n, n_items = 103, 60
    base = torch.randn(n, n_items, generator=gen, dtype=torch.float64)
    scores_a = base.float()
    scores_b = (base + 0.3 * torch.randn(n, n_items, generator=gen, dtype=torch.float64)).float()
    scores_b[::5, 3:9] = scores_b[::5, 3:4]  # ties: broken by item id in both paths
    bounds = [0, 1, 17, 18, 64, 103]
    pairs = ((scores_a[i:j], scores_b[i:j]) for i, j in zip(bounds[:-1], bounds[1:]))
    out = stream_stability(pairs, p=p, depth=depth, k=10)
    ref_rbo, ref_jac = _full_matrix(scores_a, scores_b, p, depth, 10)
    assert out["rbo"].shape == (n,) and out["rbo"].dtype == torch.float64
    assert torch.allclose(out["rbo"], ref_rbo, rtol=0, atol=1e-12)
    assert torch.allclose(out["jaccard@10"], ref_jac, rtol=0, atol=1e-12)
    assert 0.0 < float(out["rbo"].mean()) < 1.0


def test_stability_values_jaccard_uses_top_k_even_when_rbo_depth_is_shorter():
    gen = torch.Generator().manual_seed(3)
    sa, sb = torch.randn(9, 40, generator=gen), torch.randn(9, 40, generator=gen)
    out = stability_values(sa, sb, p=1.0, depth=4, k=10)
    la, lb = rank_lists(sa), rank_lists(sb)
    assert torch.allclose(out["rbo"], rbo(la[:, :4], lb[:, :4]), rtol=0, atol=1e-12)
    assert torch.allclose(out["jaccard@10"], jaccard(la, lb, k=10), rtol=0, atol=1e-12)


def test_stream_of_nothing_is_empty():
    out = stream_stability(iter(()), k=5)
    assert out["rbo"].numel() == 0 and out["jaccard@5"].numel() == 0


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two differently initialised SASRec models and ml-100k's test loader (CPU)."""
    from recbole_finest.config import Config

    with contextlib.chdir(tmp_path_factory.mktemp("streaming")):
        config = on_cpu(Config("SASRec", "ml-100k", config_dict=TINY))
        init_seed(1, True)
        _, _, test = data_preparation(config, create_dataset(config))
        models = []
        for seed in (1, 2):
            init_seed(seed, True)
            models.append(get_model("SASRec")(config, test.dataset).eval())
    return models[0], models[1], test, config


@pytest.mark.parametrize("rbo_p,rbo_depth", [(1.0, None), (0.9, None), (1.0, 100), (0.95, 30)])
def test_compare_models_streams_the_full_matrix_values(two_models, rbo_p, rbo_depth):
    """Streaming over RecBole's test loader gives the full-matrix values to 1e-12 (and the same target ranks)."""
    model_a, model_b, test, _ = two_models
    cfg = {"rbo_p": rbo_p, "rbo_depth": rbo_depth, "jaccard_k": 10, "frbo_k": 10, "frbo_p": 0.9}
    lists_a, ranks_a, users = stability.test_outputs(model_a, test, rbo_depth)
    lists_b, ranks_b, _ = stability.test_outputs(model_b, test, rbo_depth)
    assert len(test) > 1 and lists_a.shape[0] > test.step  # several eval batches
    full = stability.compare_instances(lists_a, lists_b, cfg)
    streamed = stability.compare_models(model_a, model_b, test, cfg, accuracy=False)
    for key in ("rbo", "jaccard@10", "frbo@10"):
        assert streamed[key].shape == full[key].shape
        assert torch.allclose(streamed[key], full[key].cpu(), rtol=0, atol=1e-12), key
    assert 0.0 < float(streamed["rbo"].mean()) < 1.0
    assert torch.equal(streamed["rank_a"], ranks_a) and torch.equal(streamed["rank_b"], ranks_b)
    assert torch.equal(streamed["user"], users)


def test_compare_models_accuracy_is_recboles_evaluate(two_models):
    """The accuracy from the comparison's scores is RecBole's ``Trainer.evaluate`` result, exactly."""
    from recbole.trainer import Trainer

    model_a, model_b, test, config = two_models
    compared = stability.compare_models(model_a, model_b, test, config)
    for key, model in (("result_a", model_a), ("result_b", model_b)):
        expected = dict(Trainer(config, model).evaluate(test, load_best_model=False))
        assert {"recall@10", "ndcg@10"} <= set(expected) and compared[key] == expected, key
    assert compared["result_a"] != compared["result_b"]  # two models, two results


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the device tool's machine)")
def test_stream_on_cuda_equals_cpu():
    gen = torch.Generator().manual_seed(11)
    sa, sb = torch.randn(300, 500, generator=gen), torch.randn(300, 500, generator=gen)
    cpu = stream_stability(((sa[i:i + 64], sb[i:i + 64]) for i in range(0, 300, 64)), p=0.9, k=10)
    gpu = stream_stability(((sa[i:i + 64].cuda(), sb[i:i + 64].cuda()) for i in range(0, 300, 64)), p=0.9, k=10)
    for key in cpu:
        assert gpu[key].device.type == "cpu"
        assert torch.allclose(gpu[key], cpu[key], rtol=0, atol=1e-12)


def test_stream_holds_one_batch_of_scores_at_a_time():
    """Memory O(batch x items): no earlier batch's scores are alive when the next is produced."""
    import gc
    import weakref

    gen = torch.Generator().manual_seed(5)
    refs = []

    def pairs():
        for _ in range(4):
            gc.collect()
            assert all(r() is None for r in refs)  # the previous batch was released
            a, b = torch.randn(16, 40, generator=gen), torch.randn(16, 40, generator=gen)
            refs.extend([weakref.ref(a), weakref.ref(b)])
            yield a, b
            del a, b

    out = stream_stability(pairs(), k=5)
    assert out["rbo"].shape == (64,) and len(refs) == 8
