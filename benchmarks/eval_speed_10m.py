"""The stability run's evaluation phase, old path vs new path, side by side (issue 44 item 1).

One run, one machine, one thread count: the same saved model states of the synthetic data of
``benchmarks/scale.py`` (``--size``: 1M or 10M, ML-10M's shape) are evaluated by
``stability.compare_models`` twice -- pair 1 and pair 2, as the stability run's Original and
FINEST rows (4 models, 2 comparisons) -- once with ``recbole_finest`` imported from
``--old-repo`` (a git worktree of the commit before, e.g. ``git worktree add /tmp/old44
8e73de6``) and once from this checkout, each in its own child process. It prints per part
the wall and process-CPU seconds, and exits non-zero unless every per-instance value (RBO,
Jaccard@10, FRBO@10, both target ranks, users) is bitwise equal (``torch.equal``) and
RecBole's accuracy dicts are equal.

Steps (each child loads the data with RecBole, as the stability run does):

1. ``prepare`` (once per size and ``--train-batches``, cached in ``--workdir``): the seed's
   initial SASRec; A trained ``--train-batches`` batches on the training split, B from the same
   initial parameters on the 0.1% perturbed split; pair 2 = both trained that many batches more
   (``FinestTrainer.pretrain`` with its loader cut, as ``scale.py --max-batches``). The states
   only have to be trained models: every instance costs the same whatever the weights.
2. ``old`` then ``new`` (or ``--order``): ``compare_models`` of pair 1 and pair 2, timed per part
   by wrapping the module functions the path calls (exclusive times; nested calls count once):
   scoring (``eval_scores``: the model's ``full_sort_predict``), accuracy
   (``AccuracyStream.add``: RecBole's top-k hits), target ranks (``target_ranks``), rank lists
   (``metrics.rank_lists``), RBO / Jaccard / FRBO (``metrics.rbo`` / ``jaccard`` / ``frbo``); the
   new path's ``metrics.pair_stability`` does rank lists, target ranks and RBO / Jaccard / FRBO
   in one fused pass and is one part; "loader + rest" is the remainder (RecBole's test loader).

``--max-batches N`` evaluates the first N test batches only (the same N for both paths): at a
fixed catalogue every batch of ``eval_batch_size`` instances costs the same, so the full phase
is the per-batch time x the batch count (the printout says when it extrapolates).

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 nice -n 5 .venv/bin/python benchmarks/eval_speed_10m.py \\
        --size 1M --old-repo /tmp/old44 --workdir /tmp/ev44 --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

PARTS = ("scoring", "scoring checks", "accuracy", "target ranks", "rank lists", "RBO / Jaccard / FRBO", "fused rank + compare",
         "loader + rest")


class PartTimer:
    """Exclusive wall / CPU seconds per part of wrapped functions (a nested wrapped call counts
    in its own part only)."""

    def __init__(self):
        self.wall = {p: 0.0 for p in PARTS}
        self.cpu = {p: 0.0 for p in PARTS}
        self.stack = []  # [part, wall0, cpu0, child wall, child cpu]

    def wrap(self, owner, name, part, classify=None):
        """``classify(args, kwargs) -> part`` (optional) picks the part per call."""
        fn = getattr(owner, name, None)
        if fn is None:
            return False

        def timed(*a, **k):
            self.stack.append([classify(a, k) if classify else part, time.perf_counter(), time.process_time(), 0.0, 0.0])
            try:
                return fn(*a, **k)
            finally:
                p, w0, c0, cw, cc = self.stack.pop()
                w, c = time.perf_counter() - w0, time.process_time() - c0
                self.wall[p] += w - cw
                self.cpu[p] += c - cc
                if self.stack:
                    self.stack[-1][3] += w
                    self.stack[-1][4] += c

        setattr(owner, name, timed)
        return True


def load(size, workdir, threads, repo=None):
    if repo:
        sys.path.insert(0, os.path.abspath(repo))
    else:
        sys.path.insert(0, REPO)
    import torch

    torch.set_num_threads(threads)
    import scale
    from recbole.utils import init_logger, init_seed
    from recbole_finest.config import Config
    from recbole_finest.quick_start import load_data

    data_path, name = scale.dataset_for(size, workdir)
    config = Config(model="SASRec", dataset=name, config_dict=scale.config_dict(data_path, workdir, "auto"))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    t0 = time.perf_counter()
    dataset, (train, valid, test) = load_data(config)
    print(f"{size}: loaded in {time.perf_counter() - t0:.0f} s ({len(test.dataset):,} test instances, "
          f"{len(test)} batches)", flush=True)
    return config, dataset, train, valid, test


def states_path(args):
    return os.path.join(args.workdir, f"eval44-states-{args.size}-{args.train_batches}.pt")


def prepare(args):
    """Train and save the 4 models' states (pair 1, pair 2)."""
    import torch

    config, dataset, train, valid, test = load(args.size, args.workdir, args.threads)
    import scale
    from recbole.utils import init_seed
    from recbole_finest.finest import trainer as trainer_module
    from recbole_finest.finest.trainer import FinestTrainer
    from recbole_finest.stability.run import StabilityRun

    scale.cap_loops(args.train_batches, FinestTrainer, trainer_module)
    run = StabilityRun(config, train, scale.first_batches(valid, 1), test, saved=False)
    states, state = {}, {"A": run.initial_state, "B": run.initial_state}
    for pair in (1, 2):
        for side in ("A", "B"):
            trainer = run._trainer(state[side], f"-{side}{pair}")
            init_seed(run.seed + pair, config["reproducibility"])
            trainer.pretrain(run._seqs(side), scale.first_batches(valid, 1), saved=False)
            state[side] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            states[f"{side}{pair}"] = state[side]
    torch.save(states, states_path(args))
    print(f"saved {states_path(args)}", flush=True)


