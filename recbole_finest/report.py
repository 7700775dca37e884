"""Study reports: seed statistics, Welch t-tests, Markdown / CSV / JSON tables and PNG plots.

Input is a list of *cell records*, one per (model, selection, kind, ratio, seed, method)
as written by :mod:`recbole_finest.study`::

    {"model": "SASRec", "selection": "random", "kind": "deletion", "ratio": 0.001,
     "seed": 2020, "method": "finest", "metrics": {"rbo": 0.81, "jaccard@10": 0.42, ...}}

A *group* is one (model, selection, kind, ratio); within a group the seeds of a method are
the samples. Statistics: mean and sample standard deviation (``ddof=1``; 0 for one seed)
over seeds; FINEST (``reference``) against every other method of the group with the
one-tailed Welch t-test ``scipy.stats.ttest_ind(ref, other, equal_var=False,
alternative="greater")`` (H1: the reference's mean is larger) and the improvement
``100 * (mean_ref - mean_other) / mean_other``.

Every file is written atomically (``recbole_finest.fileio``).
"""

import csv
import io
import math
from collections import OrderedDict

import numpy as np
from scipy import stats

from recbole_finest.fileio import atomic_path, write_json, write_text

METRICS = ("rbo", "jaccard@10", "mrr", "recall@10", "ndcg@10")
LABELS = {"rbo": "RBO", "mrr": "MRR", "recall@10": "Recall@10", "ndcg@10": "NDCG@10"}
GROUP_KEYS = ("model", "selection", "kind", "ratio")


def label(metric):
    """Display name of a metric key (``jaccard@10`` -> ``Jaccard@10``)."""
    return LABELS.get(metric, metric[:1].upper() + metric[1:])


def method_label(method):
    return {"original": "Original", "finest": "FINEST"}.get(method, method)


def ratio_label(ratio):
    """0.001 -> ``0.1%``."""
    return f"{100 * float(ratio):g}%"


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


def summarize(cells, methods=None, metrics=METRICS, reference="finest"):
    """Seed statistics and tests of every group.

    Args:
        cells: cell records.
        methods: method order of the tables (default: order of first appearance).
        metrics: metric keys; keys absent from every cell are dropped.
        reference: the method tested against every other one (skipped when absent).

    Returns:
        ``{"summary": [row], "tests": [row]}``. A summary row: the group keys, ``method``,
        ``n_seeds``, ``seeds`` and ``<metric>_mean`` / ``<metric>_std``. A test row: the
        group keys, ``method`` (the reference), ``versus``, ``metric``, the two means,
        ``improvement_pct``, ``t`` and ``p``.
    """
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


