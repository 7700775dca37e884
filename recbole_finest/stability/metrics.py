"""Rank-list stability metrics (FINEST spec section 3).

Functions (torch, vectorized, run on the device of their inputs; :func:`rank_lists` sorts
float32 CPU scores with NumPy):

* :func:`rank_lists` -- scores ``[N, n_items]`` -> item ids by descending score ``[N, depth]``.
* :func:`rbo` -- rank-biased overlap, identical to the ``rbo`` PyPI package's
  ``RankingSimilarity(a, b).rbo(p=p)`` (default ``p=1.0`` = average overlap, what the
  paper's reference code uses).
* :func:`jaccard` -- Jaccard similarity of the top-k sets.
* :func:`frbo` -- finite rank-biased overlap FRBO@k (Betello et al., ECIR 2024): RBO of the
  top-k lists normalised to 1 for identical and 0 for disjoint top-k lists.
* :func:`stream_stability` -- per-instance RBO, Jaccard@k (and FRBO@k) of two models from
  their scores, batch by batch of instances: memory ``O(batch x n_items)`` whatever the
  number of instances (no ``[N, n_items]`` rank lists are ever held).

These are not RecBole metric classes: a RecBole metric sees one model's scores, and
stability compares two models' rankings of the same instances; the plugin computes it
itself (``stability.compare_models``) next to RecBole's accuracy evaluation.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

__all__ = [
    "rank_lists",
    "rbo",
    "jaccard",
    "frbo",
    "stability_values",
    "pair_stability",
    "stream_stability",
]

# Max number of elements of one intermediate [rows, width] tensor per chunk.
_CHUNK_ELEMS = 1 << 24
# rbo: lists of at most this depth compare their k x k pairs (no [rows, n_ids] table)
_SMALL_K = 32
# pair_stability: rows per block of the fused rank / compare pass (its int64 keys, position
# table and join depths of a block stay in the CPU's cache: 64 x 10K x 8 B = 5 MB each)
_BLOCK_ROWS = 64


def _chunk_rows(n_rows: int, width: int, max_elems: int = _CHUNK_ELEMS) -> int:
    return max(1, min(n_rows, max_elems // max(1, width)))


def _rank_ids_by_sort(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Ids ``[rows, depth]`` (0-based columns of ``x [rows, width]``) by descending value,
    ties by lower column: a stable descending ``torch.sort`` (any dtype, NaN, any device)."""
    return torch.sort(x, dim=1, descending=True, stable=True).indices[:, :depth]


