"""Scale benchmark: the 1 + 1 epoch stability run on synthetic data of growing size.

For each size, one child process (so peak RSS is per size) generates (once, cached) a
synthetic interaction file, then runs the main job's stability protocol -- model A and B
pre-trained for 1 epoch, A's reference lists, 1 FINEST epoch each, evaluation of the 4
models (accuracy, RBO at full depth, Jaccard@10) -- and the CASPER scores of the training
split. It prints process CPU time, wall time and peak RSS per phase and, over the sizes, the growth
exponents ``log(v2 / v1) / log(n2 / n1)`` between consecutive sizes (CPU time per phase; the
first to the last size too). CPU time is the number to compare on a shared machine.

Synthetic data (:func:`generate`, seeded, documented shapes in :data:`SIZES`):

* item popularity: Zipf, ``P(item of popularity rank r) ~ 1 / r ** zipf_s`` (``zipf_s = 1``),
  ranks mapped to item ids by a random permutation;
* user lengths: long-tailed, ``min_len + Lomax(shape 2)`` scaled so the mean is
  ``interactions / users`` (50 for 100K-3M, ``min_len = 10``), rounded so the total is exact;
* timestamps: each user starts at a uniform time in ``[0, 1e6)`` and moves on by Exp(1)
  gaps, so users interleave in time (CASPER's item edges cross users).

The protocol is the paper's (reddit's yaml): users with >= 10 interactions, per-user
chronological split 85 / 5 / 10, full ranking; SASRec hidden 64 (2 layers, 2 heads,
inner 256), max_len 50, train batch 1024, eval batch 2048, 1 thread, random deletion of
0.1% for model B. Phases:

======================  ==========================================================
load                     RecBole reads, filters, remaps, splits; loaders built
pre-train epoch          FinestTrainer.pretrain of A and B (1 epoch + validation)
reference lists          FinestTrainer.build_reference (A's top-2K per instance)
FINEST epoch             FinestTrainer.finetune of A and B (1 epoch + validation)
evaluation               test metrics of the 4 models and RBO / Jaccard of both pairs
CASPER                   cascading scores of the training split by the method a run uses
                         (``auto``; exact with main's code); every method in ``--casper``
                         is timed for the CASPER table, outside the wall time
other                    the rest (training sequences, B's perturbation, init)
======================  ==========================================================

Peak RSS of a phase is the process's resident high-water mark during that phase
(``/proc/self/clear_refs`` reset at its start), so it includes what earlier phases left
resident.

    .venv/bin/python benchmarks/scale.py [--sizes 100K,300K,1M,3M] [--workdir saved/scale]
        [--repo PATH] [--label after] [--casper auto]
    .venv/bin/python benchmarks/scale.py --table [--label after]    # table of finished sizes

``--sizes`` takes any of 100K, 300K, 1M, 3M and the opt-in 10M. Each finished size is
written to ``<workdir>/results/<label>-<size>.json`` (atomically) and skipped when run
again, so a long series resumes. A size stopped part-way (a session's end) resumes after its
last finished step -- pre-training of A and B (with the original row's evaluation),
fine-tuning (reference lists, FINEST epochs, evaluation), CASPER -- and counts the finished
steps' recorded times (:class:`Progress`). ``--repo`` imports ``recbole_finest`` from another checkout
(e.g. main's, for a "before" series, ``--label before``).

Matmul FLOP per phase (issue 44): the matrix products every phase ran are counted from the
shapes the model saw (``_flops.py``: encoder ``n_layers * (8BWHA + 4BW^2A + 4BWHI)``, output
layer ``2MHN``, x3 forward + backward in training), and after the run (outside every phase)
the machine's matmul rate for the model's own shapes is measured in the same process
(``_matmul.py``: output layer forward / its two backward products / evaluation scoring /
encoder feed-forward / 2048^3, fp32 and bf16 where native). The table prints each phase's
FLOP, achieved GFLOP/s (FLOP / wall time) and its ratio to the rate of its shapes
(``--matmul-seconds 0`` skips the measurement).

Targets (issue 19): time and peak memory grow with exponent <= 1.1 from 100K to 3M; 10M
completes with peak RSS < 16 GB on a 24 GB machine.
"""
import argparse
import contextlib
import copy
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _flops import FlopCounter  # noqa: E402
from _matmul import bound_seconds, measure_rates, model_shapes  # noqa: E402
from _memory import status_kib  # noqa: E402

@contextlib.contextmanager
def atomic_path(path):
    """A temporary name next to ``path`` to write to; renamed to ``path`` once the block ends
    without error, so a stopped run never leaves a half-written file (folders created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    """Atomic indented JSON (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)


