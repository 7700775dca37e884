#!/usr/bin/env bash
# Commit the paper study's finished cells every 15 minutes while long study chains run, so that
# a session's stop loses no finished cell (issue 14). Adds and commits only
# docs/paper_study/{reddit,wikipedia}/cells; never the study reports a partial run rewrites.
#   setsid nohup bash scripts/experiments/commit_cells_loop.sh > runs/logs/autocommit.log 2>&1 &
cd "$(dirname "$0")/../.." || exit 1
cells=${CELLS:-"docs/paper_study/reddit/cells docs/paper_study/wikipedia/cells"}  # CELLS="<folders>" for another study
while true; do
  sleep 900
  # shellcheck disable=SC2086
  for _ in 1 2 3; do git add $cells 2>/dev/null && break; sleep 20; done
  # shellcheck disable=SC2086
  if ! git diff --cached --quiet -- $cells; then
    # shellcheck disable=SC2086
    n=$(git diff --cached --name-only -- $cells | grep -c '\.json$')
    # shellcheck disable=SC2086
    git commit -q -m "Paper study cells: $n finished cell files saved as they land" -- $cells && echo "$(date -u +%T) committed $n"
  fi
done
