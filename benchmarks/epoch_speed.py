"""Epoch time of ``train_unit: prefix`` vs ``sequence``, plain and FINEST, on reddit.

For each model (SASRec, BERT4Rec by default) one run builds the reddit loaders once and
times, side by side: a plain (pre-training) epoch and a FINEST fine-tuning epoch (with its
perturbation simulation and instance rebuild), each in the prefix and the sequence unit.
A batch holds about ``train_batch_size`` targets in both units, so with ``--batches N``
only the first ``N`` batches of each epoch are timed and the epoch time is extrapolated
from the time per target (stated in the output). Peak RSS growth of each measurement is
printed next to its time.

    .venv/bin/python benchmarks/epoch_speed.py [--data ../shared/data/reddit.tsv] [--batches 20]
        [--models SASRec,BERT4Rec] [--hidden 128] [--threads 2]

Targets (issue 7): sequence >= 5x faster than prefix; FINEST epoch <= 1.3x the plain
epoch of the same unit.
"""
import argparse
import itertools
import os
import sys
import time

from _memory import peak_rss_mib, status_kib  # noqa: E402 (benchmarks/ is on sys.path)

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


# ---------------------------------------------------------------------- shared helpers
def default_data():
    return os.path.normpath(os.path.join(REPO, "..", "shared", "data", "reddit.tsv"))


def require_data(path):
    if not os.path.isfile(path):
        sys.exit(f"reddit data not found at {path}: pass --data <path to reddit.tsv> "
                 "(tab-separated user, subreddit, timestamp; see /work/shared/FINEST_SPEC.md)")
    return os.path.abspath(path)


