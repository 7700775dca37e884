"""Fine-tuning methods by name (``finetune_method``).

A method says what FinestTrainer does each fine-tuning epoch: which perturbation
simulation rebuilds the training instances, and which loss terms are added to the model's
own next-item loss. FINEST, its ablations and the data-perturbation baselines differ only
in those switches, so they are plain ``FinetuneMethod`` records.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneMethod:
    """Switches of one fine-tuning method.

    Attributes:
        name: the ``finetune_method`` value.
        finetune: False = no fine-tuning at all (``original``).
        simulation: per-epoch perturbation of the training data: ``"finest"`` (random
            interactions, least popular item, one kind per epoch), ``"random"`` /
            ``"earliest"`` / ``"latest"`` (the baselines' selections), or None.
        regularizer: add ``finest_lambda`` * rank-preserving loss.
        order_term / score_term: which hinge terms the regularizer keeps.
    """

    name: str
    finetune: bool = True
    simulation: str = "finest"
    regularizer: bool = True
    order_term: bool = True
    score_term: bool = True


METHODS = {
    m.name: m
    for m in (
        FinetuneMethod("finest"),
        FinetuneMethod("finest_no_sim", simulation=None),
        FinetuneMethod("finest_no_reg", regularizer=False),
        FinetuneMethod("finest_order_only", score_term=False),
        FinetuneMethod("finest_score_only", order_term=False),
        FinetuneMethod("original", finetune=False, simulation=None, regularizer=False),
        FinetuneMethod("random", simulation="random", regularizer=False),
        FinetuneMethod("earliest_random", simulation="earliest", regularizer=False),
        FinetuneMethod("latest_random", simulation="latest", regularizer=False),
    )
}


def get_method(name):
    """The ``FinetuneMethod`` called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"config key 'finetune_method' must be one of {', '.join(METHODS)}; got {name!r}") from None
