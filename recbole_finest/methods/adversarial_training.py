"""Adversarial fine-tuning baselines: ACAE, APR (FGSM / BIM / PGD), PamaCF and VAT.

Each is an ``extra_loss(trainer, batch)`` of ``FinetuneMethod``: the trainer already adds
the clean next-item loss ``L(theta)`` of the batch, these functions return the documented
extra term only, so every method's batch loss is

    L(theta) + adv_lambda * L(theta; delta_adv)

with ``delta_adv`` found by ``recbole_finest.methods.attacks`` (detached: no gradient through
the attack) and

* ``acae``: FGSM noise of norm ``adv_eps`` on every input sequence embedding (Yuan et al.
  2019's fast-gradient noise, placed on the input sequence as in the FINEST paper).
* ``apr_fgsm`` / ``apr_bim`` / ``apr_pgd``: noise on the item embedding table (every real
  item's row, norm ``<= adv_eps``): FGSM; BIM (``adv_steps`` steps of ``adv_alpha`` from 0);
  PGD (the same from a uniform point of the ball). The table is used on both sides (input
  lookups and output scores), as APR perturbs the model's embedding parameters.
* ``pamacf``: FGSM noise on the input sequence embeddings with a per-instance budget
  ``eps_u = pamacf_rho * sigmoid((||u|| - mean||u||) / mean||u||)`` (``pamacf_magnitude``),
  ``u`` = the instance's sequence representation, mean over the batch.
* ``vat``: the same with ``eps_u = vat_rho * sigmoid((mean l - l_u) / mean l)``
  (``vat_magnitude``), ``l_u`` = the instance's next-item cross-entropy: users the model
  fits better (lower loss) get larger noise.

Magnitudes (``u``, ``l_u``) are computed in eval mode without gradient. Every forward pass
of a batch's adversarial term replays the same random draws (BERT4Rec masks, dropout, BPR
negatives) and leaves the global random state as it found it (``BatchLoss``; PGD's random
start is drawn from that state too).
"""

import torch

from recbole_finest.methods.attacks import (
    adversarial_delta,
    call_with_item_table,
    eval_mode,
    grad_of,
    input_embedding_noise,
    instance_losses,
    item_rows_mask,
    sequence_representation,
)


def config_number(settings, key):
    """``settings[key]`` as a float (None stays None); checked when the Config / method settings were built."""
    value = settings[key]
    return None if value is None else float(value)


def config_int(settings, key):
    """``settings[key]``, an integer checked when the Config / method settings were built."""
    return int(settings[key])


class BatchLoss:
    """The model's next-item loss of one batch, re-evaluable with identical random draws.

    ``loss = BatchLoss(trainer, batch)`` records the random state; every ``loss()`` runs
    ``trainer.scorer.batch_outputs`` (the trainer's own next-item loss) from that state
    and restores the global state afterwards, so perturbed and unperturbed passes see the
    same masks, dropout and negatives and the training stream is not shifted.
    """

    def __init__(self, trainer, batch):
        self.scorer, self.unit, self.batch = trainer.scorer, trainer.unit, batch
        device = trainer.model.item_embedding.weight.device
        self.devices = [device] if device.type == "cuda" else []
        self.cpu_state = torch.get_rng_state()
        self.cuda_states = [torch.cuda.get_rng_state(d) for d in self.devices]

    def __call__(self):
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu_state)
            for d, state in zip(self.devices, self.cuda_states):
                torch.cuda.set_rng_state(state, d)
            return self.scorer.batch_outputs(self.batch, self.unit, with_scores=False)[0]


def input_noise_term(trainer, batch, eps):
    """``adv_lambda * L(input embeddings + FGSM noise)`` of one batch.

    Args:
        eps: float, or float ``[B]`` per-instance budgets.
    """
    model = trainer.model
    loss = BatchLoss(trainer, batch)
    seq = batch[model.ITEM_SEQ]
    shape = tuple(seq.shape) + (model.item_embedding.weight.shape[1],)
    if torch.is_tensor(eps):
        eps = eps.detach().view(-1, 1, 1)

    def objective(delta):
        with input_embedding_noise(model, delta):
            return loss()

    delta = adversarial_delta(grad_of(objective), shape, "fgsm", eps, device=seq.device,
                              dtype=model.item_embedding.weight.dtype)
    return config_number(trainer.settings, "adv_lambda") * objective(delta)


def table_noise_term(trainer, batch, attack):
    """``adv_lambda * L(item embedding table + delta_adv)`` of one batch (APR)."""
    model, cfg = trainer.model, trainer.settings
    weight = model.item_embedding.weight
    loss = BatchLoss(trainer, batch)
    eps = config_number(cfg, "adv_eps")
    steps = config_int(cfg, "adv_steps")
    alpha = config_number(cfg, "adv_alpha")

    def objective(delta):
        return call_with_item_table(model, weight.detach() + delta, loss)

    with torch.random.fork_rng(devices=loss.devices):  # PGD's random start leaves the stream alone
        delta = adversarial_delta(grad_of(objective), tuple(weight.shape), attack, eps, alpha, steps,
                                  mask=item_rows_mask(model), device=weight.device, dtype=weight.dtype)
    return config_number(cfg, "adv_lambda") * call_with_item_table(model, weight + delta, loss)


def pamacf_magnitude(u, rho):
    """PamaCF budgets: ``rho * sigmoid((||u|| - mean||u||) / mean||u||)``, ``u [B, H]`` -> ``[B]`` in (0, rho)."""
    norms = u.norm(dim=-1)
    mean = norms.mean().clamp_min(1e-12)
    return rho * torch.sigmoid((norms - mean) / mean)


def vat_magnitude(losses, rho):
    """VAT budgets: ``rho * sigmoid((mean l - l) / mean l)``, ``losses [B]`` -> ``[B]`` in (0, rho).

    Decreasing in the instance's loss: the better the model fits a user, the larger its noise.
    """
    mean = losses.mean().clamp_min(1e-12)
    return rho * torch.sigmoid((mean - losses) / mean)


# ---------------------------------------------------------------------- the extra_loss hooks
def acae_loss(trainer, batch):
    return input_noise_term(trainer, batch, config_number(trainer.settings, "adv_eps"))


def apr_fgsm_loss(trainer, batch):
    return table_noise_term(trainer, batch, "fgsm")


def apr_bim_loss(trainer, batch):
    return table_noise_term(trainer, batch, "bim")


def apr_pgd_loss(trainer, batch):
    return table_noise_term(trainer, batch, "pgd")


def pamacf_loss(trainer, batch):
    rho = config_number(trainer.settings, "pamacf_rho")
    with torch.no_grad(), eval_mode(trainer.model):
        u = sequence_representation(trainer.scorer, batch)
    return input_noise_term(trainer, batch, pamacf_magnitude(u, rho))


def vat_loss(trainer, batch):
    rho = config_number(trainer.settings, "vat_rho")
    with torch.no_grad(), eval_mode(trainer.model):
        losses = instance_losses(trainer.scorer, batch)
    return input_noise_term(trainer, batch, vat_magnitude(losses, rho))
