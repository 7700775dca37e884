"""The search's files: trial rows of Ray's ``ResultGrid``, tables and plot (through the report), best YAML, summary.

Outputs in ``<tune_dir>/<name>/`` next to Ray's own trial folders: ``results.csv`` and
``results.md`` (all trials, failed ones with their reason), ``best_config.yaml`` (ready for
``run_recbole_finest.py --config_files``), ``frontier.png`` (the tuned metric against the
accuracy metric across trials), ``search_space.yaml`` and ``summary.json``.
"""

import math
import os
import re
from logging import getLogger

import numpy as np
import yaml
from recbole.utils import set_color

from recbole_finest.fileio import write_json, write_text
from recbole_finest.report import search_columns, to_markdown, write_search_report
from recbole_finest.tune.identity import CLI_KEYS
from recbole_finest.tune.objective import is_reported, reported


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _error_reason(error):
    """Last meaningful line of a trial's exception (Ray wraps it with the remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


def collect_rows(results, param_keys, full_epochs):
    """Table rows of a ``ResultGrid``: params, metrics, status (ok / stopped / failed), reason; best first.

    Kept metrics: the reported ones (:func:`~recbole_finest.tune.objective.is_reported`: the
    Jaccard@k of the search's ``jaccard_k``), the baseline's, model B's and the objective's."""
    rows = []
    for result in results:
        metrics, params = dict(result.metrics or {}), dict(result.config or {})
        row = {"trial": os.path.basename(str(result.path or "")) or metrics.get("trial_id", "?")}
        row.update({k: _plain(params.get(k)) for k in param_keys})
        if result.error is not None or "objective" not in metrics:
            row.update(status="failed", error=_error_reason(result.error) if result.error else "no result reported")
        else:
            row["status"] = "ok" if metrics.get("finest_epochs", full_epochs) >= full_epochs else "stopped"
            for key, value in metrics.items():
                if key.startswith("base_") or is_reported(key) or key.endswith("_B") or key in (
                        "accuracy_drop", "feasible", "objective", "finest_epochs"):
                    row.setdefault(key, _plain(value))
            row["error"] = ""
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] == "failed", -r.get("objective", -math.inf)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def best_config_yaml(setup, user_overrides, best, header):
    """YAML text of the best trial: the search's own overrides plus the best sampled values."""
    body = {"model": setup.model, "dataset": setup.dataset}
    body.update({k: _plain(v) for k, v in user_overrides.items() if not k.startswith("tune_") and k not in CLI_KEYS})
    body.update({k: _plain(v) for k, v in best.items()})
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def objective_text(setup, baseline):
    """``(goal, threshold)``: the objective in words and the accuracy bound (None without one)."""
    drop = setup.max_drop
    threshold = None if drop is None else baseline[setup.accuracy_metric] * (1 - drop)
    goal = (f"{setup.mode}imise validation {setup.metric}"
            + (f" s.t. {setup.accuracy_metric} >= {threshold:.4f} ({drop:.0%} below the not fine-tuned "
               f"{baseline[setup.accuracy_metric]:.4f})" if drop is not None else ""))
    return goal, threshold


def _best_header(folder, setup, best, goal):
    header = [
        f"Best configuration of the Ray Tune search {os.path.basename(folder)} (recbole-finest).",
        f"Objective: {goal}.",
        f"Trial {best['trial']}: {setup.metric} {best[setup.metric]:.4f}, {setup.accuracy_metric} "
        f"{best[setup.accuracy_metric]:.4f}, feasible: {best['feasible']}.",
        "Use: python run_recbole_finest.py --config_files \""
        + " ".join(setup.config_files + [os.path.join(folder, "best_config.yaml")]) + "\"",
    ]
    if not best["feasible"]:
        header.insert(2, f"WARNING: no trial met the {setup.accuracy_metric} bound; this is the closest one.")
    return header


def write_outputs(folder, setup, space, search_space, user_overrides, results, baseline):
    """Results table (CSV + Markdown), best YAML, frontier plot, summary; returns their paths."""
    param_keys = list(space)
    names = reported(setup.jaccard_k, setup.frbo_k)
    rows = collect_rows(results, param_keys, setup.budgets[-1])
    columns = search_columns(rows, param_keys, setup.metric, setup.accuracy_metric, names)
    goal, threshold = objective_text(setup, baseline)
    done = [r for r in rows if r["status"] != "failed"]
    n_failed = len(rows) - len(done)
    base_cells = ", ".join(f"{k} {baseline[k]:.4f}" for k in names if k in baseline)
    frontier = dict(baseline=baseline, metric=setup.metric, accuracy_metric=setup.accuracy_metric,
                    threshold=threshold, title=f"{setup.model} on {setup.dataset}: {len(done)} trials")
    out = {"folder": folder, "rows": rows, "best": done[0] if done else None, "best_config": None}
    out.update(write_search_report(folder, rows, columns, f"Ray Tune search: {setup.model} on {setup.dataset}", [
        f"Objective: {goal}. Seeds: {setup.seeds}. Search space: `{search_space}`.",
        f"Not fine-tuned (validation): {base_cells}.",
        f"{len(rows)} trials, {n_failed} failed.",
    ], frontier if done else None))
    write_text(os.path.join(folder, "search_space.yaml"), yaml.safe_dump(space, sort_keys=False))
    if done:
        out["best_config"] = os.path.join(folder, "best_config.yaml")
        write_text(out["best_config"], best_config_yaml(setup, user_overrides, {k: done[0][k] for k in param_keys},
                                                        _best_header(folder, setup, done[0], goal)))
    else:
        getLogger().error(f"every trial failed; see {out['table_md']}")
    write_json(os.path.join(folder, "summary.json"), {
        "objective": goal, "baseline": baseline, "seeds": setup.seeds, "budgets": setup.budgets,
        "search_space": space, "best": out["best"], "n_trials": len(rows), "n_failed": n_failed,
        "files": {k: out[k] for k in ("table_csv", "table_md", "best_config", "plot")},
    })
    getLogger().info(set_color("Ray Tune results", "yellow") + f" ({goal})\n" + to_markdown(rows, columns))
    getLogger().info(f"best configuration: {out['best_config']}; frontier plot: {out['plot']}")
    return out
