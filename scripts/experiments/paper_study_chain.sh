#!/usr/bin/env bash
# The paper-budget study of one dataset, seed by seed (issue 14; docs/results.md, "Paper-budget
# comparison"), one thread, resumable: finished cells are cached per method in
# docs/paper_study/<dataset>/cells/, so a rerun skips them.
#   bash scripts/experiments/paper_study_chain.sh <dataset> <model> [seed ...]
# <model>: SASRec or BERT4Rec (BERT4Rec adds the overlay properties/study/paper_bert4rec.yaml).
# Seeds default to 2020 2021 2022; logs go to runs/logs/study-<dataset>-<model>-<seed>.log.
# Environment: PY (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
dataset=${1:?usage: paper_study_chain.sh <dataset> <model> [seed ...]}
model=${2:?usage: paper_study_chain.sh <dataset> <model> [seed ...]}
shift 2
seeds=${*:-2020 2021 2022}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
files="properties/study/${dataset}_paper.yaml docs/paper_tune/methods.yaml properties/study/paper_reduced.yaml"
case "$model" in
  SASRec) ;;
  BERT4Rec) files="$files properties/study/paper_bert4rec.yaml" ;;
  *) echo "unknown model '$model' (SASRec or BERT4Rec)" >&2; exit 2 ;;
esac
mkdir -p runs/logs
for seed in $seeds; do
  echo "$(date -u +%FT%TZ) $dataset $model seed $seed: start"
  "$PY" run_recbole_finest.py --study --config_files "$files" \
    --study_dir="docs/paper_study/$dataset" --checkpoint_dir="runs/paper-$dataset/checkpoints" \
    --study_seeds="[$seed]" > "runs/logs/study-$dataset-$model-$seed.log" 2>&1
  echo "$(date -u +%FT%TZ) $dataset $model seed $seed: done"
done
