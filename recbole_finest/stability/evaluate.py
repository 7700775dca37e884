"""Comparison of models A and B on the test split: rank lists, reciprocal ranks, RBO / Jaccard@k.

Used by :class:`recbole_finest.stability.run.StabilityRun`: one pass over the test loader per
model pair (streamed: one batch of scores alive at a time). Each model scores each test
batch once; the same scores give RecBole's accuracy metrics (its ``Collector`` /
``Evaluator``, what ``Trainer.evaluate`` runs), the target ranks and the RBO / Jaccard@k.
"""

import contextlib
import math
from dataclasses import dataclass
from logging import getLogger

import torch
from tqdm import tqdm
from recbole.evaluator import Collector, Evaluator
from recbole.model.layers import FeedForward
from recbole.utils import set_color

from recbole_finest.compat.last_position import last_position_predict
from recbole_finest.settings import EVAL_SCORE_ROWS
from recbole_finest.stability.metrics import frbo, jaccard, pair_stability, rank_lists, rbo

ACCURACY_KEYS = ("mrr", "mrr@10", "recall@10", "ndcg@10")


@torch.no_grad()
def eval_scores(model, interaction, n_rows, rows=None, predict=None, out=None):
    """Full-sort scores ``[n_rows, n_items]`` of one eval batch, padding item 0 at ``-inf``.

    ``predict``: the scoring function (``interaction -> [b, n_items]``; None: the model's
    ``full_sort_predict``); one that takes ``out=`` (``predict.writes_out``, the last-position
    path) writes each slice's scores straight into the batch's. ``rows``: call it on slices of
    ``rows`` instances, the last slice taking the remainder (``rows`` to ``2 * rows - 1``
    instances, never a one-row call), each copied into the batch's scores; None: one call for
    the batch. SASRec's activations (``[rows, 50, inner]`` per layer) then stay in the cache
    instead of batch-sized buffers allocated afresh. ``out``: a ``[>= n_rows, n_items]`` tensor
    the scores are written into (the return value is then a view of it), so a pass reuses one
    batch-sized buffer instead of faulting in a fresh one per batch. Whether the bits equal one
    call's depends on the model and the BLAS: :class:`SlicedScoring` checks.
    """
    predict = predict or model.full_sort_predict
    interaction = interaction.to(model.device)
    direct = out is not None and getattr(predict, "writes_out", False)
    scores = None if out is None else out[:n_rows]
    edges = _slice_edges(n_rows, rows)
    for start, stop in zip(edges, edges[1:]):
        part = interaction if stop - start == n_rows else interaction[start:stop]
        if direct:
            predict(part, out=scores[start:stop])
            continue
        part = predict(part).view(stop - start, -1)
        if scores is None:
            if stop - start == n_rows:  # one call, no buffer: its own tensor
                scores = part
                continue
            scores = part.new_empty((n_rows, part.shape[1]))
        scores[start:stop] = part
    scores[:, 0] = -torch.inf
    return scores


def _slice_edges(n_rows, rows):
    """Slice boundaries ``[0, rows, 2 * rows, ..., n_rows]`` of a batch (the last slice takes the
    remainder); ``[0, n_rows]`` (one call) when ``rows`` is None or the batch holds fewer than two."""
    if rows is None or n_rows < 2 * rows:
        return [0, n_rows]
    return list(range(0, n_rows - n_rows % rows, rows)) + [n_rows]


class SlicedScoring:
    """:func:`eval_scores` of one model, fast and checked bit for bit against one plain call.

    Fast: slices of ``rows`` instances, and for RecBole's SASRec the last layer at the read
    position only (``compat.last_position``), written into one batch-sized buffer that every
    fast call reuses (**the scores a call returns are overwritten by the next call**). The first
    batch of each size (in a test loader: the full batches, then the last one) is scored both
    ways: one ``full_sort_predict`` call and the fast way; unless the two are bitwise equal
    (``torch.equal``: a model whose scores depend on the batch, or matrix products whose bits
    depend on the number of rows) the model is scored by plain whole-batch calls for the rest of
    the pass, with a warning. ``rows`` None: no slices.
    """

    def __init__(self, model, rows):
        self.model, self.rows, self.checked, self.buffer = model, rows, set(), None
        self.predict = last_position_predict(model)

    def __call__(self, interaction, n_rows):
        sliced = len(_slice_edges(n_rows, self.rows)) > 2
        if not sliced and self.predict is None:
            return eval_scores(self.model, interaction, n_rows)
        if n_rows in self.checked:
            return self._fast(interaction, n_rows)
        whole = eval_scores(self.model, interaction, n_rows)
        self.checked.add(n_rows)
        if self.buffer is None or self.buffer.shape[0] < n_rows:
            self.buffer = torch.empty_like(whole)
        if not torch.equal(self._fast(interaction, n_rows), whole):
            how = " and ".join(([f"in slices of {self.rows}"] if sliced else [])
                               + (["from the last position"] if self.predict else []))
            getLogger().warning(f"{type(self.model).__name__}'s scores of {n_rows} instances {how} differ from one "
                                "full_sort_predict call's; scoring whole batches")
            self.rows = self.predict = self.buffer = None
        return whole

    def _fast(self, interaction, n_rows):
        return eval_scores(self.model, interaction, n_rows, self.rows, self.predict, out=self.buffer)


