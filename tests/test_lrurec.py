"""LRURec (recbole_finest.model.lrurec): the parallel scan is the recurrence, the model is
causal and padding-blind, the plugin trains it in the sequence unit, and a trained tiny
model ranks ml-100k's test items better than popularity."""

import time

import pytest
import torch
from recbole.utils import init_seed

from _cpu import on_cpu
from conftest import FakeDataset, load_splits, model_only_config
from recbole_finest.compat.model_kind import CAUSAL, ModelAdapter, kind_of
from recbole_finest.model import LRURec
from recbole_finest.model.lrurec import lru_recurrence, lru_scan

LRU_KEYS = dict(n_layers=2, hidden_size=8, inner_size=32, hidden_dropout_prob=0.0, lru_dropout_prob=0.0,
                lru_r_min=0.8, lru_r_max=0.99, layer_norm_eps=1e-5, initializer_range=0.02, loss_type="CE")
N_ITEMS, MAX_LEN = 40, 12


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = model_only_config(MAX_LEN, 0.2, **{**LRU_KEYS, **overrides})
    return LRURec(config, FakeDataset(N_ITEMS)).eval()


@pytest.mark.parametrize("length", [1, 2, 7, 16, 50, 63])
def test_scan_equals_step_by_step_recurrence(length):
    gen = torch.Generator().manual_seed(length)
    b = torch.complex(torch.randn(3, length, 6, generator=gen, dtype=torch.float64),
                      torch.randn(3, length, 6, generator=gen, dtype=torch.float64))
    lam = torch.polar(0.5 + 0.49 * torch.rand(6, generator=gen, dtype=torch.float64),
                      6.28 * torch.rand(6, generator=gen, dtype=torch.float64))
    assert torch.allclose(lru_scan(b, lam), lru_recurrence(b, lam), rtol=0, atol=1e-12)
    with torch.no_grad():  # the in-place inference path
        assert torch.allclose(lru_scan(b, lam), lru_recurrence(b, lam), rtol=0, atol=1e-12)
    # and so are the gradients (the training path)
    grads = []
    for form in (lru_scan, lru_recurrence):
        bb, ll = b.clone().requires_grad_(True), lam.clone().requires_grad_(True)
        form(bb, ll).abs().sum().backward()
        grads.append((bb.grad, torch.zeros_like(ll) if ll.grad is None else ll.grad))  # L = 1: lam unused
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-9) and torch.allclose(grads[0][1], grads[1][1], atol=1e-9)
    # and the hand-written first steps: h_0 = b_0, h_1 = lam b_0 + b_1
    h = lru_scan(b, lam)
    assert torch.allclose(h[:, 0], b[:, 0])
    if length > 1:
        assert torch.allclose(h[:, 1], lam * b[:, 0] + b[:, 1], atol=1e-12)


def _loop_encode(model, item_seq):
    """The model's forward written position by position (no scan), from its own parameters."""
    valid = item_seq != 0
    x = model.emb_layer_norm(model.item_embedding(item_seq))
    for block in model.blocks:
        lru = block.lru
        lam, gamma = lru.transition()
        h = torch.zeros(x.shape[0], lam.shape[0], dtype=torch.complex64)
        outs = []
        for t in range(x.shape[1]):
            keep = valid[:, t, None].float() * gamma
            b_t = torch.complex(lru.in_re(x[:, t]) * keep, lru.in_im(x[:, t]) * keep)
            h = lam * h + b_t
            w = torch.complex(lru.out_re.weight, lru.out_im.weight)  # C = C_re + i C_im
            y = (h @ w.T).real + lru.out_re.bias
            outs.append(y)
        x = lru.layer_norm(torch.stack(outs, 1) + x)
        x = block.ffn(x)
    return x


def test_model_equals_the_step_by_step_model():
    model = _model(seed=1)
    gen = torch.Generator().manual_seed(2)
    seq = torch.randint(1, N_ITEMS, (5, MAX_LEN), generator=gen)
    seq[1, 7:] = 0  # right padding, as RecBole
    with torch.no_grad():
        assert torch.allclose(model._encode(seq), _loop_encode(model, seq), rtol=0, atol=1e-5)


def test_causal_a_later_item_never_changes_an_earlier_output():
    model = _model(seed=3)
    gen = torch.Generator().manual_seed(4)
    seq = torch.randint(1, N_ITEMS, (6, MAX_LEN), generator=gen)
    with torch.no_grad():
        base = model._encode(seq)
        for j in range(MAX_LEN):
            changed = seq.clone()
            changed[:, j] = (changed[:, j] % (N_ITEMS - 1)) + 1  # another real item
            out = model._encode(changed)
            assert torch.equal(out[:, :j], base[:, :j]), j
            assert not torch.allclose(out[:, j:], base[:, j:])  # the change is seen from j on


def test_padding_around_a_sequence_changes_nothing():
    """Right padding (RecBole's) and left padding give the real positions the same outputs."""
    model = _model(seed=5)
    seq = torch.tensor([[3, 9, 4, 17, 2]])
    with torch.no_grad():
        alone = model._encode(seq)
        right = model._encode(torch.cat([seq, torch.zeros(1, 7, dtype=torch.long)], 1))
        left = model._encode(torch.cat([torch.zeros(1, 7, dtype=torch.long), seq], 1))
    assert torch.allclose(right[:, :5], alone, atol=1e-6)
    assert torch.allclose(left[:, 7:], alone, atol=1e-6)


