"""CASPER cascading scores (Oh et al., "Rank List Sensitivity of Recommender Systems to
Interaction Perturbations", CIKM 2022), computed exactly and without a per-node search.

Interaction dependency DAG (FINEST spec section 4), built over one ``TrainingSequences``:

* nodes: the training rows that lie within the last ``max_len`` rows of their user's
  training sequence (a user with ``<= max_len`` rows contributes all of them);
* edges, always from the earlier to the later interaction: consecutive nodes of the same
  user, and consecutive nodes of the same item, where the nodes of one item are ordered by
  ``(timestamp, row index)``.

Every edge goes forward in the order ``(timestamp, row index)`` (rows of a user are
chronological, so the next row of a user never has a smaller timestamp), which is therefore a
topological order of the DAG. The cascading score of a node is the number of nodes reachable
from it, itself included.

Exact method (``method="exact"``, the default). Nodes are numbered in topological order and
grouped by *height* (length of the longest path to a sink; one linear pass). A node's
successors all have smaller heights, so all nodes of one height are updated at once:
``reach[v] = own_bit(v) | reach[next_user(v)] | reach[next_item(v)]``, with ``reach`` held
as ``uint64`` bitsets. To bound memory the bit columns are processed in chunks of nodes
(``memory_mb`` caps the bitset matrix plus its temporaries, apart from the ``O(M)`` graph
arrays); a node can only reach nodes later in the
topological order, so a chunk ``[c0, c1)`` only needs the nodes numbered ``< c1``. The
score is the sum over chunks of the popcounts. Work is ``O(M^2 / 64)`` word operations for
``M`` nodes (``M <= n_users * max_len``) plus ``O(levels * chunks)`` vectorized numpy calls.

Approximate method (``method="sketch"``, for graphs too big for the exact one):
Cohen's k-minimum estimator of reachability-set sizes. Every node draws ``sketch_size``
independent Exp(1) ranks; the minimum rank over the reachable set propagates along the same
height levels; the estimate is ``(k - 1) / sum(minima)`` (unbiased, relative standard error
about ``1 / sqrt(k - 2)``), rounded and clipped to ``>= 1``. It needs a ``numpy`` Generator
(``rng``) and is deterministic given its seed.

Automatic choice (``method="auto"``, what the stability run uses through the config key
``casper_method``): the exact method for DAGs of at most ``exact_max_nodes`` nodes
(``casper_exact_max_nodes``, default :data:`EXACT_MAX_NODES`), the sketch above, seeded
with :data:`SKETCH_SEED` unless an ``rng`` is given (so the selection stays deterministic,
as the exact one is). The choice is logged. Measured on the synthetic data of
``benchmarks/scale.py`` (docs/performance.md): the exact method's time grows as ``M^2``
while the sketch's grows linearly.

Difference from the reference implementation (``claws-lab/casper``, ``src/main.py``): it
scores only the in-degree-0 nodes (others keep score 0), builds user/item edges over the
last ``max_len - 1`` rows of every user / item, and picks ``np.argsort(scores)[-n:]``
(unstable ties). Here the graph follows the spec, every node is scored unless
``roots_only=True`` (which reproduces the "in-degree-0 only" rule: non-root nodes score 0),
and ties are broken deterministically (see ``casper_select``).
"""

from logging import getLogger

import numpy as np

METHODS = ("exact", "sketch", "auto")

#: ``method="auto"`` uses the exact method up to this many DAG nodes and the sketch above.
EXACT_MAX_NODES = 250_000
#: Seed of the sketch's ranks when ``method="auto"`` picks it and no ``rng`` is given.
SKETCH_SEED = 0

NOT_A_NODE = -1  # score of a row that is not a node of the DAG

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


