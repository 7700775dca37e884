#!/usr/bin/env bash
# Set-up and run in one command, on a machine with only Python 3 (3.11, 3.12 or 3.13) and pip.
#   bash scripts/run.sh demo [--key=value ...]   the main job (stability run of SASRec on ml-100k)
#   bash scripts/run.sh test [pytest args ...]   the test suite
# Environment: PYTHON (default python3; e.g. PYTHON=python3.12), VENV (default .venv; use one per
# interpreter), TORCH_SPEC (default torch==2.13.0: the CPU wheel on 3.11, the CUDA build (~4.7 GB,
# runs on CPU too) on 3.12 / 3.13; set e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.recbole-finest-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ] || [ scripts/run.sh -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q $TORCH_SPEC
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  # RecBole 1.2.1 pins ray<=2.6.3 (no wheel for Python 3.12+, no NumPy 2) and rbo pins numpy<2;
  # both work with today's stack, whose other requirements setup.py lists (docs/install.md).
  "$VENV/bin/python" -m pip install -q --no-deps recbole==1.2.1 rbo==0.1.3
  touch "$stamp"
fi
what=${1:-demo}
shift || true
case "$what" in
  demo) exec "$VENV/bin/python" run_recbole_finest.py "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q tests "$@" ;;
  *) echo "usage: bash scripts/run.sh demo|test [args]" >&2; exit 2 ;;
esac
