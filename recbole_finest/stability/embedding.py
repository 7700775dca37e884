"""Embedding-level stability: how much a trained model's rank lists move when its item
embeddings are perturbed adversarially (not a study family:
``scripts/experiments/methods_reddit.py embedding`` runs it over a grid's models A).

The model's item embedding table ``W [n_rows, H]`` gets one perturbation ``delta`` shared by
all test instances (the real items' rows only; every row's L2 norm ``<= eps``), found by
FGSM / BIM / PGD (``recbole_finest.methods.attacks``; ``adv_steps`` iterations of ``adv_alpha``
for BIM / PGD, PGD from a uniform point of the ball seeded by ``seed``). The attack runs in
eval mode and maximises, summed over the test instances (``emb_stability_objective``):

* ``loss``: the next-item cross-entropy of the test targets over all real items -- the
  classic attack on accuracy, which also reshuffles the rank lists;
* ``ranks``: FINEST's rank-preserving hinge loss (margins ``finest_beta1/2``) with the
  clean model's top-``jaccard_k`` and ranks ``jaccard_k+1..2*jaccard_k`` as reference --
  an attack aimed directly at changing the top of the clean rank lists.

Reported: RBO (``rbo_p``, ``rbo_depth``) and Jaccard@``jaccard_k`` between the clean and
the perturbed rank lists of every test instance (mean), plus the perturbed and clean MRR
and Recall@10. The model is unchanged afterwards.
"""

from logging import getLogger

import torch
import torch.nn.functional as F
from recbole.utils import set_color
from tqdm import tqdm

from recbole_finest.methods.attacks import (
    adversarial_delta,
    call_with_item_table,
    check_attack,
    eval_mode,
    item_rows_mask,
)
from recbole_finest.finest.loss import rank_preserving_loss
from recbole_finest.stability.metrics import jaccard, rbo
from recbole_finest.stability.run import test_rank_lists

OBJECTIVES = ("loss", "ranks")


def _accuracy(ranks, prefix):
    ranks = ranks.double()
    return {f"{prefix}mrr": float((1.0 / (ranks + 1)).mean()),
            f"{prefix}recall@10": float((ranks < 10).double().mean())}


def attack_objective(scores, targets, reference, objective, config):
    """Summed attack objective of one batch.

    Args:
        scores: float ``[B, n_items]`` perturbed scores (column 0 = padding item).
        targets: long ``[B]`` test target items.
        reference: long ``[B, 2k]`` clean top-2k item ids (``ranks`` objective).
    """
    if objective == "loss":
        return F.cross_entropy(scores[:, 1:], targets - 1, reduction="sum")
    return rank_preserving_loss(scores, reference, config["finest_beta1"], config["finest_beta2"]) * scores.shape[0]


def embedding_delta(model, test_data, attack, eps, config, clean_lists, show_progress=False):
    """The adversarial item-table perturbation ``[n_rows, H]`` of ``model`` on ``test_data``."""
    objective = config["emb_stability_objective"]
    if objective not in OBJECTIVES:
        raise ValueError(f"config key 'emb_stability_objective' must be one of {', '.join(OBJECTIVES)}; "
                         f"got {objective!r}")
    weight = model.item_embedding.weight
    k = config["jaccard_k"]
    reference = clean_lists[:, : 2 * k]

    def grad_fn(delta):
        total = torch.zeros_like(delta)
        offset = 0
        batches = tqdm(test_data, ncols=100, desc=set_color(f"{attack} step", "pink")) if show_progress else test_data
        for interaction, _, _, positive_i in batches:
            interaction = interaction.to(weight.device)
            n = len(positive_i)
            ref = reference[offset: offset + n].to(weight.device)
            offset += n
            d = delta.detach().requires_grad_(True)
            with torch.enable_grad():
                scores = call_with_item_table(model, weight.detach() + d,
                                              lambda: model.full_sort_predict(interaction).view(n, -1))
                value = attack_objective(scores, positive_i.to(weight.device), ref, objective, config)
                (grad,) = torch.autograd.grad(value, d)
            total += grad
        return total

    generator = torch.Generator().manual_seed(int(config["seed"]) * 7_919 + 3)
    steps = config["adv_steps"]
    return adversarial_delta(grad_fn, tuple(weight.shape), attack, eps, config["adv_alpha"], steps,
                             mask=item_rows_mask(model), generator=generator, device=weight.device,
                             dtype=weight.dtype)


def clean_outputs(trainer_or_model, test_data, config):
    """``(lists, target_ranks)`` of the unperturbed model, reusable across ``embedding_stability`` calls."""
    model = getattr(trainer_or_model, "model", trainer_or_model)
    depth, k = config["rbo_depth"], config["jaccard_k"]
    with eval_mode(model):
        return test_rank_lists(model, test_data, None if depth is None else max(depth, 2 * k))


def embedding_stability(trainer_or_model, test_data, attack, eps, config, show_progress=False, clean=None):
    """Rank-list stability of a trained model under an adversarial item-embedding perturbation.

    Args:
        trainer_or_model: a trained RecBole sequential model, or a trainer holding it in
            ``.model`` (``FinestTrainer``).
        test_data: RecBole full-sort evaluation loader (the stability protocol's test split).
        attack: ``"fgsm"`` | ``"bim"`` | ``"pgd"``.
        eps: budget: L2 norm of each item embedding's perturbation.
        config: the run's config (``emb_stability_objective``, ``adv_steps``, ``adv_alpha``,
            ``seed``, ``rbo_p``, ``rbo_depth``, ``jaccard_k``, ``finest_beta1/2``).
        clean: optional ``clean_outputs(...)`` of the same model and data (saves one pass
            when several attacks / budgets are evaluated).

    Returns:
        dict: ``rbo``, ``jaccard@<k>`` (clean vs perturbed rank lists, mean over test
        instances), ``perturbed_mrr``, ``perturbed_recall@10``, ``clean_mrr``,
        ``clean_recall@10``, ``attack``, ``eps``.
    """
    model = getattr(trainer_or_model, "model", trainer_or_model)
    check_attack(attack, "embedding attack")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"embedding attack eps must be a non-negative number, got {eps!r}")
    depth, k = config["rbo_depth"], config["jaccard_k"]
    list_depth = None if depth is None else max(depth, 2 * k)  # the ranks objective needs the clean top-2k
    with eval_mode(model):
        clean_lists, clean_ranks = clean if clean is not None else test_rank_lists(model, test_data, list_depth)
        delta = embedding_delta(model, test_data, attack, float(eps), config, clean_lists, show_progress)
        table = model.item_embedding.weight.detach() + delta
        lists, ranks = call_with_item_table(model, table, lambda: test_rank_lists(model, test_data, list_depth))
    result = {
        "attack": attack,
        "eps": float(eps),
        "rbo": float(rbo(clean_lists[:, :depth], lists[:, :depth], p=config["rbo_p"]).mean()),
        f"jaccard@{k}": float(jaccard(clean_lists, lists, k=k).mean()),
        **_accuracy(ranks, "perturbed_"),
        **_accuracy(clean_ranks, "clean_"),
    }
    getLogger().info(set_color(f"embedding stability ({attack}, eps={eps})", "yellow") + f": {result}")
    return result
