"""Tests for recbole_finest.data.casper (CASPER cascading scores)."""
import numpy as np
import pytest

from recbole_finest.data.casper import (
    NOT_A_NODE,
    build_dag,
    cascading_scores,
    casper_select,
)
from recbole_finest.data.sequences import TrainingSequences


def make_seqs(users, n_items=None):
    """``users``: list of [(item, timestamp), ...] per user, chronological."""
    seq = np.concatenate([np.full(len(u), k) for k, u in enumerate(users)]).astype(np.int64)
    items = np.array([it for u in users for it, _ in u], dtype=np.int64)
    times = np.array([t for u in users for _, t in u], dtype=np.float64)
    if n_items is None:
        n_items = int(items.max()) + 1
    return TrainingSequences.from_rows(seq, items, times, np.arange(len(items)),
                                       np.arange(1, len(users) + 1), n_items)


def brute_force(seqs, max_len, roots_only=False):
    """Scores from an explicit edge list and one DFS per node."""
    lengths = seqs.lengths
    nodes = []
    for u in range(seqs.n_sequences):
        lo, hi = seqs.offsets[u], seqs.offsets[u + 1]
        nodes.extend(range(max(lo, hi - max_len), hi))
    node_set = set(nodes)
    edges = {r: [] for r in nodes}
    indeg = {r: 0 for r in nodes}
    for u in range(seqs.n_sequences):
        lo, hi = seqs.offsets[u], seqs.offsets[u + 1]
        mine = [r for r in range(lo, hi) if r in node_set]
        for a, b in zip(mine, mine[1:]):
            edges[a].append(b)
            indeg[b] += 1
    by_item = {}
    for r in sorted(nodes, key=lambda r: (seqs.timestamps[r], r)):
        by_item.setdefault(int(seqs.items[r]), []).append(r)
    for chain in by_item.values():
        for a, b in zip(chain, chain[1:]):
            edges[a].append(b)
            indeg[b] += 1
    assert lengths.sum() == seqs.n_rows
    out = np.full(seqs.n_rows, -1, dtype=np.int64)
    for r in nodes:
        seen, stack = {r}, [r]
        while stack:
            v = stack.pop()
            for w in edges[v]:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        out[r] = len(seen) if (not roots_only or indeg[r] == 0) else 0
    return out


def test_hand_made_graph():
    # user A: rows 0 (item 1, t=1), 1 (item 2, t=2), 2 (item 3, t=3)
    # user B: rows 3 (item 2, t=1.5), 4 (item 3, t=2.5)
    # user edges 0->1, 1->2, 3->4; item 2: row 3 (t=1.5) -> row 1 (t=2);
    # item 3: row 4 (t=2.5) -> row 2 (t=3).
    # reach: 2={2}:1, 1={1,2}:2, 0={0,1,2}:3, 4={4,2}:2, 3={3,4,1,2}:4
    seqs = make_seqs([[(1, 1.0), (2, 2.0), (3, 3.0)], [(2, 1.5), (3, 2.5)]])
    assert cascading_scores(seqs, 50).tolist() == [3, 2, 1, 4, 2]
    # max_len=2: row 0 is not a node; edges 1->2, 3->4, 3->1, 4->2. Only row 3 is a root.
    assert cascading_scores(seqs, 2).tolist() == [NOT_A_NODE, 2, 1, 4, 2]
    assert cascading_scores(seqs, 2, roots_only=True).tolist() == [NOT_A_NODE, 0, 0, 4, 0]
    # top-2: row 3 (4) then row 0 (3); with max_len=2 the tie 2/2 between rows 1, 4 -> row 1
    assert casper_select(seqs, 2, 50).tolist() == [3, 0]
    assert casper_select(seqs, 3, 2).tolist() == [3, 1, 4]
    # non-nodes come last, so every row can be selected
    assert casper_select(seqs, 5, 2).tolist() == [3, 1, 4, 2, 0]


def test_item_ties_by_row_order_and_repeated_item():
    # user A: item 5 at t=1 twice (rows 0, 1); user B: item 5 at t=1 (row 2), item 6 at t=2 (row 3)
    # item 5 chain by (t, row): 0 -> 1 -> 2; user edges 0->1, 2->3 (0->1 is both kinds)
    # reach: 3:1, 2:{2,3}:2, 1:{1,2,3}:3, 0:{0,1,2,3}:4
    seqs = make_seqs([[(5, 1.0), (5, 1.0)], [(5, 1.0), (6, 2.0)]])
    assert cascading_scores(seqs, 50).tolist() == [4, 3, 2, 1]


