"""Search report: the trial table (CSV + Markdown) and the frontier plot of a Ray Tune search.

A *row* is one trial of :func:`recbole_finest.tune.collect_rows`: ``rank``, ``trial``,
``status`` (ok / stopped / failed), the sampled values, the validation metrics, ``base_*``
(not fine-tuned), ``accuracy_drop``, ``feasible``, ``objective``, ``finest_epochs`` and
``error``; rows come best first.
"""

import os

from recbole_finest.fileio import write_text
from recbole_finest.report.plots import plot_frontier
from recbole_finest.report.tables import to_csv, to_markdown


def search_columns(rows, param_keys, metric, accuracy_metric, reported):
    """Table columns: rank, trial, status, ``param_keys``, the metrics any row has, the objective's parts.

    ``metric`` and ``accuracy_metric`` come first among the metrics, then the rest of ``reported``.
    """
    metrics = [metric, accuracy_metric] + [k for k in reported if k not in (metric, accuracy_metric)]
    metrics = [k for k in metrics if any(k in r for r in rows)]
    tail = [f"base_{accuracy_metric}", "accuracy_drop", "feasible", "objective", "finest_epochs", "error"]
    return ["rank", "trial", "status"] + list(param_keys) + metrics + tail


def write_search_report(folder, rows, columns, title, paragraphs, frontier=None):
    """``results.csv``, ``results.md`` (``title``, ``paragraphs``, the table) and ``frontier.png``.

    Args:
        frontier: keyword arguments of :func:`recbole_finest.report.plots.plot_frontier`
            (``baseline``, ``metric``, ``accuracy_metric``, ``threshold``, ``title``), or None:
            no plot (no trial finished).

    Returns:
        dict: ``table_csv``, ``table_md``, ``plot`` (None without a plot) paths.
    """
    out = {"table_csv": os.path.join(folder, "results.csv"), "table_md": os.path.join(folder, "results.md"),
           "plot": None if frontier is None else os.path.join(folder, "frontier.png")}
    write_text(out["table_csv"], to_csv(rows, columns))
    body = "".join(f"{p}\n\n" for p in paragraphs)
    write_text(out["table_md"], f"# {title}\n\n{body}{to_markdown(rows, columns)}\n")
    if frontier is not None:
        plot_frontier(out["plot"], rows, **frontier)
    return out
