"""Model lookup: the plugin's models first, RecBole's as the fallback (as RecBole-GNN).

Kept apart from :mod:`recbole_finest.utils` (which also returns the trainer) so that the
settings layer (:mod:`recbole_finest.config`) can find a model's class without importing the
trainer above it.
"""

import difflib
import importlib

from recbole.utils import get_model as recbole_get_model


def get_model(model_name):
    """Return the model class called ``model_name``: ``recbole_finest.model`` first, then RecBole.

    Raises:
        ValueError: no plugin or RecBole model has that name.
    """
    plugin_models = importlib.import_module("recbole_finest.model")
    if hasattr(plugin_models, model_name):
        return getattr(plugin_models, model_name)
    known = model_names()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, sorted(known), n=3, cutoff=0.6)
        close = [k for k in sorted(known) if k.lower() == model_name.lower()] + [k for k in close
                                                                                 if k.lower() != model_name.lower()]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model '{model_name}': not a recbole-finest or RecBole model (names are "
                         f"case-sensitive){hint}")
    return recbole_get_model(model_name)


RECBOLE_MODEL_MODULES = ("general_recommender", "context_aware_recommender", "sequential_recommender",
                         "knowledge_aware_recommender", "exlib_recommender")


def model_names():
    """Names of every plugin model and every RecBole model whose module imports here.

    RecBole's ``exlib_recommender`` (LightGBM, XGBoost) needs optional packages; without
    them its models are simply not listed.
    """
    from recbole.model.abstract_recommender import AbstractRecommender

    names = set(importlib.import_module("recbole_finest.model").__all__)
    for sub in RECBOLE_MODEL_MODULES:
        try:
            module = importlib.import_module(f"recbole.model.{sub}")
        except ImportError:
            continue
        names |= {n for n, obj in vars(module).items()
                  if isinstance(obj, type) and issubclass(obj, AbstractRecommender)
                  and obj.__module__ != AbstractRecommender.__module__}
    return names
