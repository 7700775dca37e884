"""Issue-14 tables from the finished cells of study folders, while a study runs or after it stopped part-way.

    python scripts/experiments/paper_tables.py docs/paper_study/reddit docs/paper_study/wikipedia

Prints per folder the study's own tables (:func:`recbole_finest.report.markdown`: mean ± std
over the seeds finished so far, FINEST's improvement and one-tailed Welch p against every
method) for the final epoch, then the RBO-by-epoch table (:func:`recbole_finest.report.epoch_markdown`).
A group counts only the seeds whose cells are all finished, so every method of a table is
averaged over the same seeds.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))

from recbole_finest import report  # noqa: E402
from recbole_finest.methods import METHODS  # noqa: E402
from recbole_finest.study_folder import StudyFolder  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("studies", nargs="+", help="study folders")
    parser.add_argument("--reference", default="finest")
    args = parser.parse_args()
    for folder in args.studies:
        records = complete_seeds(StudyFolder(folder).records())
        datasets = sorted({r["dataset"] for r in records})
        print(f"## {folder} ({', '.join(datasets) or 'no finished seed'})\n")
        if not records:
            continue
        found = {r["method"] for r in records if report.is_final(r)}
        methods = [m for m in ["original", *(m for m in METHODS if m != "original")] if m in found]  # Original first
        stats = report.summarize([r for r in records if report.is_final(r)], methods=methods, reference=args.reference)
        print(report.markdown(stats))
        print(report.epoch_markdown(report.epoch_curves(records, methods=methods)))


if __name__ == "__main__":
    main()
