"""Report tables: Markdown and CSV text, and the study's table files (written atomically)."""

import csv
import io
import math
import os
from collections import OrderedDict

from recbole_finest.fileio import write_json, write_text
from recbole_finest.report.labels import GROUP_KEYS, label, method_label, ratio_label
from recbole_finest.report.stats import best_tests


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


def _cell(value):
    """A Markdown table cell: 4 decimals (4 significant digits far from 1), ``|`` escaped."""
    if isinstance(value, float) and abs(value) >= 100:  # infeasible objectives: keep the drop visible
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e3 else f"{value:.4f}"
    return "" if value is None else str(value).replace("|", "\\|")


def to_markdown(rows, columns):
    """Markdown table of a list of dicts over ``columns`` (a missing key is an empty cell)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


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


def write_tables(folder, stats_, extra=None, title="Stability study"):
    """``results.md``, ``results.csv`` (summary), ``tests.csv`` and ``results.json`` in ``folder``."""
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
