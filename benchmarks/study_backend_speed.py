"""Study grid wall time: ``study_backend: ray`` (cell groups at once) vs ``local`` (one after another).

The same small grid (SASRec on RecBole's bundled ml-100k, ``--seeds`` seeds x one random
deletion x [original, finest]: one independent cell group per seed) is run side by side in
one process: first by the local backend with one torch thread, then on a local Ray with
``--cpus`` CPUs and ``study_resources_per_cell: {cpu: 1}`` (one thread per task), so
``--cpus`` groups run at once. Prints both wall times (Ray's start-up counted), the speed-up
and whether the two backends wrote byte-identical cells.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_backend_speed.py [--seeds 2] [--cpus 2]
"""
import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time

import torch


def grid_config(args, folder, backend):
    return {
        "user_inter_num_interval": "[100,inf)", "hidden_size": args.hidden, "inner_size": 2 * args.hidden,
        "n_layers": 1, "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 50, "epochs": args.epochs, "finest_epochs": args.epochs,
        "finest_topk": 10, "train_batch_size": 512, "eval_batch_size": 512, "show_progress": False, "seed": 2020,
        "state": "WARNING", "log_wandb": False,
        "study_models": ["SASRec"], "study_methods": ["original", "finest"], "study_selections": ["random"],
        "study_kinds": ["deletion"], "study_ratios": [0.01], "study_seeds": args.seeds,
        "study_dir": os.path.join(folder, backend), "checkpoint_dir": os.path.join(folder, f"saved-{backend}"),
        "study_backend": backend, "study_resources_per_cell": {"cpu": 1},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2, help="cell groups (one per seed)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray = groups at once")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="pre-training and fine-tuning epochs")
    args = ap.parse_args()
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line
    import ray

    from recbole_finest.study.driver import run_study
    from recbole_finest.study.backend import cell_contents

    folder = tempfile.mkdtemp(prefix="study-backend-")
    torch.set_num_threads(1)
    times = {}
    try:
        with contextlib.chdir(folder):  # RecBole's log/ and log_tensorboard/
            t0 = time.perf_counter()
            run_study(dataset="ml-100k", config_dict=grid_config(args, folder, "local"))
            times["local"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
            times["ray start"] = time.perf_counter() - t0
            try:
                run_study(dataset="ml-100k", config_dict=grid_config(args, folder, "ray"))
            finally:
                ray.shutdown()
            times["ray"] = time.perf_counter() - t0
        local, on_ray = cell_contents(os.path.join(folder, "local")), cell_contents(os.path.join(folder, "ray"))
        same = sorted(local) == sorted(on_ray) and all(local[k] == on_ray[k] for k in local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()
    print(f"study grid: SASRec on ml-100k, {args.seeds} cell groups x [original, finest], hidden {args.hidden}, "
          f"{args.epochs} epochs; {os.cpu_count()} cores, load average {load[0]:.1f} at the end")
    print()
    print("| backend | groups at once | wall time [s] |")
    print("|---|---|---|")
    print(f"| local (one after another, 1 thread) | 1 | {times['local']:.1f} |")
    print(f"| ray ({args.cpus} CPUs, 1 per cell group; Ray start {times['ray start']:.1f} s included) | "
          f"{min(args.cpus, args.seeds)} | {times['ray']:.1f} |")
    print(f"\nspeed-up local / ray: {times['local'] / times['ray']:.2f}x; cells byte-identical: {same}")


if __name__ == "__main__":
    main()
