#!/usr/bin/env bash
# "Stable model updates" of docs/results.md: SASRec on reddit and wikipedia, BERT4Rec on reddit.
# One thread, one run after the other; each keeps its trained states in runs/update/cache-<model>-<dataset>,
# so an interrupted run resumes where it stopped. Usage: bash scripts/experiments/update_runs.sh [model:dataset ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
runs=${*:-"SASRec:reddit SASRec:wikipedia BERT4Rec:reddit"}
for run in $runs; do
  model=${run%%:*}; dataset=${run##*:}
  files="properties/update/$dataset.yaml"
  extra="properties/update/${dataset}_$(echo "$model" | tr '[:upper:]' '[:lower:]').yaml"
  if [ -f "$extra" ]; then files="$files $extra"; fi
  .venv/bin/python run_recbole_finest.py --update --model="$model" \
    --config_files="$files" --update_cache_dir="runs/update/cache-$model-$dataset" \
    > "runs/update/logs/$model-$dataset.log" 2>&1
done
