"""Comparison of models A and B on the test split: rank lists, reciprocal ranks, RBO / Jaccard@k.

Used by :class:`recbole_finest.stability.run.StabilityRun`: one pass over the test loader per
model pair (streamed: one batch of scores alive at a time). Each model scores each test
batch once; the same scores give RecBole's accuracy metrics (its ``Collector`` /
``Evaluator``, what ``Trainer.evaluate`` runs), the target ranks and the RBO / Jaccard@k.
"""

from dataclasses import dataclass

import torch
from tqdm import tqdm
from recbole.evaluator import Collector, Evaluator
from recbole.utils import set_color

from recbole_finest.stability.metrics import frbo, jaccard, rank_lists, rbo, stream_stability

ACCURACY_KEYS = ("mrr", "mrr@10", "recall@10", "ndcg@10")


@torch.no_grad()
def eval_scores(model, interaction, n_rows):
    """Full-sort scores ``[n_rows, n_items]`` of one eval batch, padding item 0 at ``-inf``."""
    scores = model.full_sort_predict(interaction.to(model.device)).view(n_rows, -1)
    scores[:, 0] = -torch.inf
    return scores


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

    def add(self, scores, interaction, positive_u, positive_i):
        """Collect one batch: ``scores [B, n_items]`` (padding at ``-inf``) and its positives."""
        self.collector.eval_batch_collect(scores, interaction, positive_u, positive_i)

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
    discarded (``metrics.stream_stability``): memory ``O(eval batch x n_items)`` on the
    models' device.

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
    ranks = {"rank_a": [], "rank_b": [], "user": []}
    streams = (AccuracyStream(config), AccuracyStream(config)) if accuracy else ()

    def pairs():
        for inter, _, positive_u, positive_i in batches:
            scores_a = eval_scores(model_a, inter, len(positive_i))
            scores_b = eval_scores(model_b, inter, len(positive_i))
            for stream, scores in zip(streams, (scores_a, scores_b)):
                stream.add(scores, inter, positive_u, positive_i)
            ranks["rank_a"].append(target_ranks(scores_a, positive_i).cpu())
            ranks["rank_b"].append(target_ranks(scores_b, positive_i).cpu())
            ranks["user"].append(inter[uid].view(-1).cpu())
            yield scores_a, scores_b
            del scores_a, scores_b  # one batch of scores alive at a time

    out = stream_stability(pairs(), p=config["rbo_p"], depth=config["rbo_depth"], k=config["jaccard_k"],
                           frbo_k=config["frbo_k"], frbo_p=config["frbo_p"])
    empty = torch.empty(0, dtype=torch.long)
    out.update({key: torch.cat(parts) if parts else empty for key, parts in ranks.items()})
    for key, stream, model in zip(("result_a", "result_b"), streams, (model_a, model_b)):
        out[key] = stream.result(model)
    return out
