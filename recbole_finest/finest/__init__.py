"""FINEST itself: the method a user adds to a RecBole script.

* :mod:`~recbole_finest.finest.trainer`: :class:`FinestTrainer` (pre-training, reference lists,
  rank-preserving fine-tuning), its checkpoints in :mod:`~recbole_finest.finest.checkpoints`;
* :mod:`~recbole_finest.finest.loss`: the rank-preserving loss;
* :mod:`~recbole_finest.finest.reference`: the reference lists (top-2K per training instance);
* :mod:`~recbole_finest.finest.scoring`: scoring training instances of any sequential model;
* :mod:`~recbole_finest.finest.method_config`: per-method settings (``study_method_config``).

``from recbole_finest.finest import FinestTrainer`` is the canonical import;
``recbole_finest.trainer`` re-exports it.
"""

from recbole_finest.facade import lazy_names

__getattr__ = lazy_names(__name__, "recbole_finest.finest.trainer",
                         names=("FinestTrainer", "PRETRAIN", "FINETUNE", "resolve_train_unit"))
