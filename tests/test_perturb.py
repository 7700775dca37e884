"""Tests for recbole_finest.data.perturb (evaluation perturbations and FINEST's simulation)."""
import numpy as np
import pytest

from recbole_finest.data.casper import cascading_scores
from recbole_finest.data.perturb import (
    ITEM_RULES,
    KINDS,
    SELECTIONS,
    perturb,
    perturbation_size,
    simulate,
)
from recbole_finest.data.sequences import TrainingSequences

N_ITEMS = 30  # ids 1..29 real, 0 = padding


def make_seqs(seed=0, n_users=25, max_rows=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, max_rows + 1, size=n_users)
    seq = np.repeat(np.arange(n_users), lengths)
    n = int(lengths.sum())
    # items 1..28 only, so item 29 is the (unused) least popular item
    items = rng.integers(1, N_ITEMS - 1, size=n)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    csum = np.cumsum(rng.integers(0, 3, size=n).astype(float))  # ties within users on purpose
    times = csum - np.r_[0.0, csum][starts] + np.repeat(rng.uniform(0, 5, n_users), lengths)
    return TrainingSequences.from_rows(seq, items, times, np.arange(n), np.arange(100, 100 + n_users),
                                       N_ITEMS)


def snapshot(seqs):
    return [a.copy() for a in (seqs.offsets, seqs.user_ids, seqs.items, seqs.timestamps, seqs.ids)]


def assert_valid(seqs):
    assert seqs.offsets[0] == 0 and seqs.offsets[-1] == seqs.n_rows
    assert np.all(np.diff(seqs.offsets) >= 0)
    for u in range(seqs.n_sequences):
        t = seqs.timestamps[seqs.offsets[u]:seqs.offsets[u + 1]]
        assert np.all(np.diff(t) >= 0)
    assert np.all((seqs.items >= 1) & (seqs.items < seqs.n_items))
    real = seqs.ids[seqs.ids >= 0]
    assert len(np.unique(real)) == len(real)


def rows_of(seqs):
    """{id: (user, item, timestamp)} of the rows with a real id."""
    seq = seqs.seq_of_row()
    return {int(i): (int(seqs.user_ids[s]), int(it), float(t))
            for i, s, it, t in zip(seqs.ids, seq, seqs.items, seqs.timestamps) if i >= 0}


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_exact_counts_every_combination(selection, kind):
    seqs = make_seqs()
    before = snapshot(seqs)
    n = 13
    res = perturb(seqs, selection, kind, np.random.default_rng(1), count=n, max_len=8)
    # the input is never mutated
    for a, b in zip(before, snapshot(seqs)):
        np.testing.assert_array_equal(a, b)
    new = res.seqs
    assert_valid(new)
    assert res.kind == kind
    assert len(res.selected_ids) == n == len(set(res.selected_ids.tolist()))
    assert np.all(np.diff(res.selected_rows) > 0)
    np.testing.assert_array_equal(seqs.ids[res.selected_rows], res.selected_ids)
    kinds = {k: res.selected_ids[res.selected_kinds == k] for k in KINDS[:3]}
    n_del, n_rep, n_ins = (len(kinds[k]) for k in KINDS[:3])
    if kind == "mixed":
        assert sorted((n_del, n_rep, n_ins)) == [4, 4, 5] and (n_del, n_rep, n_ins) == (5, 4, 4)
    else:
        assert len(kinds[kind]) == n
    assert new.n_rows == seqs.n_rows - n_del + n_ins
    assert np.sum(new.ids == -1) == n_rep + n_ins
    old_rows, new_rows = rows_of(seqs), rows_of(new)
    # deleted and replaced ids disappear, everything else is untouched
    gone = set(kinds["deletion"].tolist()) | set(kinds["replacement"].tolist())
    assert set(new_rows) == set(old_rows) - gone
    for i, row in new_rows.items():
        assert row == old_rows[i]
    assert new.user_ids.tolist() == seqs.user_ids.tolist()


def test_deletion_removes_exactly_the_selected_rows():
    seqs = make_seqs(3)
    res = perturb(seqs, "random", "deletion", np.random.default_rng(0), ratio=0.05)
    n = int(np.floor(0.05 * seqs.n_rows + 0.5))
    assert len(res.selected_ids) == n and res.seqs.n_rows == seqs.n_rows - n
    keep = np.setdiff1d(seqs.ids, res.selected_ids)
    np.testing.assert_array_equal(res.seqs.ids, keep)
    np.testing.assert_array_equal(res.seqs.items, seqs.items[keep])
    # per-user lengths drop by the number of deleted rows of that user
    lost = np.bincount(seqs.seq_of_row()[res.selected_rows], minlength=seqs.n_sequences)
    np.testing.assert_array_equal(res.seqs.lengths, seqs.lengths - lost)


