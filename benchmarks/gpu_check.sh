#!/usr/bin/env bash
# One GPU check of today's code, at most ~8 minutes on one H100; prints a markdown table.
#
#   bash benchmarks/gpu_check.sh            # run it (needs an NVIDIA GPU and torch with CUDA)
#   bash benchmarks/gpu_check.sh --dry-run  # print the plan only (no GPU needed)
#
# Steps, each under `timeout` and all under one budget (GPU_CHECK_BUDGET seconds, default 470;
# a step that would start with less than 20 s left is skipped and marked so):
#   1. tests/test_cuda.py (pytest, junit XML)                                    cap 110 s
#   2. 1M stability run on the GPU, fp32: benchmarks/scale.py --sizes 1M --device cuda
#      (epoch / reference lists / evaluation times, GPU allocator peak per phase,
#      FLOP per phase against the GPU's matmul rate, fp32 and bf16)             cap 130 s
#   3. the same in bf16: scale.py --config-json "$GPU_CHECK_BF16", by default
#      '{"train_precision": "bf16"}' (the plugin's bf16 key); GPU_CHECK_BF16= (set, empty)
#      skips it and the table says "fp32 only"                                 cap 100 s
#   4. Ray Tune, 4 trials x {cpu: 1, gpu: 0.25}: all at once, then one after another
#      (benchmarks/gpu_check.py tune: no cap, then tune_max_concurrent_trials 1; trials per minute from Ray's trial records) cap 170 s
#   5. study_backend: ray, 4 cell groups x {cpu: 1, gpu: 0.25}                   cap 80 s
# Throughout, nvidia-smi is sampled every 0.5 s (utilization, memory used); the table gives
# each step's mean / max utilization and peak memory from the samples inside its window.
#
# Environment: PYTHON (default .venv/bin/python if present, else python3), GPU_CHECK_WORK
# (data, Ray and study folders; default saved/gpu_check), GPU_CHECK_REPORT (table.md,
# steps.tsv, smi.csv, JSON results; default $OUT/gpu_check when $OUT is set, else
# $GPU_CHECK_WORK/report).
set -uo pipefail

cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WORK=${GPU_CHECK_WORK:-saved/gpu_check}
if [[ -n "${OUT:-}" ]]; then REPORT=${GPU_CHECK_REPORT:-$OUT/gpu_check}; else REPORT=${GPU_CHECK_REPORT:-$WORK/report}; fi
BUDGET=${GPU_CHECK_BUDGET:-470}
if [[ -v GPU_CHECK_BF16 ]]; then BF16=$GPU_CHECK_BF16; else BF16='{"train_precision": "bf16"}'; fi

SCALE=(benchmarks/scale.py --sizes 1M --device cuda --workdir "$WORK/scale" --casper auto --threads 4 --matmul-seconds 0.2)
STEPS=(
    "cuda tests|110|$PYTHON -m pytest -q -p no:cacheprovider tests/test_cuda.py --junitxml=$REPORT/cuda_tests.xml"
    "1M fp32|130|$PYTHON ${SCALE[*]} --label gpu-fp32"
    "1M bf16|100|$PYTHON ${SCALE[*]} --label gpu-bf16 --config-json '$BF16'"
    "tune|170|$PYTHON benchmarks/gpu_check.py tune --work $WORK --report $REPORT"
    "study ray|80|$PYTHON benchmarks/gpu_check.py study --work $WORK --report $REPORT"
)

