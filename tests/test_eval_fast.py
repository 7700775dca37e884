"""The fused evaluation path (issue 44 item 1) gives bitwise the numbers of the old one.

The old path, written out here from its definitions: rank lists by a stable descending
``torch.sort``; RBO as the sum over ``a``'s items, in ``a``'s order, of the weight tail at the
depth where the item joins the intersection (``max(i, position in b)``); FRBO@k as that of the
top-k divided by ``1 - p^k``; Jaccard by sets; target ranks by comparing every score with the
target's; accuracy by RecBole's ``Collector``; scores by RecBole's own gelu.
"""
import contextlib
import math

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.evaluator import Collector
from recbole.model.layers import FeedForward
from recbole.utils import init_seed

from _cpu import on_cpu
from conftest import tiny
from recbole_finest.stability import evaluate, metrics
from recbole_finest.stability.metrics import pair_stability
from recbole_finest.utils import get_model


def _lists(scores):
    return torch.sort(scores[:, 1:], dim=1, descending=True, stable=True).indices + 1


def _tail(k, p):
    d = torch.arange(k, dtype=torch.float64)
    w = torch.full((k,), 1.0 / k, dtype=torch.float64) if p == 1.0 else (1.0 - p) * torch.pow(
        torch.tensor(p, dtype=torch.float64), d)
    tail = torch.zeros(k + 1, dtype=torch.float64)
    tail[:k] = (w * (1.0 / torch.arange(1, k + 1, dtype=torch.float64))).flip(0).cumsum(0).flip(0)
    return tail


def _rbo(a, b, p):
    n, k = a.shape
    pos = torch.full((n, int(max(a.max(), b.max())) + 1), k, dtype=torch.long)
    pos.scatter_(1, b, torch.arange(k).expand(n, k))
    join = torch.maximum(pos.gather(1, a), torch.arange(k))
    return _tail(k, p)[join].sum(1).clamp(0.0, 1.0)


def _reference(sa, sb, targets, p, k=10, fk=10, fp=0.9):
    la, lb = _lists(sa), _lists(sb)
    jac = [len(set(x[:k]) & set(y[:k])) / len(set(x[:k]) | set(y[:k])) for x, y in zip(la.tolist(), lb.tolist())]
    d = min(fk, la.shape[1])
    out = {"rbo": _rbo(la, lb, p), f"jaccard@{k}": torch.tensor(jac, dtype=torch.float64),
           f"frbo@{fk}": (_rbo(la[:, :d], lb[:, :d], fp) / (1.0 - fp ** d)).clamp(0.0, 1.0)}
    for key, s in (("rank_a", sa), ("rank_b", sb)):
        out[key] = (s > s.gather(1, targets[:, None])).sum(1)
    return out


def _scores(gen, n, m, ties=False):
    s = torch.randn(n, m + 1, generator=gen)
    if ties:  # few distinct values, signed zeros, infinities: ties broken by the lower item id
        s = torch.round(s * 2) / 2
        s[::3, 5:40] = -0.0
        s[1::7, 2] = float("inf")
        s[2::5, 7] = float("-inf")
    s[:, 0] = -torch.inf
    return s


@pytest.mark.parametrize("p", [1.0, 0.9])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_pair_stability_bitwise_equals_the_old_formulas(monkeypatch, p, threads, ties):
    gen = torch.Generator().manual_seed(5)
    n, m = 301, 3999  # 301 x 4000 > 2^20 elements: the thread pool runs with 2 threads
    sa = _scores(gen, n, m, ties)
    sb = sa + 0.2 * torch.randn(n, m + 1, generator=gen)
    sb[:, 0] = -torch.inf
    if ties:
        sb[::4] = torch.round(sb[::4])
    targets = torch.randint(1, m + 1, (n,), generator=gen)
    monkeypatch.setattr(metrics, "_BLOCK_ROWS", 16)  # many blocks, a short last one
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = pair_stability(sa, sb, targets, p=p, k=10, frbo_k=10, frbo_p=0.9)
        assert torch.get_num_threads() == threads  # the blocks' single-thread setting is undone
    finally:
        torch.set_num_threads(before)
    ref = _reference(sa, sb, targets, p)
    assert sorted(got) == sorted(ref)
    for key in ref:
        assert got[key].dtype == ref[key].dtype and torch.equal(got[key], ref[key]), key
    assert 0.0 < float(got["rbo"].mean()) < 1.0


