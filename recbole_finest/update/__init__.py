"""Stable model updates: v1 -> v2 by retrain / warm_start / distill / finest, with a churn report.

See docs/update.md. ``update_model`` (library) and ``run_update`` (``--update`` job).
"""

from recbole_finest.update.run import UpdateResult, run_update, update_model
from recbole_finest.update.strategies import STRATEGIES, Strategy, distillation_loss

__all__ = ["UpdateResult", "update_model", "run_update", "Strategy", "STRATEGIES", "distillation_loss"]