def test_insertion_places_new_row_immediately_before_chosen():
    seqs = make_seqs(4)
    res = perturb(seqs, "random", "insertion", np.random.default_rng(2), count=20,
                  insert_with="least_popular")
    new = res.seqs
    assert new.n_rows == seqs.n_rows + 20
    np.testing.assert_array_equal(new.ids[new.ids >= 0], seqs.ids)  # original rows all kept, in order
    lp = seqs.least_popular_item()
    assert lp == N_ITEMS - 1
    new_seq = new.seq_of_row()
    pos = {int(i): r for r, i in enumerate(new.ids) if i >= 0}
    for sid in res.selected_ids:
        r = pos[int(sid)]
        assert new.ids[r - 1] == -1  # the new row sits right before the chosen one
        assert new_seq[r - 1] == new_seq[r]  # in the same user's sequence
        assert new.items[r - 1] == lp
        assert new.timestamps[r - 1] == new.timestamps[r]
    np.testing.assert_array_equal(new.lengths - seqs.lengths,
                                  np.bincount(seqs.seq_of_row()[res.selected_rows],
                                              minlength=seqs.n_sequences))


def test_insertion_before_first_row_of_a_user():
    seqs = make_seqs(5)
    first = seqs.offsets[:-1]
    res = perturb(seqs, "random", "insertion", np.random.default_rng(0), count=seqs.n_rows)
    # every row chosen: every sequence doubles, and starts with an inserted row
    assert np.all(res.seqs.lengths == 2 * seqs.lengths)
    assert np.all(res.seqs.ids[res.seqs.offsets[:-1]] == -1)
    np.testing.assert_array_equal(res.seqs.ids[res.seqs.offsets[:-1] + 1], seqs.ids[first])


def test_replacement_rules():
    seqs = make_seqs(6)
    res = perturb(seqs, "random", "replacement", np.random.default_rng(3), count=40,
                  replace_with="least_popular")
    new = res.seqs
    assert new.n_rows == seqs.n_rows
    np.testing.assert_array_equal(new.ids == -1, np.isin(np.arange(seqs.n_rows), res.selected_rows))
    assert np.all(new.items[res.selected_rows] == seqs.least_popular_item())
    np.testing.assert_array_equal(new.timestamps, seqs.timestamps)

    res = perturb(seqs, "random", "replacement", np.random.default_rng(3), count=seqs.n_rows)
    new_items = res.seqs.items
    assert np.all(new_items != seqs.items)  # random: never the original item
    assert np.all((new_items >= 1) & (new_items <= N_ITEMS - 1))
    assert len(np.unique(new_items)) > 20  # spread over the catalogue


def test_random_item_is_uniform_over_other_items():
    seqs = TrainingSequences.from_rows(np.zeros(4000, np.int64), np.full(4000, 2), np.arange(4000.0),
                                       np.arange(4000), np.array([1]), 5)  # real items 1..4
    res = perturb(seqs, "random", "replacement", np.random.default_rng(0), count=4000)
    counts = np.bincount(res.seqs.items, minlength=5)
    assert counts[0] == 0 and counts[2] == 0
    assert np.all(np.abs(counts[[1, 3, 4]] - 4000 / 3) < 150)


def test_earliest_latest_pools():
    seqs = make_seqs(7)
    n_rows = seqs.n_rows
    order = np.lexsort((np.arange(n_rows), seqs.timestamps))
    k = int(np.ceil(0.2 * n_rows))
    for sel, pool in (("earliest", order[:k]), ("latest", order[-k:])):
        res = perturb(seqs, sel, "deletion", np.random.default_rng(0), count=10, time_fraction=0.2)
        assert set(res.selected_rows.tolist()) <= set(pool.tolist())
    # pool grows to n when n exceeds time_fraction * n_rows: then it is exactly the first n
    res = perturb(seqs, "earliest", "deletion", np.random.default_rng(0), count=k + 5, time_fraction=0.2)
    assert sorted(res.selected_rows.tolist()) == sorted(order[:k + 5].tolist())


