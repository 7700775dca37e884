"""Issue-14 figure: RBO gain over Original vs fine-tuning epochs for FINEST, finest_no_sim and the best baseline.

Reads the finished cells of study folders (a study still running included; the seeds whose
cells are all finished) and draws one
panel per (dataset, model, selection, kind, ratio):

    python scripts/experiments/paper_epoch_plot.py runs/paper-reddit runs/paper-wikipedia \
        --out docs/paper_epoch_gain.png [--methods finest finest_no_sim acae]

Without ``--methods``: FINEST, ``finest_no_sim`` and, per panel, the baseline (no FINEST
variant, not Original) with the highest mean final-epoch RBO in that panel's cells.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
sys.path.insert(0, os.path.dirname(__file__))

from recbole_finest import report  # noqa: E402
from recbole_finest.study.folder import StudyFolder  # noqa: E402
from paper_tables import best_baseline, complete_seeds  # noqa: E402


def panel_cells(records, methods=None):
    """``(cells, methods)`` to draw from ``records`` (finished seeds): with ``methods`` those methods
    in every panel; without, FINEST, ``finest_no_sim`` and each panel's own best baseline (the
    other baselines' cells of a panel are left out, so no panel shows another panel's best)."""
    groups = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in report.GROUP_KEYS), []).append(r)
    cells, drawn = [], list(methods or ["finest", "finest_no_sim"])
    for group in groups.values():
        keep = set(drawn if methods else ["finest", "finest_no_sim"]) | {"original"}
        best = None if methods else best_baseline(group)
        if best:
            keep.add(best)
            drawn += [best] if best not in drawn else []
        cells += [c for c in group if report.base_method(c) in keep]
    return cells, drawn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("studies", nargs="+", help="study folders")
    parser.add_argument("--out", default="docs/paper_epoch_gain.png")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args()
    records = []
    for folder in args.studies:
        study = complete_seeds(StudyFolder(folder).records())  # every method over the same seeds
        # one panel per dataset: the dataset goes into the model's name
        records += [{**c, "model": f"{c['dataset']} {c['model']}"} for c in study]
    cells, methods = panel_cells(records, args.methods)
    n = report.plot_epoch_gain(cells, args.out, methods=methods, dpi=args.dpi)
    print(f"{args.out}: {n} panels, methods {', '.join(methods)}")


if __name__ == "__main__":
    main()
