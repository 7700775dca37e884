"""Re-export of :mod:`recbole_finest.stability.metrics` (RBO, Jaccard@k, rank lists).

Canonical: ``from recbole_finest.stability.metrics import rbo, jaccard``.
"""

from recbole_finest.stability.metrics import jaccard, rank_lists, rbo, stability_values, stream_stability  # noqa: F401

__all__ = ["rbo", "jaccard", "rank_lists", "stability_values", "stream_stability"]