#: size label -> (interactions, users, items). 10M is ML-10M's shape (70K users, 10K items),
#: so its users are longer (mean 143); the others have mean length 50.
SIZES = {
    "100K": (100_000, 2_000, 2_000),
    "300K": (300_000, 6_000, 5_000),
    "1M": (1_000_000, 20_000, 10_000),
    "3M": (3_000_000, 60_000, 10_000),
    "10M": (10_000_000, 70_000, 10_000),
}
DEFAULT_SIZES = "100K,300K,1M,3M"
PHASES = ("load", "pre-train epoch", "reference lists", "FINEST epoch", "evaluation", "CASPER", "other")


# ------------------------------------------------------------------ synthetic data
def generate(n_interactions, n_users, n_items, seed=0, zipf_s=1.0, min_len=10):
    """Synthetic interactions ``(users [N], items [N], timestamps [N])``, rows grouped by user.

    Users ``0..n_users-1`` with lengths ``>= min_len`` summing to ``n_interactions``
    (long-tailed: ``min_len`` + Lomax(2) scaled to the mean), items ``0..n_items-1`` drawn
    from a Zipf(``zipf_s``) popularity over a random permutation of the ids, timestamps
    increasing within each user from a uniform start.
    """
    if n_interactions < min_len * n_users:
        raise ValueError(f"{n_interactions} interactions cannot give {n_users} users >= {min_len} each")
    rng = np.random.default_rng(seed)
    extra = rng.pareto(2.0, n_users)
    extra *= (n_interactions - min_len * n_users) / extra.sum()
    lengths = min_len + np.floor(extra).astype(np.int64)
    short = n_interactions - int(lengths.sum())  # < n_users; to the largest fractional parts
    lengths[np.argsort(np.floor(extra) - extra)[:short]] += 1
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    weights = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** zipf_s
    rank_to_id = rng.permutation(n_items)
    items = rank_to_id[rng.choice(n_items, size=n_interactions, p=weights / weights.sum())]
    gaps = rng.exponential(1.0, size=n_interactions)
    steps = np.cumsum(gaps)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    base = np.repeat(steps[starts] - gaps[starts], lengths)  # each user restarts at 0 ...
    times = steps - base + np.repeat(rng.uniform(0, 1e6, n_users), lengths)  # ... then its start
    return users, items, times


def write_inter(path, users, items, times):
    """RecBole atomic ``.inter`` file (temp file + rename)."""
    import pandas as pd

    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("user_id:token\titem_id:token\ttimestamp:float\n")
        pd.DataFrame({"u": users, "i": items, "t": times}).to_csv(
            fh, sep="\t", header=False, index=False, float_format="%.4f")


def dataset_for(size, workdir):
    """``(data_path, dataset name)`` of ``size``, generated on first use."""
    name = f"synth-{size}"
    data_path = os.path.join(workdir, "dataset")
    path = os.path.join(data_path, name, f"{name}.inter")
    if not os.path.isfile(path):
        t0 = time.perf_counter()
        write_inter(path, *generate(*SIZES[size]))
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return data_path + os.sep, name