def test_chain_counts_and_isolated():
    # one user, max_len 3 over 5 rows: nodes rows 2, 3, 4 in a chain -> 3, 2, 1
    seqs = make_seqs([[(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)], [(9, 0.0)]])
    assert cascading_scores(seqs, 3).tolist() == [-1, -1, 3, 2, 1, 1]


def test_empty_and_bad_args():
    seqs = TrainingSequences.from_rows(np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                                       np.zeros(0), np.array([1]), 3)
    assert cascading_scores(seqs, 5).tolist() == []
    one = make_seqs([[(1, 1.0)]])
    with pytest.raises(ValueError, match="method"):
        cascading_scores(one, 5, method="bfs")
    with pytest.raises(ValueError, match="max_len"):
        cascading_scores(one, 0)
    with pytest.raises(ValueError, match="count"):
        casper_select(one, 2, 5)


def random_seqs(rng, n_users, n_items, max_rows, tie_heavy=False):
    lengths = rng.integers(0, max_rows + 1, size=n_users)
    seq = np.repeat(np.arange(n_users), lengths)
    n = int(lengths.sum())
    items = rng.integers(1, n_items, size=n)
    if tie_heavy:
        gaps = rng.integers(0, 2, size=n).astype(float)
    else:
        gaps = rng.exponential(size=n)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    csum = np.cumsum(gaps)
    times = csum - np.r_[0.0, csum][starts] + np.repeat(rng.uniform(0, 3, n_users), lengths)
    return TrainingSequences.from_rows(seq, items, times, np.arange(n), np.arange(n_users), n_items)


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    seqs = random_seqs(rng, n_users=int(rng.integers(1, 12)), n_items=int(rng.integers(2, 8)),
                       max_rows=int(rng.integers(1, 15)), tie_heavy=bool(seed % 2))
    max_len = int(rng.integers(1, 10))
    expect = brute_force(seqs, max_len)
    # memory_mb tiny -> one 64-bit word per chunk and batches of 1 node: exercises chunking
    for mem in (128, 1e-6):
        assert cascading_scores(seqs, max_len, memory_mb=mem).tolist() == expect.tolist()
    assert cascading_scores(seqs, max_len, roots_only=True).tolist() == \
        brute_force(seqs, max_len, roots_only=True).tolist()


def test_multi_chunk_larger_graph():
    rng = np.random.default_rng(123)
    seqs = random_seqs(rng, n_users=40, n_items=30, max_rows=25)
    expect = brute_force(seqs, 10)
    m = len(build_dag(seqs, 10)[0])
    assert m > 64 * 3  # more than one chunk
    # budget giving 3-word (192-bit) column chunks: several words and several chunks
    mem = (32 * (m + 1) + 16) / 2**20  # words = (3/4 budget) // (8 (m + 1)) = 3
    got = cascading_scores(seqs, 10, memory_mb=mem)
    assert got.tolist() == expect.tolist()


def test_dag_edges_go_forward():
    rng = np.random.default_rng(5)
    seqs = random_seqs(rng, n_users=20, n_items=6, max_rows=20, tie_heavy=True)
    rows, nu, ni = build_dag(seqs, 7)
    m = len(rows)
    t = np.arange(m)
    assert np.all((nu == m) | (nu > t)) and np.all((ni == m) | (ni > t))
    key = list(zip(seqs.timestamps[rows], rows))
    assert key == sorted(key)


def test_select_is_top_n_with_deterministic_ties():
    rng = np.random.default_rng(9)
    seqs = random_seqs(rng, n_users=15, n_items=5, max_rows=12)
    scores = brute_force(seqs, 6)
    for n in (1, 5, 17):
        sel = casper_select(seqs, n, 6)
        assert len(set(sel.tolist())) == n
        order = sorted(range(seqs.n_rows), key=lambda r: (-scores[r], r))
        assert sel.tolist() == order[:n]


def test_sketch_is_close_and_seeded():
    rng = np.random.default_rng(1)
    seqs = random_seqs(rng, n_users=60, n_items=20, max_rows=30)
    exact = cascading_scores(seqs, 20)
    a = cascading_scores(seqs, 20, method="sketch", sketch_size=256, rng=np.random.default_rng(0))
    b = cascading_scores(seqs, 20, method="sketch", sketch_size=256, rng=np.random.default_rng(0))
    assert a.tolist() == b.tolist()
    nodes = exact > 0
    assert np.all(a[~nodes] == -1)
    rel = np.abs(a[nodes] - exact[nodes]) / exact[nodes]
    assert np.median(rel) < 0.1
    with pytest.raises(ValueError, match="rng"):
        cascading_scores(seqs, 20, method="sketch")