def evaluate(args, side):
    """compare_models of pair 1 and pair 2 with the ``side``'s code; times and outputs saved."""
    import torch

    repo = args.old_repo if side == "old" else REPO
    config, dataset, train, valid, test = load(args.size, args.workdir, args.threads, repo)
    import recbole_finest
    import scale
    from recbole_finest.compat.models import get_model
    from recbole_finest.stability import evaluate as ev
    from recbole_finest.stability import metrics

    assert os.path.dirname(os.path.dirname(os.path.abspath(recbole_finest.__file__))) == os.path.abspath(repo)
    if args.max_batches:
        test = scale.first_batches(test, args.max_batches)
    states = torch.load(states_path(args))
    timer = PartTimer()
    # the new path's plain whole-batch calls are SlicedScoring's checks (one per model and batch
    # size: 1 of the --max-batches here, 2 of 471 in a full phase), a part of their own
    plain = lambda a, k: "scoring checks" if len(a) < 4 and k.get("rows") is None and k.get("predict") is None else "scoring"
    timer.wrap(ev, "eval_scores", "scoring", plain if hasattr(ev, "SlicedScoring") else None)
    timer.wrap(ev.AccuracyStream, "add", "accuracy")
    timer.wrap(ev, "target_ranks", "target ranks")
    timer.wrap(metrics, "rank_lists", "rank lists")
    for fn in ("rbo", "jaccard", "frbo"):
        timer.wrap(metrics, fn, "RBO / Jaccard / FRBO")
    timer.wrap(ev, "pair_stability", "fused rank + compare")
    cls = get_model("SASRec")
    outputs, total_wall, total_cpu = {}, 0.0, 0.0
    for pair in (1, 2):
        models = []
        for s in ("A", "B"):
            model = cls(config, dataset)
            model.load_state_dict(states[f"{s}{pair}"])
            models.append(model.eval())
        t0, c0 = time.perf_counter(), time.process_time()
        out = ev.compare_models(models[0], models[1], test, config)
        total_wall += time.perf_counter() - t0
        total_cpu += time.process_time() - c0
        outputs[pair] = {k: v if torch.is_tensor(v) else {m: float(x) for m, x in v.items()} for k, v in out.items()}
    timer.wall["loader + rest"] = total_wall - sum(v for p, v in timer.wall.items() if p != "loader + rest")
    timer.cpu["loader + rest"] = total_cpu - sum(v for p, v in timer.cpu.items() if p != "loader + rest")
    from _memory import status_kib

    record = {"side": side, "repo": os.path.abspath(repo), "size": args.size, "threads": torch.get_num_threads(),
              "batches": len(test), "instances": int(outputs[1]["rbo"].numel()), "wall_s": total_wall,
              "cpu_s": total_cpu, "part_wall_s": timer.wall, "part_cpu_s": timer.cpu,
              "peak_rss_mib": status_kib("VmHWM") / 1024.0, "loadavg": os.getloadavg(),
              "means": {f"pair {p}": {k: (float(v.double().mean()) if torch.is_tensor(v) else v)
                                      for k, v in o.items() if k != "user"} for p, o in outputs.items()}}
    torch.save(outputs, os.path.join(args.workdir, f"eval44-out-{side}-{args.size}.pt"))
    with open(os.path.join(args.workdir, f"eval44-{side}-{args.size}.json"), "w") as fh:
        json.dump(record, fh, indent=1)
    print(f"{side}: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU", flush=True)