def config_dict(data_path, workdir, casper_method, device="cpu", extra=None):
    """The run's config; ``device="cuda"`` runs the models on RecBole's GPU (``gpu_id`` 0),
    ``extra`` (``--config-json``) adds or overrides keys."""
    out = {
        "data_path": data_path, "download_datasets": False,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[10,inf)", "MAX_ITEM_LIST_LENGTH": 50,
        "eval_args": {"split": {"RS": [0.85, 0.05, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["MRR", "Recall", "NDCG"], "topk": [10], "valid_metric": "MRR@10",
        "hidden_size": 64, "embedding_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2,
        "train_batch_size": 1024, "eval_batch_size": 2048,
        "epochs": 1, "finest_epochs": 1, "finetune_method": "finest", "stopping_step": 1,
        "perturb_selection": "random", "perturb_kind": "deletion", "perturb_ratio": 0.001,
        "show_progress": False, "state": "WARNING", "device": "cpu", "use_gpu": False,
        "checkpoint_dir": os.path.join(workdir, "saved"), "results_dir": os.path.join(workdir, "finest"),
        "log_wandb": False,
        "finest_protocol": True,  # the main job's protocol (run_config's default; a library Config keeps RecBole's)
    }
    if device != "cpu":
        del out["device"]
        out.update(use_gpu=True, gpu_id="0")
    out.update(extra or {})
    return out


# ------------------------------------------------------------------ phase timing
class Phases:
    """Wall time, process CPU time and resident high-water mark per phase; nested phases count in the outer one."""

    def __init__(self):
        self.seconds = {p: 0.0 for p in PHASES}
        self.cpu_seconds = {p: 0.0 for p in PHASES}
        self.peak_mib = {p: 0.0 for p in PHASES}
        self.depth = 0
        self.current = None  # the phase running now (for the FLOP count)
        self.cuda_peak_mib = {}  # with a GPU: the allocator's peak during each phase

    @staticmethod
    def _reset_hwm():
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass

    @staticmethod
    def hwm_mib():
        return status_kib("VmHWM") / 1024.0

    @staticmethod
    def _cuda():
        """torch, where this process has started CUDA (phases then wait for the GPU), else None."""
        torch = sys.modules.get("torch")
        return torch if torch is not None and torch.cuda.is_initialized() else None

    def run(self, phase, fn, *args, **kwargs):
        if self.depth:
            return fn(*args, **kwargs)
        self.depth += 1
        self.current = phase
        self._reset_hwm()
        if self._cuda():
            self._cuda().cuda.synchronize()
            self._cuda().cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            cuda = self._cuda()
            if cuda:
                cuda.cuda.synchronize()
                self.cuda_peak_mib[phase] = max(self.cuda_peak_mib.get(phase, 0.0),
                                                cuda.cuda.max_memory_allocated() / 2**20)
            self.seconds[phase] += time.perf_counter() - t0
            self.cpu_seconds[phase] += time.process_time() - c0
            self.peak_mib[phase] = max(self.peak_mib[phase], self.hwm_mib())
            self.depth -= 1
            self.current = None

    def snapshot(self):
        """Copies of the per-phase counters, for :meth:`since`."""
        return {"phase_s": dict(self.seconds), "phase_cpu_s": dict(self.cpu_seconds)}

    def since(self, snap):
        """Per-phase wall / CPU seconds spent since ``snap`` and the peak RSS of those phases."""
        out = {key: {p: v - snap[key][p] for p, v in cur.items() if v != snap[key][p]}
               for key, cur in (("phase_s", self.seconds), ("phase_cpu_s", self.cpu_seconds))}
        out["phase_peak_mib"] = {p: self.peak_mib[p] for p in out["phase_s"]}
        return out

    def add(self, step):
        """Count a step finished by an earlier process (its :meth:`since` record) in these phases."""
        for p, v in step["phase_s"].items():
            self.seconds[p] += v
        for p, v in step["phase_cpu_s"].items():
            self.cpu_seconds[p] += v
        for p, v in step["phase_peak_mib"].items():
            self.peak_mib[p] = max(self.peak_mib[p], v)

    def wrap(self, owner, name, phase):
        """Time every call of ``owner.name`` (if it exists) as ``phase``."""
        fn = getattr(owner, name, None)
        if fn is None:
            return
        setattr(owner, name, lambda *a, **k: self.run(phase, fn, *a, **k))


#: the steps of a size's run, in order; a finished step is kept in its :class:`Progress`
STEPS = ("pre-training", "fine-tuning", "CASPER")


class Progress:
    """Finished steps of one size's run, so that a run stopped part-way (a session's end) resumes.

    Kept under ``<workdir>/progress/<label>-<size>/``: ``steps.json`` (``{"settings": ..., "steps":
    {step: record}}``, written atomically after every step) and, once pre-training finished,
    ``A-pretrained.pth`` / ``B-pretrained.pth``. A resumed run loads A and B instead of
    pre-training them and counts the finished steps' recorded times and peaks in its phases;
    a step stopped part-way is run again in full. The folder is removed once the size's
    result file is written. Progress written with other options is an error, not reused.
    """

    def __init__(self, workdir, label, size, settings):
        self.dir = progress_dir(workdir, label, size)
        self.path = os.path.join(self.dir, "steps.json")
        self.settings = settings
        self.steps = {}
        if os.path.isfile(self.path):
            with open(self.path) as fh:
                saved = json.load(fh)
            if saved["settings"] != settings:
                raise SystemExit(f"{self.path} was written with other options ({saved['settings']}; now "
                                 f"{settings}): remove {self.dir} to start this size again")
            self.steps = saved["steps"]
            print(f"{size}: resuming after {', '.join(self.steps)} ({self.path})", flush=True)

    def state_path(self, side):
        return os.path.join(self.dir, f"{side}-pretrained.pth")

    def save_states(self, states):
        """Atomically save ``{side: state dict}`` of the pre-trained models."""
        import torch

        for side, state in states.items():
            with atomic_path(self.state_path(side)) as tmp:
                torch.save(state, tmp)

    def load_states(self):
        import torch

        return {side: torch.load(self.state_path(side), map_location="cpu") for side in ("A", "B")}

    def finish(self, step, record):
        """Record ``step`` as finished (atomically)."""
        self.steps[step] = record
        write_json(self.path, {"settings": self.settings, "steps": self.steps})


def progress_dir(workdir, label, size):
    return os.path.join(workdir, "progress", f"{label}-{size}")


def train_lengths(lengths, ratios=(0.85, 0.05, 0.1)):
    """Rows of each user in the training split: RecBole's per-user ``RS`` rounding.

    RecBole splits the ``n - 1`` augmented rows of a user (``_calcu_split_ids``: valid and
    test rounded down, at least one each while the training part keeps more than one);
    the training sequence is the first row plus the training targets.
    """
    tot = lengths - 1
    cnt = [np.floor(r * tot).astype(np.int64) for r in ratios]
    cnt[0] = tot - cnt[1] - cnt[2]
    for i in (2, 1):  # RecBole's loop over ratios[-1], ratios[-2]
        bump = (cnt[0] > 1) & (ratios[i] * tot > 0) & (ratios[i] * tot < 1)
        cnt[i] += bump
        cnt[0] -= bump
    return 1 + cnt[0]


def run_casper_only(size, args):
    """CASPER alone on the synthetic training split of ``size`` (no RecBole, no training)."""
    if args.repo:
        sys.path.insert(0, os.path.abspath(args.repo))
    from recbole_finest.data import casper
    from recbole_finest.data.sequences import TrainingSequences

    t0 = time.perf_counter()
    users, items, times = generate(*SIZES[size])
    lengths = np.bincount(users)
    keep = np.arange(len(users)) - np.repeat(np.cumsum(lengths) - lengths, lengths) < np.repeat(train_lengths(lengths), lengths)
    seqs = TrainingSequences.from_rows(users[keep], items[keep] + 1, times[keep], np.arange(int(keep.sum())),
                                       np.arange(1, len(lengths) + 1), SIZES[size][2] + 1)
    t_data = time.perf_counter() - t0
    config = {"MAX_ITEM_LIST_LENGTH": 50, "perturb_ratio": 0.001, "casper_exact_max_nodes": casper.EXACT_MAX_NODES}
    info = casper_phase(casper, seqs, config, args.casper, SIZES[size][0] <= SIZES[args.casper_exact_upto][0])
    return {"size": size, "label": args.label, "interactions": SIZES[size][0], "train_rows": int(seqs.n_rows),
            "data_s": t_data, "peak_rss_mib": Phases.hwm_mib(), "casper": info}


def first_batches(loader, n):
    """``loader`` iterating over its first ``n`` batches only; same class (RecBole checks types)."""
    cls = type(loader)
    body = {"__iter__": lambda self: itertools.islice(cls.__iter__(self), n)}
    if hasattr(cls, "__len__"):
        body["__len__"] = lambda self: min(n, cls.__len__(self))
    capped = copy.copy(loader)
    capped.__class__ = type(f"First{cls.__name__}", (cls,), body)
    return capped


def cap_loops(n, trainer_cls, trainer_module):
    """Memory-check mode: every training epoch, validation, reference pass and evaluation of
    the run stops after ``n`` batches. The reference table is still written in full (every
    element touched), so its memory counts as in a full run."""
    make_loader = trainer_cls.make_loader
    trainer_cls.make_loader = lambda self, *a, **k: first_batches(make_loader(self, *a, **k), n)
    eval_batches = trainer_module.eval_batches
    trainer_module.eval_batches = lambda *a, **k: itertools.islice(eval_batches(*a, **k), n)
    build_reference = trainer_cls.build_reference

    def touched_reference(self, *a, **k):
        ref = build_reference(self, *a, **k)
        if not ref.on_disk:
            ref.table.add_(0)
        return ref

    trainer_cls.build_reference = touched_reference


def run_one(size, args):
    """Run one size in this process; returns the result record."""
    if args.repo:
        sys.path.insert(0, os.path.abspath(args.repo))
    import torch

    torch.set_num_threads(args.threads)
    from recbole.utils import init_logger, init_seed

    import recbole_finest
    from recbole_finest.stability import run as stability
    from recbole_finest.config import Config
    from recbole_finest.data import casper
    from recbole_finest.quick_start import load_data
    from recbole_finest.finest import trainer as trainer_module
    from recbole_finest.finest.trainer import FinestTrainer

    extra = json.loads(args.config_json) if args.config_json else None
    settings = {"max_batches": args.max_batches, "threads": args.threads, "casper": args.casper,
                "casper_exact_upto": args.casper_exact_upto, "repo": args.repo}
    if args.device != "cpu" or extra:  # only then: progress of earlier runs stays valid
        settings.update(device=args.device, config=extra)
    progress = Progress(args.workdir, args.label, size, settings=settings)
    data_path, name = dataset_for(size, args.workdir)
    if args.max_batches:
        cap_loops(args.max_batches, FinestTrainer, trainer_module)
    phases = Phases()
    flops = FlopCounter(lambda: phases.current)
    flops.install()
    for method, phase in (("pretrain", "pre-train epoch"), ("build_reference", "reference lists"),
                          ("finetune", "FINEST epoch")):
        phases.wrap(FinestTrainer, method, phase)
    for fn in ("evaluate_model", "compare_models", "compare_instances"):
        phases.wrap(stability, fn, "evaluation")

    t_start, c_start = time.perf_counter(), time.process_time()
    config = Config(model="SASRec", dataset=name,
                    config_dict=config_dict(data_path, args.workdir, args.casper, args.device, extra))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset, (train, valid, test) = phases.run("load", load_data, config)
    n_test = len(test.dataset)
    if args.max_batches:
        valid, test = first_batches(valid, args.max_batches), first_batches(test, args.max_batches)
    run = stability.StabilityRun(config, train, valid, test, saved=False)
    loaded = {step: progress.steps[step] for step in STEPS if step in progress.steps}
    if "pre-training" in loaded:
        run.pretrained = progress.load_states()

    def pretraining():
        row = run.pretrain()
        progress.save_states(run.pretrained)
        return {"row": row}

    def fine_tuning():
        return {"row": run.finetune("finest")}

    extra = extra_cpu = 0.0  # CASPER methods timed for the table only, outside every total

    def casper_step():
        nonlocal extra, extra_cpu
        wall0, cpu0 = phases.seconds["CASPER"], phases.cpu_seconds["CASPER"]
        info = phases.run("CASPER", casper_phase, casper, run.seqs_a, config, args.casper,
                          SIZES[size][0] <= SIZES[args.casper_exact_upto][0])
        # the CASPER phase counts the method a run uses (auto; exact on main's code); the other
        # methods are timed for the comparison table only
        info["used"] = next((m for m in ("auto", "exact", "sketch") if f"{m}_s" in info), None)
        extra = phases.seconds["CASPER"] - wall0 - info[f"{info['used']}_s"]
        extra_cpu = phases.cpu_seconds["CASPER"] - cpu0 - info[f"{info['used']}_cpu_s"]
        phases.seconds["CASPER"] -= extra
        phases.cpu_seconds["CASPER"] -= extra_cpu
        return {"casper": info}

    for step, fn in zip(STEPS, (pretraining, fine_tuning, casper_step)):
        if step in loaded:
            continue
        snap, fsnap, t0, c0 = phases.snapshot(), flops.snapshot(), time.perf_counter(), time.process_time()
        record = fn()
        record.update(phases.since(snap), wall_s=time.perf_counter() - t0 - extra,
                      cpu_s=time.process_time() - c0 - extra_cpu, phase_flop=flops.since(fsnap))
        progress.finish(step, record)
        if step == args.stop_after:
            raise SystemExit(f"{size}: stopped after {step} (--stop-after)")
    for record in loaded.values():
        phases.add(record)
        flops.merge(record.get("phase_flop"))
    rows = [progress.steps["pre-training"]["row"], progress.steps["fine-tuning"]["row"]]
    casper_info = progress.steps["CASPER"]["casper"]
    total = time.perf_counter() - t_start - extra + sum(r["wall_s"] for r in loaded.values())
    cpu_total = time.process_time() - c_start - extra_cpu + sum(r["cpu_s"] for r in loaded.values())
    phases.seconds["other"] = total - sum(v for k, v in phases.seconds.items() if k != "other")
    phases.cpu_seconds["other"] = cpu_total - sum(v for k, v in phases.cpu_seconds.items() if k != "other")
    phases.peak_mib["other"] = float("nan")
    matmul = None
    if args.matmul_seconds > 0:  # after every total: not counted in any phase
        matmul = measure_rates(model_shapes(config["hidden_size"], config["inner_size"], dataset.item_num,
                                            config["train_batch_size"], config["eval_batch_size"]),
                               device=config["device"], seconds=args.matmul_seconds)
    return {
        "size": size, "label": args.label, "repo": os.path.dirname(os.path.dirname(os.path.abspath(recbole_finest.__file__))),
        "interactions": int(dataset.inter_num), "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
        "test_instances": int(n_test), "max_batches": args.max_batches, "train_rows": int(run.seqs_a.n_rows),
        "threads": torch.get_num_threads(), "wall_s": total, "cpu_s": cpu_total, "phase_cpu_s": phases.cpu_seconds, "peak_rss_mib": max(v for v in phases.peak_mib.values() if v == v),
        "phase_s": phases.seconds, "phase_peak_mib": phases.peak_mib, "rows": rows, "casper": casper_info,
        "resumed_steps": list(loaded), "phase_flop": flops.flop, "matmul": matmul,
        "device": str(config["device"]), "phase_cuda_peak_mib": phases.cuda_peak_mib,
    }


def casper_phase(casper, seqs, config, methods, exact_ok=True):
    """CASPER scores of ``seqs`` by each method in ``methods`` (comma list; exact / sketch / auto).

    ``exact_ok=False`` leaves the exact method out (sizes above ``--casper-exact-upto``).
    Where exact and sketch both ran: the sketch's relative error per node (mean, p95), the
    overlap of the top-``n`` selections (``n`` = ``perturb_ratio`` of the rows) and the exact
    score of the sketch's selection relative to the exact selection's (what a perturbation
    loses by using the sketch).
    """
    info = {}
    scores = {}
    for method in methods.split(","):
        if method == "exact" and not exact_ok:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        kwargs = {"rng": np.random.default_rng(0)} if method != "exact" else {}
        scores[method] = casper.cascading_scores(seqs, config["MAX_ITEM_LIST_LENGTH"], method=method, **kwargs)
        info[f"{method}_s"] = time.perf_counter() - t0
        info[f"{method}_cpu_s"] = time.process_time() - c0
    if "exact" in scores and "sketch" in scores:
        nodes = scores["exact"] > 0
        rel = np.abs(scores["sketch"][nodes] - scores["exact"][nodes]) / scores["exact"][nodes]
        info["sketch_rel_error_mean"] = float(rel.mean())
        info["sketch_rel_error_p95"] = float(np.quantile(rel, 0.95))
        n = max(1, int(round(config["perturb_ratio"] * seqs.n_rows)))
        top_e = set(casper.rank_by_score(scores["exact"])[:n].tolist())
        top_s = set(casper.rank_by_score(scores["sketch"])[:n].tolist())
        info["sketch_top_overlap"] = len(top_e & top_s) / n
        info["sketch_selected_score_ratio"] = float(scores["exact"][list(top_s)].sum() / scores["exact"][list(top_e)].sum())
    if "auto" in scores:
        chosen = casper.choose_method(int((scores["auto"] >= 0).sum()), "auto", config["casper_exact_max_nodes"])
        info["auto_is_sketch"] = float(chosen == "sketch")
    info["nodes"] = int((next(iter(scores.values())) >= 0).sum())
    return info


# ------------------------------------------------------------------ table
def result_path(workdir, label, size):
    return os.path.join(workdir, "results", f"{label}-{size}.json")


def exponent(v1, v2, n1, n2):
    return math.log(v2 / v1) / math.log(n2 / n1) if v1 > 0 and v2 > 0 else float("nan")


def table(workdir, label):
    """Markdown tables of the finished sizes of ``label`` (phases, then growth exponents)."""
    recs = [json.load(open(result_path(workdir, label, s))) for s in SIZES
            if os.path.isfile(result_path(workdir, label, s))]
    if not recs:
        return f"no results for label {label!r} under {workdir}/results"
    lines = [f"### {label}", ""]
    casper_rows = [(r["size"], r["casper"]) for r in recs if r.get("casper")]
    recs = [r for r in recs if "phase_s" in r]  # --casper-only records have the CASPER table only
    if recs:
        lines += _phase_tables(recs)
        lines += _flop_tables(recs)
    if casper_rows:
        keys = sorted({k for _, c in casper_rows for k in c if k not in ("nodes", "used")})
        lines += ["", "| size | CASPER nodes | used | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|"]
        for size, c in casper_rows:
            lines.append(f"| {size} | {c['nodes']:,} | {c.get('used', '-')} | " + " | ".join(
                (f"{c[k]:.3f}" if isinstance(c[k], float) else str(c[k])) if k in c else "-" for k in keys) + " |")
    return "\n".join(lines)


def _cpu(record, phase=None):
    """Process CPU time of ``record`` (of one ``phase``), NaN where not recorded (older records)."""
    if phase is None:
        return record.get("cpu_s", float("nan"))
    return record.get("phase_cpu_s", {}).get(phase, float("nan"))


def _minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds == seconds else "-"


def _seconds(seconds):
    return f"{seconds:.0f} s" if seconds == seconds else "-"


def _phase_tables(recs):
    """Per size: CPU / wall / peak RSS of each phase; per size pair: exponents (CPU per phase)."""
    lines = ["| size | users / items | test instances | " + " | ".join(PHASES)
             + " | CPU | wall | peak RSS | RBO orig / FINEST |", "|---" * (len(PHASES) + 7) + "|"]
    for r in recs:
        cells = [f"{_seconds(_cpu(r, p))} / {_seconds(r['phase_s'][p])}"
                 + ("" if p == "other" else f" / {r['phase_peak_mib'][p] / 1024:.1f} GB") for p in PHASES]
        rbo = " / ".join(f"{row['rbo']:.4f}" for row in r["rows"])
        lines.append(f"| {r['size']} | {r['users']:,} / {r['items']:,} | {r['test_instances']:,} | " + " | ".join(cells)
                     + f" | {_minutes(_cpu(r))} | {r['wall_s'] / 60:.1f} min | {r['peak_rss_mib'] / 1024:.2f} GB | {rbo} |")
    threads = ", ".join(sorted({str(r.get("threads", 1)) for r in recs}))
    lines += ["", f"Phase cells: process CPU time (all threads; torch threads per run: {threads}) / wall time / "
              "peak RSS during the phase. CPU time is robust to other jobs on the machine, wall time is not; "
              "'-' = not recorded.", ""]
    if len(recs) > 1:
        pairs = list(zip(recs[:-1], recs[1:])) + ([(recs[0], recs[-1])] if len(recs) > 2 else [])
        lines += ["| from -> to | CPU exponent | wall exponent | peak RSS exponent | "
                  + " | ".join(PHASES[:-1]) + " (CPU exponents) |", "|---" * (len(PHASES) + 4) + "|"]
        for a, b in pairs:
            n1, n2 = a["interactions"], b["interactions"]
            ph = [f"{exponent(_cpu(a, p), _cpu(b, p), n1, n2):.2f}" for p in PHASES[:-1]]
            lines.append(f"| {a['size']} -> {b['size']} | {exponent(_cpu(a), _cpu(b), n1, n2):.2f} | "
                         f"{exponent(a['wall_s'], b['wall_s'], n1, n2):.2f} | "
                         f"{exponent(a['peak_rss_mib'], b['peak_rss_mib'], n1, n2):.2f} | " + " | ".join(ph) + " |")
    return lines


#: the phases whose matrix products are counted (``benchmarks/_flops.py``)
FLOP_PHASES = ("pre-train epoch", "reference lists", "FINEST epoch", "evaluation")


def _gflop_s(flop, seconds):
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def _flop_tables(recs):
    """Per size and phase: matmul FLOP, achieved GFLOP/s (FLOP / phase wall time) and its ratio
    to the rate measured in the same run for the phase's own shapes (fp32; bf16 where measured)."""
    recs = [r for r in recs if r.get("phase_flop") and r.get("matmul")]
    if not recs:
        return []
    lines = ["| size | phase | GFLOP (encoder / output layer) | wall | achieved GFLOP/s | fp32 rate of its shapes "
             "| achieved / fp32 rate | on CPU time | bf16 rate of its shapes | achieved / bf16 rate |", "|---" * 10 + "|"]
    for r in recs:
        rates = r["matmul"]["rates"]
        for p in FLOP_PHASES:
            flop = r["phase_flop"].get(p)
            if not flop:
                continue
            total, wall = sum(flop.values()), r["phase_s"][p]
            enc = flop.get("encoder_fwd", 0) + flop.get("encoder_train", 0)
            achieved = _gflop_s(total, wall)
            cells = []
            for dtype in ("fp32", "bf16"):
                if rates.get(dtype):
                    bound = _gflop_s(total, bound_seconds(flop, rates[dtype]))
                    cells += [f"{bound:.1f}", f"{achieved / bound:.2f}"]
                else:
                    cells += ["-", "-"]
                if dtype == "fp32":  # the same on the process's CPU time per torch thread (robust to other jobs)
                    on_cpu = _gflop_s(total, _cpu(r, p) / max(1, r.get("threads", 1)))
                    cells.append(f"{on_cpu / bound:.2f}" if rates.get(dtype) and on_cpu == on_cpu else "-")
            lines.append(f"| {r['size']} | {p} | {total / 1e9:,.0f} ({enc / 1e9:,.0f} / {(total - enc) / 1e9:,.0f}) | "
                         f"{wall:.1f} s | {achieved:.1f} | " + " | ".join(cells) + " |")
    lines += [""]
    for r in recs:
        m = r["matmul"]
        rates = m["rates"]
        shapes = "; ".join(
            f"{name} [{a} x {b}] x [{b} x {c}]: {rates['fp32'][name]:.1f}"
            + (f" / {rates['bf16'][name]:.1f}" if rates.get("bf16") else "")
            for name, (a, b, c) in m["shapes"].items())
        lines.append(f"Matmul rates of {r['size']} measured in the same run ({m['device']}, {m['threads']} torch "
                     f"thread(s), GFLOP/s fp32{' / bf16' if rates.get('bf16') else ''}): {shapes}."
                     + (f" bf16 not measured: {m['bf16_note']}." if not rates.get("bf16") else ""))
    lines += ["", "FLOP: the matrix products of the phase as the model ran them (benchmarks/_flops.py: "
              "encoder n_layers * (8BWHA + 4BW^2A + 4BWHI), output layer 2MHN, x3 with autograd); the rate of its "
              "shapes charges each kind at its measured matmul rate (benchmarks/_matmul.py), so the ratio is the "
              "share of that ceiling the phase reached in wall time ('on CPU time': in process CPU seconds per torch "
              "thread, which other jobs on the machine do not inflate).", ""]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma list of {', '.join(SIZES)} (10M is opt-in)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "saved", "scale"))
    ap.add_argument("--repo", default=None, help="import recbole_finest from this checkout (default: this one)")
    ap.add_argument("--label", default="after", help="name of the series (results file prefix)")
    ap.add_argument("--casper", default="exact,sketch,auto", help="CASPER methods timed, comma list (exact, sketch, auto)")
    ap.add_argument("--casper-exact-upto", default="1M", choices=list(SIZES),
                    help="largest size whose CASPER phase runs the exact method (O(nodes^2))")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", action="store_true", help="only print the table of finished sizes")
    ap.add_argument("--max-batches", type=int, default=0,
                    help="memory check: cut every training / reference / evaluation loop to this many batches "
                         "(peak memory as a full run, times and metrics not comparable; 0 = full run)")
    ap.add_argument("--casper-only", action="store_true",
                    help="only the CASPER methods on the synthetic training split (no RecBole, no training)")
    ap.add_argument("--stop-after", default=None, choices=STEPS,
                    help="end the run after this step, as a session's end would (to check the resume)")
    ap.add_argument("--matmul-seconds", type=float, default=0.3,
                    help="per matmul shape and round: seconds to time the machine's rate for the FLOP table "
                         "(after the run, outside every phase; 0 = no FLOP ratios)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: the models on the GPU (benchmarks/gpu_check.sh); cpu: as always")
    ap.add_argument("--config-json", default=None,
                    help="extra config keys as a JSON object (e.g. a precision option), for every size")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    if args.one:
        record = (run_casper_only if args.casper_only else run_one)(args.one, args)
        write_json(result_path(args.workdir, args.label, args.one), record)
        shutil.rmtree(progress_dir(args.workdir, args.label, args.one), ignore_errors=True)  # result written
        return
    if not args.table:
        for size in args.sizes.split(","):
            if size not in SIZES:
                sys.exit(f"--sizes: unknown size {size!r}; known: {', '.join(SIZES)}")
            if os.path.isfile(result_path(args.workdir, args.label, size)):
                print(f"{size}: done earlier ({result_path(args.workdir, args.label, size)})", flush=True)
                continue
            print(f"{size}: running ({args.label})", flush=True)
            argv = [sys.executable, os.path.abspath(__file__), "--one", size, "--workdir", args.workdir,
                    "--label", args.label, "--casper", args.casper, "--threads", str(args.threads),
                    "--casper-exact-upto", args.casper_exact_upto, "--max-batches", str(args.max_batches),
                    "--matmul-seconds", str(args.matmul_seconds)]
            argv += ["--casper-only"] if args.casper_only else []
            argv += ["--stop-after", args.stop_after] if args.stop_after else []
            argv += ["--device", args.device] + (["--config-json", args.config_json] if args.config_json else [])
            if args.repo:
                argv += ["--repo", args.repo]
            if subprocess.run(argv).returncode != 0:
                sys.exit(f"{size}: failed")
            print(table(args.workdir, args.label), flush=True)
    print(table(args.workdir, args.label))


if __name__ == "__main__":
    main()