def test_pair_stability_nan_and_partial_depth_take_the_old_path():
    gen = torch.Generator().manual_seed(2)
    sa, sb = _scores(gen, 40, 300), _scores(gen, 40, 300)
    targets = torch.randint(1, 301, (40,), generator=gen)
    sa[3, 10] = float("nan")
    got = pair_stability(sa, sb, targets, p=1.0, k=10, frbo_k=10)
    ref = _reference(sa, sb, targets, 1.0)
    for key in ref:
        assert torch.equal(got[key], ref[key]), key
    sa[3, 10] = 0.5
    short = pair_stability(sa, sb, targets, p=0.9, depth=50, k=10, frbo_k=10)
    la, lb = _lists(sa), _lists(sb)
    assert torch.equal(short["rbo"], _rbo(la[:, :50], lb[:, :50], 0.9))


def test_small_depth_rbo_equals_the_position_table():
    gen = torch.Generator().manual_seed(4)
    la, lb = _lists(_scores(gen, 500, 2000)), _lists(_scores(gen, 500, 2000))
    for k in (1, 5, 10, 32):
        assert torch.equal(metrics.rbo(la[:, :k], lb[:, :k], p=0.9), _rbo(la[:, :k], lb[:, :k], 0.9)), k
    lb[:, :10] = la[:, :10]
    assert torch.equal(metrics.frbo(la, lb, k=10), torch.ones(500, dtype=torch.float64))


def test_gelu_no_grad_is_recboles_gelu_bitwise():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4096, 33, generator=gen) * s for s in (1e-3, 1.0, 5.0, 1e3)])
    x[0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("-inf")])
    with torch.no_grad():  # the same bits (-inf gives NaN in both: compared as bit patterns)
        got, ref = evaluate._gelu_no_grad(x), FeedForward.gelu(None, x)
        assert torch.equal(got.view(torch.int32), ref.view(torch.int32))
    leaf = x[:8].clone().requires_grad_()
    with torch.autograd.set_detect_anomaly(False):  # RecBole's model zoo import turns it on; row 0 has inf -> NaN grads
        evaluate._gelu_no_grad(leaf).sum().backward()  # with autograd: RecBole's own (differentiable)
    assert leaf.grad is not None and torch.isfinite(leaf.grad[1:]).all()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from recbole_finest.config import Config

    cfg = tiny(drop=("epochs", "finest_epochs", "finest_topk", "seed"), user_inter_num_interval="[200,inf)",
               eval_batch_size=64)
    with contextlib.chdir(tmp_path_factory.mktemp("eval_fast")):
        config = on_cpu(Config("SASRec", "ml-100k", config_dict=cfg))
        init_seed(1, True)
        _, _, test = data_preparation(config, create_dataset(config))
        models = []
        for seed in (1, 2):
            init_seed(seed, True)
            models.append(get_model("SASRec")(config, test.dataset).eval())
    return models[0], models[1], test, config


def test_compare_models_bitwise_equals_the_old_path(two_models):
    model_a, model_b, test, config = two_models
    assert any(isinstance(m, FeedForward) for m in model_a.modules())  # the gelu swap is exercised
    got = evaluate.compare_models(model_a, model_b, test, config)
    parts, collectors = {}, (Collector(config), Collector(config))
    with torch.no_grad():
        for inter, _, pos_u, pos_i in test:
            sa = model_a.full_sort_predict(inter).view(len(pos_i), -1)
            sb = model_b.full_sort_predict(inter).view(len(pos_i), -1)
            sa[:, 0] = sb[:, 0] = -torch.inf
            for col, s in zip(collectors, (sa, sb)):
                col.eval_batch_collect(s, inter, pos_u, pos_i)
            ref = _reference(sa, sb, pos_i, config["rbo_p"], config["jaccard_k"], config["frbo_k"], config["frbo_p"])
            ref["user"] = inter[test.dataset.uid_field]
            for key, v in ref.items():
                parts.setdefault(key, []).append(v)
    assert len(parts["rbo"]) > 1  # several batches
    for key, v in parts.items():
        assert torch.equal(got[key], torch.cat(v)), key
    for key, col in zip(("result_a", "result_b"), collectors):  # the hits RecBole's collector gathered
        stream = evaluate.AccuracyStream(config)
        for inter, _, pos_u, pos_i in test:
            with torch.no_grad():
                s = (model_a if key == "result_a" else model_b).full_sort_predict(inter).view(len(pos_i), -1)
            s[:, 0] = -torch.inf
            stream.add(s, inter, pos_u, pos_i)
        mine, theirs = stream.collector.data_struct.get("rec.topk"), col.data_struct.get("rec.topk")
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), key
    assert got["result_a"] != got["result_b"] and 0.0 < float(got["rbo"].mean()) < 1.0


