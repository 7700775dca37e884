"""Re-export of :mod:`recbole_finest.finest.trainer` (the path the README's trainer swap uses).

Canonical: ``from recbole_finest.finest import FinestTrainer``; this module stays so that
``from recbole_finest.trainer import FinestTrainer`` keeps working.
"""

from recbole_finest.finest.trainer import FINETUNE, PRETRAIN, FinestTrainer, resolve_train_unit  # noqa: F401

__all__ = ["FinestTrainer", "PRETRAIN", "FINETUNE", "resolve_train_unit"]
