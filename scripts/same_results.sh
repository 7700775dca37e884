#!/usr/bin/env bash
# Same-seed before/after check (issue 17): one small stability run and one tiny study.
#
#   bash scripts/same_results.sh <checkout> <out> [python]
#
# Runs the code of <checkout> (put first on PYTHONPATH; ml-100k from RecBole's bundled
# example data) and writes <out>/stability/results.json and <out>/study/results.json,
# plus "*.masked.json" copies without what differs between two runs of the same code:
# wall times (elapsed_s) and the run's own folder paths. Compare two outputs with
#   cmp A/stability/results.masked.json B/stability/results.masked.json
#   cmp A/study/results.masked.json B/study/results.masked.json
set -euo pipefail
checkout=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
python=${3:-python}
export PYTHONPATH="$checkout" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$out"
"$python" - "$out" <<'PY'
import glob, json, os, shutil, sys

from recbole_finest.quick_start import run_recbole_finest
from recbole_finest.study import run_study

out = sys.argv[1]
TINY = dict(user_inter_num_interval="[300,inf)", hidden_size=8, inner_size=16, n_layers=1, n_heads=1,
            MAX_ITEM_LIST_LENGTH=20, epochs=2, finest_epochs=2, finest_topk=10, train_batch_size=512,
            eval_batch_size=512, show_progress=False, seed=2020, state="ERROR",
            checkpoint_dir=os.path.join(out, "saved"))


def masked(path, folder):
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k != "elapsed_s"}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v.replace(folder, "<folder>") if isinstance(v, str) else v

    with open(path, encoding="utf-8") as f:
        data = clean(json.load(f))
    with open(path[:-len(".json")] + ".masked.json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)


run = run_recbole_finest("SASRec", "ml-100k", config_dict={
    **TINY, "finetune_method": "finest", "perturb_selection": "random", "perturb_kind": "deletion",
    "perturb_ratio": 0.01, "results_dir": os.path.join(out, "runs")})
os.makedirs(os.path.join(out, "stability"), exist_ok=True)
src = os.path.join(run["results_dir"], "results.json")
shutil.copy(src, os.path.join(out, "stability", "results.json"))
masked(os.path.join(out, "stability", "results.json"), run["results_dir"])

study_dir = os.path.join(out, "study")
run_study("SASRec", "ml-100k", config_dict={
    **TINY, "study_methods": ["original", "finest", "acae"], "study_selections": ["random"],
    "study_kinds": ["deletion"], "study_ratios": [0.01], "study_seeds": [2020], "study_dir": study_dir,
    "study_plot_dpi": 30, "study_method_config": {"acae": {"adv_eps": 0.05, "finest_learning_rate": 0.001}}, "results_dir": os.path.join(out, "runs")})
masked(os.path.join(study_dir, "results.json"), study_dir)
print("done:", out)
PY
