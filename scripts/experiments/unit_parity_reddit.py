"""Issue-7 check: `train_unit: prefix` vs `train_unit: sequence` after equal epochs on reddit.

One StabilityRun (Original + FINEST, shared protocol, random deletion 0.1%) per unit with a
fixed number of pre-training and fine-tuning epochs (no early stopping: validation only at
the last epoch), same seed, same initial parameters. Then the table of both units and the
relative difference of each metric, sequence vs prefix.

    python scripts/experiments/unit_parity_reddit.py --unit prefix   [--model SASRec --seed 2020]
    python scripts/experiments/unit_parity_reddit.py --unit sequence
    python scripts/experiments/unit_parity_reddit.py --table           # compare the saved runs

Writes runs/unit_parity/<model>-<unit>-s<seed>.json.
"""

import argparse
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))

from recbole.utils import init_logger, init_seed  # noqa: E402

from recbole_finest.config import Config, properties_dir  # noqa: E402
from recbole_finest.fileio import write_json  # noqa: E402
from recbole_finest.quick_start import load_data  # noqa: E402
from recbole_finest.stability import StabilityRun  # noqa: E402

KEYS = ("mrr", "recall@10", "ndcg@10", "rbo", "jaccard@10")


def run(args):
    files = [os.path.join(properties_dir(), "examples", "reddit_small.yaml")]
    overrides = {
        "train_unit": args.unit, "seed": args.seed, "hidden_size": args.hidden, "inner_size": 2 * args.hidden,
        "epochs": args.epochs, "eval_step": args.epochs, "stopping_step": args.epochs,
        "finest_epochs": args.finest_epochs, "checkpoint_dir": os.path.join(args.out, "saved"),
    }
    config = Config(model=args.model, config_file_list=files, config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    start = time.time()
    _, (train_data, valid_data, test_data) = load_data(config)
    stability = StabilityRun(config, train_data, valid_data, test_data)
    rows = [stability.pretrain(), stability.finetune("finest")]
    out = os.path.join(args.out, f"{args.model}-{args.unit}-s{args.seed}.json")
    write_json(out, {"model": args.model, "unit": args.unit, "seed": args.seed, "rows": rows,
                     "wall_s": time.time() - start,
                     "config": {k: overrides[k] for k in ("hidden_size", "epochs", "finest_epochs")}})
    print(f"wrote {out} ({time.time() - start:.0f} s)")


def table(args):
    runs = {}
    for path in sorted(glob.glob(os.path.join(args.out, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        runs[(r["model"], r["seed"], r["unit"])] = r
    lines = ["| model | seed | method | metric | prefix | sequence | relative difference |",
             "|---|---|---|---|---|---|---|"]
    for (model, seed, unit), r in sorted(runs.items()):
        if unit != "prefix" or (model, seed, "sequence") not in runs:
            continue
        seq = {row["method"]: row for row in runs[(model, seed, "sequence")]["rows"]}
        for row in r["rows"]:
            other = seq[row["method"]]
            for key in KEYS:
                rel = (other[key] - row[key]) / row[key]
                lines.append(f"| {model} | {seed} | {row['method']} | {key} | {row[key]:.4f} | "
                             f"{other[key]:.4f} | {100 * rel:+.2f}% |")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unit", choices=("prefix", "sequence"))
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finest-epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/unit_parity")
    args = parser.parse_args()
    if args.table:
        table(args)
    elif args.unit:
        run(args)
    else:
        parser.error("give --unit prefix|sequence or --table")


if __name__ == "__main__":
    main()
