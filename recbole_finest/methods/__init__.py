"""Fine-tuning methods by name (``finetune_method``).

A method says what FinestTrainer does each fine-tuning epoch: which perturbation
simulation rebuilds the training instances, and which loss terms are added to the model's
own next-item loss. FINEST, its ablations and the data-perturbation baselines differ only
in those switches, so they are plain ``FinetuneMethod`` records.

Baselines (FINEST spec section 6) plug into the two hooks: ``apt`` augments each epoch's
data with fake users generated from the model (``methods.apt``); ``acae``, ``apr_fgsm``,
``apr_bim``, ``apr_pgd``, ``pamacf`` and ``vat`` add an adversarial loss term
(``methods.adversarial_training``, built on the one perturbation module
``recbole_finest.methods.attacks``). None of them runs a data simulation.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from recbole_finest.methods.adversarial_training import (
    acae_loss,
    apr_bim_loss,
    apr_fgsm_loss,
    apr_pgd_loss,
    pamacf_loss,
    vat_loss,
)
from recbole_finest.methods.apt import apt_augment


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
        extra_loss: optional ``f(trainer, batch) -> scalar tensor``, an additional loss
            term of each fine-tuning batch (adversarial methods).
        augment: optional ``f(trainer, sequences, epoch) -> sequences``, applied to the
            training sequences each fine-tuning epoch after the simulation (APT's fake users).
        strength: the config key of the method's one strength knob (what a per-method
            search tunes next to ``finest_learning_rate``); None = nothing to tune.
    """

    name: str
    finetune: bool = True
    simulation: str = "finest"
    regularizer: bool = True
    order_term: bool = True
    score_term: bool = True
    extra_loss: Optional[Callable] = None
    augment: Optional[Callable] = None
    strength: Optional[str] = None


METHODS = {
    m.name: m
    for m in (
        FinetuneMethod("finest", strength="finest_lambda"),
        FinetuneMethod("finest_no_sim", simulation=None, strength="finest_lambda"),
        FinetuneMethod("finest_no_reg", regularizer=False, strength="finest_sim_ratio"),
        FinetuneMethod("finest_order_only", score_term=False, strength="finest_lambda"),
        FinetuneMethod("finest_score_only", order_term=False, strength="finest_lambda"),
        FinetuneMethod("original", finetune=False, simulation=None, regularizer=False),
        FinetuneMethod("random", simulation="random", regularizer=False, strength="finest_sim_ratio"),
        FinetuneMethod("earliest_random", simulation="earliest", regularizer=False,
                       strength="finest_sim_ratio"),
        FinetuneMethod("latest_random", simulation="latest", regularizer=False, strength="finest_sim_ratio"),
        FinetuneMethod("apt", simulation=None, regularizer=False, augment=apt_augment, strength="apt_fake_users"),
        FinetuneMethod("acae", simulation=None, regularizer=False, extra_loss=acae_loss,
                       strength="adv_eps"),
        FinetuneMethod("apr_fgsm", simulation=None, regularizer=False, extra_loss=apr_fgsm_loss,
                       strength="adv_eps"),
        FinetuneMethod("apr_bim", simulation=None, regularizer=False, extra_loss=apr_bim_loss,
                       strength="adv_eps"),
        FinetuneMethod("apr_pgd", simulation=None, regularizer=False, extra_loss=apr_pgd_loss,
                       strength="adv_eps"),
        FinetuneMethod("pamacf", simulation=None, regularizer=False, extra_loss=pamacf_loss, strength="pamacf_rho"),
        FinetuneMethod("vat", simulation=None, regularizer=False, extra_loss=vat_loss, strength="vat_rho"),
    )
}


def get_method(name):
    """The ``FinetuneMethod`` called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"config key 'finetune_method' must be one of {', '.join(METHODS)}; got {name!r}") from None
