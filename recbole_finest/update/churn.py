"""Scores of a model on a ``ContextSet``, next-item accuracy from ranks, and per-user churn.

Churn of v2 against v1 is measured per user on the *same* input (the user's history at
T2): RBO, FRBO@k and Jaccard@k of the two rank lists, and whether more than half of the top-k
was replaced (``overlap@k < k / 2``).
"""

import re

import torch
from recbole.utils import set_color
from tqdm import tqdm

from recbole_finest.data.sequences import take
from recbole_finest.stability.metrics import frbo, jaccard, rank_lists, rbo
from recbole_finest.finest.scoring import SequenceScorer

ACCURACY = ("mrr", "recall@10", "ndcg@10")
_METRIC = re.compile(r"^(mrr|recall|hit|ndcg)(?:@(\d+))?$")


@torch.no_grad()
def score_contexts(model, contexts, batch_size, depth=None, show_progress=False, desc="scoring"):
    """Rank lists and target ranks of every row of ``contexts``.

    Returns ``(lists [U', depth] long or None, target_rank [U'] long)`` on the CPU;
    ``target_rank`` is the 0-based position of the row's target in the full ranking
    (meaningless where the target is 0). ``depth=0`` skips the lists.
    """
    was_training = model.training
    model.eval()
    scorer = SequenceScorer(model)
    device = next(model.parameters()).device
    lists, ranks = [], []
    starts = range(0, len(contexts), batch_size)
    if show_progress:
        starts = tqdm(starts, desc=set_color(desc, "pink"), ncols=100)
    for s in starts:
        batch = take(contexts.inter, slice(s, s + batch_size)).to(device)
        scores = scorer.last_scores(batch)
        scores[:, 0] = -torch.inf
        target = contexts.target[s:s + batch_size].to(device)
        ranks.append((scores > scores.gather(1, target[:, None])).sum(1).cpu())
        if depth != 0:
            lists.append(rank_lists(scores, depth).cpu())
    model.train(was_training)
    empty = torch.zeros(0, dtype=torch.long)
    return (torch.cat(lists) if lists else None), (torch.cat(ranks) if ranks else empty)


def accuracy(ranks, metrics=ACCURACY):
    """``{metric: value}`` from 0-based target ranks ``[U']`` (full ranking, one target each).

    ``mrr`` (no cut-off), ``mrr@k``, ``recall@k`` = ``hit@k``, ``ndcg@k`` (one relevant item).
    """
    ranks = ranks.double()
    out = {}
    for name in metrics:
        match = _METRIC.match(name.lower())
        if match is None:
            raise ValueError(f"metric '{name}' is not one of mrr, mrr@k, recall@k, hit@k, ndcg@k")
        kind, k = match.group(1), match.group(2)
        hit = torch.ones_like(ranks, dtype=torch.bool) if k is None else ranks < int(k)
        if kind == "mrr":
            values = hit / (ranks + 1)
        elif kind == "ndcg":
            values = hit / torch.log2(ranks + 2)
        else:
            values = hit.double()
        out[name.lower()] = float(values.mean()) if len(values) else float("nan")
    return out


def churn(lists_v1, lists_v2, k=10, p=1.0, frbo_k=None, frbo_p=0.9):
    """Per-user churn of two rank lists of the same inputs.

    Args:
        lists_v1, lists_v2: long ``[U, depth]`` rank lists (depth >= k, frbo_k).
        frbo_k, frbo_p: FRBO@``frbo_k`` (``stability.metrics.frbo``); None: not computed.

    Returns ``{"rbo": [U], "jaccard@k": [U], "changed": [U] bool}`` (CPU tensors), plus
    ``"frbo@<frbo_k>": [U]``; ``changed`` = more than half of the top-k replaced,
    ``|top-k v1 & top-k v2| < k / 2``.
    """
    jac = jaccard(lists_v1, lists_v2, k=k)
    overlap = 2 * k * jac / (1 + jac)  # |A & B| from the Jaccard of two k-sets
    out = {"rbo": rbo(lists_v1, lists_v2, p=p), f"jaccard@{k}": jac, "changed": overlap < k / 2 - 1e-6}
    if frbo_k is not None:
        out[f"frbo@{int(frbo_k)}"] = frbo(lists_v1, lists_v2, k=frbo_k, p=frbo_p)
    return out


class ValidationSet:
    """A ``ContextSet`` that RecBole's ``Trainer.fit`` accepts as ``valid_data`` (see ``UpdateTrainer``)."""

    def __init__(self, contexts, batch_size):
        self.contexts, self.batch_size = contexts, batch_size

    def __len__(self):
        return len(self.contexts)

    def evaluate(self, model, metrics, show_progress=False):
        _, ranks = score_contexts(model, self.contexts, self.batch_size, depth=0, show_progress=show_progress,
                                  desc="valid")
        return accuracy(ranks, metrics)
