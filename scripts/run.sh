#!/usr/bin/env bash
# Set-up and run in one command, on a machine with only Python 3 and pip.
#   bash scripts/run.sh demo [--key=value ...]   the main job (stability run of SASRec on ml-100k)
#   bash scripts/run.sh test [pytest args ...]   the test suite
# Environment: PYTHON (default python3), VENV (default .venv), TORCH_SPEC (default torch==2.13.0,
# the CPU wheel; set e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>" for a GPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.recbole-finest-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q $TORCH_SPEC
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  touch "$stamp"
fi
what=${1:-demo}
shift || true
case "$what" in
  demo) exec "$VENV/bin/python" run_recbole_finest.py "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q tests "$@" ;;
  *) echo "usage: bash scripts/run.sh demo|test [args]" >&2; exit 2 ;;
esac
