"""Issue-14 tables from the finished cells of study folders, while a study runs or after it stopped part-way.

    python scripts/experiments/paper_tables.py docs/paper_study/reddit docs/paper_study/wikipedia

Prints per folder the study's own tables (:func:`recbole_finest.report.markdown`: mean ± std
over the seeds finished so far, FINEST's improvement and one-tailed Welch p against every
method) for the final epoch, then the RBO-by-epoch table (:func:`recbole_finest.report.epoch_markdown`).
A group counts only the seeds whose cells are all finished, so every method of a table is
averaged over the same seeds.

    python scripts/experiments/paper_tables.py docs/paper_study/reddit docs/paper_study/wikipedia \
        --fill docs/results.md

replaces instead, per group of cells (dataset, model, perturbation selection), the block between
``<!-- REDDIT_SASREC_RANDOM_TABLE -->`` and ``<!-- /REDDIT_SASREC_RANDOM_TABLE -->`` (dataset,
model and selection in capitals; two groups of one folder that differ only in kind or ratio are
an error) of that file by the compact table of docs/results.md: per
method RBO after epochs 5 and 20, mean ± std after 50, the gain over Original (paired by
seed), Jaccard@10 and the accuracy metrics; then FINEST's one-tailed Welch p against
Original, ``finest_no_sim`` and the best baseline (the best other method that is not a
FINEST variant).

``--methods original,finest,...`` reads only those methods' cells: a method added to a
finished study and not yet run on every seed would otherwise cut the table to the seeds it
has.
"""

import argparse
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))

from recbole_finest import report  # noqa: E402
from recbole_finest.fileio import write_text  # noqa: E402
from recbole_finest.methods import METHODS  # noqa: E402
from recbole_finest.study.folder import StudyFolder  # noqa: E402


def complete_seeds(records):
    """``records`` of the (group, seed) pairs that have every method and epoch any seed of the group has."""
    def group(r):
        return tuple(r[k] for k in report.GROUP_KEYS)

    names = {}
    for r in records:
        names.setdefault(group(r), set()).add(r["method"])
    have = {}
    for r in records:
        have.setdefault((group(r), r["seed"]), set()).add(r["method"])
    return [r for r in records if have[(group(r), r["seed"])] == names[group(r)]]


def only_methods(records, methods):
    """The records of ``methods`` (base method names; every epoch of each), all if ``methods`` is empty."""
    return [r for r in records if not methods or report.base_method(r) in methods]


def best_baseline(cells, metric="rbo"):
    """The final-epoch method, neither Original nor a FINEST variant, with the highest mean ``metric``."""
    values = {}
    for c in cells:
        method = c["method"]
        if report.is_final(c) and method != "original" and not method.startswith("finest") and metric in c["metrics"]:
            values.setdefault(method, []).append(c["metrics"][metric])
    return max(values, key=lambda m: np.mean(values[m])) if values else None


def table_blocks(records):
    """``{block name: records}``: one docs/results.md block per (dataset, model, selection) of ``records``."""
    blocks, keys = {}, {}
    for r in records:
        name = f"{r['dataset']}_{r['model']}_{r['selection']}_TABLE".upper()
        key = tuple(r[k] for k in report.GROUP_KEYS) + (r["dataset"],)
        if keys.setdefault(name, key) != key:
            raise SystemExit(f"block {name}: cells of two groups ({keys[name]} and {key}); "
                             "one block per dataset, model and selection")
        blocks.setdefault(name, []).append(r)
    return blocks


def ordered_methods(records):
    """The final-epoch methods of ``records``, Original first, then in the order of METHODS."""
    found = {r["method"] for r in records if report.is_final(r)}
    return [m for m in ["original", *(m for m in METHODS if m != "original")] if m in found]


def _mean_std(row, metric):
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return f"{mean:.4f}" if row["n_seeds"] < 2 else f"{mean:.4f} ± {std:.4f}"


