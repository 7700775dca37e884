"""Tests of the fine-tuning baselines (recbole_finest.methods): registry, loss terms, APT."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, SASRec

from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.config import Config, ConfigError
from recbole_finest.finest.method_config import MethodSettings, method_settings
from recbole_finest.methods import METHODS, get_method
from recbole_finest.methods.adversarial_training import pamacf_magnitude, vat_magnitude
from recbole_finest.methods.apt import append_profiles, apt_augment, fake_user_count, generate_profiles
from recbole_finest.finest.scoring import SequenceScorer
from recbole_finest.finest.trainer import FinestTrainer

from conftest import FakeDataset, model_only_config

N_ITEMS = 20
MAX_LEN = 5
ADVERSARIAL = ("acae", "apr_fgsm", "apr_bim", "apr_pgd", "pamacf", "vat")


def make_config(**overrides):
    return model_only_config(MAX_LEN, 0.4, **{
        "seed": 7, "adv_eps": 0.3, "adv_alpha": None, "adv_steps": 2, "adv_lambda": 0.5, "pamacf_rho": 0.4,
        "vat_rho": 0.4, "apt_fake_users": 2, "apt_fake_length": 7, "finest_lambda": 1.0, "finest_beta1": 0.1,
        "finest_beta2": 0.1, **overrides})


def make_sequences(seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([7, 4, 9, 3])
    seq = np.repeat(np.arange(len(lengths)), lengths)
    n = int(lengths.sum())
    return TrainingSequences.from_rows(seq, rng.integers(1, N_ITEMS, n), np.arange(n, dtype=float),
                                       np.arange(n), np.arange(1, len(lengths) + 1), N_ITEMS)


def fake_trainer(cls, method, unit, **overrides):
    config = make_config(**overrides)
    torch.manual_seed(0)
    model = cls(config, FakeDataset(N_ITEMS))
    return SimpleNamespace(model=model, scorer=SequenceScorer(model), unit=unit, config=config,
                           phase="finetune", method=get_method(method), reference=None, seed=config["seed"],
                           settings=MethodSettings(method, config))


def batch_of(trainer):
    seqs = make_sequences()
    if trainer.unit == "sequence":
        return seqs.window_instances(MAX_LEN, trainer.config)
    return seqs.prefix_instances(MAX_LEN, trainer.config)


MODELS = [(SASRec, "sequence"), (BERT4Rec, "sequence"), (GRU4Rec, "prefix")]


# ---------------------------------------------------------------------- registry
def test_every_method_is_registered_by_name():
    names = {"original", "random", "earliest_random", "latest_random", "apt", "acae", "apr_fgsm", "apr_bim",
             "apr_pgd", "pamacf", "vat", "finest", "finest_no_sim", "finest_no_reg", "finest_order_only",
             "finest_score_only"}
    assert names <= set(METHODS)
    for name in ADVERSARIAL:
        m = get_method(name)
        assert m.extra_loss is not None and m.simulation is None and not m.regularizer and m.augment is None
    apt = get_method("apt")
    assert apt.augment is not None and apt.extra_loss is None and apt.simulation is None
    with pytest.raises(ValueError, match="finetune_method"):
        get_method("apr")


# ---------------------------------------------------------------------- magnitudes
def test_pamacf_magnitude_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # norms 1, 2, 3; mean 2
    expected = 0.4 * torch.sigmoid(torch.tensor([-0.5, 0.0, 0.5]))
    assert torch.allclose(pamacf_magnitude(u, 0.4), expected)
    torch.manual_seed(0)
    u = torch.randn(200, 6) * torch.logspace(-2, 1, 200)[:, None]
    eps = pamacf_magnitude(u, 0.25)
    # (||u|| - mean) / mean >= -1, so eps_u is in [rho * sigmoid(-1), rho)
    assert bool(((eps >= 0.25 * torch.sigmoid(torch.tensor(-1.0))) & (eps < 0.25)).all())
    order = torch.argsort(u.norm(dim=1))
    assert bool((eps[order].diff() >= 0).all())  # grows with ||u||


def test_vat_magnitude_by_hand():
    losses = torch.tensor([1.0, 2.0, 3.0])  # mean 2
    expected = 0.4 * torch.sigmoid(torch.tensor([0.5, 0.0, -0.5]))
    assert torch.allclose(vat_magnitude(losses, 0.4), expected)
    eps = vat_magnitude(torch.rand(100) * 10, 0.1)
    assert bool(((eps > 0) & (eps < 0.1)).all())


# ---------------------------------------------------------------------- loss terms
@pytest.mark.parametrize("cls,unit", MODELS)
@pytest.mark.parametrize("method", ADVERSARIAL)
def test_zero_budget_term_is_lambda_times_plain_loss(cls, unit, method):
    """With eps = rho = 0 each method's batch loss is (L, adv_lambda * L'), L' = L with the next draws."""
    zero = {"adv_eps": 0.0, "pamacf_rho": 0.0, "vat_rho": 0.0}
    plain = fake_trainer(cls, "random", unit, **zero)
    trainer = fake_trainer(cls, method, unit, **zero)
    batch = batch_of(trainer)
    torch.manual_seed(11)
    (clean,) = FinestTrainer.batch_losses(plain, batch)
    (next_draws,) = FinestTrainer.batch_losses(plain, batch)
    torch.manual_seed(11)
    losses = FinestTrainer.batch_losses(trainer, batch)
    assert len(losses) == 2
    assert torch.allclose(losses[0], clean)
    assert torch.allclose(losses[1], 0.5 * next_draws, atol=1e-6)
    (after,) = FinestTrainer.batch_losses(plain, batch)  # the adversarial passes do not shift the stream
    assert torch.allclose(after, next_draws)


