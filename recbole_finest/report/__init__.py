"""Reports: seed statistics, Welch t-tests, Markdown / CSV / JSON tables and PNG plots.

Every table and plot of the plugin is drawn here: the stability study's
(:mod:`recbole_finest.study.driver`), the Ray Tune search's (:mod:`recbole_finest.report.search`)
and, through these helpers, the update report's (:mod:`recbole_finest.update.report`).

- :mod:`~recbole_finest.report.labels`: display names, the keys of a group.
- :mod:`~recbole_finest.report.stats`: seed statistics, tests, user groups, epoch curves.
- :mod:`~recbole_finest.report.tables`: Markdown / CSV text and the study's table files.
- :mod:`~recbole_finest.report.plots`: the PNG plots.
- :mod:`~recbole_finest.report.search`: a search's trial table and frontier plot.

Input of the study report is a list of *cell records*, one per (model, selection, kind,
ratio, seed, method) as written by :mod:`recbole_finest.study.driver`::

    {"model": "SASRec", "selection": "random", "kind": "deletion", "ratio": 0.001,
     "seed": 2020, "method": "finest", "metrics": {"rbo": 0.81, "jaccard@10": 0.42, ...}}

A *group* is one (model, selection, kind, ratio); within a group the seeds of a method are
the samples. Statistics: mean and sample standard deviation (``ddof=1``; 0 for one seed)
over seeds; FINEST (``reference``) against every other method of the group with the
one-tailed Welch t-test ``scipy.stats.ttest_ind(ref, other, equal_var=False,
alternative="greater")`` (H1: the reference's mean is larger) and the improvement
``100 * (mean_ref - mean_other) / mean_other``.

Every file is written atomically (``recbole_finest.fileio``).
"""

from recbole_finest.report.labels import (GROUP_KEYS, LABELS, METRICS, label, method_label, metric_keys, ratio_label,
                                          stability_keys)
from recbole_finest.report.plots import (
    _pyplot, _save, pareto_front, plot_epoch_gain, plot_frontier, plot_methods, plot_scale, plot_user_groups,
)
from recbole_finest.report.search import search_columns, write_search_report
from recbole_finest.report.stats import (
    base_method, best_tests, epoch_curves, group_cells, is_final, summarize, user_group_stability, welch,
)
from recbole_finest.report.tables import _finite, epoch_markdown, markdown, to_csv, to_markdown, write_tables

__all__ = [
    "GROUP_KEYS", "LABELS", "METRICS", "label", "method_label", "metric_keys", "ratio_label", "stability_keys",
    "pareto_front", "plot_epoch_gain", "plot_frontier", "plot_methods", "plot_scale", "plot_user_groups",
    "search_columns", "write_search_report",
    "base_method", "best_tests", "epoch_curves", "group_cells", "is_final", "summarize", "user_group_stability",
    "welch",
    "epoch_markdown", "markdown", "to_csv", "to_markdown", "write_tables",
    "_finite", "_pyplot", "_save",  # used by recbole_finest.update.report
]
