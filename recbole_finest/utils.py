"""Model and trainer lookup: the plugin first, RecBole as the fallback (as RecBole-GNN)."""

from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_finest.compat.models import get_model, model_names  # noqa: F401  (re-exported)
from recbole_finest.finest.trainer import FinestTrainer


def get_trainer(model_type, model_name):
    """Trainer class for a model: ``FinestTrainer`` for sequential models, else RecBole's choice."""
    if model_type == ModelType.SEQUENTIAL:
        return FinestTrainer
    return recbole_get_trainer(model_type, model_name)
