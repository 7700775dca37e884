"""Adversarial perturbations of embeddings: FGSM, BIM and PGD, implemented once.

Every adversarial fine-tuning method (ACAE, APR-*, PamaCF, VAT) and the embedding-level
stability evaluation use these functions; they differ only in *what* is perturbed (the
input sequence embeddings or the item embedding table), the budget and the objective.

Geometry (the same everywhere): a perturbation ``delta [..., H]`` is a set of embedding
vectors; the budget bounds the L2 norm of *each* vector, ``||delta[..., :]||_2 <= eps``
(APR's row-wise normalisation, He et al. 2018). ``eps`` is a float or a tensor that
broadcasts against ``delta[..., :1]`` (per-row budgets: PamaCF, VAT).

* FGSM: ``delta = eps * g / ||g||`` (``g`` = gradient of the objective at ``delta = 0``,
  rows with a zero gradient stay 0).
* BIM: ``delta_0 = 0``; ``steps`` times ``delta <- P(delta + alpha * g / ||g||)``.
* PGD: the same iteration from ``delta_0`` uniform in the eps-ball (direction uniform on the
  sphere, radius ``eps * U^(1/H)``).

``P`` projects each row onto its L2 ball of radius ``eps``. ``mask`` (bool, broadcasting
against ``delta[..., :1]``) pins rows to 0 (padding positions, the padding item, BERT4Rec's
mask token). The objective is *maximised*.

Two places to put a perturbation without changing the model:

* ``input_embedding_noise(model, delta)``: a forward hook on ``model.item_embedding`` that
  adds ``delta [B, L, H]`` to lookups of shape ``[B, L]`` (the input sequence). RecBole's
  SASRec, GRU4Rec and BERT4Rec score items with ``item_embedding.weight`` directly, so the
  output side is untouched; with ``loss_type: BPR`` they also look up ``pos/neg`` items, of
  shape ``[B]`` (SASRec, GRU4Rec) or ``[B, mask_len]`` with ``mask_len < L`` (BERT4Rec), which
  the shape test leaves alone.
* ``call_with_item_table(model, table, fn)``: runs ``fn()`` with ``item_embedding.weight``
  replaced by ``table`` (``torch.func.functional_call``; every lookup and every ``.weight``
  read sees ``table``; the model's parameters are untouched afterwards).
"""

import contextlib

import torch
import torch.nn.functional as F

ATTACKS = ("fgsm", "bim", "pgd")
_TINY = 1e-12