def test_accuracy_stream_uses_recbole_for_other_positives(two_models):
    """Rows with several (or no) positives: RecBole's collector, unchanged."""
    _, _, _, config = two_models
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(6, 50, generator=gen)
    pos_u, pos_i = torch.tensor([0, 0, 2, 3, 5, 5]), torch.tensor([3, 9, 4, 4, 1, 2])
    stream, col = evaluate.AccuracyStream(config), Collector(config)
    stream.add(scores, None, pos_u, pos_i)
    col.eval_batch_collect(scores, None, pos_u, pos_i)
    assert torch.equal(stream.collector.data_struct.get("rec.topk"), col.data_struct.get("rec.topk"))
    assert math.isclose(float(col.data_struct.get("rec.topk")[:, -1].sum()), 6.0)



@pytest.mark.parametrize("rows", [7, 16])
def test_sliced_scoring_gives_the_whole_batch_numbers(two_models, monkeypatch, rows):
    """``eval_score_rows`` (64-instance batches: 7 -> slices of 7 and a last of 15; 16 -> four
    slices) gives compare_models' values of whole batches, bit for bit: sliced where the bits
    agree, else (checked per batch size) whole."""
    model_a, model_b, test, config = two_models
    monkeypatch.setitem(config.final_config_dict, "eval_score_rows", None)
    whole = evaluate.compare_models(model_a, model_b, test, config)
    monkeypatch.setitem(config.final_config_dict, "eval_score_rows", rows)
    sliced = evaluate.compare_models(model_a, model_b, test, config)
    for key in ("rbo", "jaccard@10", "frbo@10", "rank_a", "rank_b", "user"):
        assert torch.equal(sliced[key], whole[key]), key
    assert sliced["result_a"] == whole["result_a"] and sliced["result_b"] == whole["result_b"]


class RowWise(torch.nn.Module):
    """Scores ``[B, n_items]`` from each row alone (elementwise: slices are bitwise one call's);
    ``centred`` subtracts the batch mean (slices differ); records each call's row count."""

    def __init__(self, n_items=50, centred=False):
        super().__init__()
        self.device, self.n_items, self.centred, self.calls = torch.device("cpu"), n_items, centred, []

    def full_sort_predict(self, interaction):
        self.calls.append(len(interaction["x"]))
        scores = torch.sin(interaction["x"][:, None] * torch.arange(self.n_items, dtype=torch.float32))
        return scores - scores.mean() if self.centred else scores


def _batch(n, seed=0):
    from recbole.data.interaction import Interaction

    return Interaction({"x": torch.rand(n, generator=torch.Generator().manual_seed(seed))})


def test_eval_scores_slices_and_the_last_takes_the_remainder():
    model = RowWise()
    got = evaluate.eval_scores(model, _batch(45), 45, rows=8)
    assert model.calls == [8, 8, 8, 8, 13]  # never a slice below 8 rows (a one-row call is a matrix-vector product)
    model.calls.clear()
    assert torch.equal(got, evaluate.eval_scores(model, _batch(45), 45)) and model.calls == [45]
    assert got[:, 0].eq(-torch.inf).all()
    model.calls.clear()
    evaluate.eval_scores(model, _batch(15), 15, rows=8)  # below two slices: one call
    assert model.calls == [15]


