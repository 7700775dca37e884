"""Stable model updates: v1 -> v2 (or a rolling chain v1 -> ... -> vn) by retrain / warm_start / distill /
finest / interpolate, with a churn report and an optional churn budget.

See docs/update.md. ``update_model`` (library, one update), ``rolling_update`` (library, a chain)
and ``run_update`` (the ``--update`` job). The names are resolved lazily (``facade.lazy_names``),
so importing a leaf such as ``recbole_finest.update.budget`` does not load the trainer.
"""

from recbole_finest.facade import lazy_names

_NAMES = {
    "UpdateResult": "recbole_finest.update.run", "update_model": "recbole_finest.update.run",
    "ChainResult": "recbole_finest.update.chain", "rolling_update": "recbole_finest.update.chain",
    "run_update": "recbole_finest.update.job",
    **{name: "recbole_finest.update.strategies"
       for name in ("Strategy", "STRATEGIES", "distillation_loss", "interpolate_states")},
}
__all__ = list(_NAMES)
__getattr__ = lazy_names(__name__, _NAMES)
