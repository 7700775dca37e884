"""Issue-2 experiment: Original vs FINEST on reddit, `shared` and `independent` protocols.

One StabilityRun per model: A and B are pre-trained once, then fine-tuned with FINEST
toward A's reference lists (shared) and toward their own (independent).

    python scripts/experiments/spine_reddit.py --model SASRec [--key=value ...]

Writes runs/spine/<model>.json and prints the table.
"""

import argparse
import os
import sys
import time

from recbole.utils import init_logger, init_seed

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))

from recbole_finest.config import Config, properties_dir  # noqa: E402
from recbole_finest.fileio import write_json  # noqa: E402
from recbole_finest.quick_start import load_data  # noqa: E402
from recbole_finest.stability.run import StabilityRun, format_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="runs/spine")
    args, _ = parser.parse_known_args()
    files = [os.path.join(properties_dir(), "examples", "reddit_small.yaml")]
    config = Config(model=args.model, config_file_list=files)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    start = time.time()
    _, (train_data, valid_data, test_data) = load_data(config)
    states = os.path.join(args.out, "states", args.model)

    def state_path(side, stage):
        return os.path.join(states, f"{side}-{stage}.pth")

    run = StabilityRun(config, train_data, valid_data, test_data, state_path=state_path)
    rows = [run.pretrain()]
    for protocol in ("shared", "independent"):  # a Config per protocol; the pre-trained pair is read back
        protocol_config = Config(model=args.model, config_file_list=files, config_dict={"reference_protocol": protocol})
        row = StabilityRun(protocol_config, train_data, valid_data, test_data, shared=run.shared,
                           state_path=state_path).finetune("finest")
        row["method"] = f"finest ({protocol})"
        rows.append(row)
    table = format_table(rows)
    print(table)
    write_json(os.path.join(args.out, f"{args.model}.json"),
               {"model": args.model, "rows": rows, "wall_s": time.time() - start,
                "config": {k: config[k] for k in ("hidden_size", "finest_epochs", "finest_learning_rate",
                                                  "finest_topk", "perturb_ratio", "epochs", "stopping_step")}})


if __name__ == "__main__":
    main()