def build_dag(seqs, max_len):
    """Return the DAG in topological numbering.

    Returns:
        ``(node_rows, next_user, next_item)``: ``node_rows`` int64 ``[M]`` is the row of
        topological node ``t`` (sorted by ``(timestamp, row)``); ``next_user`` /
        ``next_item`` int64 ``[M]`` the topological index of the successor along the user /
        item chain, or ``M`` (a sentinel) when there is none.
    """
    if max_len < 1:
        raise ValueError(f"max_len={max_len!r} must be >= 1")
    lengths = seqs.lengths
    pos = seqs.position_in_sequence()
    seq = seqs.seq_of_row()
    is_node = pos >= (lengths[seq] - max_len)
    rows = np.flatnonzero(is_node)  # row order
    m = len(rows)
    ts = seqs.timestamps[rows]
    topo = np.lexsort((rows, ts))  # topo position -> index into `rows`
    rank = np.empty(m, dtype=np.int64)  # index into `rows` -> topo position
    rank[topo] = np.arange(m)

    next_user = np.full(m, m, dtype=np.int64)
    if m > 1:
        same_user = seq[rows[1:]] == seq[rows[:-1]]  # a user's nodes are a contiguous suffix
        src = np.flatnonzero(same_user)
        next_user[rank[src]] = rank[src + 1]

    next_item = np.full(m, m, dtype=np.int64)
    if m > 1:
        items = seqs.items[rows]
        by_item = np.lexsort((rows, ts, items))
        same_item = items[by_item[1:]] == items[by_item[:-1]]
        src = by_item[:-1][same_item]
        dst = by_item[1:][same_item]
        next_item[rank[src]] = rank[dst]
    return rows[topo], next_user, next_item


def _levels(next_user, next_item):
    """Group topological node indices by height (0 = sink). Returns a list of sorted arrays."""
    m = len(next_user)
    if m == 0:
        return []
    nu = next_user.tolist()
    ni = next_item.tolist()
    height = [0] * (m + 1)
    height[m] = -1
    for v in range(m - 1, -1, -1):  # successors have larger topological indices
        a = height[nu[v]]
        b = height[ni[v]]
        height[v] = (a if a > b else b) + 1
    h = np.asarray(height[:m], dtype=np.int64)
    order = np.argsort(h, kind="stable")  # within a level, ascending topological index
    counts = np.bincount(h)
    return np.split(order, np.cumsum(counts)[:-1])


def _popcount_rows(bits, out, block=4096):
    """``out[i] += popcount(bits[i])`` for a ``uint64 [R, W]`` matrix, in row blocks."""
    for s in range(0, bits.shape[0], block):
        x = bits[s:s + block].copy()
        x -= (x >> np.uint64(1)) & _M1
        x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
        x = (x + (x >> np.uint64(4))) & _M4
        x = (x * _H01) >> np.uint64(56)
        out[s:s + block] += x.sum(axis=1, dtype=np.int64)


