"""Tests of the perturbation module (recbole_finest.methods.attacks) and the embedding-level
stability evaluation (recbole_finest.stability.embedding)."""

import math

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, SASRec

from recbole_finest.methods.attacks import (
    adversarial_delta,
    call_with_item_table,
    fgsm_step,
    grad_of,
    input_embedding_noise,
    item_rows_mask,
    project,
    random_in_ball,
    sequence_representation,
)
from recbole_finest.stability.embedding import clean_outputs, embedding_delta, embedding_stability
from recbole_finest.finest.scoring import SequenceScorer

from conftest import FakeDataset, model_only_config

N_ITEMS = 25
MAX_LEN = 6


def model_config(**overrides):
    return model_only_config(MAX_LEN, 0.3, **overrides)


def make_model(cls, seed=0):
    torch.manual_seed(seed)
    model = cls(model_config(), FakeDataset(N_ITEMS))
    model.eval()
    return model


def prefix_batch(n=4, seed=1):
    """Left-aligned inputs with distinct items per row and their next items."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([MAX_LEN - 1, 3, 1, 4][:n])
    seq = torch.zeros((n, MAX_LEN), dtype=torch.long)
    for r in range(n):
        seq[r, : lengths[r]] = torch.randperm(N_ITEMS - 1, generator=g)[: lengths[r]] + 1
    return Interaction({"item_id_list": seq, "item_length": lengths, "user_id": torch.arange(n),
                        "item_id": torch.randint(1, N_ITEMS, (n,), generator=g)})


class EvalData(list):
    """A one-batch stand-in for RecBole's full-sort evaluation loader."""

    class dataset:
        uid_field = "user_id"

    def __init__(self, batch):
        super().__init__([(batch, None, None, batch["item_id"])])


# ---------------------------------------------------------------------- geometry
def test_project_by_hand():
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = project(delta, 1.0)
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    per_row = project(delta, torch.tensor([[10.0], [0.25], [1.0]]))
    assert torch.allclose(per_row, torch.tensor([[3.0, 4.0], [0.15, 0.2], [0.0, 0.0]]))


def test_fgsm_direction_is_normalized_gradient():
    # objective w . delta + 0.5 * ||delta||^2: gradient at 0 is w
    w = torch.tensor([[3.0, -4.0], [0.0, 0.0], [1.0, 1.0]])
    delta = adversarial_delta(grad_of(lambda d: (w * d).sum() + 0.5 * (d * d).sum()), (3, 2), "fgsm", 0.5)
    expected = torch.tensor([[0.3, -0.4], [0.0, 0.0], [0.5 / math.sqrt(2), 0.5 / math.sqrt(2)]])
    assert torch.allclose(delta, expected, atol=1e-6)
    assert torch.allclose(fgsm_step(w, torch.tensor([[2.0], [1.0], [0.0]]))[0], torch.tensor([1.2, -1.6]))


@pytest.mark.parametrize("attack", ["bim", "pgd"])
def test_iterates_never_leave_the_ball(attack):
    torch.manual_seed(0)
    target = torch.randn(5, 4) * 10  # maximiser far outside the ball
    eps = torch.tensor([[0.1], [0.5], [1.0], [2.0], [0.01]])
    seen = []

    def grad_fn(delta):
        seen.append(delta.clone())
        return target - delta  # gradient of -0.5 ||delta - target||^2

    gen = torch.Generator().manual_seed(3)
    out = adversarial_delta(grad_fn, (5, 4), attack, eps, alpha=50.0, steps=6, generator=gen)
    assert len(seen) == 6
    for d in seen + [out]:
        assert bool((d.norm(dim=1, keepdim=True) <= eps * (1 + 1e-5)).all())
    # with huge steps every row ends on the boundary, pointing at the target
    assert torch.allclose(out, eps * target / target.norm(dim=1, keepdim=True), atol=1e-5)
    if attack == "bim":
        assert torch.count_nonzero(seen[0]) == 0  # BIM starts at zero
    else:
        assert bool((seen[0].norm(dim=1) > 0).all())  # PGD starts at a random point


def test_pgd_start_is_uniform_in_the_ball():
    gen = torch.Generator().manual_seed(0)
    sample = random_in_ball((20000, 2), 0.5, generator=gen)
    radius = sample.norm(dim=1)
    assert bool((radius <= 0.5 + 1e-7).all())
    # uniform in a disc: P(r < eps / 2) = 1 / 4; directions centred
    assert abs(float((radius < 0.25).double().mean()) - 0.25) < 0.015
    assert float(sample.mean(0).abs().max()) < 0.01