# ---------------------------------------------------------------------------------- tables
def _fmt(x, digits=4):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_p(p):
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def markdown(stats_, title=None):
    """Markdown: one table per group, mean ± std over seeds, improvement and p-value rows."""
    summary, tests = stats_["summary"], stats_["tests"]
    metrics = [k[:-5] for k in summary[0] if k.endswith("_mean")] if summary else []
    lines = [f"# {title}", ""] if title else []
    by_group = OrderedDict()
    for row in summary:
        by_group.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    for key, rows in by_group.items():
        model, selection, kind, ratio = key
        seeds = max(r["n_seeds"] for r in rows)
        lines += [f"### {model}: {selection} {kind}, {ratio_label(ratio)} of training interactions "
                  f"({seeds} seed{'s' if seeds != 1 else ''})", ""]
        lines.append("| method | " + " | ".join(label(m) for m in metrics) + " |")
        lines.append("|---" * (len(metrics) + 1) + "|")
        for r in rows:
            cells = [f"{_fmt(r[m + '_mean'])} ± {_fmt(r[m + '_std'])}" if r["n_seeds"] > 1 else _fmt(r[m + "_mean"])
                     for m in metrics]
            lines.append(f"| {method_label(r['method'])} | " + " | ".join(cells) + " |")
        group_tests = [t for t in tests if tuple(t[k] for k in GROUP_KEYS) == key]
        for versus in OrderedDict.fromkeys(t["versus"] for t in group_tests):
            by_metric = {t["metric"]: t for t in group_tests if t["versus"] == versus}
            ref = method_label(group_tests[0]["method"])
            imp = [f"{by_metric[m]['improvement_pct']:+.2f}%" if m in by_metric else "-" for m in metrics]
            pv = [_fmt_p(by_metric[m]["p"]) if m in by_metric else "-" for m in metrics]
            lines.append(f"| {ref} vs {method_label(versus)}: improvement | " + " | ".join(imp) + " |")
            lines.append(f"| {ref} vs {method_label(versus)}: p (Welch, one-tailed) | " + " | ".join(pv) + " |")
        best = {t["metric"]: t for t in best_tests(group_tests)}
        if len({t["versus"] for t in group_tests}) > 1:  # the paper's "% improvement" row
            imp = [f"{best[m]['improvement_pct']:+.2f}% ({method_label(best[m]['versus'])}, p {_fmt_p(best[m]['p'])})"
                   if m in best else "-" for m in metrics]
            lines.append(f"| {method_label(group_tests[0]['method'])} vs best other method | " + " | ".join(imp) + " |")
        lines.append("")
    return "\n".join(lines)


