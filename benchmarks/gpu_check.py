"""The Python steps of benchmarks/gpu_check.sh: Ray Tune and the Ray study backend on one GPU, and the table.

    python benchmarks/gpu_check.py tune  --work DIR --report DIR     # 4 trials at 0.25 GPU at once, then one after another
    python benchmarks/gpu_check.py study --work DIR --report DIR     # study_backend: ray, 4 cell groups at 0.25 GPU
    python benchmarks/gpu_check.py table --work DIR --report DIR     # the markdown table of everything gpu_check.sh ran

Both runs use RecBole's bundled ml-100k and SASRec (hidden 64, 2 layers, 2 + 2 epochs), a
local Ray with 8 CPUs and the one GPU. ``tune``: the same 4-trial search (``finest_lambda``,
``finest_topk``) with ``tune_resources_per_trial: {cpu: 1, gpu: 0.25}``, first with no cap (4
at once on the GPU), then with ``tune_max_concurrent_trials: 1`` (one at a time; the cap holds
since ``tune.driver.search_algorithm``, tests/test_tune_concurrency.py). Each search has its own
``tune_dir`` (else the second would read the first's trial rows back, ``tune/trial_cache.py``)
and pre-trains its pair before its trials. Trials per minute = trials / (last trial end - first trial start), from Ray's own
``result.json`` of each trial (``timestamp`` - ``time_total_s``): Ray's start and the
pre-training are not in it; the search's whole wall time is reported beside it.
GPU utilization comes from gpu_check.sh's nvidia-smi samples inside each step's window
(``steps.tsv``).
"""

import argparse
import glob
import json
import os
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

MODEL = {"hidden_size": 64, "embedding_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2,
         "epochs": 2, "finest_epochs": 2, "train_batch_size": 512, "eval_batch_size": 2048,
         "state": "WARNING", "show_progress": False, "log_wandb": False, "seed": 2020}
SPACE = "finest_lambda: {loguniform: [0.1, 10.0]}\nfinest_topk: {choice: [50, 100]}\n"
#: ``--smoke``: the same steps at toy size, to check this script on a CPU (Ray's logical GPU)
SMOKE = {"hidden_size": 8, "embedding_size": 8, "inner_size": 8, "n_layers": 1, "n_heads": 1,
         "epochs": 1, "finest_epochs": 1}
QUARTER = {"cpu": 1, "gpu": 0.25}
TRIALS = 4


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(path + ".tmp", path)


def trial_span(folder):
    """``(trials with a result, first start, last end)`` from Ray's ``result.json`` of each trial."""
    starts, ends = [], []
    for path in glob.glob(os.path.join(folder, "trial_*", "result.json")):
        with open(path) as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
        if lines:
            last = lines[-1]
            ends.append(float(last["timestamp"]))
            starts.append(float(last["timestamp"]) - float(last["time_total_s"]))
    return len(ends), (min(starts) if starts else None), (max(ends) if ends else None)


def tune(args):
    """The 4-trial search at 0.25 GPU per trial, all at once and then one after another."""
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line
    from recbole_finest.tune import run_tune

    space = os.path.join(args.work, "space.yaml")
    os.makedirs(args.work, exist_ok=True)
    with open(space, "w") as fh:
        fh.write(SPACE)
    out = {}
    for name, limit in (("at once", None), ("one after another", 1)):
        # its own tune_dir: no pre-trained pair and no finished trial rows (tune/trial_cache.py) of the other
        tune_dir = os.path.join(args.work, "tune", name.replace(" ", "-"))
        cfg = {**args.model, "tune_dir": tune_dir, "tune_name": "search", "tune_num_samples": TRIALS,
               "tune_resources_per_trial": QUARTER, "tune_num_gpus": 1, "tune_num_cpus": 8,
               "tune_max_concurrent_trials": limit, "tune_verbose": 0,
               "checkpoint_dir": os.path.join(args.work, "saved")}
        t0 = time.time()
        result = run_tune("SASRec", "ml-100k", None, cfg, space)
        wall = time.time() - t0
        n, start, end = trial_span(os.path.join(tune_dir, "search"))
        ok = sum(1 for r in result["rows"] if r["status"] == "ok")
        span = (end - start) if n else float("nan")
        out[name] = {"wall_s": wall, "trials": n, "ok": ok, "span_s": span,
                     "trials_per_min": n / span * 60 if n and span > 0 else float("nan"), "start": t0, "end": t0 + wall}
        print(f"tune {name}: {ok}/{TRIALS} ok, trial span {span:.1f} s, search {wall:.1f} s", flush=True)
    write_json(os.path.join(args.report, "tune.json"), out)