def test_mask_pins_rows_and_steps_must_be_positive():
    mask = torch.tensor([[False], [True]])
    out = adversarial_delta(lambda d: torch.ones_like(d), (2, 3), "pgd", 1.0, steps=2, mask=mask,
                            generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(out[0]) == 0 and float(out[1].norm()) > 0
    with pytest.raises(ValueError, match="adv_steps"):
        adversarial_delta(lambda d: d, (2, 3), "bim", 1.0, steps=0)
    with pytest.raises(ValueError, match="attack"):
        adversarial_delta(lambda d: d, (2, 3), "cw", 1.0)


# ---------------------------------------------------------------------- where noise goes
@pytest.mark.parametrize("cls", [SASRec, BERT4Rec, GRU4Rec])
def test_input_noise_reaches_only_the_input_sequence(cls):
    """The hook = perturbing the embedding rows of the input items only; scores use the clean table."""
    model = make_model(cls)
    scorer = SequenceScorer(model)
    batch = prefix_batch()
    weight = model.item_embedding.weight.detach()
    torch.manual_seed(5)
    table_delta = torch.randn_like(weight) * 0.5
    table_delta[0] = 0
    table_delta[N_ITEMS:] = 0  # BERT4Rec's mask token
    seq, lengths = batch["item_id_list"], batch["item_length"]
    index = model.reconstruct_test_data(seq, lengths) if cls is BERT4Rec else seq  # the lookup's input
    with torch.no_grad():
        with input_embedding_noise(model, table_delta[index]):
            hooked = scorer.last_scores(batch)
        hidden = call_with_item_table(model, weight + table_delta, lambda: sequence_representation(scorer, batch))
        expected = hidden @ weight[:N_ITEMS].T + (model.output_bias if cls is BERT4Rec else 0)
        both_sides = call_with_item_table(model, weight + table_delta, lambda: scorer.last_scores(batch))
        clean = scorer.last_scores(batch)
    assert torch.allclose(hooked, expected, atol=1e-5)
    assert not torch.allclose(hooked, both_sides, atol=1e-3)
    assert not torch.allclose(hooked, clean, atol=1e-3)
    assert not model.item_embedding._forward_hooks  # the hook is removed


def test_call_with_item_table_leaves_model_unchanged_and_passes_gradients():
    model = make_model(SASRec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    delta = torch.zeros_like(model.item_embedding.weight, requires_grad=True)
    batch = prefix_batch()
    scores = call_with_item_table(model, model.item_embedding.weight + delta,
                                  lambda: SequenceScorer(model).last_scores(batch))
    scores.sum().backward()
    assert delta.grad is not None and float(delta.grad.abs().sum()) > 0
    assert model.item_embedding.weight.grad is not None  # the parameter is in the graph too
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    mask = item_rows_mask(model)
    assert mask.shape == (N_ITEMS, 1) and not mask[0] and bool(mask[1:].all())


def test_fgsm_on_input_embeddings_matches_autograd_of_the_lookup():
    """Independent gradient: retain the embedding output's gradient in a plain backward pass."""
    model = make_model(SASRec)
    scorer = SequenceScorer(model)
    batch = prefix_batch()
    loss_fn = torch.nn.CrossEntropyLoss()
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["out"] = output

    handle = model.item_embedding.register_forward_hook(keep)
    loss_fn(scorer.last_scores(batch), batch["item_id"]).backward()
    handle.remove()
    g = captured["out"].grad * (batch["item_id_list"] > 0).unsqueeze(-1)

    def objective(delta):
        with input_embedding_noise(model, delta):
            return loss_fn(scorer.last_scores(batch), batch["item_id"])

    delta = adversarial_delta(grad_of(objective), tuple(g.shape), "fgsm", 0.2)
    expected = 0.2 * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    assert torch.allclose(delta, expected, atol=1e-5)
    assert float(objective(delta)) > float(objective(torch.zeros_like(delta)))


# ---------------------------------------------------------------------- embedding stability
def test_embedding_stability_bounds_and_identity():
    model = make_model(SASRec)
    batch = prefix_batch()
    eval_data = EvalData(batch)
    config = {"emb_stability_objective": "loss", "adv_steps": 2, "adv_alpha": None, "seed": 1, "rbo_p": 1.0,
              "rbo_depth": None, "jaccard_k": 3, "finest_beta1": 0.1, "finest_beta2": 0.1}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    same = embedding_stability(model, eval_data, "fgsm", 0.0, config)
    assert same["rbo"] == pytest.approx(1.0) and same["jaccard@3"] == pytest.approx(1.0)
    clean = clean_outputs(model, eval_data, config)
    for attack in ("fgsm", "bim", "pgd"):
        out = embedding_stability(model, eval_data, attack, 2.0, config)
        assert embedding_stability(model, eval_data, attack, 2.0, config, clean=clean) == out
        assert 0.0 <= out["rbo"] < 1.0 and 0.0 <= out["jaccard@3"] <= 1.0
        assert out["clean_mrr"] == pytest.approx(same["clean_mrr"])
        assert out["perturbed_mrr"] <= out["clean_mrr"] + 1e-9  # the attack raises the targets' loss
    ranks = embedding_stability(model, eval_data, "pgd", 2.0, {**config, "emb_stability_objective": "ranks"})
    assert ranks["jaccard@3"] < 1.0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="emb_stability_objective"):
        embedding_stability(model, eval_data, "fgsm", 0.1, {**config, "emb_stability_objective": "kl"})


def test_embedding_fgsm_is_the_normalized_gradient_of_the_test_loss():
    model = make_model(SASRec)
    batch = prefix_batch()
    config = {"emb_stability_objective": "loss", "adv_steps": 1, "adv_alpha": None, "seed": 1, "rbo_p": 1.0,
              "rbo_depth": None, "jaccard_k": 3, "finest_beta1": 0.1, "finest_beta2": 0.1}
    lists, _ = clean_outputs(model, EvalData(batch), config)
    delta = embedding_delta(model, EvalData(batch), "fgsm", 0.7, config, lists)
    model.zero_grad()
    scores = model.full_sort_predict(batch)
    torch.nn.functional.cross_entropy(scores[:, 1:], batch["item_id"] - 1, reduction="sum").backward()
    g = model.item_embedding.weight.grad
    expected = 0.7 * g / g.norm(dim=1, keepdim=True)
    expected[0] = 0  # the padding row is never perturbed
    assert torch.allclose(delta, expected, atol=1e-5)