def base_args(description, batches=None):
    """The benchmarks' shared arguments; ``batches``: add ``--batches`` with this default."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=default_data(), help="reddit.tsv (default: ../shared/data/reddit.tsv)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "saved", "benchmarks"),
                    help="where the converted dataset and checkpoints go")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    if batches is not None:
        ap.add_argument("--batches", type=int, default=batches, help="batches timed per epoch (0 = whole epochs)")
    return ap


def parse_args(ap):
    """Parsed arguments; exits with a clear message when the data file is missing."""
    args = ap.parse_args()
    args.data = require_data(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def model_config(args, model, **extra):
    """Config dict of the benchmarks: reddit protocol, hidden size ``args.hidden``, 2 layers."""
    return {
        "data_path": os.path.join(REPO, "dataset") + os.sep,
        "raw_data_file": args.data,
        "hidden_size": args.hidden, "inner_size": 2 * args.hidden, "n_layers": 2, "n_heads": 2,
        "embedding_size": args.hidden,
        "MAX_ITEM_LIST_LENGTH": 50, "train_batch_size": 1024, "eval_batch_size": 2048,
        "show_progress": False, "checkpoint_dir": os.path.join(args.workdir, "saved"),
        "results_dir": os.path.join(args.workdir, "results"), "device": args.device,
        "use_gpu": args.device != "cpu", "log_wandb": False, "state": "WARNING", **extra,
    }


def load(model, config_dict):
    """``(config, train_data, valid_data, test_data)`` of reddit for ``model``."""
    from recbole.utils import init_logger, init_seed

    from recbole_finest.config import Config
    from recbole_finest.quick_start import load_data

    config = Config(model=model, dataset="reddit", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    _, (train, valid, test) = load_data(config)
    return config, train, valid, test




class PeakMemory:
    """RSS high-water growth during a block (Linux ``clear_refs``), CUDA allocator peak on GPU."""

    def __init__(self, device="cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.mib = float("nan")

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
                self.base = status_kib("VmRSS")
            except OSError:
                self.base = None
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        elif self.base is not None:
            self.mib = (status_kib("VmHWM") - self.base) / 1024.0
        return False

    def __str__(self):
        unit = "MiB dev" if self.cuda else "MiB RSS"
        return f"+{self.mib:.0f} {unit}"


class FirstBatches:
    """A SequenceLoader cut to its first ``n`` batches (None = all); counts the targets seen."""

    def __init__(self, loader, n):
        self.loader, self.n, self.targets, self.batches = loader, n, 0, 0

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for batch in itertools.islice(iter(self.loader), self.n):
            self.targets += batch_targets(batch, self.loader.config)
            self.batches += 1
            yield batch


def batch_targets(inter, config):
    """Targets scored in ``inter``: window positions holding one (sequence unit) or instances."""
    from recbole_finest.data.sequences import TARGET_SEQ

    if TARGET_SEQ in inter.interaction:
        return int((inter[TARGET_SEQ] > 0).sum())
    return len(inter)


def epoch_targets(loader):
    """Targets of one full epoch of ``loader`` (masked windows count once per copy)."""
    targets = batch_targets(loader.instances(loader.sequences), loader.config)
    return targets * loader.copies if loader.masked else targets


def timed_epoch(trainer, loader, n_batches, device="cpu"):
    """``(seconds for a full epoch (extrapolated when cut), PeakMemory, batches timed)``."""
    cut = FirstBatches(loader, n_batches)
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        trainer._train_epoch(cut, 0)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    total = epoch_targets(loader)
    return seconds * total / max(1, cut.targets), mem, cut.batches


def with_keys(config, **keys):
    """A ``Config`` built as ``config`` was, with ``keys`` on top (a built ``Config`` is never changed)."""
    from recbole_finest.config import Config

    return Config(config["model"], config["dataset"], config_dict={**config.external_config_dict, **keys})


def make_trainer(config, train, unit, method="finest"):
    from recbole_finest.finest.trainer import FinestTrainer
    from recbole_finest.utils import get_model

    config = with_keys(config, train_unit=unit)
    from recbole.utils import init_seed

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train.dataset).to(config["device"])
    return FinestTrainer(config, model, method=method)


def plain_and_finest(config, train, unit, n_batches, device):
    """Time a plain epoch and a FINEST epoch (reference lists built in between, not timed here)."""
    from recbole_finest.finest.trainer import FINETUNE, PRETRAIN

    trainer = make_trainer(config, train, unit)
    trainer._start_phase(PRETRAIN, config["learning_rate"], 1)
    plain = timed_epoch(trainer, trainer.make_loader(train), n_batches, device)
    t0 = time.perf_counter()
    trainer.build_reference(train)
    reference_s = time.perf_counter() - t0
    trainer._start_phase(FINETUNE, config["finest_learning_rate"], 1)
    finest = timed_epoch(trainer, trainer.make_loader(train, trainer._simulation()), n_batches, device)
    return plain, finest, reference_s


def main():
    ap = base_args(__doc__.splitlines()[0], batches=20)
    ap.add_argument("--models", default="SASRec,BERT4Rec")
    args = parse_args(ap)
    n = args.batches or None
    rows = []
    for model in args.models.split(","):
        config, train, _, _ = load(model, model_config(args, model))
        res = {unit: plain_and_finest(config, train, unit, n, args.device) for unit in ("prefix", "sequence")}
        rows.append((model, res))
    cut = f"first {n} batches of each epoch, extrapolated per target" if n else "whole epochs"
    print(f"reddit, hidden {args.hidden}, 2 layers, max_len 50, batch 1024 targets, device {args.device}, "
          f"{torch.get_num_threads()} threads; timed: {cut}")
    print()
    print("| model | unit | plain epoch [s] | FINEST epoch [s] | FINEST / plain | reference lists [s] | peak mem plain / FINEST |")
    print("|---|---|---|---|---|---|---|")
    for model, res in rows:
        for unit in ("prefix", "sequence"):
            (tp, mp, _), (tf, mf, _), tr = res[unit]
            print(f"| {model} | {unit} | {tp:.1f} | {tf:.1f} | {tf / tp:.2f}x | {tr:.1f} | {mp} / {mf} |")
    print()
    print("| model | prefix / sequence, plain | prefix / sequence, FINEST | target |")
    print("|---|---|---|---|")
    for model, res in rows:
        sp = res["prefix"][0][0] / res["sequence"][0][0]
        sf = res["prefix"][1][0] / res["sequence"][1][0]
        print(f"| {model} | {sp:.1f}x | {sf:.1f}x | >= 5x; FINEST/plain <= 1.3x |")
    print(f"\nprocess peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