def _gelu_no_grad(x, _gelu=FeedForward.gelu):
    """RecBole's ``FeedForward.gelu`` (``x * 0.5 * (1.0 + erf(x / sqrt(2.0)))``) with the same
    operations in the same order, bitwise equal, but two ``[B, W, inner]`` buffers instead of
    five (the activation was half of SASRec's scoring time); with autograd on, RecBole's own."""
    if torch.is_grad_enabled():
        return _gelu(None, x)
    half = x * 0.5
    inner = x / math.sqrt(2.0)
    inner.erf_()
    inner.add_(1.0)  # == 1.0 + erf(...)
    return half.mul_(inner)


@contextlib.contextmanager
def scoring(*models):
    """Inside: the models' RecBole ``FeedForward`` gelu layers use :func:`_gelu_no_grad` (same
    values, less memory traffic); restored on exit."""
    swapped = []
    for model in models:
        for module in model.modules():
            act = getattr(module, "intermediate_act_fn", None)
            if isinstance(module, FeedForward) and getattr(act, "__func__", None) is FeedForward.gelu:
                module.intermediate_act_fn = _gelu_no_grad
                swapped.append((module, act))
    try:
        yield
    finally:
        for module, act in swapped:
            module.intermediate_act_fn = act


def target_ranks(scores, positive_i):
    """0-based position ``[B]`` of each row's next item in the full ranking of ``scores``."""
    target = positive_i.to(scores.device)
    return (scores > scores.gather(1, target[:, None])).sum(1)


@torch.no_grad()
def test_outputs(model, eval_data, depth=None):
    """Rank lists, target ranks and users of every eval instance.

    Returns ``(lists [N, depth] long, target_rank [N] long, users [N] long)``:
    ``target_rank`` is the 0-based position of the instance's next item in the full
    ranking; ``users`` the RecBole internal user id of each instance. Holds ``[N, depth]``
    lists: the stability run streams instead (:func:`compare_models`).
    """
    model.eval()
    uid = eval_data.dataset.uid_field
    lists, ranks, users = [], [], []
    for interaction, _, _, positive_i in eval_data:
        scores = eval_scores(model, interaction, len(positive_i))
        ranks.append(target_ranks(scores, positive_i))
        lists.append(rank_lists(scores, depth))
        users.append(interaction[uid].view(-1))
    return torch.cat(lists), torch.cat(ranks), torch.cat(users)


def test_rank_lists(model, eval_data, depth=None):
    """``(lists [N, depth] long, target_rank [N] long)`` of every eval instance."""
    lists, ranks, _ = test_outputs(model, eval_data, depth)
    return lists, ranks


@dataclass
class EvalOutput:
    """One trained model on the test split.

    Attributes:
        result: RecBole's metrics (``recall@10``, ``ndcg@10``, ...) when computed on their
            own (:func:`evaluate_model`); None in the stability run, whose accuracy,
            rank lists, target ranks and full-ranking MRR come from the one streamed pass
            over both models of a pair (:func:`compare_models`); nothing
            ``[N, n_items]``-sized is kept.
        state: the model's state dict.
    """

    result: dict = None
    state: dict = None


def evaluate_model(trainer, eval_data, state=None):
    """``EvalOutput`` of a trained model on ``eval_data`` (RecBole's metrics; one extra pass)."""
    return EvalOutput(dict(trainer.evaluate(eval_data, load_best_model=False)), state)


