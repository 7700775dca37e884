"""rank_lists's sorted-integer-key path equals torch.sort(descending, stable) exactly."""
import pytest
import torch

from recbole_finest.stability import metrics
from recbole_finest.stability.metrics import rank_lists

INF = float("inf")
DENORMAL = 1e-45  # smallest positive float32 denormal


def _reference(scores, depth=None):
    """The old path: stable descending torch.sort of the non-padding columns, ids + 1."""
    ids = torch.sort(scores[:, 1:], dim=1, descending=True, stable=True).indices + 1
    return ids if depth is None else ids[:, :depth]


@pytest.fixture
def key_calls(monkeypatch):
    """Counts the calls of the key path (so a test knows which path it checked)."""
    calls = []
    real = metrics._rank_ids_by_keys

    def spy(x, depth):
        calls.append(tuple(x.shape))
        return real(x, depth)

    monkeypatch.setattr(metrics, "_rank_ids_by_keys", spy)
    return calls


def _tied_scores(gen, n, m):
    """float32 [n, m] with many ties and every special value: few distinct values, signed
    zeros, +-inf, +-denormals, negatives."""
    special = torch.tensor([0.0, -0.0, INF, -INF, DENORMAL, -DENORMAL, 2 * DENORMAL, -1.5, 1.5, -3.0])
    base = torch.randint(-3, 4, (n, m), generator=gen).float() * 0.5
    pick = torch.randint(0, len(special), (n, m), generator=gen)
    use_special = torch.rand(n, m, generator=gen) < 0.4
    return torch.where(use_special, special[pick], base)


@pytest.mark.parametrize("depth", [None, 1, 7, 40])
def test_key_path_equals_stable_sort_with_ties_and_specials(key_calls, depth):
    gen = torch.Generator().manual_seed(0)
    scores = _tied_scores(gen, 25, 41)
    got = rank_lists(scores, depth)
    assert key_calls, "float32 CPU scores must take the key path"
    assert torch.equal(got, _reference(scores, depth))


def test_signed_zeros_tie_and_keep_column_order(key_calls):
    scores = torch.tensor([[9.0, -0.0, 0.0, -0.0, 1.0, 0.0, -INF, INF, -DENORMAL, DENORMAL]])
    got = rank_lists(scores)
    assert key_calls
    # +inf, 1, +denormal, then the four zeros by column (-0.0 == +0.0), -denormal, -inf
    assert got.tolist() == [[7, 4, 9, 1, 2, 3, 5, 8, 6]]
    assert torch.equal(got, _reference(scores))


def test_random_continuous_scores(key_calls):
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(30, 200, generator=gen) * 1e3
    assert torch.equal(rank_lists(scores, 50), _reference(scores, 50))
    assert key_calls


def test_single_item_column():
    scores = torch.tensor([[0.3, -2.0], [5.0, INF]])
    assert rank_lists(scores).tolist() == [[1], [1]]
    assert rank_lists(torch.zeros(3, 1)).shape == (3, 0)


def test_chunks_with_a_nan_chunk_mix_paths(monkeypatch, key_calls):
    monkeypatch.setattr(metrics, "_CHUNK_ELEMS", 3 * 16)  # 3 rows of 16 items per chunk
    gen = torch.Generator().manual_seed(2)
    scores = _tied_scores(gen, 10, 17)
    scores[4, 5] = float("nan")  # rows 3..5 are one chunk -> torch.sort for that chunk
    got = rank_lists(scores, 9)
    assert key_calls == [(3, 16), (3, 16), (1, 16)]  # chunks 0-2, 6-8, 9
    assert torch.equal(got, _reference(scores, 9))


def test_non_contiguous_and_grad_scores(key_calls):
    gen = torch.Generator().manual_seed(3)
    scores = _tied_scores(gen, 12, 9).t()  # [9, 12] transposed view
    assert torch.equal(rank_lists(scores), _reference(scores))
    leaf = scores.contiguous().requires_grad_(True)
    assert torch.equal(rank_lists(leaf), _reference(scores))
    assert len(key_calls) == 2


def test_float64_and_nan_keep_torch_sort(key_calls):
    gen = torch.Generator().manual_seed(4)
    doubles = _tied_scores(gen, 6, 11).double()
    assert torch.equal(rank_lists(doubles, 4), _reference(doubles, 4))
    with_nan = _tied_scores(gen, 6, 11)
    with_nan[0, 3] = float("nan")
    assert torch.equal(rank_lists(with_nan), _reference(with_nan))
    assert key_calls == []
