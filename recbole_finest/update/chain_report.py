"""The rolling update's report: one table row per version and strategy, a table and a plot per metric.

Files (each atomic, written only after every version of every chain finished): ``results.md``
(the long table, then one table per metric with a column per version), ``results.csv``,
``results.json``, ``churn.npz`` (per-user values, ``ChainResult.per_user``) and
``chain-<metric>.png`` (the metric against the version number, one line per strategy).
"""

import os
import re

import numpy as np

from recbole_finest.fileio import atomic_path, write_json, write_text
from recbole_finest.report import _finite, _pyplot, _save, to_csv
from recbole_finest.update.periods import period_names
from recbole_finest.update.report import V1, _cell

BUDGET_COLUMNS = ("test rbo", "test changed", "budget held (valid)", "budget held (test)", "tried")


def columns(report):
    """The long table's columns (FRBO when ``frbo_k``; the budget's when a budget was set)."""
    k, fk = report["jaccard_k"], report.get("frbo_k")
    frbo = [f"frbo@{fk}"] if fk else []
    cols = ["version", "strategy", "strength", "rbo", *frbo, f"jaccard@{k}", "changed", "rbo (no new data)",
            "drift rbo", *[f"drift {c}" for c in frbo], f"drift jaccard@{k}", "drift changed",
            "mrr", "recall@10", "ndcg@10", "ndcg@10 vs retrain"]
    return cols + (list(BUDGET_COLUMNS) if report.get("budget") else [])


def plotted(report):
    """The metrics with a pivot table and a plot against the version number."""
    fk = report.get("frbo_k")
    return ["rbo", *([f"frbo@{fk}"] if fk else []), f"jaccard@{report['jaccard_k']}", "changed", "drift rbo",
            "drift changed", "ndcg@10"]


def _value(row, col):
    value = row.get(col)
    if col == "version":
        return f"v{value}"
    if col == "ndcg@10 vs retrain" and value is not None:
        return f"{100 * value:+.2f}%"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if col == "strength" and value is not None:
        return f"{value:g}"
    return _cell(value)


def _table(cols, rows):
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def pivot(report, metric):
    """``{strategy: {version: value}}`` of one metric (v1's row: accuracy only)."""
    out = {}
    for r in report["rows"]:
        if r["strategy"] == V1 and metric != "ndcg@10":
            continue
        out.setdefault(r["strategy"], {})[r["version"]] = r.get(metric)
    return out


def markdown(report):
    n = len(report["cuts"])
    counts = ", ".join(f"{report['counts'][p]} {p}" for p in period_names(n))
    versions = [s["version"] for s in report["steps"]]
    lines = [f"# Rolling update: {report['model']} on {report['dataset']}", "",
             f"Cuts {report['cuts']} (" + ", ".join(f"T{j + 1} = {t:g}" for j, t in enumerate(report["bounds"]))
             + f"); interactions {counts}; versions v1..v{n}, each step {report['epochs']} epochs at lr "
             f"{report['learning_rate']:g}, seed {report['seed']}.", "",
             "Churn: each version against the previous version of the same strategy, on every user's history at "
             "the version's cut; drift: against v1 on the same contexts; accuracy: each user's first item after "
             "the cut (the test period for the last version)."]
    if report.get("budget"):
        lines += ["", f"Churn budget per step: {report['budget']}; strengths chosen on the step's contexts by "
                      f"bisection ({report['budget_trials']} trials per step and strategy); `test ...` = churn on "
                      "each user's history at the end of the next period."]
    cols = columns(report)
    lines += ["", *_table(cols, [[_value(r, c) for c in cols] for r in report["rows"]])]
    for metric in plotted(report):
        table = pivot(report, metric)
        lines += ["", f"## {metric} by version", "",
                  *_table(["strategy", *[f"v{v}" for v in versions]],
                          [[name, *[_cell(values.get(v)) for v in versions]] for name, values in table.items()])]
    return "\n".join(lines) + "\n"


def plot_metric(report, metric, path, dpi=80):
    """``metric`` against the version number, one line per strategy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, values in pivot(report, metric).items():
        versions = sorted(v for v in values if values[v] is not None)
        ax.plot(versions, [values[v] for v in versions], marker="o", label=name,
                ls=":" if name == V1 else "-", color="gray" if name == V1 else None)
    ax.set_xlabel("version")
    ax.set_xticks([s["version"] for s in report["steps"]])
    ax.set_ylabel(metric)
    ax.set_title(f"{report['model']} on {report['dataset']}: {metric}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path, dpi)


def file_slug(metric):
    """``drift rbo`` -> ``drift-rbo``; ``jaccard@10`` -> ``jaccard10``."""
    return re.sub(r"[^a-z0-9]+", "-", metric.lower().replace("@", "")).strip("-")


def write_chain_report(folder, report, per_user, dpi=80):
    """Every file of the rolling update's report in ``folder``."""
    write_text(os.path.join(folder, "results.md"), markdown(report))
    write_text(os.path.join(folder, "results.csv"), to_csv(report["rows"], columns(report)))
    write_json(os.path.join(folder, "results.json"), _finite(report))
    with atomic_path(os.path.join(folder, "churn.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **per_user)
    for metric in plotted(report):
        plot_metric(report, metric, os.path.join(folder, f"chain-{file_slug(metric)}.png"), dpi)
    return folder
