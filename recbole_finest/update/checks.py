"""Validation of the ``update_*`` keys and of a deployed checkpoint, before any training.

Every check raises one ``ValueError`` (or ``FileNotFoundError``) naming the key, the value
or the file; the update run calls them all before it trains or writes anything.
"""

import os
from numbers import Number

from recbole.utils import ModelType

from recbole_finest.fileio import load_checkpoint
from recbole_finest.finest.checkpoints import check_origin
from recbole_finest.update.strategies import STRATEGIES, WEIGHTED, as_list, method_names


def _number(value):
    return isinstance(value, Number) and not isinstance(value, bool)


def check_update_keys(config):
    """The ``update_*`` keys and ``deployed_model_path`` of ``config`` (see docs/config.md)."""
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise ValueError(f"the update mode needs a sequential model; '{config['model']}' is {config['MODEL_TYPE']}")
    cuts = config["update_cuts"]
    if (not isinstance(cuts, (list, tuple)) or len(cuts) < 2 or not all(_number(c) for c in cuts)
            or not all(0 < c < 1 for c in cuts) or not all(a < b for a, b in zip(cuts, cuts[1:]))):
        raise ValueError(f"config key 'update_cuts' must be two or more increasing time quantiles in (0, 1), e.g. "
                         f"[0.8, 0.9] (one update) or [0.6, 0.7, 0.8, 0.9] (a rolling chain); got {cuts!r}")
    methods = method_names(config["update_methods"])
    bad = [m for m in methods if m not in STRATEGIES]
    if not methods or bad or len(set(methods)) != len(methods):
        raise ValueError(f"config key 'update_methods' must be a list of distinct strategies among "
                         f"{', '.join(STRATEGIES)}; got {config['update_methods']!r}")
    for key in WEIGHTED.values():
        weights = as_list(config[key])
        if not weights or not all(_number(w) and w >= 0 for w in weights):
            raise ValueError(f"config key '{key}' must be a non-negative number or a list of them; got {config[key]!r}")
        if key == "update_interpolate_alpha" and any(w > 1 for w in weights):
            raise ValueError(f"config key '{key}' must be in [0, 1] (1 = v1, 0 = warm_start); got {config[key]!r}")
        twice = sorted({float(w) for w in weights if sum(float(v) == float(w) for v in weights) > 1})
        if twice:  # the same v2 would be trained twice and reported as two identical rows
            raise ValueError(f"config key '{key}' lists the weight {twice[0]:g} more than once; give each weight "
                             f"once, got {config[key]!r}")
    if not _number(config["update_distill_temperature"]) or config["update_distill_temperature"] <= 0:
        raise ValueError(f"config key 'update_distill_temperature' must be a positive number; "
                         f"got {config['update_distill_temperature']!r}")
    epochs = config["update_epochs"]
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise ValueError(f"config key 'update_epochs' must be a positive integer or ~; got {epochs!r}")
    lr = config["update_learning_rate"]
    if lr is not None and (not _number(lr) or lr <= 0):
        raise ValueError(f"config key 'update_learning_rate' must be a positive number or ~; got {lr!r}")
    check_budget_keys(config)
    path = config["deployed_model_path"]
    if path is not None and not os.path.isfile(str(path)):
        raise FileNotFoundError(f"config key 'deployed_model_path': checkpoint file not found: {path}")


def deployed_state(path, config, model):
    """State dict of the deployed checkpoint ``path`` after checking it fits ``model`` and ``config``.

    Accepts checkpoints of RecBole's ``run_recbole`` / ``Trainer``, of ``FinestTrainer``
    and of the update run (``{"state_dict", "model", "dataset"}``).

    Raises:
        ValueError: the checkpoint names another model or dataset, or its parameters do
            not match ``model`` (another catalogue or other model sizes).
    """
    checkpoint = load_checkpoint(path, map_location="cpu")
    if not isinstance(checkpoint, dict):
        raise ValueError(f"deployed_model_path '{path}' is not a RecBole checkpoint (a dict with a state_dict)")
    check_origin(checkpoint, path, config, "deployed_model_path", "updates")  # the rule of pretrained_model_path too
    state = checkpoint.get("state_dict", checkpoint)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"deployed_model_path '{path}' does not hold {config['model']} parameters: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"deployed_model_path '{path}': parameter '{name}' has shape {tuple(state[name].shape)}, "
                             f"this run's {config['model']} on '{config['dataset']}' needs {tuple(tensor.shape)} "
                             f"(a checkpoint of another dataset or other model settings)")
    return state


def check_budget_keys(config):
    """``update_max_changed`` / ``update_min_rbo`` (the churn budget) and ``update_budget_trials``."""
    for key, low_open in (("update_max_changed", False), ("update_min_rbo", True)):
        value = config[key]
        if value is not None and (not _number(value) or not 0 <= value <= 1 or (low_open and value == 0)):
            raise ValueError(f"config key '{key}' must be a share in [0, 1] or ~; got {value!r}")
    trials = config["update_budget_trials"]
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 2:
        raise ValueError(f"config key 'update_budget_trials' must be an integer >= 2 (the strengths tried per step "
                         f"and strategy); got {trials!r}")
