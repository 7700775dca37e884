"""FINEST overhead: one FINEST fine-tuning epoch / one plain epoch, same model and batch size.

On reddit, for SASRec, BERT4Rec and GRU4Rec in their default unit (``train_unit: auto`` =
sequence), one run times side by side a plain epoch and a FINEST epoch (perturbation
simulation + instance rebuild + next-item loss + rank-preserving loss), and separately the
simulation + rebuild alone (target: under 10% of the fine-tuning epoch). Peak RSS growth is
printed next to each time.

    .venv/bin/python benchmarks/finest_overhead.py [--data ../shared/data/reddit.tsv] [--batches 0]
        [--models SASRec,BERT4Rec,GRU4Rec] [--hidden 128]

Target (issue 2): FINEST epoch <= 1.3x the plain epoch.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from epoch_speed import (base_args, load, make_trainer, model_config, parse_args, peak_rss_mib,  # noqa: E402
                         plain_and_finest)


def simulation_time(config, train, repeat=3):
    """Seconds of one epoch's perturbation simulation + instance rebuild (best of ``repeat``)."""

    trainer = make_trainer(config, train, "auto")
    loader = trainer.make_loader(train, trainer._simulation())
    best = float("inf")
    for epoch in range(repeat):
        t0 = time.perf_counter()
        seqs = loader.perturb_fn(loader.sequences, epoch)
        loader.instances(seqs)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = base_args(__doc__.splitlines()[0], batches=0)
    ap.add_argument("--models", default="SASRec,BERT4Rec,GRU4Rec")
    args = parse_args(ap)
    n = args.batches or None
    rows = []
    for model in args.models.split(","):
        config, train, _, _ = load(model, model_config(args, model))
        from recbole_finest.finest.trainer import resolve_train_unit

        unit = resolve_train_unit(config, make_trainer(config, train, "auto").scorer.adapter)
        (tp, mp, _), (tf, mf, _), tr = plain_and_finest(config, train, unit, n, args.device)
        ts = simulation_time(config, train)
        rows.append((model, unit, tp, tf, tr, ts, mp, mf))
    cut = f"first {n} batches of each epoch, extrapolated per target" if n else "whole epochs"
    print(f"reddit, hidden {args.hidden}, 2 layers, max_len 50, batch 1024 targets, device {args.device}, "
          f"{torch.get_num_threads()} threads; timed: {cut}")
    print()
    print("| model | unit | plain epoch [s] | FINEST epoch [s] | FINEST / plain (target <= 1.3x) "
          "| simulation + rebuild [s] | share of FINEST epoch (target < 10%) | peak mem plain / FINEST |")
    print("|---|---|---|---|---|---|---|---|")
    for model, unit, tp, tf, tr, ts, mp, mf in rows:
        print(f"| {model} | {unit} | {tp:.1f} | {tf:.1f} | {tf / tp:.2f}x | {ts:.3f} | {100 * ts / tf:.1f}% | {mp} / {mf} |")
    print(f"\nreference lists (not part of an epoch, built once per run): "
          + ", ".join(f"{r[0]} {r[4]:.1f} s" for r in rows))
    print(f"process peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
