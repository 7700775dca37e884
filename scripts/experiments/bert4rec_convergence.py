"""Issue-19 point 5: BERT4Rec time-to-accuracy curves, prefix unit vs sequence-unit settings.

One pre-training run of BERT4Rec on wikipedia or reddit (``--dataset``) per variant (hidden
64, 2 layers, RecBole's pre-training lr 1e-3 unless the variant changes it, same seed, same
initial parameters), validation MRR@10 after every epoch against the cumulative **process
CPU time of the training epochs** (validation excluded), one thread. A run stops at
``--budget`` CPU seconds of training, ``--epochs`` epochs, or ``--patience`` epochs without
a better validation MRR@10 (RecBole's ``stopping_step``; 0: off), whichever comes first.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 \
        python scripts/experiments/bert4rec_convergence.py --variant prefix [--budget 1200]
    python scripts/experiments/bert4rec_convergence.py --variant default      # sequence, 1 copy
    python scripts/experiments/bert4rec_convergence.py --variant default --rerun  # time it again
    python scripts/experiments/bert4rec_convergence.py --list                 # the variants
    python scripts/experiments/bert4rec_convergence.py --summary              # table of the runs
    python scripts/experiments/bert4rec_convergence.py --plot                 # the PNG

Writes docs/bert4rec_convergence/<variant>-s<seed>.json (wikipedia) or
<dataset>-<variant>-s<seed>.json after every epoch (``complete`` true once the run stopped);
a complete run is not run again. After every epoch the model, optimizer and random states
are also kept in runs/bert4rec_convergence/<dataset>-<variant>-s<seed>.pth (atomic), so an
interrupted run (a session that ends mid-run) continues from its last finished epoch; the
process CPU time of the epochs before the interruption is carried over.
"""

import argparse
import glob
import random
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402

from recbole_finest.config import Config  # noqa: E402
from recbole_finest.fileio import load_checkpoint, save_checkpoint, write_json  # noqa: E402
from recbole_finest.quick_start import load_data  # noqa: E402
from recbole_finest.utils import get_model  # noqa: E402
from recbole_finest.finest.trainer import PRETRAIN, FinestTrainer  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "bert4rec_convergence")
ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
DATASETS = ("wikipedia", "reddit")
BASE = {
    "hidden_size": 64, "inner_size": 128, "n_layers": 2, "n_heads": 2,
    "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "MAX_ITEM_LIST_LENGTH": 50,
    "train_batch_size": 1024, "eval_batch_size": 2048, "learning_rate": 1e-3,
    "show_progress": False, "finest": False,
}
# variant -> overrides of BASE (every key exists in the plugin's or RecBole's config)
VARIANTS = {
    "prefix": {"train_unit": "prefix"},  # RecBole's layout and its ft_ratio 0.5
    # the sequence unit's default since 2026-12-04: sequence_ft_ratio 0 (every batch masks 20%)
    "default": {"train_unit": "sequence"},
    "mask_copies=2": {"train_unit": "sequence", "mask_copies": 2},
    # the sequence unit before 2026-12-04: half the batches mask only each window's last item
    # (RecBole's ft_ratio 0.5, one target per window); the variants below it start from it
    "ft_ratio=0.5": {"train_unit": "sequence", "sequence_ft_ratio": 0.5},
    "mask_copies=4": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "mask_copies": 4},
    "mask_ratio=0.4": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "mask_ratio": 0.4},
    "batch=128": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "train_batch_size": 128},
    "batch=128,mask_copies=4": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "train_batch_size": 128,
                                "mask_copies": 4},
    "mask_copies=4,lr=3e-3": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "mask_copies": 4,
                              "learning_rate": 3e-3},
    "lr=2e-3": {"train_unit": "sequence", "sequence_ft_ratio": 0.5, "learning_rate": 2e-3},
}
METRIC = "mrr@10"
# plot legend where the variant's name alone would mislead
LABELS = {"default": "default (sequence_ft_ratio 0)", "ft_ratio=0.5": "sequence_ft_ratio 0.5 (default before 2026-12-04)",
          "prefix": "train_unit: prefix"}


