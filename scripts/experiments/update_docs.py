"""Copy the newest update report of each run into docs/ and print its Markdown table.

    python scripts/experiments/update_docs.py            # after scripts/experiments/update_runs.sh
    python scripts/experiments/update_docs.py --seed 2021 --no-copy   # only print the tables of another seed

For every ``runs/update/update-<model>-<dataset>-<time>`` folder (newest per model and dataset)
the two PNGs go to ``docs/update_<model>_<dataset>_{frontier,churn_hist}.png``.
"""

import glob
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def main():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--no-copy", action="store_true", help="print the tables only")
    args = parser.parse_args()
    newest = {}
    folders = glob.glob(os.path.join(ROOT, "runs", "update", "update-*", "results.json"))
    for path in sorted(folders, key=os.path.getmtime):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        if report["seed"] == args.seed:
            newest[(report["model"], report["dataset"])] = os.path.dirname(path)
    for (model, dataset), folder in sorted(newest.items()):
        for png in () if args.no_copy else ("frontier", "churn_hist"):
            shutil.copyfile(os.path.join(folder, f"{png}.png"),
                            os.path.join(ROOT, "docs", f"update_{model}_{dataset}_{png}.png"))
        from recbole_finest.update.report import markdown

        with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
            print(markdown(json.load(f)).replace("# Model update:", "###"))
        print(f"![accuracy vs churn]({f'update_{model}_{dataset}_frontier.png'}) "
              f"![per-user RBO]({f'update_{model}_{dataset}_churn_hist.png'})\n")


if __name__ == "__main__":
    main()
