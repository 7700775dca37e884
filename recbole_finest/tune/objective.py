"""The stability-aware objective of a trial, and the metrics a trial reports."""

import math
import re

import numpy as np

INFEASIBLE = -1000.0
#: the accuracy metrics a trial reports (model A's, on the validation split)
ACCURACY = ("ndcg@10", "mrr", "mrr@10", "recall@10")


def reported(jaccard_k, frbo_k=10):
    """The metrics a trial reports: RBO, FRBO@``frbo_k``, Jaccard@``jaccard_k`` (the run's keys) and :data:`ACCURACY`."""
    return ("rbo", f"frbo@{int(frbo_k)}", f"jaccard@{int(jaccard_k)}", *ACCURACY)


def is_jaccard(name):
    """True for a Jaccard@k metric name (``jaccard@5``, ``jaccard@10``, ...)."""
    return isinstance(name, str) and re.fullmatch(r"jaccard@[1-9][0-9]*", name) is not None


def is_frbo(name):
    """True for an FRBO@k metric name (``frbo@10``, ...)."""
    return isinstance(name, str) and re.fullmatch(r"frbo@[1-9][0-9]*", name) is not None


def is_reported(name):
    """True for a name of :func:`reported` for some ``jaccard_k`` / ``frbo_k`` (``config.validate``
    checks the Jaccard k, ``tune.setup.setup_of`` the FRBO k)."""
    return name in ("rbo", *ACCURACY) or is_jaccard(name) or is_frbo(name)


def score(metrics, baseline, metric="rbo", mode="max", accuracy_metric="ndcg@10", max_drop=0.02):
    """Stability-aware objective of one trial (always maximised by Ray).

    Args:
        metrics: the trial's validation metrics (model A's accuracy, A vs B stability).
        baseline: the same metrics of the un-fine-tuned models.
        max_drop: largest allowed relative drop of ``accuracy_metric``; None = no constraint.

    Returns:
        dict: ``accuracy_drop`` = (base - trial) / base, ``feasible``, ``objective`` =
        ``metric`` (negated for ``mode: min``) when feasible, else ``INFEASIBLE - accuracy_drop``
        (below every feasible trial; the smaller the drop, the higher).
    """
    value = float(metrics[metric])
    if not math.isfinite(value):
        raise ValueError(f"trial metric '{metric}' is {value}")
    base, acc = float(baseline[accuracy_metric]), float(metrics[accuracy_metric])
    drop = (base - acc) / base if base > 0 else 0.0
    feasible = max_drop is None or drop <= max_drop + 1e-12
    objective = (value if mode == "max" else -value) if feasible else INFEASIBLE - drop
    return {"accuracy_drop": drop, "feasible": bool(feasible), "objective": objective}


def mean_rows(rows):
    """Key-wise mean of stability rows (one per seed), without ``method``."""
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "method" and k in rows[-1]}


def flat(row):
    """A stability row with Ray-friendly names: ``ndcg@10 (B)`` -> ``ndcg@10_B``."""
    return {k.replace(" (B)", "_B"): v for k, v in row.items()}