STATES = os.path.join(ROOT, "runs", "bert4rec_convergence")


def _name(dataset, variant, seed):
    """Run name: ``<variant>-s<seed>`` on wikipedia (the first runs' names), else prefixed."""
    return f"{variant}-s{seed}" if dataset == "wikipedia" else f"{dataset}-{variant}-s{seed}"


def _path(dataset, variant, seed):
    return os.path.join(OUT, _name(dataset, variant, seed) + ".json")


def _config(dataset, variant, seed):
    data = {"dataset": dataset, "raw_data_file": os.path.join(ROOT, os.pardir, "shared", "data", f"{dataset}.tsv")}
    overrides = {**BASE, **data, **VARIANTS[variant], "seed": seed,
                 "checkpoint_dir": os.path.join(STATES, "saved")}
    return Config(model="BERT4Rec", config_dict=overrides), overrides


def _random_states():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_random_states(states):
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def _resume(state_path, trainer):
    """Load an interrupted run's last epoch into ``trainer``; returns its curve (``[]`` if none)."""
    if not os.path.isfile(state_path):
        return []
    state = load_checkpoint(state_path)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    _set_random_states(state["random"])
    print(f"resuming {state_path} after epoch {state['curve'][-1]['epoch']}", flush=True)
    return state["curve"]


def _stop_reason(curve, budget, epochs, patience):
    """Why the run stops after the last epoch of ``curve`` (``None``: go on)."""
    if curve[-1]["train_cpu_s"] >= budget:
        return "budget"
    if len(curve) >= epochs:
        return "epochs"
    best = max(range(len(curve)), key=lambda i: (curve[i][METRIC], -i))  # first best epoch
    if patience and len(curve) - 1 - best >= patience:
        return "patience"
    return None