def compare(args):
    """Bitwise equality of the two sides' outputs and the side-by-side table; returns ok."""
    import torch

    outs = {s: torch.load(os.path.join(args.workdir, f"eval44-out-{s}-{args.size}.pt")) for s in ("old", "new")}
    recs = {s: json.load(open(os.path.join(args.workdir, f"eval44-{s}-{args.size}.json"))) for s in ("old", "new")}
    ok, diffs = True, []
    for pair in (1, 2):
        a, b = outs["old"][pair], outs["new"][pair]
        if sorted(a) != sorted(b):
            ok = False
            diffs.append(f"pair {pair}: keys {sorted(a)} vs {sorted(b)}")
        for key in a:
            same = torch.equal(a[key], b[key]) if torch.is_tensor(a[key]) else a[key] == b[key]
            if not same:
                ok = False
                diffs.append(f"pair {pair}: {key} differs")
    old, new = recs["old"], recs["new"]
    full = args.max_batches == 0 or old["batches"] >= args.total_batches
    lines = [f"{args.size}: {old['instances']:,} test instances per pair ({old['batches']} batches of "
             f"eval_batch_size), 2 pairs (4 models), {old['threads']} torch thread(s); load average "
             f"old {old['loadavg'][0]:.1f}, new {new['loadavg'][0]:.1f}", "",
             "| part | old wall [s] | old CPU [s] | new wall [s] | new CPU [s] | old / new (wall) | old / new (CPU) |",
             "|---|---|---|---|---|---|---|"]
    for p in PARTS + ("total",):
        ow, oc = (old["wall_s"], old["cpu_s"]) if p == "total" else (old["part_wall_s"].get(p, 0.0), old["part_cpu_s"].get(p, 0.0))
        nw, nc = (new["wall_s"], new["cpu_s"]) if p == "total" else (new["part_wall_s"].get(p, 0.0), new["part_cpu_s"].get(p, 0.0))
        ratio = lambda x, y: f"{x / y:.2f}x" if y > 0.05 and x > 0.05 else "-"
        lines.append(f"| {p} | {ow:.1f} | {oc:.1f} | {nw:.1f} | {nc:.1f} | {ratio(ow, nw)} | {ratio(oc, nc)} |")
    lines += ["", f"peak RSS of the evaluating process: old {old['peak_rss_mib'] / 1024:.2f} GB, new "
              f"{new['peak_rss_mib'] / 1024:.2f} GB (RecBole's data included)"]
    if not full:
        scale_up = args.total_batches / old["batches"]
        # the checks run once per model and batch size, not per batch: counted once (the full
        # phase's last, smaller batch adds a second, smaller check per model; not counted)
        cw, cc = (new["part_wall_s"].get("scoring checks", 0.0), new["part_cpu_s"].get("scoring checks", 0.0))
        nw, nc = (new["wall_s"] - cw) * scale_up + cw, (new["cpu_s"] - cc) * scale_up + cc
        lines.append(f"EXTRAPOLATED to the full phase ({args.total_batches} batches per pair, x{scale_up:.2f}; the new "
                     f"path's checks once): old {old['wall_s'] * scale_up:.0f} s wall / {old['cpu_s'] * scale_up:.0f} s "
                     f"CPU, new {nw:.0f} s wall / {nc:.0f} s CPU; old / new {old['wall_s'] * scale_up / nw:.2f}x wall, "
                     f"{old['cpu_s'] * scale_up / nc:.2f}x CPU")
    for pair in (1, 2):
        m = new["means"][f"pair {pair}"]
        lines.append(f"pair {pair} (new): " + ", ".join(
            f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items()))
    lines.append("identical (torch.equal per instance, accuracy dicts ==): " + ("yes" if ok else "NO: " + "; ".join(diffs)))
    print("\n".join(lines), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1M", choices=["100K", "300K", "1M", "3M", "10M"])
    ap.add_argument("--workdir", default=os.path.join(REPO, "saved", "eval44"))
    ap.add_argument("--old-repo", required=False, help="checkout of the old code (a git worktree)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-batches", type=int, default=30)
    ap.add_argument("--max-batches", type=int, default=0, help="evaluate the first N test batches only (0 = all)")
    ap.add_argument("--order", default="old,new")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--total-batches", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir = os.path.abspath(args.workdir)
    if args.step == "prepare":
        return prepare(args)
    if args.step in ("old", "new"):
        return evaluate(args, args.step)
    if args.step == "compare":
        sys.exit(0 if compare(args) else 1)
    if not args.old_repo:
        sys.exit("--old-repo is required")
    base = [sys.executable, os.path.abspath(__file__), "--size", args.size, "--workdir", args.workdir,
            "--threads", str(args.threads), "--train-batches", str(args.train_batches),
            "--max-batches", str(args.max_batches), "--old-repo", os.path.abspath(args.old_repo)]
    if not os.path.isfile(states_path(args)):
        subprocess.run(base + ["--step", "prepare"], check=True)
    for side in args.order.split(","):
        subprocess.run(base + ["--step", side], check=True)
    import math

    import scale
    n_test = {"1M": 89_968, "10M": 962_682}.get(args.size)
    total = math.ceil(n_test / 2048) if n_test else 0
    sys.exit(subprocess.run(base + ["--step", "compare", "--total-batches", str(total)]).returncode)


if __name__ == "__main__":
    main()