def to_csv(rows, columns=None):
    """CSV text of a list of dicts (columns: the union of keys in first-seen order)."""
    if columns is None:
        columns = list(OrderedDict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


# ---------------------------------------------------------------------------------- user groups
def user_group_stability(original, finetuned, fraction=0.2, metrics=("rbo", "jaccard@10")):
    """Stability of the lowest- and highest-accuracy users, before and after fine-tuning.

    Users are ranked by their MRR under model A *without* fine-tuning (mean reciprocal rank
    of their test instances, ``original["rr_a"]``; ties -> smaller user id first); the
    lowest / highest ``fraction`` of users (at least one each) form the two groups. A
    group's value is the mean of the per-instance metric over the instances of its users.

    Args:
        original / finetuned: per-instance arrays of one seed (``StabilityRun.instances``):
            ``user [N]``, ``rr_a [N]`` and every key of ``metrics`` (``[N]``), same order.

    Returns:
        ``{"low": {"original": {metric: v}, "finetuned": {...}, "n_users": int}, "high": ...}``.
    """
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


# ---------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi):
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


def _zoom(ax, values):
    """y-range around ``values`` with room for bar labels (bars of close values stay readable)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = max(0.02, 0.25 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), hi + pad)


def plot_scale(summary, path, methods=("original", "finest"), metrics=("rbo", "jaccard@10"), dpi=80):
    """Stability vs perturbation scale, one panel column per (model, selection, kind) with >= 2 ratios.

    Returns the number of panel columns drawn (0: nothing to plot, no file written).
    """
    series = OrderedDict()
    for r in summary:
        if r["method"] in methods:
            series.setdefault((r["model"], r["selection"], r["kind"]), []).append(r)
    series = OrderedDict((k, v) for k, v in series.items() if len({r["ratio"] for r in v}) >= 2)
    if not series:
        return 0
    metrics = [m for m in metrics if f"{m}_mean" in summary[0]]
    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), len(series), figsize=(4.2 * len(series), 3.0 * len(metrics)),
                             squeeze=False)
    for col, ((model, selection, kind), rows) in enumerate(series.items()):
        for row_i, metric in enumerate(metrics):
            ax = axes[row_i][col]
            for method in methods:
                pts = sorted((r["ratio"], r[f"{metric}_mean"], r[f"{metric}_std"], r["n_seeds"])
                             for r in rows if r["method"] == method)
                if not pts:
                    continue
                x = [100 * p[0] for p in pts]
                ax.errorbar(x, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                            label=method_label(method))
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks([100 * r for r in sorted({r["ratio"] for r in rows})])
            ax.set_xticklabels([ratio_label(r) for r in sorted({r["ratio"] for r in rows})], fontsize=8)
            ax.set_xlabel("perturbed training interactions")
            ax.set_ylabel(label(metric))
            ax.grid(alpha=0.3)
            if row_i == 0:
                lo, hi = min(r["n_seeds"] for r in rows), max(r["n_seeds"] for r in rows)
                seeds = f"{lo}" if lo == hi else f"{lo}-{hi}"
                ax.set_title(f"{model}, {selection} {kind} ({seeds} seed{'s' if hi != 1 else ''})", fontsize=9)
            ax.legend(fontsize=8)
    _save(fig, path, dpi)
    return len(series)


def plot_user_groups(groups, path, metrics=("rbo", "jaccard@10"), dpi=80, fraction=0.2):
    """Grouped bars: lowest / highest-MRR users, Original vs the fine-tuned method.

    Args:
        groups: list of ``{"title": str, "method": str, "seeds": [user_group_stability() dict]}``.
    """
    if not groups:
        return 0
    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), len(groups), figsize=(3.6 * len(groups), 2.8 * len(metrics)),
                             squeeze=False)
    pct = f"{round(100 * fraction)}%"
    names = (("low", f"lowest-MRR {pct}"), ("high", f"highest-MRR {pct}"))
    for col, g in enumerate(groups):
        for row_i, metric in enumerate(metrics):
            ax = axes[row_i][col]
            x = np.arange(len(names))
            tops = []
            for j, (tag, tag_label) in enumerate((("original", "Original"), ("finetuned", method_label(g["method"])))):
                vals = np.array([[s[name][tag][metric] for s in g["seeds"]] for name, _ in names])
                err = vals.std(axis=1, ddof=1) if vals.shape[1] > 1 else np.zeros(len(names))
                bars = ax.bar(x + (j - 0.5) * 0.38, vals.mean(axis=1), 0.38, yerr=err, capsize=3, label=tag_label)
                ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
                tops += list(vals.mean(axis=1) - err) + list(vals.mean(axis=1) + err)
            _zoom(ax, tops)
            ax.set_xticks(x)
            ax.set_xticklabels([n for _, n in names], fontsize=8)
            ax.set_ylabel(label(metric))
            ax.grid(axis="y", alpha=0.3)
            if row_i == 0:
                ax.set_title(g["title"], fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    _save(fig, path, dpi)
    return len(groups)


def plot_methods(summary, path, metrics=("rbo", "jaccard@10"), dpi=80, ratio=None):
    """Bar chart of RBO / Jaccard per method, one panel per (model, selection, kind) at ``ratio``."""
    rows = [r for r in summary if ratio is None or r["ratio"] == ratio]
    panels = OrderedDict()
    for r in rows:
        panels.setdefault((r["model"], r["selection"], r["kind"], r["ratio"]), []).append(r)
    if not panels:
        return 0
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.2, 1.2 * max(map(len, panels.values()))) * len(panels), 2.8),
                             squeeze=False)
    for col, ((model, selection, kind, r_), prs) in enumerate(panels.items()):
        ax = axes[0][col]
        x = np.arange(len(prs))
        width = 0.8 / len(metrics)
        for j, metric in enumerate(metrics):
            bars = ax.bar(x + (j - (len(metrics) - 1) / 2) * width, [p[f"{metric}_mean"] for p in prs], width,
                          yerr=[p[f"{metric}_std"] for p in prs], capsize=2, label=label(metric))
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
        ax.set_ylim(0, 1.1)
        ax.set_xticks(x)
        ax.set_xticklabels([method_label(p["method"]) for p in prs], fontsize=8, rotation=30 if len(prs) > 3 else 0)
        ax.set_title(f"{model}, {selection} {kind} {ratio_label(r_)}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path, dpi)
    return len(panels)


# ---------------------------------------------------------------------------------- epoch curves
def is_final(cell):
    """True for a method's final cell (not an intermediate-epoch ``<method>@e<epoch>`` cell)."""
    return cell.get("base_method", cell["method"]) == cell["method"]


def epoch_curves(cells, metric="rbo", baseline="original", methods=None):
    """Gain of every method over ``baseline`` by fine-tuning epoch, paired by seed.

    Cells carry ``base_method`` and ``epoch`` (:mod:`recbole_finest.study_epochs`); cells
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
        method = c.get("base_method", c["method"])
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


def epoch_markdown(rows, metric="rbo"):
    """Markdown: per group, ``metric`` mean ± std and its gain over the baseline by method and epoch."""
    lines, by_group = [], OrderedDict()
    for r in rows:
        by_group.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
    for (model, selection, kind, ratio), grp in by_group.items():
        lines += [f"### {model}: {selection} {kind}, {ratio_label(ratio)}: {label(metric)} by fine-tuning epoch", "",
                  f"| method | epoch | {label(metric)} | gain over Original |", "|---|---|---|---|"]
        lines += [f"| {method_label(r['method'])} | {r['epoch']} | {_fmt(r[metric + '_mean'])} ± "
                  f"{_fmt(r[metric + '_std'])} | {r['gain_pct_mean']:+.2f}% ± {r['gain_pct_std']:.2f} |" for r in grp]
        lines.append("")
    return "\n".join(lines)


def plot_epoch_gain(cells, path, methods=None, metric="rbo", baseline="original", dpi=80):
    """Gain of ``metric`` over ``baseline`` (%) against fine-tuning epochs, one panel per group.

    One line per method (mean over seeds, error bars = std of the per-seed gains), starting
    at the baseline's (0, 0). Returns the number of panels (0: no method has an epoch
    curve, no file written).
    """
    rows = epoch_curves(cells, metric, baseline, methods)
    panels = OrderedDict()
    for r in rows:
        if r["method"] != baseline:
            panels.setdefault(tuple(r[k] for k in GROUP_KEYS), OrderedDict()).setdefault(r["method"], []).append(r)
    panels = OrderedDict((k, v) for k, v in panels.items() if any(len(pts) > 1 for pts in v.values()))
    if not panels:
        return 0
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.2), squeeze=False)
    for col, ((model, selection, kind, ratio), by_method) in enumerate(panels.items()):
        ax = axes[0][col]
        for method, pts in by_method.items():
            x = [0] + [p["epoch"] for p in pts]
            ax.errorbar(x, [0.0] + [p["gain_pct_mean"] for p in pts], yerr=[0.0] + [p["gain_pct_std"] for p in pts],
                        marker="o", capsize=3, label=method_label(method))
        ax.axhline(0.0, color="black", lw=0.8, ls=":")
        ax.set_xlabel("fine-tuning epochs")
        ax.set_ylabel(f"{label(metric)} gain over {method_label(baseline)} (%)")
        seeds = max(p["n_seeds"] for pts in by_method.values() for p in pts)
        ax.set_title(f"{model}, {selection} {kind} {ratio_label(ratio)} ({seeds} seed{'s' if seeds != 1 else ''})",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path, dpi)
    return len(panels)


# ---------------------------------------------------------------------------------- files
def write_tables(folder, stats_, extra=None, title="Stability study"):
    """``results.md``, ``results.csv`` (summary), ``tests.csv`` and ``results.json`` in ``folder``."""
    import os

    text = markdown(stats_, title)
    write_text(os.path.join(folder, "results.md"), text + "\n")
    write_text(os.path.join(folder, "results.csv"), to_csv(stats_["summary"]))
    write_text(os.path.join(folder, "tests.csv"), to_csv(stats_["tests"]))
    write_json(os.path.join(folder, "results.json"),
               _finite({**stats_, "best": best_tests(stats_["tests"]), **(extra or {})}))
    return text


def _finite(obj):
    """``obj`` with float NaN / inf replaced by None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