def test_casper_selection_is_top_n():
    seqs = make_seqs(8)
    scores = cascading_scores(seqs, 10)
    res = perturb(seqs, "casper", "deletion", np.random.default_rng(0), count=7, max_len=10)
    order = sorted(range(seqs.n_rows), key=lambda r: (-scores[r], r))
    assert sorted(res.selected_rows.tolist()) == sorted(order[:7])
    other = perturb(seqs, "casper", "deletion", np.random.default_rng(99), count=7, max_len=10)
    np.testing.assert_array_equal(res.selected_ids, other.selected_ids)  # deterministic


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_result_different_seed_different(kind):
    seqs = make_seqs(9)
    a = perturb(seqs, "random", kind, np.random.default_rng(5), ratio=0.1)
    b = perturb(seqs, "random", kind, np.random.default_rng(5), ratio=0.1)
    c = perturb(seqs, "random", kind, np.random.default_rng(6), ratio=0.1)
    for x, y in zip(snapshot(a.seqs), snapshot(b.seqs)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.selected_ids, b.selected_ids)
    np.testing.assert_array_equal(a.selected_kinds, b.selected_kinds)
    assert a.selected_ids.tolist() != c.selected_ids.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_simulate(kind):
    seqs = make_seqs(10)
    res = simulate(seqs, 0.1, kind, np.random.default_rng(0))
    n = int(np.floor(0.1 * seqs.n_rows + 0.5))
    assert len(res.selected_ids) == n
    lp = seqs.least_popular_item()
    new = res.seqs
    made = new.ids == -1
    assert np.all(new.items[made] == lp)  # replacement and insertion both use the least popular item
    if kind == "deletion":
        assert new.n_rows == seqs.n_rows - n and not made.any()
    elif kind == "replacement":
        assert new.n_rows == seqs.n_rows and made.sum() == n
    elif kind == "insertion":
        assert new.n_rows == seqs.n_rows + n and made.sum() == n
    again = simulate(seqs, 0.1, kind, np.random.default_rng(0))
    np.testing.assert_array_equal(again.seqs.items, new.items)


def test_ratio_rounding():
    assert perturbation_size(1000, ratio=0.001) == 1
    assert perturbation_size(100, ratio=0.001) == 1  # at least 1
    assert perturbation_size(1500, ratio=0.001) == 2  # 1.5 rounds up
    assert perturbation_size(1000, ratio=0.0125) == 13  # 12.5 rounds up
    assert perturbation_size(10, count=10) == 10


@pytest.mark.parametrize("kwargs, key", [
    (dict(selection="oldest"), "selection"),
    (dict(kind="swap"), "kind"),
    (dict(ratio=0.0), "ratio"),
    (dict(ratio=1.0), "ratio"),
    (dict(ratio=-0.1), "ratio"),
    (dict(ratio="0.1"), "ratio"),
    (dict(ratio=None, count=0), "count"),
    (dict(ratio=None, count=-3), "count"),
    (dict(ratio=None, count=2.5), "count"),
    (dict(ratio=None, count=10**6), "count"),
    (dict(ratio=0.1, count=3), "ratio"),
    (dict(ratio=None), "count"),
    (dict(replace_with="popular"), "replace_with"),
    (dict(insert_with="popular"), "insert_with"),
    (dict(selection="earliest", time_fraction=0.0), "time_fraction"),
    (dict(rng=np.random.RandomState(0)), "rng"),
])
def test_bad_input_names_the_key(kwargs, key):
    seqs = make_seqs(11)
    args = dict(selection="random", kind="deletion", rng=np.random.default_rng(0), ratio=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=key) as err:
        perturb(seqs, **args)
    bad = kwargs.get(key, args.get(key))
    assert repr(bad) in str(err.value) or key in ("count",)
    if key in ("selection", "kind", "replace_with", "insert_with"):
        allowed = {"selection": SELECTIONS, "kind": KINDS}.get(key, ITEM_RULES)
        assert str(allowed) in str(err.value)


def test_simulate_bad_kind():
    with pytest.raises(ValueError, match="kind='random'"):
        simulate(make_seqs(), 0.01, "random", np.random.default_rng(0))



def test_casper_roots_only_picks_roots_first():
    seqs = make_seqs(12)
    scores = cascading_scores(seqs, 10, roots_only=True)
    n_roots = int(np.sum(scores > 0))
    res = perturb(seqs, "casper", "replacement", np.random.default_rng(0), count=n_roots, max_len=10,
                  casper_roots_only=True)
    assert set(res.selected_rows.tolist()) == set(np.flatnonzero(scores > 0).tolist())