def run(args):
    """Train ``args.variant`` epoch by epoch; write the curve (and a resume state) after every epoch."""
    path = _path(args.dataset, args.variant, args.seed)
    if os.path.isfile(path) and json.load(open(path)).get("complete") and not args.rerun:
        print(f"{path} is complete; --rerun to measure it again")
        return
    torch.set_num_threads(1)
    config, overrides = _config(args.dataset, args.variant, args.seed)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset, (train_data, valid_data, _) = load_data(config)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset)
    trainer = FinestTrainer(config, model)
    trainer._start_phase(PRETRAIN, config["learning_rate"], args.epochs)
    loader = trainer.make_loader(train_data)
    state_path = os.path.join(STATES, _name(args.dataset, args.variant, args.seed) + ".pth")
    if args.rerun and os.path.isfile(state_path):
        os.remove(state_path)
    curve = _resume(state_path, trainer)
    cpu, start = (curve[-1]["train_cpu_s"], curve[-1]["wall_s"]) if curve else (0.0, 0.0)
    start = time.time() - start
    for epoch in range(len(curve), args.epochs):
        t0 = time.process_time()
        loss = trainer._train_epoch(loader, epoch)
        cpu += time.process_time() - t0
        result = trainer.evaluate(valid_data, load_best_model=False)
        curve.append({"epoch": epoch + 1, "train_cpu_s": round(cpu, 2), "loss": float(loss),
                      METRIC: float(result[METRIC]), "wall_s": round(time.time() - start, 1)})
        print(f"{args.dataset} {args.variant} epoch {epoch + 1}: cpu {cpu:.0f} s, {METRIC} {result[METRIC]:.4f}",
              flush=True)
        stop = _stop_reason(curve, args.budget, args.epochs, args.patience)
        save_checkpoint({"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                         "random": _random_states(), "curve": curve}, state_path)
        write_json(path, {
            "model": "BERT4Rec", "dataset": args.dataset, "variant": args.variant, "seed": args.seed,
            "overrides": {k: v for k, v in overrides.items() if k not in ("raw_data_file", "checkpoint_dir")},
            "budget_cpu_s": args.budget, "max_epochs": args.epochs, "patience": args.patience,
            "complete": stop is not None, "stopped_on": stop,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "threads": torch.get_num_threads(), "curve": curve,
        })
        if stop:
            break


def _load(dataset, seed):
    """``{variant: run record}`` of ``dataset``'s runs with ``seed``."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(OUT, f"*-s{seed}.json"))):
        with open(path) as f:
            r = json.load(f)
        if r.get("dataset", "wikipedia") == dataset:
            runs[r["variant"]] = r
    return runs


def _time_to(curve, target):
    """CPU seconds of training at the first epoch whose MRR@10 reaches ``target``, or None."""
    return next((p["train_cpu_s"] for p in curve if p[METRIC] >= target), None)


def summary(args):
    """Best MRR@10 per variant, CPU time to reach 98% of the prefix unit's best, and the target."""
    runs = _load(args.dataset, args.seed)
    if "prefix" not in runs:
        print("no prefix run yet")
        return
    pre = runs["prefix"]
    best_pre = max(p[METRIC] for p in pre["curve"])
    target, pre_cpu = 0.98 * best_pre, pre["curve"][-1]["train_cpu_s"]
    t_pre = _time_to(pre["curve"], target)
    print(f"prefix best {METRIC} {best_pre:.4f} (target {target:.4f}); prefix reaches it at {t_pre} s")
    print("| variant | epochs | train CPU [s] | best MRR@10 | vs prefix best | CPU to 98% of prefix best [s] "
          "| / prefix's time to it | target met (<= 1/5) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [v for v in VARIANTS if v in runs]:
        r = runs[name]
        best = max(p[METRIC] for p in r["curve"])
        t = _time_to(r["curve"], target)
        ratio = f"{t / t_pre:.2f}" if t is not None and t_pre else "n/a"
        met = "n/a" if name == "prefix" else ("yes" if t is not None and t_pre and t <= t_pre / 5 else "no")
        state = "" if r["complete"] else " (partial: stopped or running)"
        print(f"| {name}{state} | {r['curve'][-1]['epoch']} | {r['curve'][-1]['train_cpu_s']:.0f} | {best:.4f} | "
              f"{100 * (best - best_pre) / best_pre:+.1f}% | {t if t is not None else 'not reached'} | {ratio} | {met} |")
    print(f"(prefix budget: {pre['budget_cpu_s']} s, used {pre_cpu:.0f} s)")


def plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _load(args.dataset, args.seed)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in [v for v in VARIANTS if v in runs]:
        curve = runs[name]["curve"]
        ax.plot([p["train_cpu_s"] / 60 for p in curve], [p[METRIC] for p in curve],
                marker="o", markersize=7 if len(curve) == 1 else 3, label=LABELS.get(name, name))
    if "prefix" in runs:
        best = max(p[METRIC] for p in runs["prefix"]["curve"])
        ax.axhline(0.98 * best, color="grey", linestyle=":", label="98% of prefix best")
        t_pre = _time_to(runs["prefix"]["curve"], 0.98 * best)
        ax.axvline(t_pre / 5 / 60, color="grey", linestyle="--", label="1/5 of prefix's time to it")
    ax.set_xlabel("training CPU time, one thread [min]")
    ax.set_ylabel("validation MRR@10")
    ax.set_title(f"BERT4Rec on {args.dataset} (hidden 64): time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    suffix = "" if args.dataset == "wikipedia" else f"_{args.dataset}"
    out = os.path.join(ROOT, "docs", f"bert4rec_convergence{suffix}.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--dataset", choices=DATASETS, default="wikipedia")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--budget", type=float, default=1200.0, help="CPU seconds of training per run")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many epochs without a better validation MRR@10 (0: off)")
    parser.add_argument("--rerun", action="store_true",
                        help="train again from epoch 1 and overwrite the curve: same seed, same MRR@10 per "
                             "epoch, the CPU times of this machine's current load (side-by-side timing)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, over in VARIANTS.items():
            print(name, over)
    elif args.summary:
        summary(args)
    elif args.plot:
        plot(args)
    elif args.variant:
        run(args)
    else:
        parser.error("give --variant, --list, --summary or --plot")


if __name__ == "__main__":
    main()
