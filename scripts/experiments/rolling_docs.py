"""The "Rolling updates" tables of docs/results.md from the reports of scripts/experiments/rolling_runs.sh.

    python scripts/experiments/rolling_docs.py [--runs runs/rolling] [--copy]

Reads every ``<runs>/update-SASRec-<dataset>-<time>/results.json`` (the newest per dataset, seed and
mode: fixed strengths or budget) and prints, per dataset:

* the fixed-strength chains: per version and strategy, churn against the previous version (RBO,
  share of users with a mostly replaced top-10), drift from v1 (RBO, share) and NDCG@10 on the
  next period, the mean over the seeds found (each seed's value in the per-seed tables below it);
* the budget chains: per version and strategy, the strength chosen, the share of mostly
  replaced users on the step's contexts and on the test contexts against the budget, and
  NDCG@10 against retrain's.

``--fill docs/results.md`` replaces the block between ``<!-- ROLLING_TABLES -->`` and
``<!-- /ROLLING_TABLES -->`` instead of printing. ``--copy`` copies each dataset's plots of the first seed (``chain-*.png``) to ``docs/rolling/``.
"""

import argparse
import glob
import json
import os
import shutil
import sys
from statistics import mean

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from paper_tables import fill  # noqa: E402

FIXED = (("rbo", "RBO vs prev", "{:.4f}"), ("changed", "mostly replaced vs prev", "{:.2%}"),
         ("drift rbo", "RBO vs v1", "{:.4f}"), ("drift changed", "mostly replaced vs v1", "{:.2%}"),
         ("ndcg@10", "NDCG@10 next period", "{:.4f}"))


def reports(folder):
    """``{(dataset, mode): {seed: (report, run folder)}}`` of the newest report per dataset, mode and seed."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "update-*", "results.json")), key=os.path.getmtime):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        if "steps" not in report:  # a single update's report
            continue
        mode = "budget" if report.get("budget") else "fixed"
        out.setdefault((report["dataset"], mode), {})[report["seed"]] = (report, os.path.dirname(path))
    return out


def _strategies(rows):
    return list(dict.fromkeys(r["strategy"] for r in rows))


def fixed_table(by_seed):
    """Markdown: one row per strategy and version, the mean over the seeds of each measure."""
    seeds = sorted(by_seed)
    first = by_seed[seeds[0]][0]
    versions = [s["version"] for s in first["steps"]]
    lines = ["| strategy | version | " + " | ".join(h for _, h, _ in FIXED) + " |", "|---" * (2 + len(FIXED)) + "|"]
    for name in _strategies(first["rows"]):
        for v in versions:
            cells = []
            for key, _, fmt in FIXED:
                values = [r[key] for s in seeds for r in by_seed[s][0]["rows"]
                          if r["strategy"] == name and r["version"] == v and r.get(key) is not None]
                cells.append(fmt.format(mean(values)) if values else "-")
            lines.append(f"| {name} | v{v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget_table(by_seed):
    """Markdown: per seed, strategy and version: strength, churn on the step's / test contexts, NDCG@10 vs retrain."""
    lines = ["| seed | strategy | version | strength | tried | mostly replaced (valid) | mostly replaced (test) "
             "| budget held (test) | NDCG@10 | vs retrain |", "|---" * 10 + "|"]
    for seed in sorted(by_seed):
        report = by_seed[seed][0]
        for r in report["rows"]:
            if r["strategy"] == "v1 (no update)":
                continue
            strength = "-" if r.get("strength") is None else f"{r['strength']:g}"
            vs = "-" if r.get("ndcg@10 vs retrain") is None else f"{100 * r['ndcg@10 vs retrain']:+.2f}%"
            held = "yes" if r.get("budget held (test)") else "**no**"
            lines.append(f"| {seed} | {r['strategy']} | v{r['version']} | {strength} | {r.get('tried') or '-'} | "
                         f"{r['changed']:.2%} | {r['test changed']:.2%} | {held} | {r['ndcg@10']:.4f} | {vs} |")
    return "\n".join(lines)


def tables(found):
    """Markdown: per dataset and mode, the heading, the chain's data and the table (fixed or budget)."""
    from recbole_finest.update.periods import period_names

    parts = []
    for (dataset, mode), by_seed in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1] != "fixed")):
        report = by_seed[min(by_seed)][0]
        parts.append(f"**SASRec on {dataset}: "
                     f"{'churn budget ' + report['budget'] if mode == 'budget' else 'fixed strengths'}"
                     f" (seeds {', '.join(map(str, sorted(by_seed)))})**\n")
        parts.append(f"Cuts {report['cuts']}; interactions "
                     + ", ".join(f"{report['counts'][p]} {p}" for p in period_names(len(report["cuts"])))
                     + f"; {report['epochs']} epochs per step at lr {report['learning_rate']:g}.\n")
        parts.append((fixed_table(by_seed) if mode == "fixed" else budget_table(by_seed)) + "\n")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default=os.path.join(ROOT, "runs", "rolling"))
    parser.add_argument("--copy", action="store_true", help="copy the first seed's plots to docs/rolling/")
    parser.add_argument("--fill", metavar="MD", help="replace the <!-- ROLLING_TABLES --> block of this file")
    args = parser.parse_args()
    found = reports(args.runs)
    text = tables(found)
    if args.fill:
        fill(args.fill, {"ROLLING_TABLES": text})
    else:
        print(text)
    if args.copy:
        os.makedirs(os.path.join(ROOT, "docs", "rolling"), exist_ok=True)
        for (dataset, mode), by_seed in found.items():
            if mode == "fixed":
                for png in glob.glob(os.path.join(by_seed[min(by_seed)][1], "chain-*.png")):
                    shutil.copyfile(png, os.path.join(ROOT, "docs", "rolling", f"{dataset}-{os.path.basename(png)}"))


if __name__ == "__main__":
    main()