def study(args):
    """``study_backend: ray``: 4 seeds x [original, finest], one cell group per seed at 0.25 GPU."""
    sys.argv = sys.argv[:1]
    import ray

    from recbole_finest.study.driver import run_study

    folder = os.path.join(args.work, "study")
    cfg = {**args.model, "study_models": ["SASRec"], "study_methods": ["original", "finest"],
           "study_selections": ["random"], "study_kinds": ["deletion"], "study_ratios": [0.01], "study_seeds": 4,
           "study_dir": folder, "checkpoint_dir": os.path.join(args.work, "saved-study"),
           "study_backend": "ray", "study_resources_per_cell": QUARTER}
    t0 = time.time()
    ray.init(num_cpus=8, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        run_study(dataset="ml-100k", config_dict=cfg)
    finally:
        ray.shutdown()
    wall = time.time() - t0
    cells = len(glob.glob(os.path.join(folder, "cells", "**", "*.json"), recursive=True))
    write_json(os.path.join(args.report, "study.json"), {"wall_s": wall, "cells": cells, "groups": 4,
                                                         "ray": {k: resources.get(k) for k in ("CPU", "GPU")}})
    print(f"study on Ray: {cells} cells in {wall:.1f} s", flush=True)


# ------------------------------------------------------------------ table
def read_steps(report):
    """``{step: (start, end, rc)}`` of ``steps.tsv`` (gpu_check.sh: name, start, end, exit code)."""
    steps = {}
    path = os.path.join(report, "steps.tsv")
    if os.path.isfile(path):
        for line in open(path):
            name, start, end, rc = line.rstrip("\n").split("\t")
            steps[name] = (float(start), float(end), rc)
    return steps


def read_smi(report):
    """``[(time, utilization %, memory used MiB)]`` of ``smi.csv`` (gpu_check.sh's sampler)."""
    rows = []
    path = os.path.join(report, "smi.csv")
    if os.path.isfile(path):
        for line in open(path):
            parts = [p.strip() for p in line.split(",")]
            try:
                rows.append((float(parts[0]), float(parts[1]), float(parts[2])))
            except (ValueError, IndexError):
                continue
    return rows


def gpu_use(smi, start, end):
    """``"mean / max % util, peak X MiB used"`` of the samples in ``[start, end]``."""
    inside = [r for r in smi if start <= r[0] <= end]
    if not inside:
        return "-", "-"
    util = [r[1] for r in inside]
    return (f"{sum(util) / len(util):.0f} / {max(util):.0f} % ({len(util)} samples)",
            f"{max(r[2] for r in inside):,.0f} MiB")


def step_result(steps, name):
    if name not in steps:
        return "not run"
    rc = steps[name][2]
    return {"0": "ok", "124": "timed out", "137": "timed out", "skip": "skipped: time budget"}.get(rc, f"failed (exit {rc})")


def scale_cells(work, label):
    path = os.path.join(work, "scale", "results", f"{label}-1M.json")
    if not os.path.isfile(path):
        return None
    r = json.load(open(path))
    ph, peak = r["phase_s"], r.get("phase_cuda_peak_mib", {})
    parts = [f"{p} {ph[p]:.1f} s" + (f" ({peak[p]:,.0f} MiB)" if p in peak else "")
             for p in ("load", "pre-train epoch", "reference lists", "FINEST epoch", "evaluation")]
    rbo = " / ".join(f"{row['rbo']:.4f}" for row in r["rows"])
    return f"{'; '.join(parts)}; RBO orig / FINEST {rbo}; device {r.get('device', '?')}"


def table(args):
    steps, smi = read_steps(args.report), read_smi(args.report)
    lines = ["| check | result | numbers | GPU util mean / max | GPU memory used (peak) |", "|---|---|---|---|---|"]

    def row(name, label, numbers):
        use = gpu_use(smi, *steps[name][:2]) if name in steps else ("-", "-")
        lines.append(f"| {label} | {step_result(steps, name)} | {numbers} | {use[0]} | {use[1]} |")

    junit = os.path.join(args.report, "cuda_tests.xml")
    numbers = "-"
    if os.path.isfile(junit):
        root = ET.parse(junit).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        t, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        numbers = f"{t - f - e - s} passed, {f} failed, {e} errors, {s} skipped in {float(suite.get('time', 0)):.0f} s"
    row("cuda tests", "tests/test_cuda.py", numbers)
    row("1M fp32", "1M stability run, fp32 (scale.py --device cuda)", scale_cells(args.work, "gpu-fp32") or "-")
    if "1M bf16" in steps:
        keys = os.environ.get("GPU_CHECK_BF16", '{"train_precision": "bf16"}')
        row("1M bf16", f"1M, bf16 ({keys})", scale_cells(args.work, "gpu-bf16") or "-")
    else:
        lines.append("| 1M, bf16 | not run | GPU_CHECK_BF16 set empty (default: train_precision: bf16); "
                     "fp32 only | - | - |")
    tune_path = os.path.join(args.report, "tune.json")
    tuned = json.load(open(tune_path)) if os.path.isfile(tune_path) else {}
    for name, label in (("at once", f"Ray Tune, {TRIALS} trials x 0.25 GPU at once"),
                        ("one after another", f"Ray Tune, {TRIALS} trials x 0.25 GPU one after another")):
        t = tuned.get(name)
        if t:
            use = gpu_use(smi, t["start"], t["end"])
            lines.append(f"| {label} | {t['ok']}/{TRIALS} ok | {t['trials_per_min']:.1f} trials/min (trials' span "
                         f"{t['span_s']:.0f} s; search {t['wall_s']:.0f} s with Ray start"
                         f" and pre-training) | {use[0]} | {use[1]} |")
        else:
            row("tune", label, "-")
    if len(tuned) == 2:
        a, b = tuned["at once"]["trials_per_min"], tuned["one after another"]["trials_per_min"]
        lines.append(f"| Ray Tune: at once / one after another | | {a / b:.2f}x trials per minute | | |")
    study_path = os.path.join(args.report, "study.json")
    st = json.load(open(study_path)) if os.path.isfile(study_path) else None
    row("study ray", "study_backend: ray, 4 groups x 0.25 GPU",
        f"{st['cells']} cells in {st['wall_s']:.0f} s (Ray {st['ray']})" if st else "-")
    if smi:
        lines.append(f"| whole check | | {len(smi)} nvidia-smi samples | {sum(r[1] for r in smi) / len(smi):.0f} / "
                     f"{max(r[1] for r in smi):.0f} % | {max(r[2] for r in smi):,.0f} MiB |")
    scale_dir = os.path.join(args.work, "scale")
    if glob.glob(os.path.join(scale_dir, "results", "gpu-*-1M.json")):
        sys.path.insert(0, HERE)
        import scale

        for label in ("gpu-fp32", "gpu-bf16"):
            if os.path.isfile(os.path.join(scale_dir, "results", f"{label}-1M.json")):
                lines += ["", f"FLOP per phase of the 1M run ({label}):", ""]
                lines += scale._flop_tables([json.load(open(os.path.join(scale_dir, "results", f"{label}-1M.json")))])
    device = os.path.join(args.report, "device.txt")
    head = open(device).read().strip() if os.path.isfile(device) else "device: unknown"
    text = "\n".join([head, ""] + lines) + "\n"
    with open(os.path.join(args.report, "table.md"), "w") as fh:
        fh.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["tune", "study", "table"])
    ap.add_argument("--work", default=os.path.join(REPO, "saved", "gpu_check"))
    ap.add_argument("--report", default=os.path.join(REPO, "saved", "gpu_check", "report"))
    ap.add_argument("--smoke", action="store_true", help="toy model size (checks this script, measures nothing)")
    args = ap.parse_args()
    args.model = {**MODEL, **(SMOKE if args.smoke else {})}
    args.work, args.report = os.path.abspath(args.work), os.path.abspath(args.report)
    {"tune": tune, "study": study, "table": table}[args.what](args)


if __name__ == "__main__":
    main()
