"""Report statistics: seed means / deviations, Welch t-tests, user groups and epoch curves.

Input is a list of cell records (see :mod:`recbole_finest.report`).
"""

import math
from collections import OrderedDict

import numpy as np
from scipy import stats

from recbole_finest.report.labels import GROUP_KEYS, metric_keys, stability_keys

def welch(a, b):
    """One-tailed Welch t-test of H1 ``mean(a) > mean(b)``: ``(t, p)``.

    ``nan`` for both when a side has fewer than 2 samples or both variances are 0 (the test
    is undefined there).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return math.nan, math.nan
    res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def group_cells(cells):
    """``OrderedDict[(model, selection, kind, ratio)] -> OrderedDict[method] -> [cells by seed]``."""
    groups = OrderedDict()
    for cell in sorted(cells, key=lambda c: c["seed"]):  # stable: groups keep the order of the records
        by_method = groups.setdefault(tuple(cell[k] for k in GROUP_KEYS), OrderedDict())
        by_method.setdefault(cell["method"], []).append(cell)
    return groups


def summarize(cells, methods=None, metrics=None, reference="finest"):
    """Seed statistics and tests of every group.

    Args:
        cells: cell records.
        methods: method order of the tables (default: order of first appearance).
        metrics: metric keys (default :func:`~recbole_finest.report.labels.metric_keys` of the
            cells' keys); keys absent from every cell are dropped.
        reference: the method tested against every other one (skipped when absent).

    Returns:
        ``{"summary": [row], "tests": [row]}``. A summary row: the group keys, ``method``,
        ``n_seeds``, ``seeds`` and ``<metric>_mean`` / ``<metric>_std``. A test row: the
        group keys, ``method`` (the reference), ``versus``, ``metric``, the two means,
        ``improvement_pct``, ``t`` and ``p``.
    """
    if metrics is None:
        metrics = metric_keys({k for c in cells for k in c["metrics"]})
    metrics = [m for m in metrics if any(m in c["metrics"] for c in cells)]
    summary, tests = [], []
    for key, by_method in group_cells(cells).items():
        order = [m for m in (methods or []) if m in by_method] + [m for m in by_method if m not in (methods or [])]
        values = {m: {k: [c["metrics"][k] for c in by_method[m] if k in c["metrics"]] for k in metrics}
                  for m in order}
        for m in order:
            row = dict(zip(GROUP_KEYS, key), method=m, n_seeds=len(by_method[m]),
                       seeds=[c["seed"] for c in by_method[m]])
            for k in metrics:
                row[f"{k}_mean"] = float(np.mean(values[m][k])) if values[m][k] else math.nan
                row[f"{k}_std"] = _std(values[m][k])
            summary.append(row)
        if reference not in by_method:
            continue
        for other in order:
            if other == reference:
                continue
            for k in metrics:
                ref_v, other_v = values[reference][k], values[other][k]
                if not ref_v or not other_v:
                    continue
                t, p = welch(ref_v, other_v)
                ref_mean, other_mean = float(np.mean(ref_v)), float(np.mean(other_v))
                improvement = 100.0 * (ref_mean - other_mean) / other_mean if other_mean else math.nan
                tests.append(dict(zip(GROUP_KEYS, key), method=reference, versus=other, metric=k,
                                  mean=ref_mean, versus_mean=other_mean, improvement_pct=improvement, t=t, p=p))
    return {"summary": summary, "tests": tests}


def best_tests(tests):
    """Per group and metric, the test against the other method with the highest mean."""
    best = OrderedDict()
    for t in tests:
        key = tuple(t[k] for k in GROUP_KEYS) + (t["metric"],)
        if key not in best or t["versus_mean"] > best[key]["versus_mean"]:
            best[key] = t
    return list(best.values())


def user_group_stability(original, finetuned, fraction=0.2, metrics=None):
    """Stability of the lowest- and highest-accuracy users, before and after fine-tuning.

    Users are ranked by their MRR under model A *without* fine-tuning (mean reciprocal rank
    of their test instances, ``original["rr_a"]``; ties -> smaller user id first); the
    lowest / highest ``fraction`` of users (at least one each) form the two groups. A
    group's value is the mean of the per-instance metric over the instances of its users.

    Args:
        original / finetuned: per-instance arrays of one seed (``StabilityRun.instances``):
            ``user [N]``, ``rr_a [N]`` and every key of ``metrics`` (``[N]``), same order.
        metrics: default RBO and the Jaccard@k keys of ``original``.

    Returns:
        ``{"low": {"original": {metric: v}, "finetuned": {...}, "n_users": int}, "high": ...}``.
    """
    metrics = stability_keys(original) if metrics is None else metrics
    users = np.asarray(original["user"])
    if not np.array_equal(users, np.asarray(finetuned["user"])):
        raise ValueError("user groups: the two runs have different test instances")
    uniq, inverse = np.unique(users, return_inverse=True)
    counts = np.bincount(inverse)
    user_mrr = np.bincount(inverse, weights=np.asarray(original["rr_a"], dtype=np.float64)) / counts
    order = np.lexsort((uniq, user_mrr))  # ascending MRR, ties by user id
    n = max(1, int(round(fraction * len(uniq))))
    out = {}
    for name, chosen in (("low", order[:n]), ("high", order[len(order) - n:])):
        in_group = np.zeros(len(uniq), dtype=bool)
        in_group[chosen] = True
        mask = in_group[inverse]
        out[name] = {"n_users": int(n), "n_instances": int(mask.sum()),
                     "mrr": float(user_mrr[chosen].mean())}
        for tag, inst in (("original", original), ("finetuned", finetuned)):
            out[name][tag] = {m: float(np.asarray(inst[m])[mask].mean()) for m in metrics}
    return out


def base_method(cell):
    """The method a cell belongs to: ``finest`` for ``finest@e5`` (cells without ``base_method``: their own)."""
    return cell.get("base_method", cell["method"])


def is_final(cell):
    """True for a method's final cell (not an intermediate-epoch ``<method>@e<epoch>`` cell)."""
    return base_method(cell) == cell["method"]


def epoch_curves(cells, metric="rbo", baseline="original", methods=None):
    """Gain of every method over ``baseline`` by fine-tuning epoch, paired by seed.

    Cells carry ``base_method`` and ``epoch`` (:mod:`recbole_finest.study.epochs`); cells
    without ``epoch`` are left out. A seed's gain is ``100 * (m - b) / b`` with ``m`` the
    method's and ``b`` the baseline's ``metric`` of the same seed and group; the baseline
    itself is the point (epoch 0, gain 0).

    Returns:
        rows sorted by group, method (``methods`` order, else first appearance) and epoch:
        the group keys, ``method``, ``epoch``, ``n_seeds``, ``<metric>_mean`` / ``_std`` and
        ``gain_pct_mean`` / ``gain_pct_std`` (std over seeds, ``ddof=1``; 0 for one seed).
    """
    base = {(tuple(c[k] for k in GROUP_KEYS), c["seed"]): c["metrics"][metric] for c in cells
            if c["method"] == baseline and metric in c["metrics"]}
    series = OrderedDict()
    for c in cells:
        method = base_method(c)
        epoch = 0 if method == baseline else c.get("epoch")
        group = tuple(c[k] for k in GROUP_KEYS)
        if epoch is None or metric not in c["metrics"] or (group, c["seed"]) not in base:
            continue
        if methods is not None and method not in methods and method != baseline:
            continue
        b = base[(group, c["seed"])]
        series.setdefault((group, method, int(epoch)), []).append(
            (c["metrics"][metric], 100.0 * (c["metrics"][metric] - b) / b if b else math.nan))
    order = list(methods or [])
    order += [m for _, m, _ in series if m not in order]
    groups = list(OrderedDict.fromkeys(g for g, _, _ in series))
    rows = []
    for (group, method, epoch), values in sorted(series.items(), key=lambda kv: (
            groups.index(kv[0][0]), order.index(kv[0][1]), kv[0][2])):
        v, g = [x for x, _ in values], [y for _, y in values]
        rows.append(dict(zip(GROUP_KEYS, group), method=method, epoch=epoch, n_seeds=len(values),
                         **{f"{metric}_mean": float(np.mean(v)), f"{metric}_std": _std(v),
                            "gain_pct_mean": float(np.mean(g)), "gain_pct_std": _std(g)}))
    return rows
