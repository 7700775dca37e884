#!/usr/bin/env bash
# LRURec on reddit at the paper budget (issue 42; docs/results.md, "LRURec on reddit"), seed by
# seed, one thread, resumable: finished cells are kept in docs/paper_study/reddit-lrurec/cells and
# a rerun skips them (the model states of a seed are kept under runs/paper-reddit-lrurec).
#   nice -n 10 setsid nohup bash scripts/experiments/lrurec_reddit.sh > runs/logs/lrurec-reddit.log 2>&1 < /dev/null &
#   CELLS=docs/paper_study/reddit-lrurec/cells setsid nohup bash scripts/experiments/commit_cells_loop.sh \
#       > runs/logs/autocommit-lrurec.log 2>&1 < /dev/null &
# Seeds default to 2020 2021 2022. Environment: PY (default .venv/bin/python), RAW (reddit.tsv).
set -uo pipefail
cd "$(dirname "$0")/../.."
seeds=${*:-2020 2021 2022}
PY=${PY:-.venv/bin/python}
RAW=${RAW:-../shared/data/reddit.tsv}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p runs/logs
for seed in $seeds; do
  echo "$(date -u +%FT%TZ) LRURec reddit seed $seed: start"
  "$PY" run_recbole_finest.py --study \
    --config_files "properties/study/reddit_paper.yaml properties/study/reddit_lrurec.yaml" \
    --raw_data_file="$RAW" --study_dir=docs/paper_study/reddit-lrurec \
    --checkpoint_dir=runs/paper-reddit-lrurec/checkpoints --study_seeds="[$seed]"
  echo "$(date -u +%FT%TZ) LRURec reddit seed $seed: exit $?"
done
