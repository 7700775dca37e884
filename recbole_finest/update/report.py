"""The update run's churn report: table rows, Markdown / CSV / JSON, per-user ``.npz`` and PNGs.

Every file is written atomically (``recbole_finest.fileio``), only after all strategies ran.
"""

import os

import numpy as np

from recbole_finest.fileio import atomic_path, write_json, write_text
from recbole_finest.report import _finite, _pyplot, _save, label, to_csv
from recbole_finest.update.periods import period_names

V1 = "v1 (no update)"
TOLERANCE = 0.01  # "within 1% of retrain"
FRONTIER_METRIC = "ndcg@10"


def columns(k, frbo_k=None):
    """The table columns; ``frbo@<frbo_k>`` after RBO when ``frbo_k`` (reports written before FRBO have none)."""
    return ["strategy", "rbo", *([f"frbo@{frbo_k}"] if frbo_k else []), f"jaccard@{k}", "changed", "rbo (no new data)", "mrr", "recall@10", "ndcg@10",
            "ndcg@10 vs retrain"]


def add_relative(rows):
    """Adds ``ndcg@10 vs retrain`` (relative difference) to every row when ``retrain`` ran."""
    base = next((r[FRONTIER_METRIC] for r in rows if r["strategy"] == "retrain"), None)
    for r in rows:
        r["ndcg@10 vs retrain"] = None if not base else (r[FRONTIER_METRIC] - base) / base
    return rows


def lowest_churn(rows, tolerance=TOLERANCE):
    """Row of the v2 strategy with the highest RBO among those within ``tolerance`` of retrain's NDCG@10
    (None without a retrain row)."""
    base = next((r for r in rows if r["strategy"] == "retrain"), None)
    if base is None:
        return None
    ok = [r for r in rows if r["strategy"] != V1 and r[FRONTIER_METRIC] >= (1 - tolerance) * base[FRONTIER_METRIC]]
    return max(ok, key=lambda r: r["rbo"])


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.4f}"


def markdown(report):
    k = report["jaccard_k"]
    cols = columns(k, report.get("frbo_k"))
    heads = {"changed": f"top-{k} changed > half", "ndcg@10 vs retrain": "NDCG@10 vs retrain",
             "rbo (no new data)": "RBO (users without new data)"}
    lines = [f"# Model update: {report['model']} on {report['dataset']}", "",
             f"Cuts {report['cuts']} (T1 = {report['bounds'][0]:g}, T2 = {report['bounds'][1]:g}); interactions "
             + ", ".join(f"{report['counts'][p]} {p}" for p in period_names(len(report['cuts'])))
             + f"; {report['n_churn_users']} users compared, {report['n_test_users']} with a test item; "
             f"v2 budget {report['epochs']} epochs at lr {report['learning_rate']:g}.", "",
             "| " + " | ".join(heads.get(c, label(c)) for c in cols) + " |", "|---" * len(cols) + "|"]
    for r in report["rows"]:
        cells = [_cell(r.get(c)) for c in cols]
        if r.get("ndcg@10 vs retrain") is not None:
            cells[-1] = f"{100 * r['ndcg@10 vs retrain']:+.2f}%"
        lines.append("| " + " | ".join(cells) + " |")
    best = lowest_churn(report["rows"])
    if best is not None:
        lines += ["", f"Lowest churn with NDCG@10 within {100 * TOLERANCE:g}% of retrain: **{best['strategy']}** "
                      f"(RBO {best['rbo']:.4f})."]
    return "\n".join(lines) + "\n"


def plot_histograms(per_user, labels, path, dpi=80):
    """Per-user RBO of v2 vs v1, one histogram panel per strategy."""
    plt = _pyplot()
    n = len(labels)
    cols = min(n, 4)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(3.2 * cols, 2.6 * -(-n // cols)), squeeze=False,
                             sharex=True)
    bins = np.linspace(0, 1, 41)
    for ax, name in zip(axes.flat, labels):
        values = per_user[name]["rbo"]
        ax.hist(values, bins=bins, color="tab:blue")
        ax.set_title(f"{name}\nmean RBO {values.mean():.3f}", fontsize=9)
        ax.set_xlabel("RBO v2 vs v1 (per user)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path, dpi)


def plot_frontier(rows, path, title, dpi=80):
    """Accuracy (NDCG@10 on the test period) against stability (mean RBO v2 vs v1), one point per row."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = {"retrain": "s", "warm_start": "D", "distill": "o", "finest": "^", "interpolate": "v"}
    colors = {"distill": "tab:orange", "finest": "tab:green", "interpolate": "tab:purple", "retrain": "tab:red"}
    for name in ("distill", "finest", "interpolate"):
        color = colors[name]
        pts = sorted((r["rbo"], r[FRONTIER_METRIC]) for r in rows if r["strategy"].startswith(name + " "))
        if pts:
            ax.plot(*zip(*pts), color=color, alpha=0.5)
    for r in rows:
        if r["strategy"] == V1:
            continue
        base = r["strategy"].split(" ")[0]
        ax.scatter(r["rbo"], r[FRONTIER_METRIC], marker=markers.get(base, "x"),
                   color=colors.get(base, "tab:blue"))
        ax.annotate(r["strategy"], (r["rbo"], r[FRONTIER_METRIC]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    v1 = next((r for r in rows if r["strategy"] == V1), None)
    if v1 is not None:
        ax.axhline(v1[FRONTIER_METRIC], color="gray", ls=":", lw=1, label="v1 (no update)")
    retrain = next((r for r in rows if r["strategy"] == "retrain"), None)
    if retrain is not None:
        ax.axhline((1 - TOLERANCE) * retrain[FRONTIER_METRIC], color="tab:red", ls="--", lw=1,
                   label="retrain - 1%")
    ax.set_xlabel("mean RBO of v2 vs v1 (higher = less churn)")
    ax.set_ylabel("NDCG@10 on the test period")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    _save(fig, path, dpi)


def write_report(folder, report, per_user, dpi=80):
    """``results.md/.csv/.json``, ``churn.npz`` and ``churn_hist.png`` / ``frontier.png`` in ``folder``."""
    rows = report["rows"]
    write_text(os.path.join(folder, "results.md"), markdown(report))
    write_text(os.path.join(folder, "results.csv"), to_csv(rows, columns(report["jaccard_k"], report.get("frbo_k"))))
    write_json(os.path.join(folder, "results.json"), _finite(report))
    arrays = {key: per_user[key] for key in ("user", "has_new", "test_user")}
    for name, values in per_user["strategies"].items():
        for key, arr in values.items():
            arrays[f"{name}/{key}"] = arr
    with atomic_path(os.path.join(folder, "churn.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    labels = list(per_user["strategies"])
    plot_histograms(per_user["strategies"], labels, os.path.join(folder, "churn_hist.png"), dpi)
    plot_frontier(rows, os.path.join(folder, "frontier.png"), f"{report['model']} on {report['dataset']}", dpi)
    return folder