def test_causal_kind_and_forward_picks_the_last_item():
    model = _model(seed=6)
    assert kind_of(LRURec) == CAUSAL and ModelAdapter(model).sequence_unit
    seq = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 8]])
    lengths = torch.tensor([3, 5])
    with torch.no_grad():
        every = model._encode(seq)
        last = model.forward(seq, lengths)
    assert torch.equal(last, every[torch.arange(2), lengths - 1])
    nu, theta, gamma = torch.exp(model.blocks[0].lru.params_log)
    radius = torch.exp(-nu)
    assert bool(((radius >= 0.8 - 1e-6) & (radius <= 0.99 + 1e-6)).all())  # the ring of the paper
    assert torch.allclose(gamma, torch.sqrt(1 - radius ** 2), atol=1e-6)


def test_trained_tiny_model_beats_popularity_on_ml100k(tmp_path):
    """Pre-trained by FinestTrainer (sequence unit), a tiny LRURec has a higher test MRR and
    Recall@10 than the most-popular ranking of the training items, on the same instances."""
    from recbole_finest.finest.trainer import FinestTrainer
    from recbole_finest.stability.evaluate import eval_scores, target_ranks

    torch.set_num_threads(1)
    started = time.time()
    keys = dict(LRU_KEYS, hidden_size=32, inner_size=64, n_layers=1, hidden_dropout_prob=0.1,
                lru_dropout_prob=0.1, MAX_ITEM_LIST_LENGTH=50, epochs=3, learning_rate=3e-3,
                train_batch_size=128, eval_batch_size=512, show_progress=False, seed=2020,
                user_inter_num_interval="[50,inf)", train_neg_sample_args=None)
    config, train, _, test = load_splits(tmp_path, keys, model="LRURec")
    on_cpu(config)
    assert config["learner"] == "adamw" and config["weight_decay"] == 0.01  # properties/model/LRURec.yaml
    init_seed(config["seed"], config["reproducibility"])
    model = LRURec(config, train.dataset)
    trainer = FinestTrainer(config, model)
    assert trainer.unit == "sequence"
    trainer.pretrain(train, None, verbose=False, saved=False)

    item = train.dataset.iid_field
    counts = torch.bincount(train.dataset.inter_feat[item], minlength=train.dataset.item_num).float()
    model.eval()
    ranks, pop_ranks = [], []
    with torch.no_grad():
        for interaction, _, _, positive_i in test:
            ranks.append(target_ranks(eval_scores(model, interaction, len(positive_i)), positive_i))
            pop = counts.expand(len(positive_i), -1).clone()
            pop[:, 0] = -torch.inf
            pop_ranks.append(target_ranks(pop, positive_i))  # ties count in popularity's favour
    ranks, pop_ranks = torch.cat(ranks).double(), torch.cat(pop_ranks).double()
    mrr, pop_mrr = (1 / (ranks + 1)).mean().item(), (1 / (pop_ranks + 1)).mean().item()
    recall, pop_recall = (ranks < 10).double().mean().item(), (pop_ranks < 10).double().mean().item()
    print(f"LRURec MRR {mrr:.4f} Recall@10 {recall:.4f}; popularity MRR {pop_mrr:.4f} Recall@10 {pop_recall:.4f}; "
          f"{len(ranks)} test instances, {time.time() - started:.1f} s")
    assert len(ranks) > 500
    assert mrr > pop_mrr and recall > pop_recall


def test_finest_stability_run_and_update_mode_with_lrurec(tmp_path):
    """LRURec through the stability run (pre-train, FINEST with its regularizer, the streamed
    A-vs-B pass: RBO, FRBO@10, Jaccard@10) and through the update mode (retrain / finest)."""
    import contextlib

    from conftest import TINY_NARROW
    from recbole_finest.stability import run as stability
    from recbole_finest.update import run_update

    keys = dict(TINY_NARROW, finetune_method="finest", train_neg_sample_args=None, MAX_ITEM_LIST_LENGTH=20,
                lru_dropout_prob=0.0)
    config, train, valid, test = load_splits(tmp_path, keys, model="LRURec")
    on_cpu(config)
    with contextlib.chdir(tmp_path):
        run = stability.StabilityRun(config, train, valid, test, saved=False)
        rows = [run.pretrain(), run.finetune("finest")]
    for row in rows:
        assert {"rbo", "frbo@10", "jaccard@10", "mrr", "ndcg@10"} <= set(row)
        assert 0.0 < row["frbo@10"] <= 1.0 and row["frbo@10"] == pytest.approx(run.instances[row["method"]]["frbo@10"].mean())
    assert "frbo@10" in stability.format_table(rows)
    with contextlib.chdir(tmp_path):
        report = run_update("LRURec", "ml-100k", config_dict={
            **keys, "update_epochs": 1, "update_methods": ["retrain", "finest"],
            "checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")})["report"]
    by_name = {r["strategy"]: r for r in report["rows"]}
    assert by_name["v1 (no update)"]["frbo@10"] == 1.0
    assert all(0.0 <= r["frbo@10"] <= 1.0 and r["mrr"] > 0 for r in report["rows"])