if [[ "${1:-}" == "--dry-run" ]]; then
    echo "plan (budget ${BUDGET} s; work $WORK; report $REPORT; python $PYTHON):"
    echo "  check: nvidia-smi -L lists a GPU and torch.cuda.is_available() (else exit 2 at once)"
    echo "  sampler: nvidia-smi utilization.gpu,memory.used every 0.5 s -> $REPORT/smi.csv"
    for s in "${STEPS[@]}"; do
        IFS='|' read -r name cap cmd <<< "$s"
        if [[ "$name" == "1M bf16" && -z "$BF16" ]]; then
            echo "  [skip] $name: GPU_CHECK_BF16 set empty: fp32 only"
            continue
        fi
        echo "  [${cap} s] $name: $cmd"
    done
    echo "  table: $PYTHON benchmarks/gpu_check.py table --work $WORK --report $REPORT -> $REPORT/table.md"
    exit 0
elif [[ -n "${1:-}" ]]; then
    echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2
    exit 64
fi

fail() { echo "gpu_check: $*" >&2; exit 2; }
command -v nvidia-smi > /dev/null 2>&1 || fail "no nvidia-smi on this machine: this check needs an NVIDIA GPU (use --dry-run to see the plan)"
nvidia-smi -L 2>/dev/null | grep -q "^GPU " || fail "nvidia-smi lists no GPU: this check needs an NVIDIA GPU"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || fail "torch.cuda.is_available() is False for $PYTHON (torch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not importable')): install a CUDA build of torch"

mkdir -p "$REPORT" "$WORK"
# a fresh check: no results, trial folders, pre-trained cache or study cells of an earlier one
# (the synthetic 1M data set under $WORK/scale/dataset is kept: it is generated the same way)
rm -rf "$WORK/scale/results" "$WORK/scale/progress" "$WORK/tune" "$WORK/study" "$WORK/saved" "$WORK/saved-study"
rm -f "$REPORT"/*.json "$REPORT"/*.log "$REPORT/cuda_tests.xml" "$REPORT/table.md"
: > "$REPORT/steps.tsv"
{
    echo "device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)," \
         "$("$PYTHON" -c 'import torch, ray, numpy; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), ray {ray.__version__}, numpy {numpy.__version__}")')," \
         "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ)"
} > "$REPORT/device.txt"
cat "$REPORT/device.txt"

( while true; do
      echo "$(date +%s.%N),$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits | head -1)"
      sleep 0.5
  done ) > "$REPORT/smi.csv" 2>/dev/null &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null' EXIT

DEADLINE=$((SECONDS + BUDGET))
FAILED=0
for s in "${STEPS[@]}"; do
    IFS='|' read -r name cap cmd <<< "$s"
    if [[ "$name" == "1M bf16" && -z "$BF16" ]]; then
        echo "== $name: skipped (GPU_CHECK_BF16 set empty: fp32 only)"
        continue
    fi
    left=$((DEADLINE - SECONDS))
    if (( left < 20 )); then
        echo "== $name: skipped, ${left} s of the budget left"
        printf '%s\t%s\t%s\tskip\n' "$name" "$(date +%s.%N)" "$(date +%s.%N)" >> "$REPORT/steps.tsv"
        continue
    fi
    (( cap > left )) && cap=$left
    echo "== $name (limit ${cap} s): $cmd"
    start=$(date +%s.%N)
    timeout -k 10 "$cap" bash -c "$cmd" > "$REPORT/${name// /_}.log" 2>&1
    rc=$?
    (( rc != 0 )) && FAILED=1
    printf '%s\t%s\t%s\t%s\n' "$name" "$start" "$(date +%s.%N)" "$rc" >> "$REPORT/steps.tsv"
    tail -n 3 "$REPORT/${name// /_}.log"
    if (( rc != 0 )) && [[ "$name" == "tune" || "$name" == "study ray" ]]; then
        "$PYTHON" -m ray.scripts.scripts stop --force > /dev/null 2>&1  # a Ray left by a stopped step holds the GPU
    fi
    echo "== $name: exit $rc"
done

kill "$SAMPLER" 2>/dev/null
"$PYTHON" benchmarks/gpu_check.py table --work "$WORK" --report "$REPORT" || FAILED=1
exit "$FAILED"  # 1 when a step failed or timed out (its row says which)
