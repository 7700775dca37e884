"""Model and trainer lookup: the plugin first, RecBole as the fallback (as RecBole-GNN)."""

import importlib

from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer


def get_model(model_name):
    """Return the model class called ``model_name``: ``recbole_finest.model`` first, then RecBole.

    Raises:
        ValueError: no plugin or RecBole model has that name.
    """
    plugin_models = importlib.import_module("recbole_finest.model")
    if hasattr(plugin_models, model_name):
        return getattr(plugin_models, model_name)
    try:
        return recbole_get_model(model_name)
    except (ValueError, ImportError) as exc:
        # RecBole's lookup imports recbole.model.exlib_recommender, which needs lightgbm / xgboost
        why = f" (RecBole's lookup failed: {exc})" if isinstance(exc, ImportError) else ""
        raise ValueError(
            f"unknown model '{model_name}': it is neither a recbole-finest model "
            f"({', '.join(plugin_models.__all__)}) nor a RecBole model{why}"
        ) from None


def get_trainer(model_type, model_name):
    """Trainer class for a model: ``FinestTrainer`` for sequential models, else RecBole's choice."""
    if model_type == ModelType.SEQUENTIAL:
        from recbole_finest.trainer import FinestTrainer

        return FinestTrainer
    return recbole_get_trainer(model_type, model_name)