def _rank_ids_by_keys(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Ids ``[rows, depth]`` (0-based columns of ``x``) of :func:`rank_lists`'s order, by one
    ``np.sort`` of distinct int64 keys instead of ``torch.sort``.

    Args:
        x: float32 CPU tensor ``[rows, width]`` without NaN.
        depth: number of leading ranks to return (``<= width``).

    Returns:
        LongTensor ``[rows, depth]``: the first ``depth`` columns of
        ``torch.sort(x, dim=1, descending=True, stable=True).indices``, exactly.
    """
    width = x.shape[1]
    # + 0.0 turns -0.0 into +0.0 (torch.sort ranks them as equal, so they need one key)
    bits = (x.detach() + 0.0).contiguous().numpy().view(np.int32)
    # int32 whose ascending order is the floats' ascending order (-inf..+inf): negative
    # floats have their 31 magnitude bits flipped; then ~ reverses it to descending order
    bits ^= (bits >> 31) & 0x7FFFFFFF
    np.invert(bits, out=bits)
    # key = order value * 2**32 + column: distinct, ascending = descending score, ties by
    # lower column (|order value| <= 2**31, so the product fits in int64)
    keys = bits.astype(np.int64)
    del bits
    keys *= np.int64(1 << 32)
    keys += np.arange(width, dtype=np.int64)
    keys.sort(axis=1)
    ids = keys[:, :depth] & np.int64(0xFFFFFFFF)
    return torch.from_numpy(ids)


def rank_lists(scores: torch.Tensor, depth: Optional[int] = None) -> torch.Tensor:
    """Item ids sorted by descending score, excluding RecBole's padding item 0.

    Args:
        scores: float tensor ``[N, n_items]``; column 0 is the padding item and never
            appears in the output.
        depth: number of ranks to keep; ``None`` = ``n_items - 1`` (full ranking). Values
            larger than ``n_items - 1`` are clipped.

    Returns:
        LongTensor ``[N, depth]`` of item ids in ``1..n_items-1`` (same device as
        ``scores``). Ties are broken deterministically: among equal scores the lower item
        id is ranked first (stable sort).

    The order is that of ``torch.sort(scores[:, 1:], descending=True, stable=True)``, in
    row chunks of at most ``_CHUNK_ELEMS`` elements. For float32 CPU scores without NaN
    (checked per chunk) the same order comes from one ``np.sort`` of distinct int64 keys
    ``(order-preserving int of the float's bits, reversed) * 2**32 + column``: 3.5x less
    CPU than the stable float sort on 2048 x 10K scores (benchmarks/eval_speed.py). See
    ``_rank_ids_by_keys``; -0.0 and +0.0 share a key, as they tie in ``torch.sort``.
    Other dtypes, chunks with a NaN and CUDA scores use ``torch.sort``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [N, n_items], got shape {tuple(scores.shape)}")
    n_rows, n_items = scores.shape
    full = max(n_items - 1, 0)
    depth = full if depth is None else max(0, min(int(depth), full))
    out = torch.empty((n_rows, depth), dtype=torch.long, device=scores.device)
    if depth == 0 or n_rows == 0:
        return out
    keyed = scores.dtype == torch.float32 and scores.device.type == "cpu"
    step = _chunk_rows(n_rows, full, _CHUNK_ELEMS)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        chunk = scores[r0:r1, 1:]
        if keyed and not bool(torch.isnan(chunk).any()):
            idx = _rank_ids_by_keys(chunk, depth)
        else:
            idx = _rank_ids_by_sort(chunk, depth)
        out[r0:r1] = idx + 1
    return out


def _rbo_tail(k: int, p: float, device) -> torch.Tensor:
    """float64 ``[k + 1]``: ``tail[j] = sum_{d > j} w_d / d`` (``tail[k] = 0``), the RBO weight
    ``w_d`` (``1/k`` for ``p == 1``, else ``(1 - p) p^(d-1)``) of an item joining at depth ``j``.

    RBO ``= sum_d w_d / d * X_d`` with ``X_d`` = items of ``a`` whose 0-based join depth is
    ``< d``, i.e. the sum over ``a``'s items of ``tail[join depth]``.
    """
    depths = torch.arange(k, dtype=torch.float64, device=device)
    if p == 1.0:
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64, device=device)
    else:
        weights = (1.0 - p) * torch.pow(torch.tensor(p, dtype=torch.float64, device=device), depths)
    tail = torch.zeros(k + 1, dtype=torch.float64, device=device)
    inv_depth = 1.0 / torch.arange(1, k + 1, dtype=torch.float64, device=device)
    tail[:k] = (weights * inv_depth).flip(0).cumsum(0).flip(0)
    return tail


def rbo(a: torch.Tensor, b: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Rank-biased overlap of paired rank lists, row by row.

    Matches ``rbo.RankingSimilarity(a[i].tolist(), b[i].tolist()).rbo(p=p)`` (package
    ``rbo`` 0.1.3, ``k=None``, ``ext=False``): evaluation depth ``k = min(len(a), len(b))``,
    agreement ``A_d = |a[:d] & b[:d]| / d`` for ``d = 1..k`` and

    * ``p == 1.0``: ``mean_d A_d`` (average overlap),
    * ``0 < p < 1``: ``sum_d (1 - p) p^(d-1) A_d`` (non-extrapolated, truncated RBO),

    clipped to ``[0, 1]``. Lists need not be permutations of each other (truncated top-D
    lists with partial overlap are fine).

    Args:
        a: LongTensor ``[N, Da]`` of item ids (distinct within each row, ids >= 0).
        b: LongTensor ``[N, Db]`` of item ids (distinct within each row, ids >= 0).
        p: persistence, ``1.0`` or in ``(0, 1)``.

    Returns:
        float64 tensor ``[N]`` on the inputs' device. Empty lists (``k == 0``) give 1.0
        (both empty, as the package) -- with tensors both widths 0 means both empty.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must be [N, D] with equal N, got {tuple(a.shape)} and {tuple(b.shape)}")
    p = float(p)
    if p != 1.0 and not 0.0 < p < 1.0:
        raise ValueError(f"p must be 1.0 or in (0, 1), got {p}")
    device = a.device
    n_rows = a.shape[0]
    k = min(a.shape[1], b.shape[1])
    if k == 0 or n_rows == 0:
        if a.shape[1] == 0 and b.shape[1] == 0:
            return torch.ones(n_rows, dtype=torch.float64, device=device)
        return torch.zeros(n_rows, dtype=torch.float64, device=device)
    a = a[:, :k].long()
    b = b[:, :k].to(device).long()
    n_ids = int(torch.maximum(a.max(), b.max()).item()) + 1

    ranks = torch.arange(k, device=device)
    tail = _rbo_tail(k, p, device)
    out = torch.empty(n_rows, dtype=torch.float64, device=device)
    if k <= _SMALL_K and k * k < n_ids:
        # short lists (FRBO@k, Jaccard-depth RBO): b's position of each of a's items by a
        # [rows, k, k] comparison instead of a [rows, n_ids] position table; the same join
        # depths, summed in the same order, so the same values
        step = _chunk_rows(n_rows, k * k)
        for r0 in range(0, n_rows, step):
            r1 = min(n_rows, r0 + step)
            out[r0:r1] = tail.take(_join_small(a[r0:r1], b[r0:r1], ranks)).sum(1)
        return out.clamp_(0.0, 1.0)
    step = _chunk_rows(n_rows, max(n_ids, k))
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        n = r1 - r0
        # position of every item id in b (k = absent)
        pos_in_b = torch.full((n, n_ids), k, dtype=torch.long, device=device)
        pos_in_b.scatter_(1, b[r0:r1], ranks.expand(n, k))
        # 0-based depth at which each of a's items joins the intersection (k = never)
        join = pos_in_b.gather(1, a[r0:r1])
        del pos_in_b
        torch.maximum(join, ranks, out=join)
        out[r0:r1] = tail.take(join).sum(1)
    return out.clamp_(0.0, 1.0)


def _join_small(a: torch.Tensor, b: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """0-based depth ``[n, k]`` at which each of ``a``'s items joins the intersection with ``b``
    (``k`` = never): ``max(i, position of a[:, i] in b)``, by comparing the ``k x k`` pairs."""
    k = a.shape[1]
    eq = a[:, :, None] == b[:, None, :]
    pos = torch.where(eq.any(2), eq.to(torch.uint8).argmax(2), torch.full_like(a, k))
    return torch.maximum(pos, ranks, out=pos)


def jaccard(a: torch.Tensor, b: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Jaccard similarity of the top-k sets of paired rank lists.

    Args:
        a: LongTensor ``[N, Da]`` rank lists (distinct items per row).
        b: LongTensor ``[N, Db]`` rank lists (distinct items per row).
        k: cut-off; lists shorter than ``k`` are used whole (Python slicing semantics).

    Returns:
        float64 tensor ``[N]``: ``|a[:k] & b[:k]| / |a[:k] | b[:k]|`` (1.0 when both empty).
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must be [N, D] with equal N, got {tuple(a.shape)} and {tuple(b.shape)}")
    k = int(k)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ta, tb = a[:, :k].long(), b[:, :k].to(a.device).long()
    la, lb = ta.shape[1], tb.shape[1]
    if la + lb == 0:
        return torch.ones(a.shape[0], dtype=torch.float64, device=a.device)
    merged = torch.sort(torch.cat([ta, tb], dim=1), dim=1).values
    # rows are distinct within each list, so each equal adjacent pair is one common item
    inter = (merged[:, 1:] == merged[:, :-1]).sum(1).to(torch.float64)
    return inter / (la + lb - inter)


def frbo(a: torch.Tensor, b: torch.Tensor, k: int = 10, p: float = 0.9) -> torch.Tensor:
    """Finite rank-biased overlap FRBO@k of paired rank lists, row by row.

    Betello, Siciliano, Mishra, Silvestri (ECIR 2024), with ``A_d = |a[:d] & b[:d]| / d``::

        FRBO@k = (1 - p) / (1 - p^k) * sum_{d=1..k} p^(d-1) A_d      (0 < p < 1)
        FRBO@k = 1 / k * sum_{d=1..k} A_d                            (p = 1, the limit)

    The weights sum to 1 over ``d = 1..k``, so identical top-k lists give 1 and disjoint
    ones 0; only the first ``k`` items of each list matter. Computed as :func:`rbo` of the
    top-k lists divided by the weights' sum ``1 - p^k`` (one vectorized pass).

    Args:
        a: LongTensor ``[N, Da]`` rank lists (distinct items per row).
        b: LongTensor ``[N, Db]`` rank lists (distinct items per row).
        k: depth; lists shorter than ``k`` are used to ``min(Da, Db)`` (then normalised
            over that depth).
        p: persistence, ``1.0`` or in ``(0, 1)``.

    Returns:
        float64 tensor ``[N]`` in ``[0, 1]`` on the inputs' device.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    p = float(p)
    depth = min(k, a.shape[1], b.shape[1])
    values = rbo(a[:, :depth], b[:, :depth], p=p)
    if p < 1.0 and depth > 0:
        values = (values / (1.0 - p ** depth)).clamp_(0.0, 1.0)
    return values


def stability_values(scores_a: torch.Tensor, scores_b: torch.Tensor, p: float = 1.0,
                     depth: Optional[int] = None, k: int = 10, frbo_k: Optional[int] = None,
                     frbo_p: float = 0.9) -> dict:
    """Per-instance RBO, Jaccard@k (and FRBO@``frbo_k``) of two models' scores on the same instances.

    Args:
        scores_a: float ``[B, n_items]`` scores of model A (column 0 = padding item).
        scores_b: float ``[B, n_items]`` scores of model B on the same rows.
        p: RBO persistence (:func:`rbo`).
        depth: RBO depth (``None`` = full ranking of ``n_items - 1`` items).
        k: Jaccard cut-off.
        frbo_k: FRBO depth (``None``: no FRBO); frbo_p: its persistence (:func:`frbo`).

    Returns:
        ``{"rbo": float64 [B], f"jaccard@{k}": float64 [B]}`` (plus ``f"frbo@{frbo_k}"``) on
        the scores' device: the same values as :func:`rbo` / :func:`jaccard` / :func:`frbo`
        of :func:`rank_lists` of each model (RBO on the top-``depth`` lists, Jaccard on the
        top-``k`` lists, FRBO on the top-``frbo_k`` lists), all from one ranking per model.
    """
    full = max(scores_a.shape[1] - 1, 0)
    rbo_depth = full if depth is None else max(0, min(int(depth), full))
    list_depth = max(rbo_depth, min(int(k), full), 0 if frbo_k is None else min(int(frbo_k), full))
    lists_a = rank_lists(scores_a, list_depth)
    lists_b = rank_lists(scores_b.to(scores_a.device), list_depth)
    out = {
        "rbo": rbo(lists_a[:, :rbo_depth], lists_b[:, :rbo_depth], p=p),
        f"jaccard@{int(k)}": jaccard(lists_a, lists_b, k=k),
    }
    if frbo_k is not None:
        out[f"frbo@{int(frbo_k)}"] = frbo(lists_a, lists_b, k=frbo_k, p=frbo_p)
    return out


def _order_keys(x: torch.Tensor, first_id: int) -> np.ndarray:
    """int64 keys ``[rows, width]`` of float32 CPU ``x`` (no NaN), ascending = descending score,
    ties by lower column; the low 32 bits are the column + ``first_id`` (the id it stands for).
    Unsorted; :func:`_rank_ids_by_keys`'s keys, with the id folded in."""
    bits = (x + 0.0).numpy().view(np.int32)  # a fresh contiguous copy; -0.0 -> +0.0
    bits ^= (bits >> 31) & 0x7FFFFFFF
    np.invert(bits, out=bits)
    keys = bits.astype(np.int64)
    keys *= np.int64(1 << 32)
    keys += np.arange(first_id, first_id + x.shape[1], dtype=np.int64)
    return keys


def _score_key(values: torch.Tensor) -> np.ndarray:
    """int64 ``[n]``: the key of ``values`` (float32) at column ``-first_id``, i.e. below the key
    of every column with the same score: ``searchsorted`` of it counts the strictly higher scores."""
    return _order_keys(values.reshape(-1, 1), 0).reshape(-1)


def _run_blocks(fn, n_rows: int, width: int) -> None:
    """``fn(r0)`` for every block start ``r0`` of ``n_rows`` rows, on up to
    ``torch.get_num_threads()`` Python threads (NumPy's sort and torch's ops release the GIL),
    each running its torch ops on one thread; the caller's thread count is restored after.
    Blocks write disjoint rows, so the values do not depend on the thread count."""
    starts = list(range(0, n_rows, _BLOCK_ROWS))
    threads = torch.get_num_threads()
    workers = min(threads, len(starts))
    if workers <= 1 or n_rows * width < (1 << 20):  # one small batch: not worth a thread pool
        torch.set_num_threads(1)
        try:
            for r0 in starts:
                fn(r0)
        finally:
            torch.set_num_threads(threads)
        return

    def run(part):
        torch.set_num_threads(1)
        for r0 in part:
            fn(r0)

    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(run, starts[i::workers]) for i in range(workers)]:
                done.result()
    finally:
        torch.set_num_threads(threads)


def pair_stability(scores_a: torch.Tensor, scores_b: torch.Tensor, targets: Optional[torch.Tensor] = None,
                   p: float = 1.0, depth: Optional[int] = None, k: int = 10, frbo_k: Optional[int] = None,
                   frbo_p: float = 0.9) -> dict:
    """:func:`stability_values` of one batch (and the target ranks), in one fused pass.

    Returns the same dict as :func:`stability_values` with the same values (bitwise), plus,
    with ``targets [B]`` (item ids), ``rank_a`` / ``rank_b``: long ``[B]``, the number of items
    each model scores strictly above the target (``evaluate.target_ranks``).

    Fast path (float32 CPU scores without NaN, RBO at full depth): row blocks of
    ``_BLOCK_ROWS`` rows; per block each model's int64 keys are sorted once (``np.sort``, as
    :func:`rank_lists`), the target rank is a ``searchsorted`` of the target's key in the sorted
    keys (no ``[B, n_items]`` comparison), RBO's position table is written without a fill (the
    lists are permutations), FRBO / Jaccard use the top of the same lists. Every step works on
    one block, so the block's arrays stay in the CPU's cache. The values are summed exactly as
    :func:`rbo` sums them (same join depths, same order, rows independent). Anything else
    (other dtypes, CUDA, a NaN, RBO depth below the full ranking) takes
    :func:`stability_values` and ``target_ranks``' comparison.
    """
    scores_b = scores_b.to(scores_a.device)
    n_rows, n_items = scores_a.shape
    full = max(n_items - 1, 0)
    rbo_depth = full if depth is None else max(0, min(int(depth), full))
    list_depth = max(rbo_depth, min(int(k), full), 0 if frbo_k is None else min(int(frbo_k), full))
    fast = (scores_a.dtype == torch.float32 and scores_b.dtype == torch.float32 and scores_a.device.type == "cpu"
            and n_rows > 0 and full > 0 and rbo_depth == full
            and (targets is None or bool((targets > 0).all())))
    if fast:  # NaN check: a finite sum has none; otherwise look (an inf is allowed, a NaN is not)
        for s in (scores_a, scores_b):
            body = s[:, 1:]
            if not bool(torch.isfinite(body.sum())) and bool(torch.isnan(body).any()):
                fast = False
    if not fast:
        out = stability_values(scores_a, scores_b, p=p, depth=depth, k=k, frbo_k=frbo_k, frbo_p=frbo_p)
        if targets is not None:
            for key, s in (("rank_a", scores_a), ("rank_b", scores_b)):
                t = targets.to(s.device)
                out[key] = (s > s.gather(1, t[:, None])).sum(1)
        return out
    p, k = float(p), int(k)
    jk = min(k, full)
    out = {"rbo": torch.empty(n_rows, dtype=torch.float64), f"jaccard@{k}": torch.empty(n_rows, dtype=torch.float64)}
    if frbo_k is not None:
        out[f"frbo@{int(frbo_k)}"] = torch.empty(n_rows, dtype=torch.float64)
    if targets is not None:
        targets = targets.cpu().long()
        out["rank_a"] = torch.empty(n_rows, dtype=torch.long)
        out["rank_b"] = torch.empty(n_rows, dtype=torch.long)
    if p != 1.0 and not 0.0 < p < 1.0:
        raise ValueError(f"p must be 1.0 or in (0, 1), got {p}")
    tail = _rbo_tail(full, p, "cpu")
    ranks = torch.arange(full)
    mask = np.int64(0xFFFFFFFF)
    def block(r0):
        r1 = min(n_rows, r0 + _BLOCK_ROWS)
        n = r1 - r0
        keys_a = _order_keys(scores_a[r0:r1, 1:], 1)
        keys_a.sort(axis=1)
        keys_b = _order_keys(scores_b[r0:r1, 1:], 1)
        keys_b.sort(axis=1)
        if targets is not None:
            t = targets[r0:r1]
            for key, s, keys in (("rank_a", scores_a, keys_a), ("rank_b", scores_b, keys_b)):
                hi = torch.from_numpy(_score_key(s[r0:r1].gather(1, t[:, None])))
                out[key][r0:r1] = torch.searchsorted(torch.from_numpy(keys), hi[:, None]).view(-1)
        ids_a = torch.from_numpy(np.bitwise_and(keys_a, mask, out=keys_a))
        ids_b = torch.from_numpy(np.bitwise_and(keys_b, mask, out=keys_b))
        # RBO at full depth (rbo()'s formula): ids_b is a permutation of 1..full, so every
        # entry of the table that ids_a reads is written here (column 0, the padding, never is)
        pos_in_b = torch.empty((n, n_items), dtype=torch.long)
        pos_in_b.scatter_(1, ids_b, ranks.expand(n, full))
        join = pos_in_b.gather(1, ids_a)
        torch.maximum(join, ranks, out=join)
        out["rbo"][r0:r1] = tail.take(join).sum(1).clamp_(0.0, 1.0)
        out[f"jaccard@{k}"][r0:r1] = jaccard(ids_a[:, :jk], ids_b[:, :jk], k=k)
        if frbo_k is not None:
            out[f"frbo@{int(frbo_k)}"][r0:r1] = frbo(ids_a[:, :list_depth], ids_b[:, :list_depth], k=frbo_k, p=frbo_p)

    _run_blocks(block, n_rows, scores_a.shape[1])
    return out


def stream_stability(score_pairs, p: float = 1.0, depth: Optional[int] = None, k: int = 10,
                     frbo_k: Optional[int] = None, frbo_p: float = 0.9) -> dict:
    """Per-instance RBO, Jaccard@k (and FRBO@``frbo_k``) of two models, computed batch by batch.

    Each batch of scores is turned into rank lists, compared and discarded, so peak memory
    is that of one batch (``O(batch x n_items)``), on CPU or GPU (the scores' device), and
    only the ``[N]`` per-instance values are kept. Values are those of
    :func:`stability_values` on the stacked scores (each row is computed on its own).

    Args:
        score_pairs: iterable of ``(scores_a [B_i, n_items], scores_b [B_i, n_items])``.
        p, depth, k, frbo_k, frbo_p: as :func:`stability_values`.

    Returns:
        ``{"rbo": float64 [N], f"jaccard@{k}": float64 [N]}`` (plus ``f"frbo@{frbo_k}"``) on
        the CPU, ``N = sum B_i``.
    """
    parts = {}
    for scores_a, scores_b in score_pairs:
        values_by_key = pair_stability(scores_a, scores_b, p=p, depth=depth, k=k, frbo_k=frbo_k, frbo_p=frbo_p)
        for key, values in values_by_key.items():
            parts.setdefault(key, []).append(values.cpu())
        del scores_a, scores_b  # not alive while the next batch is produced
    if not parts:
        empty = torch.empty(0, dtype=torch.float64)
        out = {"rbo": empty, f"jaccard@{int(k)}": empty.clone()}
        if frbo_k is not None:
            out[f"frbo@{int(frbo_k)}"] = empty.clone()
        return out
    return {key: torch.cat(values) for key, values in parts.items()}
