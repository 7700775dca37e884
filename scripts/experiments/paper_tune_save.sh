#!/usr/bin/env bash
# Keep the per-method tuning of issue 14 across sessions (runs/ is not kept):
#   bash scripts/experiments/paper_tune_save.sh [runs/paper-tune]     copy finished searches to docs/paper_tune/
#   bash scripts/experiments/paper_tune_save.sh --restore [runs/paper-tune]
# A search counts as finished when --tune_methods wrote its chosen/<model>-<method>.json; a rerun
# of --tune_methods skips every (model, method) whose record is back in <tune_dir>/paper/chosen/.
# Finished trials of an unfinished search are kept too (<tune_dir>/trials/*.json, one small JSON
# row each; recbole_finest/tune/trial_cache.py): the rerun reads them back instead of training.
set -euo pipefail
cd "$(dirname "$0")/../.."
restore=0
if [ "${1:-}" = "--restore" ]; then restore=1; shift; fi
tune_dir=${1:-runs/paper-tune}
keep=docs/paper_tune
if [ "$restore" = 1 ]; then
  mkdir -p "$tune_dir/paper/chosen"
  cp -n "$keep"/chosen/*.json "$tune_dir/paper/chosen/"
  mkdir -p "$tune_dir/trials"
  if [ -d "$keep/trials" ]; then cp -n "$keep"/trials/*.json "$tune_dir/trials/"; fi
  echo "restored $(ls "$keep"/chosen | wc -l) chosen records into $tune_dir/paper/chosen," \
       "$(ls "$tune_dir/trials" | wc -l) trial rows into $tune_dir/trials"
  exit 0
fi
mkdir -p "$keep/chosen"
for record in "$tune_dir"/paper/chosen/*.json; do
  name=$(basename "$record" .json)
  cp "$record" "$keep/chosen/"
  mkdir -p "$keep/$name"
  for f in results.md summary.json search_space.yaml; do  # no CSV data files in the repository
    [ -f "$tune_dir/paper-$name/$f" ] && cp "$tune_dir/paper-$name/$f" "$keep/$name/"
  done
done
if [ -d "$tune_dir/trials" ]; then
  mkdir -p "$keep/trials"
  cp "$tune_dir"/trials/*.json "$keep/trials/" 2>/dev/null || true
fi
[ -f "$tune_dir/paper/methods.yaml" ] && cp "$tune_dir/paper/methods.yaml" "$keep/methods.yaml"
echo "kept $(ls "$keep"/chosen | wc -l) finished searches in $keep"