def _loss(trainer, batch):
    return FinestTrainer.batch_losses(SimpleNamespace(**{**vars(trainer), "method": get_method("random")}), batch)[0]


def test_apr_fgsm_term_matches_an_independent_computation():
    trainer = fake_trainer(SASRec, "apr_fgsm", "sequence")
    model, batch = trainer.model, batch_of(trainer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = FinestTrainer.batch_losses(trainer, batch)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # independent: parameter gradient of the loss, row-normalised, on the real items only
    model.zero_grad()
    _loss(trainer, batch).backward()
    g = model.item_embedding.weight.grad.clone()
    delta = 0.3 * g / g.norm(dim=1, keepdim=True)
    delta[0] = 0
    with torch.no_grad():
        model.item_embedding.weight += delta
        expected = _loss(trainer, batch)
        model.item_embedding.weight -= delta
    assert torch.allclose(losses[1], 0.5 * expected, atol=1e-5)
    assert float(losses[1]) > 0.5 * float(losses[0])  # the perturbation raises the loss
    model.zero_grad()
    losses[1].backward()  # the adversarial term trains the parameters, the table included
    assert float(model.item_embedding.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("per_user", [False, True])
def test_acae_and_pamacf_terms_match_an_independent_computation(per_user):
    method = "pamacf" if per_user else "acae"
    trainer = fake_trainer(SASRec, method, "sequence")
    model, batch = trainer.model, batch_of(trainer)
    losses = FinestTrainer.batch_losses(trainer, batch)
    seq = batch["item_id_list"]
    # independent gradient of the loss w.r.t. the input lookup (retain_grad on the hook output)
    captured = {}

    def keep(module, args, output):
        if args[0].shape == seq.shape:
            output.retain_grad()
            captured["out"] = output

    handle = model.item_embedding.register_forward_hook(keep)
    _loss(trainer, batch).backward()
    handle.remove()
    g = captured["out"].grad * (seq > 0).unsqueeze(-1)
    if per_user:
        with torch.no_grad():  # u = hidden state at the last input position (SASRec)
            hidden = trainer.scorer.position_hidden(batch)
            u = hidden[torch.arange(len(seq)), batch["item_length"] - 1]
            norms = u.norm(dim=1)
            eps = (0.4 * torch.sigmoid((norms - norms.mean()) / norms.mean())).view(-1, 1, 1)
    else:
        eps = 0.3
    delta = eps * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def add(module, args, output):
        return output + delta if args[0].shape == seq.shape else output

    handle = model.item_embedding.register_forward_hook(add)
    with torch.no_grad():
        expected = _loss(trainer, batch)
    handle.remove()
    assert torch.allclose(losses[1], 0.5 * expected, atol=1e-5)
    assert not model.item_embedding._forward_hooks


@pytest.mark.parametrize("method", ["apr_bim", "apr_pgd", "vat"])
def test_multistep_and_vat_terms_raise_the_loss(method):
    trainer = fake_trainer(SASRec, method, "sequence")
    batch = batch_of(trainer)
    torch.manual_seed(3)
    losses = FinestTrainer.batch_losses(trainer, batch)
    assert float(losses[1]) > 0.5 * float(losses[0])


# ---------------------------------------------------------------------- APT
def test_fake_user_count_and_errors():
    assert fake_user_count(3, 100) == 3
    assert fake_user_count(0.01, 4675) == 47
    assert fake_user_count(0.001, 10) == 1
    base = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, "state": "ERROR"})
    for bad in (0, -1, 2.5, True, "5"):  # checked once, when the settings are built (before pre-training)
        if not isinstance(bad, str):  # RecBole reads "5" in a config dict as 5
            with pytest.raises(ConfigError, match="apt_fake_users"):
                Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, "apt_fake_users": bad, "state": "ERROR"})
        with pytest.raises(ConfigError, match="apt_fake_users"):
            method_settings(base, "apt", {"apt_fake_users": bad})


