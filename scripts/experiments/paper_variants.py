"""Issue-14 ablation tables: FINEST's simulation ratio and the reference protocol, from study folders.

    python scripts/experiments/paper_variants.py docs/paper_study/reddit docs/paper_study/wikipedia

For a main study folder ``D`` (``original``, ``finest`` with ``finest_sim_ratio`` 0.01,
``finest_no_sim``, ...) the variants are the folders ``D-<variant>`` written by
``scripts/experiments/paper_variant.sh`` (``sim5``, ``sim10``: FINEST at 5% / 10%;
``independent``: B fine-tuned toward its own lists). Only the final-epoch cells of seeds
finished in *every* folder of a table count, so each row averages the same seeds; only the cells
of one perturbation selection (``--selection``, default ``random``, the variants') are read, so the
main folder's CASPER cells are left out. Tables:

1. Simulation: ``finest_no_sim`` (ratio 0) and FINEST at every ratio found; per row mean ±
   std over seeds of RBO, Jaccard@10, MRR, NDCG@10, then FINEST minus ``finest_no_sim`` in
   RBO (mean over seeds of the paired difference) and the one-tailed Welch p of
   "FINEST > finest_no_sim" (``recbole_finest.report.welch``, the study's test).
2. Protocol: each regularized method under ``shared`` and ``independent``, and Original.

With ``--fill docs/results.md`` the tables replace the block between ``<!-- REDDIT_VARIANTS -->``
and ``<!-- /REDDIT_VARIANTS -->`` (the folder's dataset in capitals) instead of being printed.

The ``original`` cell of a variant folder must equal the main folder's (same pre-trained
states, to round-off); a difference is printed as a warning, since it means the rows are not
comparable.
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
sys.path.insert(0, os.path.dirname(__file__))

from recbole_finest import report  # noqa: E402
from recbole_finest.study.folder import StudyFolder  # noqa: E402
from paper_tables import _p, fill  # noqa: E402

METRICS = ("rbo", "jaccard@10", "mrr", "ndcg@10")


def final_cells(folder, selection="random"):
    """``{(method, seed): record}`` of the folder's final-epoch cells of perturbation ``selection``
    (one group: the reduced study's; a main folder also holds the CASPER cells)."""
    if not os.path.isdir(folder):
        return {}
    records = [r for r in StudyFolder(folder).records() if report.is_final(r) and r["selection"] == selection]
    groups = {tuple(r[k] for k in report.GROUP_KEYS) for r in records}
    if len(groups) > 1:
        raise SystemExit(f"{folder}: more than one (model, selection, kind, ratio) group: {sorted(groups)}")
    return {(r["method"], r["seed"]): r for r in records}


def sim_ratio(record):
    """FINEST's simulation ratio of a cell (the tuned settings' or the default 0.01)."""
    return float(record.get("method_config", {}).get("finest_sim_ratio", 0.01))


def check_same_original(main, variant, name, tolerance=1e-4):
    """Warn when a variant's Original differs from the main study's by more than ``tolerance`` in a
    metric: pre-trained states trained again on another machine agree to about 1e-9 in MRR and
    1e-5 in Jaccard@10 (float round-off changes a few ties), other pre-trained models by far more."""
    for (method, seed), r in variant.items():
        ref = main.get((method, seed))
        if method == "original" and ref is not None and any(
                abs(v - ref["metrics"].get(k, math.inf)) > tolerance for k, v in r["metrics"].items()):
            print(f"WARNING: {name}: Original of seed {seed} differs from the main study's "
                  f"({r['metrics']['rbo']} vs {ref['metrics']['rbo']}): not the same pre-trained states")


def rows_table(rows, seeds, versus):
    """Markdown of ``rows`` ``[(label, {seed: record})]`` over ``seeds``; difference and p against ``versus``."""
    head = ["row"] + [report.label(m) for m in METRICS] + [f"RBO minus {versus[0]}", f"p (RBO > {versus[0]})",
                                                           f"p (Jaccard@10 > {versus[0]})"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    base = versus[1]
    for name, by_seed in rows:
        values = {m: [by_seed[s]["metrics"][m] for s in seeds] for m in METRICS}
        cells = [f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
                 for v in values.values()]
        if by_seed is base:
            cells += ["-", "-", "-"]
        else:
            diff = [by_seed[s]["metrics"]["rbo"] - base[s]["metrics"]["rbo"] for s in seeds]
            p = [report.welch(values[m], [base[s]["metrics"][m] for s in seeds])[1] for m in ("rbo", "jaccard@10")]
            cells += [f"{np.mean(diff):+.4f}"] + [_p(x) for x in p]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_seed(cells, method):
    return {seed: r for (m, seed), r in cells.items() if m == method}


def common_seeds(rows):
    seeds = None
    for _, s in rows:
        seeds = set(s) if seeds is None else seeds & set(s)
    return sorted(seeds or ())


def simulation_rows(main, variants):
    rows = [("finest_no_sim (no simulation)", by_seed(main, "finest_no_sim"))]
    finest = [by_seed(main, "finest")] + [by_seed(v, "finest") for k, v in variants.items() if k.startswith("sim")]
    finest = [f for f in finest if f]
    for f in sorted(finest, key=lambda f: sim_ratio(next(iter(f.values())))):
        rows.append((f"FINEST, simulation {100 * sim_ratio(next(iter(f.values()))):g}% per epoch", f))
    return rows


def protocol_rows(main, variants):
    independent = variants.get("independent", {})
    rows = [("Original", by_seed(main, "original"))]
    for method in ("finest", "finest_no_sim"):
        rows += [(f"{report.method_label(method)}, shared", by_seed(main, method)),
                 (f"{report.method_label(method)}, independent", by_seed(independent, method))]
    return [r for r in rows if r[1]]


def tables(folder, variant_names, cells=None, selection="random"):
    """Markdown of the two tables of main study folder ``folder`` (``cells``: its :func:`final_cells`,
    read when not given) and its ``<folder>-<variant>`` folders, on perturbation ``selection``."""
    cells = final_cells(folder, selection) if cells is None else cells
    variants = {v: final_cells(f"{folder}-{v}", selection) for v in variant_names}
    for v, c in variants.items():
        check_same_original(cells, c, f"{folder}-{v}")
    out = []
    for title, rows, versus in (("Simulation ratio", simulation_rows(cells, variants), "finest_no_sim"),
                                ("Reference protocol", protocol_rows(cells, variants), "Original")):
        seeds = common_seeds(rows)
        if not seeds or len(rows) < 2:
            out.append(f"{title}: no seed finished in every folder so far.\n")
            continue
        out.append(f"{title} (seeds {', '.join(map(str, seeds))}):\n")
        out.append(rows_table(rows, seeds, (versus, rows[0][1])) + "\n")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("studies", nargs="+", help="main study folders; their variants are <folder>-<variant>")
    parser.add_argument("--variants", nargs="+", default=["sim5", "sim10", "independent"])
    parser.add_argument("--selection", default="random",
                        help="the perturbation selection of the cells compared (default: random, the variants')")
    parser.add_argument("--fill", metavar="MD", help="replace the <!-- <DATASET>_VARIANTS --> blocks of this file")
    args = parser.parse_args()
    blocks = {}
    for folder in args.studies:
        cells = final_cells(folder, args.selection)
        text = tables(folder, args.variants, cells, args.selection)
        if not args.fill:
            print(f"## {folder}\n\n{text}")
            continue
        datasets = {r["dataset"] for r in cells.values()}
        if len(datasets) != 1:
            raise SystemExit(f"{folder}: no finished cell, or cells of several datasets: {sorted(datasets)}")
        blocks[f"{datasets.pop().upper()}_VARIANTS"] = text.rstrip("\n")
    if args.fill:
        fill(args.fill, blocks)


if __name__ == "__main__":
    main()
