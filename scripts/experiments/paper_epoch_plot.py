"""Issue-14 figure: RBO gain over Original vs fine-tuning epochs for FINEST, finest_no_sim and the best baseline.

Reads the finished cells of study folders (a study still running included; the seeds whose
cells are all finished) and draws one
panel per (dataset, model, selection, kind, ratio):

    python scripts/experiments/paper_epoch_plot.py runs/paper-reddit runs/paper-wikipedia \
        --out docs/paper_epoch_gain.png [--methods finest finest_no_sim acae]

Without ``--methods``: FINEST, ``finest_no_sim`` and, per study, the baseline (no FINEST
variant, not Original) with the highest mean final-epoch RBO over its groups.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
sys.path.insert(0, os.path.dirname(__file__))

from recbole_finest import report  # noqa: E402
from recbole_finest.study_folder import StudyFolder  # noqa: E402
from paper_tables import best_baseline, complete_seeds  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("studies", nargs="+", help="study folders")
    parser.add_argument("--out", default="docs/paper_epoch_gain.png")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args()
    cells, methods = [], list(args.methods or ["finest", "finest_no_sim"])
    for folder in args.studies:
        study = complete_seeds(StudyFolder(folder).records())  # every method over the same seeds
        best = None if args.methods else best_baseline(study)
        if best and best not in methods:
            methods.append(best)
        # one panel per dataset: the dataset goes into the model's name
        cells += [{**c, "model": f"{c['dataset']} {c['model']}"} for c in study]
    n = report.plot_epoch_gain(cells, args.out, methods=methods, dpi=args.dpi)
    print(f"{args.out}: {n} panels, methods {', '.join(methods)}")


if __name__ == "__main__":
    main()
