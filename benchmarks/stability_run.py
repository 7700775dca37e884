"""Wall time of the full Original + FINEST stability run of BERT4Rec on reddit.

2 pre-trainings (models A and B, 1 epoch each, with validation) + reference lists + 2
FINEST fine-tunings (1 epoch each) + evaluation of the 4 models (RBO, Jaccard@10, MRR,
Recall@10, NDCG@10), BERT4Rec hidden 128, max_len 50, the default unit (sequence). Prints
the wall time of each phase and of the whole run with the process's peak RSS.

    .venv/bin/python benchmarks/stability_run.py [--data ../shared/data/reddit.tsv] [--model BERT4Rec]

Target (issue 7): under 100 s on the development machine. Anchor: the paper's reference
code took 45-59 s per model (1 pre-training + 1 FINEST epoch + evaluation) on this machine.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from epoch_speed import PeakMemory, base_args, load, model_config, parse_args, peak_rss_mib  # noqa: E402


def main():
    ap = base_args(__doc__.splitlines()[0])
    ap.add_argument("--model", default="BERT4Rec")
    args = parse_args(ap)
    from recbole_finest.stability.run import StabilityRun, format_table

    t_start = time.perf_counter()
    config, train, valid, test = load(args.model, model_config(
        args, args.model, epochs=1, finest_epochs=1, finetune_method="finest", stopping_step=1))
    t_load = time.perf_counter() - t_start
    phases = []
    with PeakMemory(args.device) as mem:
        t0 = time.perf_counter()
        run = StabilityRun(config, train, valid, test, saved=False)
        rows = [run.pretrain()]
        phases.append(("setup + 2 pre-trainings + evaluation", time.perf_counter() - t0))
        t1 = time.perf_counter()
        rows.append(run.finetune("finest"))
        phases.append(("reference lists + 2 FINEST fine-tunings + evaluation", time.perf_counter() - t1))
        total = time.perf_counter() - t0
    print(f"{args.model} on reddit, hidden {args.hidden}, max_len 50, unit {config['train_unit']} (auto = sequence for BERT4Rec), "
          f"device {args.device}, {torch.get_num_threads()} threads")
    print()
    print(format_table(rows))
    print()
    print("| phase | wall time [s] |")
    print("|---|---|")
    print(f"| load reddit (RecBole dataset + loaders, not counted) | {t_load:.1f} |")
    for name, seconds in phases:
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **stability run (Original + FINEST)** | **{total:.1f}** (target < 100) |")
    print(f"\npeak memory: {mem} during the run, process peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
