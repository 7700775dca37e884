"""bf16 against fp32 (issue 44 item 2): ``scale.py`` runs of one size in both precisions, side by side.

For each size, ``scale.py`` runs the 1 + 1 epoch stability run (SASRec, synthetic data, the
main job's protocol) with ``train_precision: fp32`` (label ``<label>-fp32``) and then with
``train_precision: bf16`` (``<label>-bf16``), same seed, same data, one after the other in
this invocation; ``--noise-seed S`` adds an fp32 run with ``seed: S`` (``<label>-fp32-s<S>``),
the seed-to-seed spread the bf16 deltas are set against. It then prints, per size:

* per phase: wall and CPU seconds of each run and bf16 / fp32 (wall and CPU);
* per method (original, finest): RBO, Jaccard@10, FRBO@10, MRR of A, NDCG@10 of A in fp32, bf16
  - fp32, and (with ``--noise-seed``) the other seed - fp32.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/precision_compare.py --sizes 100K \\
        --workdir runs/bf16 --label bf16cmp --threads 2 --noise-seed 2021
    .venv/bin/python benchmarks/precision_compare.py --sizes 100K --workdir runs/bf16 --label bf16cmp --table

``--max-batches N`` is passed to ``scale.py`` (every loop cut after N batches: times per
phase are comparable between the precisions, the metrics are those of N-batch models).
A finished run is skipped when run again (``scale.py``'s result files).
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PHASES = ("load", "pre-train epoch", "reference lists", "FINEST epoch", "evaluation", "CASPER", "other")
METRICS = ("rbo", "jaccard@10", "frbo@10", "mrr", "ndcg@10")


def labels(label, noise_seed=None):
    """``{name: (scale.py label, extra config)}`` of the runs of one comparison."""
    out = {"fp32": (f"{label}-fp32", {"train_precision": "fp32"}),
           "bf16": (f"{label}-bf16", {"train_precision": "bf16"})}
    if noise_seed is not None:
        out["fp32 other seed"] = (f"{label}-fp32-s{noise_seed}", {"train_precision": "fp32", "seed": noise_seed})
    return out


def load(workdir, scale_label, size):
    path = os.path.join(workdir, "results", f"{scale_label}-{size}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def table(workdir, label, sizes, noise_seed=None):
    """The markdown tables of the finished runs."""
    runs = labels(label, noise_seed)
    lines = []
    for size in sizes:
        rec = {name: load(workdir, lab, size) for name, (lab, _) in runs.items()}
        if rec["fp32"] is None or rec["bf16"] is None:
            lines.append(f"{size}: not finished ({', '.join(n for n, r in rec.items() if r is None)} missing)")
            continue
        fp, bf = rec["fp32"], rec["bf16"]
        mb = f", --max-batches {fp['max_batches']}" if fp.get("max_batches") else ""
        lines += [f"#### {size} ({fp['users']:,} users, {fp['items']:,} items, {fp['threads']} threads{mb})", "",
                  "| phase | fp32 wall / CPU | bf16 wall / CPU | bf16 / fp32 wall | bf16 / fp32 CPU |",
                  "|---|---|---|---|---|"]
        for phase in PHASES + ("total",):
            if phase == "total":
                fw, fc, bw, bc = fp["wall_s"], fp["cpu_s"], bf["wall_s"], bf["cpu_s"]
            else:
                fw, fc = fp["phase_s"].get(phase, 0.0), fp["phase_cpu_s"].get(phase, 0.0)
                bw, bc = bf["phase_s"].get(phase, 0.0), bf["phase_cpu_s"].get(phase, 0.0)
            ratio = lambda b, f: f"{b / f:.2f}" if f > 0.05 else "-"  # noqa: E731
            lines.append(f"| {phase} | {fw:.1f} s / {fc:.1f} s | {bw:.1f} s / {bc:.1f} s | {ratio(bw, fw)} | {ratio(bc, fc)} |")
        other = rec.get("fp32 other seed")
        head = "| method | metric | fp32 | bf16 | bf16 - fp32 |" + (" other seed - fp32 |" if other else "")
        lines += ["", head, "|---|---|---|---|---|" + ("---|" if other else "")]
        for i, row in enumerate(fp["rows"]):
            for metric in METRICS:
                if metric not in row:
                    continue
                a, b = float(row[metric]), float(bf["rows"][i][metric])
                cell = f"| {row['method']} | {metric} | {a:.5f} | {b:.5f} | {b - a:+.6f} |"
                if other:
                    cell += f" {float(other['rows'][i][metric]) - a:+.6f} |"
                lines.append(cell)
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100K")
    ap.add_argument("--workdir", default="runs/bf16")
    ap.add_argument("--label", default="bf16cmp")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-batches", type=int, default=0)
    ap.add_argument("--noise-seed", type=int, default=None, help="also an fp32 run with this seed (the seed spread)")
    ap.add_argument("--matmul-seconds", type=float, default=0.0, help="scale.py's matmul rates (0 = skip)")
    ap.add_argument("--table", action="store_true", help="only print the tables of finished runs")
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    if not args.table:
        for size in sizes:
            for name, (lab, extra) in labels(args.label, args.noise_seed).items():
                argv = [sys.executable, os.path.join(HERE, "scale.py"), "--sizes", size, "--workdir", args.workdir,
                        "--label", lab, "--casper", "auto", "--threads", str(args.threads),
                        "--max-batches", str(args.max_batches), "--matmul-seconds", str(args.matmul_seconds),
                        "--config-json", json.dumps(extra)]
                print(f"== {size} {name}: {' '.join(argv[1:])}", flush=True)
                if subprocess.run(argv, stdout=subprocess.DEVNULL).returncode != 0:
                    sys.exit(f"{size} {name}: scale.py failed")
    print(table(os.path.abspath(args.workdir), args.label, sizes, args.noise_seed))


if __name__ == "__main__":
    main()
