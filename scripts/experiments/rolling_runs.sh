#!/usr/bin/env bash
# "Rolling updates" of docs/results.md: SASRec, 4 versions (cuts 0.6 / 0.7 / 0.8 / 0.9), five strategies,
# then the 2% churn budget, per dataset and seed. One thread, one run after the other; every trained
# state is kept in runs/rolling/cache-<dataset>-<seed> (shared by the fixed and the budget run: same
# v1, same retrain / warm_start chains), so an interrupted series resumes where it stopped.
#   nice -n 10 setsid nohup bash scripts/experiments/rolling_runs.sh [dataset:seed ...] > runs/logs/rolling.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
runs=${*:-"reddit:2020 wikipedia:2020 reddit:2021 wikipedia:2021"}
mkdir -p runs/rolling/logs
for run in $runs; do
  dataset=${run%%:*}; seed=${run##*:}
  base="properties/update/$dataset.yaml properties/update/${dataset}_chain.yaml"
  for mode in fixed budget; do
    files=$base
    if [ "$mode" = budget ]; then files="$files properties/update/budget.yaml"; fi
    echo "$(date -u +%FT%TZ) $dataset seed $seed $mode: start"
    "$PY" run_recbole_finest.py --update --model=SASRec --config_files="$files" --seed="$seed" \
      --update_cache_dir="runs/rolling/cache-$dataset-$seed" > "runs/rolling/logs/$dataset-$seed-$mode.log" 2>&1
    echo "$(date -u +%FT%TZ) $dataset seed $seed $mode: exit $?"
  done
done