def test_sliced_scoring_checks_each_batch_size_once_and_falls_back(caplog):
    model = RowWise()
    score = evaluate.SlicedScoring(model, 8)
    for n, seed in ((32, 0), (32, 1), (20, 2)):
        assert torch.equal(score(_batch(n, seed), n), evaluate.eval_scores(RowWise(), _batch(n, seed), n))
    # 32: one call + four slices (the check), 32 again: four slices, 20: one call + 8 + 12
    assert model.calls == [32, 8, 8, 8, 8, 8, 8, 8, 8, 20, 8, 12] and score.rows == 8
    centred = RowWise(centred=True)
    score = evaluate.SlicedScoring(centred, 8)
    with caplog.at_level("WARNING"):
        got = [score(_batch(32, seed), 32) for seed in (0, 1)]
    assert score.rows is None and "differ from one full_sort_predict call's" in caplog.text
    for seed, s in enumerate(got):  # whole batches: the model's own one-call scores
        assert torch.equal(s, evaluate.eval_scores(RowWise(centred=True), _batch(32, seed), 32))
    assert not torch.equal(evaluate.eval_scores(centred, _batch(32), 32, 8), got[0])


def test_a_pass_reuses_one_score_buffer_and_writes_slices_in_place():
    """After the first (checked) batch, the fast calls write into one buffer: a ``writes_out``
    predict gets each slice's rows of it as ``out``; the values are one call's."""
    model = RowWise()
    outs = []

    def predict(interaction, out=None):
        outs.append(out)
        scores = model.full_sort_predict(interaction)
        return scores if out is None else out.copy_(scores)

    predict.writes_out = True
    score = evaluate.SlicedScoring(model, 8)
    score.predict = predict
    got = [score(_batch(32, seed), 32).clone() for seed in (0, 1, 2)]
    assert all(torch.equal(g, evaluate.eval_scores(RowWise(), _batch(32, seed), 32)) for seed, g in enumerate(got))
    buffer = score.buffer
    assert buffer is not None and buffer.shape == (32, 50)
    third = score(_batch(32, 3), 32)
    assert third.data_ptr() == buffer.data_ptr()  # no fresh batch-sized tensor
    # every fast call wrote 4 slices of the buffer in place (the check's plain call has no predict)
    assert len(outs) == 4 * 4 and all(o is not None and o.data_ptr() == buffer[8 * (i % 4)].data_ptr()
                                      for i, o in enumerate(outs))
    assert torch.equal(evaluate.eval_scores(model, _batch(20, 4), 20, 8, predict, out=buffer),
                       evaluate.eval_scores(RowWise(), _batch(20, 4), 20))  # a smaller batch: the buffer's first rows


def test_last_position_scores_are_sasrecs(two_models, monkeypatch):
    """SASRec's last layer at the read position only: RecBole's scores (to float rounding; the
    bits are checked per run), for RecBole's SASRec in eval mode only."""
    from recbole.model.sequential_recommender.gru4rec import GRU4Rec
    from recbole.model.sequential_recommender.sasrec import SASRec

    from recbole_finest.compat.last_position import last_position_predict

    _, _, test, config = two_models
    monkeypatch.setitem(config.final_config_dict, "n_layers", 2)  # a first layer in full and a last one cut
    init_seed(3, True)
    model_a = SASRec(config, test.dataset).eval()
    assert len(model_a.trm_encoder.layer) == 2
    predict = last_position_predict(model_a)
    with torch.no_grad():
        for inter, _, _, _ in list(test)[:2]:
            assert torch.allclose(predict(inter), model_a.full_sort_predict(inter), rtol=0, atol=1e-5)
    model_a.train()
    try:
        assert last_position_predict(model_a) is None  # dropout on: not the eval scores
    finally:
        model_a.eval()
    assert last_position_predict(GRU4Rec.__new__(GRU4Rec)) is None
    assert last_position_predict(type("MySASRec", (SASRec,), {}).__new__(type("MySASRec", (SASRec,), {}))) is None


def test_a_fast_path_that_differs_falls_back_to_recboles_scores(two_models, monkeypatch, caplog):
    model_a, model_b, test, config = two_models
    monkeypatch.setitem(config.final_config_dict, "eval_score_rows", None)
    plain = {}
    with torch.no_grad():
        for inter, _, _, pos_i in test:
            plain.setdefault("a", []).append(evaluate.eval_scores(model_a, inter, len(pos_i)))
    monkeypatch.setattr(evaluate, "last_position_predict", lambda m: (lambda inter: m.full_sort_predict(inter) * 1.5))
    score = evaluate.SlicedScoring(model_a, None)
    with caplog.at_level("WARNING"):
        got = [score(inter, len(pos_i)) for inter, _, _, pos_i in test]
    assert score.predict is None and "from the last position differ" in caplog.text
    assert all(torch.equal(g, p) for g, p in zip(got, plain["a"]))