class AccuracyStream:
    """RecBole's test metrics of one model from scores given batch by batch.

    The steps of ``Trainer.evaluate`` after scoring (``Collector.eval_batch_collect`` per
    batch, ``Evaluator.evaluate`` at the end) on scores the caller already has, so the
    values are RecBole's. Keeps RecBole's per-instance top-k hits ``[N, max topk + 1]``.
    """

    def __init__(self, config):
        self.collector, self.evaluator = Collector(config), Evaluator(config)

    #: what a Collector may gather besides the top-k hits (each needs RecBole's own code)
    _OTHER = ("rec.items", "rec.meanrank", "rec.score", "data.label")

    def add(self, scores, interaction, positive_u, positive_i):
        """Collect one batch: ``scores [B, n_items]`` (padding at ``-inf``) and its positives.

        When the metrics need only the top-k hits and each row has exactly one positive
        (RecBole's sequential full ranking: ``positive_u = arange(B)``), the hits are the
        top-k ids (``torch.topk``, RecBole's call) equal to the row's positive: the same
        ``[B, k + 1]`` tensor as ``Collector.eval_batch_collect`` without its ``[B, n_items]``
        position matrix. Anything else goes through RecBole's collector.
        """
        col = self.collector
        n = scores.shape[0]
        if (not col.register.need("rec.topk") or any(col.register.need(key) for key in self._OTHER)
                or len(positive_u) != n or len(positive_i) != n
                or not torch.equal(positive_u.cpu(), torch.arange(n, dtype=positive_u.dtype))):
            col.eval_batch_collect(scores, interaction, positive_u, positive_i)
            return
        _, topk_idx = torch.topk(scores, max(col.topk), dim=-1)
        pos_idx = (topk_idx == positive_i.to(topk_idx.device)[:, None]).to(torch.int)
        pos_len = torch.ones((n, 1), dtype=torch.int64, device=pos_idx.device)  # int32 matrix's sum: int64
        col.data_struct.update_tensor("rec.topk", torch.cat((pos_idx, pos_len), dim=1))

    def result(self, model):
        """``{metric@k: value}`` over every collected batch (``Trainer.evaluate``'s result)."""
        self.collector.model_collect(model)
        return dict(self.evaluator.evaluate(self.collector.get_data_struct()))


def compare_instances(lists_a, lists_b, config):
    """Per-instance RLS of two models' rank lists: ``{"rbo": [N], "jaccard@k": [N], "frbo@k": [N]}`` float tensors."""
    k, fk = config["jaccard_k"], config["frbo_k"]
    return {
        "rbo": rbo(lists_a, lists_b, p=config["rbo_p"]),
        f"jaccard@{k}": jaccard(lists_a, lists_b, k=k),
        f"frbo@{fk}": frbo(lists_a, lists_b, k=fk, p=config["frbo_p"]),
    }


@torch.no_grad()
def compare_models(model_a, model_b, eval_data, config, show_progress=False, accuracy=True):
    """Per-instance RLS, target ranks and accuracy of two models on ``eval_data``, streamed.

    Both models score each eval batch once; the scores give RecBole's accuracy metrics
    (:class:`AccuracyStream`, when ``accuracy``), each instance's target rank, and become
    rank lists (depth ``rbo_depth``, at least ``jaccard_k`` / ``frbo_k``) that are compared and
    discarded (``metrics.pair_stability``: one fused pass per batch that also gives the target
    ranks): memory ``O(eval batch x n_items)`` on the models' device. RecBole's gelu layers
    score through :func:`scoring` (same values, less memory traffic), in slices of
    ``eval_score_rows`` instances (:class:`SlicedScoring`).

    Returns:
        dict of CPU tensors ``[N]``: ``rbo``, ``jaccard@k``, ``frbo@<frbo_k>`` (float64), ``rank_a``,
        ``rank_b`` (long, 0-based position of the next item in each model's full ranking)
        and ``user`` (long, RecBole internal user id); with ``accuracy`` also ``result_a`` /
        ``result_b``, RecBole's metric dicts of each model (``Trainer.evaluate``'s values).
    """
    model_a.eval()
    model_b.eval()
    uid = eval_data.dataset.uid_field
    batches = eval_data
    if show_progress:
        batches = tqdm(eval_data, total=len(eval_data), ncols=100, desc=set_color("stability", "pink"))
    streams = (AccuracyStream(config), AccuracyStream(config)) if accuracy else ()

    parts = {}
    rows = config["eval_score_rows"] if "eval_score_rows" in config else EVAL_SCORE_ROWS  # a dict of metric keys: the default
    score_a, score_b = (SlicedScoring(m, rows) for m in (model_a, model_b))
    with scoring(model_a, model_b):
        for inter, _, positive_u, positive_i in batches:
            scores_a = score_a(inter, len(positive_i))
            scores_b = score_b(inter, len(positive_i))
            for stream, scores in zip(streams, (scores_a, scores_b)):
                stream.add(scores, inter, positive_u, positive_i)
            values = pair_stability(scores_a, scores_b, positive_i, p=config["rbo_p"], depth=config["rbo_depth"],
                                    k=config["jaccard_k"], frbo_k=config["frbo_k"], frbo_p=config["frbo_p"])
            values["user"] = inter[uid].view(-1)
            for key, v in values.items():
                parts.setdefault(key, []).append(v.cpu())
            del scores_a, scores_b, values  # one batch of scores alive at a time
    keys = ["rbo", f"jaccard@{int(config['jaccard_k'])}"]
    keys += [] if config["frbo_k"] is None else [f"frbo@{int(config['frbo_k'])}"]
    out = {}
    for key, dtype in [(key, torch.float64) for key in keys] + [(key, torch.long) for key in ("rank_a", "rank_b", "user")]:
        out[key] = torch.cat(parts[key]) if key in parts else torch.empty(0, dtype=dtype)
    for key, stream, model in zip(("result_a", "result_b"), streams, (model_a, model_b)):
        out[key] = stream.result(model)
    return out
