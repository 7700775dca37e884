"""Report plots (PNG, written atomically): stability by scale, user groups, methods, epoch gains."""

import math
from collections import OrderedDict

import numpy as np

from recbole_finest.fileio import atomic_path
from recbole_finest.report.labels import GROUP_KEYS, label, method_label, ratio_label, stability_keys
from recbole_finest.report.stats import epoch_curves

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


def _stability(summary):
    """RBO and the Jaccard@k columns of summary rows (``<metric>_mean`` keys)."""
    return stability_keys({k[:-5] for r in summary for k in r if k.endswith("_mean")})


def _zoom(ax, values):
    """y-range around ``values`` with room for bar labels (bars of close values stay readable)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = max(0.02, 0.25 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), hi + pad)


def plot_scale(summary, path, methods=("original", "finest"), metrics=None, dpi=80):
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
    metrics = [m for m in metrics or _stability(summary) if f"{m}_mean" in summary[0]]
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


def plot_user_groups(groups, path, metrics=None, dpi=80, fraction=0.2):
    """Grouped bars: lowest / highest-MRR users, Original vs the fine-tuned method.

    Args:
        groups: list of ``{"title": str, "method": str, "seeds": [user_group_stability() dict]}``.
    """
    if not groups:
        return 0
    metrics = metrics or stability_keys(groups[0]["seeds"][0]["low"]["original"])
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


def plot_methods(summary, path, metrics=None, dpi=80, ratio=None):
    """Bar chart of RBO / Jaccard per method, one panel per (model, selection, kind) at ``ratio``."""
    rows = [r for r in summary if ratio is None or r["ratio"] == ratio]
    panels = OrderedDict()
    for r in rows:
        panels.setdefault((r["model"], r["selection"], r["kind"], r["ratio"]), []).append(r)
    if not panels:
        return 0
    metrics = metrics or _stability(summary)
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


def plot_epoch_gain(cells, path, methods=None, metric="rbo", baseline="original", dpi=80, max_cols=4):
    """Gain of ``metric`` over ``baseline`` (%) against fine-tuning epochs, one panel per group.

    One line per method (mean over seeds, error bars = std of the per-seed gains), starting
    at the baseline's (0, 0); panels in rows of at most ``max_cols``. Returns the number of
    panels (0: no method has an epoch curve, no file written).
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
    n_cols = min(len(panels), max_cols)
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.4 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, ((model, selection, kind, ratio), by_method) in zip(axes.flat, panels.items()):
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
    fig.tight_layout()  # rows of panels: titles clear of the x labels above
    _save(fig, path, dpi)
    return len(panels)


def pareto_front(points):
    """Indices of the points not dominated when maximising both coordinates, by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front[::-1]


def plot_frontier(path, rows, baseline, metric, accuracy_metric, threshold, title, dpi=120):
    """Scatter of ``metric`` (y) against ``accuracy_metric`` (x) of every finished search trial.

    Args:
        rows: the search's table rows, best first (``status``, ``feasible``, ``trial`` and both metrics).
        baseline: the not fine-tuned metrics (a black star), or None.
        threshold: the accuracy bound (a vertical line), or None.
    """
    done = [r for r in rows if r["status"] != "failed"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for feasible, color, name in ((True, "tab:blue", "feasible"), (False, "tab:gray", "infeasible")):
        pts = [r for r in done if bool(r.get("feasible")) == feasible]
        if pts:
            ax.scatter([r[accuracy_metric] for r in pts], [r[metric] for r in pts], c=color, label=name, zorder=3)
    if done:
        pts = [(r[accuracy_metric], r[metric]) for r in done]
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", c="tab:orange",
                label="frontier", zorder=2)
        best = done[0]
        ax.scatter([best[accuracy_metric]], [best[metric]], s=160, facecolors="none", edgecolors="tab:red",
                   label=f"best ({best['trial']})", zorder=4)
    if baseline:
        ax.scatter([baseline[accuracy_metric]], [baseline[metric]], marker="*", s=180, c="black",
                   label="not fine-tuned", zorder=4)
    if threshold is not None:
        ax.axvline(threshold, ls=":", c="tab:red", label=f"{accuracy_metric} bound")
    ax.set_xlabel(f"validation {accuracy_metric} (model A)")
    ax.set_ylabel(f"validation {metric} (A vs B)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi)