class ChainScorer:
    """Scores that put all mass on (last input item + 1): generation must follow the chain."""

    def __init__(self):
        self.model = SimpleNamespace(ITEM_SEQ="item_id_list", ITEM_SEQ_LEN="item_length", n_items=N_ITEMS,
                                     item_embedding=torch.nn.Embedding(N_ITEMS, 2), training=False,
                                     eval=lambda: None, train=lambda mode=True: None)
        self.widths = []

    def last_scores(self, inter):
        seq, length = inter["item_id_list"], inter["item_length"]
        self.widths.append(int(length[0]))
        last = seq[torch.arange(len(seq)), length - 1]
        scores = torch.full((len(seq), N_ITEMS), -1e4)
        scores[torch.arange(len(seq)), last % (N_ITEMS - 1) + 1] = 1e4
        return scores


def test_generation_is_autoregressive_on_the_last_window():
    scorer = ChainScorer()
    out = generate_profiles(scorer, 3, 12, make_config(), torch.Generator().manual_seed(0))
    assert out.shape == (3, 12)
    expected = (out[:, :1] - 1 + torch.arange(12)) % (N_ITEMS - 1) + 1
    assert torch.equal(out, expected)
    assert scorer.widths == [min(t, MAX_LEN) for t in range(1, 12)]


def test_apt_augment_appends_fake_users_only():
    trainer = fake_trainer(SASRec, "apt", "sequence")
    seqs = make_sequences()
    out = apt_augment(trainer, seqs, epoch=0)
    assert out.n_sequences == seqs.n_sequences + 2
    assert np.array_equal(out.items[: seqs.n_rows], seqs.items)
    assert np.array_equal(out.ids[: seqs.n_rows], seqs.ids)
    assert np.array_equal(out.lengths[-2:], [7, 7])
    fake = out.items[seqs.n_rows:]
    assert bool(((fake >= 1) & (fake < N_ITEMS)).all()) and bool((out.ids[seqs.n_rows:] == -1).all())
    assert len(set(out.user_ids.tolist())) == out.n_sequences
    assert np.array_equal(apt_augment(trainer, seqs, epoch=0).items, out.items)  # seeded by (seed, epoch)
    assert not np.array_equal(apt_augment(trainer, seqs, epoch=1).items, out.items)
    assert math.isclose(append_profiles(seqs, np.ones((1, 3), dtype=np.int64)).timestamps[-1], 2.0)
    # a bad value fails when the settings are built, before any training
    with pytest.raises(ConfigError, match="apt_fake_length"):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, "apt_fake_length": 1, "state": "ERROR"})
    with pytest.raises(ConfigError, match="apt_fake_length"):
        method_settings(Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, "state": "ERROR"}), "apt", {"apt_fake_length": 1})
