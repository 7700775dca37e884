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

import importlib
import importlib.util



def __getattr__(name):  # lazy: importing a leaf (e.g. ``finest.loss``) must not load the trainer
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule (``from ... import loss``)
    if name in ("FinestTrainer", "PRETRAIN", "FINETUNE", "resolve_train_unit"):
        trainer = importlib.import_module("recbole_finest.finest.trainer")

        return getattr(trainer, name)
    raise AttributeError(f"module 'recbole_finest.finest' has no attribute '{name}'")