def _p(p):
    return "n/a" if math.isnan(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def results_block(records, methods, reference="finest"):
    """The compact Markdown table of docs/results.md for one group (see the module docstring)."""
    finals = [r for r in records if report.is_final(r)]
    stats = report.summarize(finals, methods=methods, reference=reference)
    curves = {(c["method"], c["epoch"]): c for c in report.epoch_curves(records, methods=methods)}
    frbo = ["frbo@10"] if any("frbo@10" in r["metrics"] for r in finals) else []  # cells since issue 42
    metrics = [*frbo, "jaccard@10", "mrr", "recall@10", "ndcg@10"]
    seeds = max(r["n_seeds"] for r in stats["summary"])
    lines = [f"({seeds} seed{'s' if seeds > 1 else ''}: "
             f"{', '.join(map(str, stats['summary'][0]['seeds']))}; mean ± std over seeds)", "",
             "| method | RBO@5 | RBO@20 | RBO (50 epochs) | gain over Original | "
             + " | ".join(report.label(m) for m in metrics) + " |", "|---" * (5 + len(metrics)) + "|"]
    for row in stats["summary"]:
        m = row["method"]
        early = [f"{curves[(m, e)]['rbo_mean']:.4f}" if (m, e) in curves and m != "original" else "-" for e in (5, 20)]
        final = curves.get((m, 0 if m == "original" else 50))
        gain = f"{final['gain_pct_mean']:+.1f}%" if final else "-"
        lines.append(f"| {report.method_label(m)} | " + " | ".join(early) + f" | {_mean_std(row, 'rbo')} | {gain} | "
                     + " | ".join(_mean_std(row, k) for k in metrics) + " |")
    tests = {(t["versus"], t["metric"]): t for t in stats["tests"]}
    versus = ["original", "finest_no_sim"] + [m for m in [best_baseline(finals)] if m]
    lines.append("")
    for other in versus:
        if (other, "rbo") not in tests:
            continue
        label = "best baseline, " if other == versus[-1] and len(versus) == 3 else ""
        t_rbo, t_jac = tests[(other, "rbo")], tests[(other, "jaccard@10")]
        t_frbo = tests.get((other, "frbo@10"))
        frbo_text = f"FRBO@10 {t_frbo['improvement_pct']:+.1f}% (p {_p(t_frbo['p'])}), " if t_frbo else ""
        lines.append(f"- FINEST vs {label}{report.method_label(other)}: RBO {t_rbo['improvement_pct']:+.1f}% "
                     f"(p {_p(t_rbo['p'])}), {frbo_text}Jaccard@10 {t_jac['improvement_pct']:+.1f}% (p {_p(t_jac['p'])}), "
                     f"MRR {tests[(other, 'mrr')]['improvement_pct']:+.1f}% (p {_p(tests[(other, 'mrr')]['p'])}).")
    return "\n".join(lines)


def fill(path, blocks):
    """Replace each ``<!-- NAME -->`` ... ``<!-- /NAME -->`` block of ``path`` by ``blocks[NAME]``."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name, block in blocks.items():
        pattern = re.compile(rf"(<!-- {name} -->\n)(?:.*?\n)?(<!-- /{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{path}: no <!-- {name} --> ... <!-- /{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text)
    write_text(path, text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("studies", nargs="+", help="study folders")
    parser.add_argument("--reference", default="finest")
    parser.add_argument("--fill", metavar="MD",
                        help="replace the <!-- <DATASET>_<MODEL>_<SELECTION>_TABLE --> blocks of this file")
    parser.add_argument("--methods", default="", help="comma-separated methods to read (default: every method)")
    args = parser.parse_args()
    wanted = {m.strip() for m in args.methods.split(",") if m.strip()}
    unknown = sorted(wanted - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown method(s) {', '.join(unknown)}")
    blocks = {}
    for folder in args.studies:
        records = complete_seeds(only_methods(StudyFolder(folder).records(), wanted))
        datasets = sorted({r["dataset"] for r in records})
        print(f"## {folder} ({', '.join(datasets) or 'no finished seed'})\n")
        if not records:
            continue
        if args.fill:
            for name, group in table_blocks(records).items():
                if name in blocks:
                    raise SystemExit(f"block {name}: cells in more than one study folder")
                blocks[name] = results_block(group, ordered_methods(group), args.reference)
                print(f"{name}: {len(group)} cells")
            continue
        methods = ordered_methods(records)
        stats = report.summarize([r for r in records if report.is_final(r)], methods=methods, reference=args.reference)
        print(report.markdown(stats))
        print(report.epoch_markdown(report.epoch_curves(records, methods=methods)))
    if args.fill:
        fill(args.fill, blocks)


if __name__ == "__main__":
    main()
