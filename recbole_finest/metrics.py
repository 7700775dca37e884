"""Rank-list stability metrics (FINEST spec section 3).

Functions (pure torch, vectorized, run on the device of their inputs):

* :func:`rank_lists` -- scores ``[N, n_items]`` -> item ids by descending score ``[N, depth]``.
* :func:`rbo` -- rank-biased overlap, identical to the ``rbo`` PyPI package's
  ``RankingSimilarity(a, b).rbo(p=p)`` (default ``p=1.0`` = average overlap, what the
  paper's reference code uses).
* :func:`jaccard` -- Jaccard similarity of the top-k sets.
* :func:`stream_stability` -- per-instance RBO and Jaccard@k of two models from their
  scores, batch by batch of instances: memory ``O(batch x n_items)`` whatever the number
  of instances (no ``[N, n_items]`` rank lists are ever held).

RecBole metric classes :class:`RBO` and :class:`Jaccard` compare the evaluated model's
rank lists with reference rank lists held by :class:`StabilityReference` (rank lists of
another model on the same evaluation instances, in the same order). They are added to
RecBole's metric registry by :func:`recbole_finest.registry.register_metrics`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

__all__ = [
    "rank_lists",
    "rbo",
    "jaccard",
    "stability_values",
    "stream_stability",
    "StabilityReference",
    "RBO",
    "Jaccard",
]

# Max number of elements of one intermediate [rows, width] tensor per chunk.
_CHUNK_ELEMS = 1 << 24


def _chunk_rows(n_rows: int, width: int, max_elems: int = _CHUNK_ELEMS) -> int:
    return max(1, min(n_rows, max_elems // max(1, width)))


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
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [N, n_items], got shape {tuple(scores.shape)}")
    n_rows, n_items = scores.shape
    full = max(n_items - 1, 0)
    depth = full if depth is None else max(0, min(int(depth), full))
    out = torch.empty((n_rows, depth), dtype=torch.long, device=scores.device)
    if depth == 0 or n_rows == 0:
        return out
    step = _chunk_rows(n_rows, full)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        idx = torch.sort(scores[r0:r1, 1:], dim=1, descending=True, stable=True).indices
        out[r0:r1] = idx[:, :depth] + 1
    return out


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
    if p == 1.0:
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64, device=device)
    else:
        weights = (1.0 - p) * torch.pow(
            torch.tensor(p, dtype=torch.float64, device=device), ranks.to(torch.float64)
        )
    inv_depth = 1.0 / torch.arange(1, k + 1, dtype=torch.float64, device=device)
    coef = weights * inv_depth
    # result = sum_d coef_d * X_d with X_d = #{items of a whose join depth j <= d - 1}
    #        = sum over a's items of tail[j], tail[j] = sum_{d > j} coef_d (tail[k] = 0)
    tail = torch.zeros(k + 1, dtype=torch.float64, device=device)
    tail[:k] = coef.flip(0).cumsum(0).flip(0)

    out = torch.empty(n_rows, dtype=torch.float64, device=device)
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


def stability_values(scores_a: torch.Tensor, scores_b: torch.Tensor, p: float = 1.0,
                     depth: Optional[int] = None, k: int = 10) -> dict:
    """Per-instance RBO and Jaccard@k of two models' scores on the same instances.

    Args:
        scores_a: float ``[B, n_items]`` scores of model A (column 0 = padding item).
        scores_b: float ``[B, n_items]`` scores of model B on the same rows.
        p: RBO persistence (:func:`rbo`).
        depth: RBO depth (``None`` = full ranking of ``n_items - 1`` items).
        k: Jaccard cut-off.

    Returns:
        ``{"rbo": float64 [B], f"jaccard@{k}": float64 [B]}`` on the scores' device: the same
        values as :func:`rbo` / :func:`jaccard` of :func:`rank_lists` of each model (RBO on the
        top-``depth`` lists, Jaccard on the top-``k`` lists).
    """
    full = max(scores_a.shape[1] - 1, 0)
    rbo_depth = full if depth is None else max(0, min(int(depth), full))
    list_depth = max(rbo_depth, min(int(k), full))
    lists_a = rank_lists(scores_a, list_depth)
    lists_b = rank_lists(scores_b.to(scores_a.device), list_depth)
    return {
        "rbo": rbo(lists_a[:, :rbo_depth], lists_b[:, :rbo_depth], p=p),
        f"jaccard@{int(k)}": jaccard(lists_a, lists_b, k=k),
    }


def stream_stability(score_pairs, p: float = 1.0, depth: Optional[int] = None, k: int = 10) -> dict:
    """Per-instance RBO and Jaccard@k of two models, computed batch by batch.

    Each batch of scores is turned into rank lists, compared and discarded, so peak memory
    is that of one batch (``O(batch x n_items)``), on CPU or GPU (the scores' device), and
    only the ``[N]`` per-instance values are kept. Values are those of
    :func:`stability_values` on the stacked scores (each row is computed on its own).

    Args:
        score_pairs: iterable of ``(scores_a [B_i, n_items], scores_b [B_i, n_items])``.
        p, depth, k: as :func:`stability_values`.

    Returns:
        ``{"rbo": float64 [N], f"jaccard@{k}": float64 [N]}`` on the CPU, ``N = sum B_i``.
    """
    parts = {}
    for scores_a, scores_b in score_pairs:
        for key, values in stability_values(scores_a, scores_b, p=p, depth=depth, k=k).items():
            parts.setdefault(key, []).append(values.cpu())
        del scores_a, scores_b  # not alive while the next batch is produced
    if not parts:
        empty = torch.empty(0, dtype=torch.float64)
        return {"rbo": empty, f"jaccard@{int(k)}": empty.clone()}
    return {key: torch.cat(values) for key, values in parts.items()}


class StabilityReference:
    """Process-wide holder of the reference rank lists read by :class:`RBO` / :class:`Jaccard`.

    The reference is a LongTensor ``[N, D]`` of rank lists (see :func:`rank_lists`) of the
    reference model (model A) on the same evaluation instances, in the same order, as
    the model being evaluated (RecBole's eval loaders are not shuffled). ``D`` must cover
    the depth the metrics need (``rbo_depth`` or the full ranking; ``jaccard_k``).

    Usage::

        StabilityReference.set(rank_lists(scores_a))      # or:
        with StabilityReference.recording():               # capture it from RecBole
            trainer_a.evaluate(test_data)                  # (metrics report 1.0 here)
        trainer_b.evaluate(test_data)                      # RBO / Jaccard vs model A
        StabilityReference.clear()

    ``with StabilityReference.using(ranks): ...`` sets it temporarily.
    """

    _ranks: Optional[torch.Tensor] = None
    _recording: bool = False

    @classmethod
    def set(cls, ranks: torch.Tensor) -> None:
        """Set the reference rank lists, LongTensor ``[N, D]``."""
        if not isinstance(ranks, torch.Tensor) or ranks.dim() != 2:
            raise ValueError("StabilityReference.set expects a 2-D LongTensor [N, D] of rank lists")
        if ranks.dtype.is_floating_point:
            raise ValueError(
                "StabilityReference.set expects rank lists (item ids), not scores; "
                "use StabilityReference.set(rank_lists(scores))"
            )
        cls._ranks = ranks.long()

    @classmethod
    def clear(cls) -> None:
        """Forget the reference (and leave recording mode)."""
        cls._ranks = None
        cls._recording = False

    @classmethod
    def is_set(cls) -> bool:
        return cls._ranks is not None

    @classmethod
    def is_recording(cls) -> bool:
        return cls._recording

    @classmethod
    def get(cls, n_rows: Optional[int] = None, depth: Optional[int] = None) -> torch.Tensor:
        """The reference ``[N, D]``; checks ``N == n_rows`` and ``D >= depth`` when given."""
        if cls._ranks is None:
            raise RuntimeError(
                "No stability reference is set for the RBO/Jaccard metrics. Call "
                "recbole_finest.metrics.StabilityReference.set(rank_lists(scores_of_reference_model)) "
                "or evaluate the reference model inside `with StabilityReference.recording():` "
                "before evaluating with metrics RBO/Jaccard."
            )
        ranks = cls._ranks
        if n_rows is not None and ranks.shape[0] != n_rows:
            raise RuntimeError(
                f"Stability reference has {ranks.shape[0]} rows but the evaluation has {n_rows} "
                "instances: the reference must be the rank lists of the reference model on the "
                "same evaluation data (same split, same order). Set it again with "
                "StabilityReference.set(...)."
            )
        if depth is not None and ranks.shape[1] < depth:
            raise RuntimeError(
                f"Stability reference has depth {ranks.shape[1]} but the metric needs depth {depth}; "
                "set a deeper reference (e.g. rank_lists(scores) with depth=None for the full ranking)."
            )
        return ranks

    @classmethod
    @contextlib.contextmanager
    def using(cls, ranks: torch.Tensor) -> Iterator[None]:
        """Temporarily set the reference; the previous state is restored on exit."""
        prev = (cls._ranks, cls._recording)
        cls.set(ranks)
        cls._recording = False
        try:
            yield
        finally:
            cls._ranks, cls._recording = prev

    @classmethod
    @contextlib.contextmanager
    def recording(cls) -> Iterator[None]:
        """While active, RBO/Jaccard store the evaluated model's rank lists as the reference.

        The deepest rank lists seen for the latest evaluation are kept (RBO offers the
        full / ``rbo_depth`` ranking, Jaccard its top-k) and stay set after the block.
        Metric values reported while recording are 1.0 (self-comparison).
        """
        prev = cls._recording
        cls._recording = True
        try:
            yield
        finally:
            cls._recording = prev

    @classmethod
    def _offer(cls, ranks: torch.Tensor) -> None:
        cur = cls._ranks
        if cur is None or cur.shape[0] != ranks.shape[0] or ranks.shape[1] >= cur.shape[1]:
            cls._ranks = ranks


def _cfg(config, key, default):
    try:
        value = config[key]
    except (KeyError, IndexError, TypeError):
        return default
    return default if value is None else value


class _StabilityMetric(AbstractMetric):
    """Common part: full-sort scores ``rec.score`` ``[N, n_items]`` -> rank lists -> compare."""

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.score"]
    smaller = False

    def _depth(self, n_items: int) -> int:
        raise NotImplementedError

    def _compare(self, ranks: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def per_instance(self, dataobject) -> Optional[torch.Tensor]:
        """Per-instance values, float64 ``[N]`` (``None`` while recording the reference)."""
        scores = dataobject.get("rec.score")
        if scores.dim() != 2:
            raise ValueError(
                f"{type(self).__name__} needs full-sort scores 'rec.score' [N, n_items] "
                f"(eval_args mode 'full'), got shape {tuple(scores.shape)}"
            )
        depth = self._depth(scores.shape[1])
        if StabilityReference.is_recording():
            StabilityReference._offer(rank_lists(scores, depth))
            return None
        ref = StabilityReference.get(n_rows=scores.shape[0], depth=depth)
        ranks = rank_lists(scores.to(ref.device), depth)
        return self._compare(ranks, ref[:, :depth])

    def _value(self, dataobject) -> float:
        values = self.per_instance(dataobject)
        if values is None:
            return 1.0
        return float(values.mean().item()) if values.numel() else float("nan")


class RBO(_StabilityMetric):
    """RecBole metric ``RBO``: mean rank-biased overlap vs the reference rank lists.

    Config: ``rbo_p`` (default 1.0, average overlap as the paper's reference code),
    ``rbo_depth`` (default ``None`` = full ranking of all ``n_items - 1`` items).
    Reported key: ``rbo``.
    """

    def __init__(self, config):
        super().__init__(config)
        self.p = float(_cfg(config, "rbo_p", 1.0))
        if self.p != 1.0 and not 0.0 < self.p < 1.0:
            raise ValueError(f"rbo_p must be 1.0 or in (0, 1), got {self.p}")
        depth = _cfg(config, "rbo_depth", None)
        self.depth = None if depth is None else int(depth)

    def _depth(self, n_items: int) -> int:
        full = n_items - 1
        return full if self.depth is None else min(self.depth, full)

    def _compare(self, ranks, ref):
        return rbo(ranks, ref, p=self.p)

    def calculate_metric(self, dataobject):
        return {"rbo": round(self._value(dataobject), self.decimal_place)}


class Jaccard(_StabilityMetric):
    """RecBole metric ``Jaccard``: mean Jaccard of top-k sets vs the reference rank lists.

    Config: ``jaccard_k`` (default 10). Reported key: ``jaccard@{k}``.
    """

    def __init__(self, config):
        super().__init__(config)
        self.k = int(_cfg(config, "jaccard_k", 10))

    def _depth(self, n_items: int) -> int:
        return min(self.k, n_items - 1)

    def _compare(self, ranks, ref):
        return jaccard(ranks, ref, k=self.k)

    def calculate_metric(self, dataobject):
        return {f"jaccard@{self.k}": round(self._value(dataobject), self.decimal_place)}
