"""Tests for the TiSASRec port (recbole_finest.model.tisasrec)."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole.data.interaction import Interaction  # noqa: E402

from recbole_finest.model import TiSASRec  # noqa: E402
from recbole_finest.model.tisasrec import (  # noqa: E402
    TimeIntervalMultiHeadAttention,
    compute_time_interval_matrix,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_YAML = os.path.join(REPO_ROOT, "properties", "model", "TiSASRec.yaml")

N_ITEMS = 30
MAX_LEN = 8


class FakeDataset:
    """The little a SequentialRecommender needs from a RecBole dataset."""

    def __init__(self, n_items=N_ITEMS, with_time=True):
        self.n_items = n_items
        self.field2type = {"user_id": None, "item_id": None, "item_id_list": None}
        if with_time:
            self.field2type.update({"timestamp": None, "timestamp_list": None})

    def num(self, field):
        assert field == "item_id"
        return self.n_items


def make_config(**overrides):
    config = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "LIST_SUFFIX": "_list",
        "ITEM_LIST_LENGTH_FIELD": "item_length",
        "NEG_PREFIX": "neg_",
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "device": torch.device("cpu"),
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 16,
        "inner_size": 16,
        "hidden_dropout_prob": 0.1,
        "attn_dropout_prob": 0.1,
        "hidden_act": "relu",
        "layer_norm_eps": 1e-8,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "time_span": 16,
    }
    config.update(overrides)
    return config


def make_model(**overrides):
    torch.manual_seed(0)
    return TiSASRec(make_config(**overrides), FakeDataset())


def random_batch(batch_size=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, MAX_LEN + 1, (batch_size,), generator=g)
    lengths[0] = MAX_LEN
    items = torch.randint(1, N_ITEMS, (batch_size, MAX_LEN), generator=g)
    gaps = torch.randint(0, 5, (batch_size, MAX_LEN), generator=g).float() * 60.0
    times = 1.0e6 + torch.cumsum(gaps, dim=1)  # exact in float32
    pos = torch.arange(MAX_LEN).unsqueeze(0)
    pad = pos >= lengths.unsqueeze(1)
    items[pad] = 0
    times[pad] = 0.0
    return Interaction(
        {
            "item_id_list": items,
            "timestamp_list": times,
            "item_length": lengths,
            "item_id": torch.randint(1, N_ITEMS, (batch_size,), generator=g),
            "neg_item_id": torch.randint(1, N_ITEMS, (batch_size,), generator=g),
        }
    )


# --------------------------------------------------------------------------- intervals


def test_interval_matrix_hand_computed():
    # time_span 8; three sequences of length 5, right-padded with zeros
    times = torch.tensor(
        [
            [10.0, 12.0, 12.0, 17.0, 100.0],  # min interval 2, floor + clipping
            [0.0, 4.0, 5.0, 11.0, 0.0],  # scale shrinks 4 -> 1 along the prefix; 1 pad
            [5.0, 5.0, 5.0, 0.0, 0.0],  # all intervals zero -> scale 1; 2 pads
        ]
    )
    valid = torch.tensor(
        [
            [True, True, True, True, True],
            [True, True, True, True, False],
            [True, True, True, False, False],
        ]
    )
    got = compute_time_interval_matrix(times, valid, time_span=8)
    expected = torch.tensor(
        [
            [
                [0, 0, 0, 0, 0],
                [1, 0, 0, 0, 0],  # |12-10|/2
                [1, 0, 0, 0, 0],
                [3, 2, 2, 0, 0],  # floor(7/2), floor(5/2), floor(5/2)
                [8, 8, 8, 8, 0],  # 45, 44, 44, 41 -> clipped at 8
            ],
            [
                [0, 0, 0, 0, 0],
                [1, 0, 0, 0, 0],  # scale 4 (only 0 and 4 seen so far)
                [5, 1, 0, 0, 0],  # scale 1 (|5-4|)
                [8, 7, 6, 0, 0],  # 11 -> clipped at 8
                [0, 0, 0, 0, 0],  # padding row
            ],
            [
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
            ],
        ]
    )
    assert got.dtype == torch.long
    assert torch.equal(got, expected)


def test_interval_matrix_last_row_uses_sequence_min_interval():
    """At the last real position the scale is the whole sequence's min non-zero interval."""
    g = torch.Generator().manual_seed(3)
    B, L, span = 5, 9, 20
    gaps = torch.randint(0, 4, (B, L), generator=g).double() * 7.0
    times = 1.6e9 + torch.cumsum(gaps, dim=1)
    lengths = torch.tensor([9, 5, 1, 7, 3])
    valid = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)
    got = compute_time_interval_matrix(times, valid, span)
    for b in range(B):
        n = int(lengths[b])
        ts = [float(x) for x in times[b, :n]]
        nonzero = [abs(x - y) for x in ts for y in ts if x != y]
        scale = min(nonzero) if nonzero else 1.0
        last = n - 1
        for j in range(L):
            want = min(int(abs(ts[last] - ts[j]) // scale), span) if j < n else 0
            assert int(got[b, last, j]) == want
        assert torch.all(got[b, n:] == 0) and torch.all(got[b, :, n:] == 0)


def test_model_interval_matrix_uses_item_padding():
    model = make_model(time_span=4)
    batch = random_batch()
    tm = model.time_interval_matrix(batch["item_id_list"], batch["timestamp_list"])
    assert tm.shape == (6, MAX_LEN, MAX_LEN)
    assert int(tm.max()) <= 4 and int(tm.min()) >= 0
    pad = batch["item_id_list"] == 0
    assert torch.all(tm[pad] == 0)
    assert torch.all(tm.transpose(1, 2)[pad] == 0)
    assert torch.all(tm.triu(diagonal=1) == 0)


# --------------------------------------------------------------------------- model


def pairwise_attention(att, queries, keys, attn_mask, pos_k, pos_v, time_matrix, emb_k, emb_v):
    """The reference code's form: materialize the ``[B, L, L, H]`` interval embeddings."""
    B, L, H = queries.shape
    h, d = att.n_heads, att.head_size
    q = att.query(queries).view(B, L, h, d)
    k = (att.key(keys) + pos_k).view(B, L, h, d)
    v = (att.value(keys) + pos_v).view(B, L, h, d)
    tk = emb_k[time_matrix].view(B, L, L, h, d)  # [b, i, j, h, d]
    tv = emb_v[time_matrix].view(B, L, L, h, d)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) + torch.einsum("bihd,bijhd->bhij", q, tk)
    scores = (scores / d**0.5).masked_fill(~attn_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("bhij,bjhd->bihd", probs, v) + torch.einsum("bhij,bijhd->bihd", probs, tv)
    return out.reshape(B, L, H) + queries


def test_factored_attention_equals_pairwise_form():
    """Gather / scatter-add over the interval tables == attending over [B, L, L, H] embeddings."""
    torch.manual_seed(4)
    B, L, H, T = 3, 7, 12, 9
    att = TimeIntervalMultiHeadAttention(n_heads=3, hidden_size=H, attn_dropout_prob=0.0)
    queries, keys, pos_k, pos_v = (torch.randn(B, L, H, dtype=torch.float64) for _ in range(4))
    att = att.double()
    lengths = torch.tensor([7, 4, 1])
    valid = torch.arange(L)[None, :] < lengths[:, None]
    attn_mask = torch.ones(L, L, dtype=torch.bool).tril()[None] & valid[:, None, :]
    time_matrix = torch.randint(0, T, (B, L, L))
    emb_k = torch.randn(T, H, dtype=torch.float64, requires_grad=True)
    emb_v = torch.randn(T, H, dtype=torch.float64, requires_grad=True)
    got = att(queries, keys, attn_mask, pos_k, pos_v, time_matrix, emb_k, emb_v)
    want = pairwise_attention(att, queries, keys, attn_mask, pos_k, pos_v, time_matrix, emb_k, emb_v)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # same gradients into the interval tables
    g_got = torch.autograd.grad(got.square().sum(), (emb_k, emb_v))
    g_want = torch.autograd.grad(want.square().sum(), (emb_k, emb_v))
    for a, b in zip(g_got, g_want):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_output_shapes_and_consistency():
    model = make_model().eval()
    batch = random_batch()
    B = batch["item_id_list"].shape[0]
    with torch.no_grad():
        last = model.forward(
            batch["item_id_list"], batch["item_length"], batch["timestamp_list"]
        )
        allpos = model.all_position_output(batch)
        scores = model.full_sort_predict(batch)
        pred = model.predict(batch)
    assert last.shape == (B, 16)
    assert allpos.shape == (B, MAX_LEN, 16)
    assert scores.shape == (B, N_ITEMS)
    assert pred.shape == (B,)
    idx = batch["item_length"] - 1
    torch.testing.assert_close(last, allpos[torch.arange(B), idx])
    torch.testing.assert_close(scores, last @ model.item_embedding.weight.T)
    torch.testing.assert_close(pred, scores[torch.arange(B), batch["item_id"]])
    assert isinstance(model.item_embedding, torch.nn.Embedding)
    assert model.item_embedding.padding_idx == 0


def test_causal_masking_items_and_timestamps():
    model = make_model().eval()
    batch = random_batch()
    items, times = batch["item_id_list"], batch["timestamp_list"]
    with torch.no_grad():
        base = model.all_position_output(batch)
        for t in range(1, MAX_LEN):
            # change a later item and make its timestamp create a much smaller interval
            # (this changes the sequence's min interval, i.e. the personal time scale)
            items2, times2 = items.clone(), times.clone()
            items2[0, t] = (items2[0, t] % (N_ITEMS - 1)) + 1
            times2[0, t] = times2[0, t - 1] + 1.0
            if t + 1 < MAX_LEN:
                times2[0, t + 1:] = times2[0, t + 1:] + 1000.0
            changed = Interaction(
                {
                    "item_id_list": items2,
                    "timestamp_list": times2,
                    "item_length": batch["item_length"],
                }
            )
            out = model.all_position_output(changed)
            torch.testing.assert_close(out[0, :t], base[0, :t], rtol=0, atol=1e-5)
            assert not torch.allclose(out[0, t], base[0, t])
            torch.testing.assert_close(out[1:], base[1:], rtol=0, atol=1e-5)

        # filling a padded slot never changes the real positions
        short = int(batch["item_length"][1])
        items3, times3 = items.clone(), times.clone()
        items3[1, short] = 5
        times3[1, short] = times3[1, short - 1] + 1.0
        out = model.all_position_output(
            Interaction(
                {
                    "item_id_list": items3,
                    "timestamp_list": times3,
                    "item_length": batch["item_length"],
                }
            )
        )
        torch.testing.assert_close(out[1, :short], base[1, :short], rtol=0, atol=1e-5)


def test_time_intervals_matter():
    model = make_model().eval()
    batch = random_batch()
    stretched = Interaction(
        {
            "item_id_list": batch["item_id_list"],
            "timestamp_list": batch["timestamp_list"] * 0.0
            + torch.arange(MAX_LEN).float() ** 2,
            "item_length": batch["item_length"],
        }
    )
    with torch.no_grad():
        a = model.full_sort_predict(batch)
        b = model.full_sort_predict(stretched)
    assert not torch.allclose(a, b)


def test_ce_loss_decreases():
    model = make_model()
    batch = random_batch(batch_size=8, seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    with torch.no_grad():
        before = model.calculate_loss(batch).item()
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model.calculate_loss(batch).item()
    assert after < before - 0.5, (before, after)


def test_bpr_loss_finite_and_backprops():
    model = make_model(loss_type="BPR")
    batch = random_batch()
    loss = model.calculate_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grad = model.item_embedding.weight.grad
    assert grad is not None and torch.isfinite(grad).all()


def test_bad_loss_type():
    with pytest.raises(NotImplementedError):
        make_model(loss_type="MSE")


def test_missing_timestamp_field_raises():
    with pytest.raises(ValueError, match="load_col"):
        TiSASRec(make_config(), FakeDataset(with_time=False))
    with pytest.raises(ValueError, match="TiSASRec needs timestamps"):
        TiSASRec(make_config(TIME_FIELD=None), FakeDataset())


# --------------------------------------------------------------------------- RecBole


def _recbole_config(load_col):
    import recbole
    from recbole.config import Config

    data_path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
    return Config(
        model=TiSASRec,
        dataset="ml-100k",
        config_file_list=[MODEL_YAML],
        config_dict={"finest_protocol": True, 
            "data_path": data_path,
            "load_col": load_col,
            "hidden_size": 16,
            "inner_size": 16,
            "MAX_ITEM_LIST_LENGTH": 10,
            "user_inter_num_interval": "[200,inf)",
            "use_gpu": False,
            "device": "cpu",
            "train_batch_size": 64,
            "eval_batch_size": 64,
            "train_neg_sample_args": None,
            "show_progress": False,
            "seed": 0,
            "reproducibility": True,
        },
    )


def test_recbole_ml100k_end_to_end():
    from recbole.data import create_dataset, data_preparation

    config = _recbole_config({"inter": ["user_id", "item_id", "timestamp"]})
    assert config["time_span"] == 256 and config["n_heads"] == 2 and config["loss_type"] == "CE"
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    model = TiSASRec(config, train_data.dataset)
    batch = next(iter(train_data))
    model.eval()  # no dropout: the loss is cross-entropy over the full-sort scores of the same batch
    with torch.no_grad():
        before = model.calculate_loss(batch).item()
        expected = torch.nn.functional.cross_entropy(model.full_sort_predict(batch), batch["item_id"])
    assert before == pytest.approx(expected.item(), rel=1e-5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(5):  # RecBole's real batch (with its timestamps) trains
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert model.calculate_loss(batch).item() < before - 0.1
        interaction = next(iter(test_data))[0]
        scores = model.full_sort_predict(interaction)
        assert scores.shape == (interaction["item_id_list"].shape[0], dataset.item_num)
        # predict() on the test targets is the full-sort score of those items
        picked = scores.gather(1, interaction["item_id"].unsqueeze(1)).squeeze(1)
        assert torch.allclose(model.predict(interaction), picked, atol=1e-5)


def test_recbole_ml100k_without_timestamp_raises():
    from recbole.data import create_dataset

    config = _recbole_config({"inter": ["user_id", "item_id"]})
    dataset = create_dataset(config)
    assert "timestamp" not in dataset.field2type
    with pytest.raises(ValueError, match="load_col"):
        TiSASRec(config, dataset)