def l2_normalize(x):
    """``x [..., H]`` divided by the L2 norm of each row; zero rows stay zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_TINY)


def _as_radius(eps, like):
    if torch.is_tensor(eps):
        return eps.to(like.dtype)
    return torch.tensor(float(eps), dtype=like.dtype, device=like.device)


def project(delta, eps):
    """Rows of ``delta [..., H]`` scaled back onto the L2 ball of radius ``eps`` when outside."""
    radius = _as_radius(eps, delta)
    norm = delta.norm(dim=-1, keepdim=True)
    return delta * torch.where(norm > radius, radius / norm.clamp_min(_TINY), torch.ones_like(norm))


def fgsm_step(grad, eps):
    """``eps * grad / ||grad||`` row-wise: the fast-gradient sign method under the L2 norm."""
    return _as_radius(eps, grad) * l2_normalize(grad)


def random_in_ball(shape, eps, generator=None, device=None, dtype=torch.float32):
    """Uniform samples in the L2 ball of radius ``eps`` of every row (PGD's start).

    ``shape = (..., H)``. Direction: normalised standard Gaussian; radius ``eps * U^(1/H)``.
    """
    gauss = torch.randn(shape, generator=generator, dtype=dtype, device="cpu")
    u = torch.rand(shape[:-1] + (1,), generator=generator, dtype=dtype, device="cpu")
    sample = l2_normalize(gauss) * u.pow(1.0 / shape[-1])
    sample = sample.to(device) if device is not None else sample
    return sample * _as_radius(eps, sample)


def check_attack(attack, key="attack"):
    if attack not in ATTACKS:
        raise ValueError(f"config key '{key}' must be one of {', '.join(ATTACKS)}; got {attack!r}")
    return attack


def default_alpha(eps, steps, alpha=None):
    """Step size of BIM / PGD: ``alpha`` when given, else ``2.5 * eps / steps`` (Madry et al.)."""
    if alpha is not None:
        return alpha
    return 2.5 * eps / max(1, steps)


def adversarial_delta(grad_fn, shape, attack, eps, alpha=None, steps=1, mask=None, generator=None,
                      device=None, dtype=torch.float32):
    """Perturbation that (approximately) maximises an objective within the eps-ball.

    Args:
        grad_fn: ``f(delta [shape]) -> gradient [shape]`` of the objective at ``delta``
            (see ``grad_of``; may accumulate over many batches).
        shape: ``(..., H)`` shape of the perturbation.
        attack: ``"fgsm"`` | ``"bim"`` | ``"pgd"``.
        eps: float or tensor broadcasting against ``[..., 1]``: the budget of every row.
        alpha: BIM/PGD step size (``None`` = ``2.5 * eps / steps``).
        steps: BIM/PGD iterations ``L`` (FGSM takes one step of size ``eps``).
        mask: optional bool tensor broadcasting against ``[..., 1]``; False rows stay 0.
        generator: ``torch.Generator`` of PGD's random start.

    Returns:
        Detached float tensor ``[shape]`` with every row's norm ``<= eps`` (0 where masked).
    """
    check_attack(attack)
    keep = None if mask is None else mask.to(dtype)

    def pin(delta):
        return delta if keep is None else delta * keep

    if attack == "fgsm":
        zero = torch.zeros(shape, dtype=dtype, device=device)
        return pin(fgsm_step(grad_fn(zero), eps)).detach()
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"config key 'adv_steps' must be a positive integer, got {steps!r}")
    alpha = default_alpha(eps, steps, alpha)
    if attack == "bim":
        delta = torch.zeros(shape, dtype=dtype, device=device)
    else:
        delta = pin(random_in_ball(tuple(shape), eps, generator, device, dtype))
    for _ in range(steps):
        step = fgsm_step(grad_fn(delta.detach()), alpha)
        delta = pin(project(delta.detach() + step, eps))
    return delta.detach()


def grad_of(loss_fn):
    """``loss_fn(delta) -> scalar`` into ``grad_fn(delta) -> d loss / d delta`` (no parameter grads)."""
    def grad_fn(delta):
        delta = delta.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(delta)
            (grad,) = torch.autograd.grad(loss, delta, allow_unused=True)
        return torch.zeros_like(delta) if grad is None else grad
    return grad_fn


# ---------------------------------------------------------------------- where to put it
@contextlib.contextmanager
def input_embedding_noise(model, delta):
    """Within the block, sequence lookups of ``model.item_embedding`` get ``+ delta``.

    ``delta``: float ``[B, L, H]``; added to every lookup whose index tensor has shape
    ``[B, L]``, at non-padding positions only (index > 0).
    """
    def hook(module, args, output):
        index = args[0]
        if tuple(index.shape) != tuple(delta.shape[:-1]):
            return output
        return output + delta * (index > 0).unsqueeze(-1).to(delta.dtype)

    handle = model.item_embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class _Call(torch.nn.Module):
    """Holds ``model`` so ``functional_call`` can swap its parameters around any callable."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, fn):
        return fn()


def call_with_item_table(model, table, fn):
    """``fn()`` evaluated with ``model.item_embedding.weight`` replaced by ``table``.

    Gradients flow into ``table`` (and, if ``table = weight + delta``, into the weight);
    the model is unchanged afterwards.
    """
    return torch.func.functional_call(_Call(model), {"model.item_embedding.weight": table}, (fn,))


def item_rows_mask(model):
    """bool ``[n_rows, 1]``: True for the real items ``1..n_items-1`` of the embedding table."""
    n_rows = model.item_embedding.weight.shape[0]
    rows = torch.arange(n_rows, device=model.item_embedding.weight.device)
    return ((rows >= 1) & (rows < model.n_items)).unsqueeze(1)


# ---------------------------------------------------------------------- model helpers
@contextlib.contextmanager
def eval_mode(model):
    """Model in eval mode (no dropout) within the block; the previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def sequence_representation(scorer, interaction):
    """float ``[B, H]``: the hidden state the model scores the next item of each input with.

    Position-wise models: hidden state at the last input position; BERT4Rec: the output at
    the appended mask token (what ``full_sort_predict`` uses); other models: ``forward``.
    """
    model = scorer.model
    seq, seq_len = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    rows = torch.arange(seq.shape[0], device=seq.device)
    if scorer.position_wise:
        hidden = scorer.position_hidden(interaction)
        return hidden[rows, (seq_len - 1).clamp(min=0)]
    if scorer.masked:
        hidden = model.forward(model.reconstruct_test_data(seq, seq_len))
        return hidden[rows, (seq_len - 1).clamp(min=0)]
    return model.forward(seq, seq_len)


def instance_losses(scorer, interaction):
    """float ``[B]``: cross-entropy of each instance's next item (``ITEM_ID``) over all items."""
    model = scorer.model
    scores = scorer.last_scores(interaction)
    return F.cross_entropy(scores, interaction[model.POS_ITEM_ID], reduction="none")
