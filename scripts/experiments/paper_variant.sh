#!/usr/bin/env bash
# One variant of the reduced paper-budget study (issue 14; docs/results.md, "Does the simulation help?"):
#   bash scripts/experiments/paper_variant.sh <dataset> <variant> [--key=value ...]
# <variant>: a file of properties/study/variants/ (sim5, sim10: FINEST's simulation ratio;
# independent: the reference protocol). Runs the study of docs/paper_study/<dataset> with the
# variant layered last, in its own folder docs/paper_study/<dataset>-<variant>, resumable. The main
# study's pre-trained states (states/**/{A,B}-pretrained.pth, where this machine has them) are copied first,
# so the variant starts from the same pre-trained A and B without training them again. For
# `independent` the main study's fine-tuned A states of finest and finest_no_sim are copied too,
# where this machine still has them (not kept in git): A is fine-tuned toward its own lists under
# both protocols, so only B is fine-tuned again.
# Environment: PY (default .venv/bin/python), OMP_NUM_THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
dataset=${1:?usage: paper_variant.sh <dataset> <variant> [--key=value ...]}
variant=${2:?usage: paper_variant.sh <dataset> <variant> [--key=value ...]}
shift 2
overlay=properties/study/variants/$variant.yaml
[ -f "$overlay" ] || { echo "no variant '$variant': $overlay does not exist" >&2; exit 2; }
main=docs/paper_study/$dataset
[ -d "$main" ] || { echo "no main study folder $main" >&2; exit 2; }
out=docs/paper_study/$dataset-$variant
if [ -d "$main/states" ]; then
  pattern='-name *-pretrained.pth'
  if [ "$variant" = independent ]; then pattern="$pattern -o -name A-finest*.pth"; fi
  # shellcheck disable=SC2086
  (cd "$main" && set -f && find states \( $pattern \)) | while read -r f; do
    mkdir -p "$out/$(dirname "$f")"
    cp -n "$main/$f" "$out/$f"
  done
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "${PY:-.venv/bin/python}" run_recbole_finest.py --study \
  --config_files "properties/study/${dataset}_paper.yaml docs/paper_tune/methods.yaml properties/study/paper_reduced.yaml $overlay" \
  --study_dir="$out" --checkpoint_dir="runs/paper-$dataset-$variant/checkpoints" "$@"