def _exact_counts(next_user, next_item, levels, memory_mb):
    m = len(next_user)
    counts = np.zeros(m, dtype=np.int64)
    budget = int(memory_mb * 2**20)
    # 3/4 of the budget for the bitset matrix, 1/4 for the temporaries of one batch
    words = max(1, (3 * budget // 4) // (8 * (m + 1)))
    words = min(words, -(-m // 64))
    width = 64 * words
    batch = max(1, (budget // 4) // (5 * 8 * words))  # ~5 [batch, words] temporaries
    for c0 in range(0, m, width):
        c1 = min(m, c0 + width)
        reach = np.zeros((c1 + 1, words), dtype=np.uint64)  # row c1 = "no successor"
        own = np.arange(c0, c1)
        reach[own, (own - c0) >> 6] = np.left_shift(np.uint64(1), ((own - c0) & 63).astype(np.uint64))
        nu = np.minimum(next_user[:c1], c1)  # successors >= c1 cannot reach the chunk
        ni = np.minimum(next_item[:c1], c1)
        for nodes in levels:
            nodes = nodes[:np.searchsorted(nodes, c1)]
            for s in range(0, len(nodes), batch):
                part = nodes[s:s + batch]
                reach[part] |= reach[nu[part]] | reach[ni[part]]
        _popcount_rows(reach[:c1], counts[:c1], block=batch)
    return counts


def _sketch_counts(next_user, next_item, levels, sketch_size, rng):
    if rng is None:
        raise ValueError("method='sketch' needs rng (a numpy.random.Generator)")
    if sketch_size < 3:
        raise ValueError(f"sketch_size={sketch_size!r} must be >= 3")
    m = len(next_user)
    mins = np.empty((m + 1, sketch_size), dtype=np.float32)
    mins[:m] = rng.exponential(size=(m, sketch_size)).astype(np.float32)
    mins[m] = np.inf
    for nodes in levels:
        mins[nodes] = np.minimum(mins[nodes], np.minimum(mins[next_user[nodes]], mins[next_item[nodes]]))
    est = (sketch_size - 1) / mins[:m].sum(axis=1, dtype=np.float64)
    return np.maximum(1, np.rint(est)).astype(np.int64)


def choose_method(n_nodes, method="auto", exact_max_nodes=EXACT_MAX_NODES):
    """``"exact"`` or ``"sketch"`` for a DAG of ``n_nodes`` nodes.

    ``method="auto"``: exact if ``n_nodes <= exact_max_nodes``, else sketch; ``"exact"`` /
    ``"sketch"`` are returned as they are.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}")
    if method != "auto":
        return method
    return "exact" if n_nodes <= exact_max_nodes else "sketch"


def cascading_scores(seqs, max_len=50, roots_only=False, method="exact", memory_mb=128,
                     sketch_size=64, rng=None, exact_max_nodes=EXACT_MAX_NODES):
    """Cascading score of every training row.

    Args:
        seqs: ``TrainingSequences``.
        max_len: only the last ``max_len`` rows of every user are nodes.
        roots_only: score only in-degree-0 nodes (reference implementation); the other
            nodes then score 0.
        method: ``"exact"`` (default, bitsets), ``"sketch"`` (estimate) or ``"auto"``
            (exact up to ``exact_max_nodes`` nodes, sketch above; see module doc).
        memory_mb: cap on the exact method's bitset matrix (it is processed in chunks).
        sketch_size, rng: parameters of ``method="sketch"`` (``"auto"``: ``rng`` defaults to
            ``default_rng(SKETCH_SEED)``).
        exact_max_nodes: threshold of ``method="auto"``.

    Returns:
        int64 ``[N]`` (one entry per row of ``seqs``): the number of nodes reachable from
        the row, itself included (so ``>= 1``) for nodes; ``NOT_A_NODE`` (-1) for rows
        outside the last ``max_len`` rows of their user.
    """
    choose_method(0, method)  # checks the name before any work
    node_rows, next_user, next_item = build_dag(seqs, max_len)
    m = len(node_rows)
    scores = np.full(seqs.n_rows, NOT_A_NODE, dtype=np.int64)
    if m == 0:
        return scores
    chosen = choose_method(m, method, exact_max_nodes)
    if method == "auto":
        getLogger().info(
            f"CASPER: {m:,} DAG nodes {'<=' if chosen == 'exact' else '>'} casper_exact_max_nodes="
            f"{exact_max_nodes:,}: {'exact scores' if chosen == 'exact' else f'sketch estimate (k={sketch_size})'}")
        if chosen == "sketch" and rng is None:
            rng = np.random.default_rng(SKETCH_SEED)
    levels = _levels(next_user, next_item)
    if chosen == "exact":
        counts = _exact_counts(next_user, next_item, levels, memory_mb)
    else:
        counts = _sketch_counts(next_user, next_item, levels, sketch_size, rng)
    if roots_only:
        indeg = np.bincount(next_user, minlength=m + 1)[:m] + np.bincount(next_item, minlength=m + 1)[:m]
        counts = np.where(indeg == 0, counts, 0)
    scores[node_rows] = counts
    return scores


def rank_by_score(scores):
    """Row indices sorted by decreasing score, ties by increasing row index."""
    return np.lexsort((np.arange(len(scores)), -np.asarray(scores)))


def casper_select(seqs, n, max_len=50, roots_only=False, **kwargs):
    """The ``n`` rows with the highest cascading scores.

    Ties are broken by the smaller row index; rows that are not nodes (score -1) come last,
    so exactly ``n`` rows are returned whenever ``n <= seqs.n_rows``. Returns int64 ``[n]``
    row indices in selection order (highest score first). ``kwargs`` go to
    ``cascading_scores``.
    """
    if n < 0 or n > seqs.n_rows:
        raise ValueError(f"count={n!r} must be in [0, n_rows={seqs.n_rows}]")
    scores = cascading_scores(seqs, max_len, roots_only=roots_only, **kwargs)
    return rank_by_score(scores)[:n].astype(np.int64)
