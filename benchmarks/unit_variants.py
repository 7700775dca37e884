"""Epoch time of the sequence-unit variants that move its batches toward the prefix unit's.

SASRec on reddit, plain (pre-training) epochs, side by side in one run: the prefix unit,
the sequence unit as shipped, and the sequence unit with ``length_bucketing: False``,
``target_split: 2 / 4 / 8`` and ``window_stride: 1`` (docs/performance.md, "Prefix vs
sequence after equal epochs", gives what each does to MRR / RBO / Jaccard@10).

    .venv/bin/python benchmarks/unit_variants.py [--hidden 64] [--batches 20] [--device cpu]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _memory import peak_rss_mib  # noqa: E402
from epoch_speed import (base_args, load, make_trainer, model_config, parse_args, timed_epoch,  # noqa: E402
                         with_keys)

NO_BUCKETS = {"length_bucketing": False}
VARIANTS = (  # (label, unit, config keys)
    ("prefix", "prefix", {}),
    ("sequence", "sequence", {}),
    ("sequence, length_bucketing False", "sequence", NO_BUCKETS),
    ("sequence, target_split 2, length_bucketing False", "sequence", {"target_split": 2, **NO_BUCKETS}),
    ("sequence, target_split 4, length_bucketing False", "sequence", {"target_split": 4, **NO_BUCKETS}),
    ("sequence, target_split 8, length_bucketing False", "sequence", {"target_split": 8, **NO_BUCKETS}),
    ("sequence, target_split 8", "sequence", {"target_split": 8}),
    ("sequence, window_stride 1, length_bucketing False", "sequence", {"window_stride": 1, **NO_BUCKETS}),
)


def main():
    ap = base_args(__doc__.splitlines()[0], batches=20)
    ap.set_defaults(hidden=64)
    args = parse_args(ap)
    from recbole_finest.finest.trainer import PRETRAIN

    n = args.batches or None
    config, train, _, _ = load("SASRec", model_config(args, "SASRec"))
    defaults = {key: config[key] for _, _, keys in VARIANTS for key in keys}
    rows = []
    for label, unit, keys in VARIANTS:
        trainer = make_trainer(with_keys(config, **{**defaults, **keys}), train, unit)
        trainer._start_phase(PRETRAIN, config["learning_rate"], 1)
        seconds, mem, _ = timed_epoch(trainer, trainer.make_loader(train), n, args.device)
        rows.append((label, seconds, mem))
    cut = f"first {n} batches of each epoch, extrapolated per target" if n else "whole epochs"
    print(f"SASRec on reddit, hidden {args.hidden}, 2 layers, max_len 50, batch 1024 targets, device "
          f"{args.device}, {torch.get_num_threads()} threads; plain epoch, timed: {cut}\n")
    print("| unit and keys | plain epoch [s] | prefix / this | peak mem |")
    print("|---|---|---|---|")
    prefix = rows[0][1]
    for label, seconds, mem in rows:
        print(f"| {label} | {seconds:.1f} | {prefix / seconds:.1f}x | {mem} |")
    print(f"\nprocess peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
