"""Search spaces: a YAML file of ``key: {<sampler>: args}`` or ``key: fixed value``, checked, as Ray's ``param_space``."""

import os
import re

from recbole_finest.config import read_yaml

#: Ray Tune's sampling vocabulary: name -> number of arguments (None: a list of values)
VOCABULARY = {
    "choice": None,
    "grid": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "randint": 2,
    "qrandint": 3,
    "lograndint": 2,
    "randn": 2,
}
RESERVED_KEYS = {"model", "dataset", "seed"}


def is_distribution(value):
    """True for a sampled value ``{<sampler>: args}`` (a fixed value otherwise)."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in VOCABULARY


def load_search_space(path, config):
    """Read a search-space YAML file: ``key: {<vocabulary>: args}`` or ``key: fixed value``.

    Vocabulary (Ray Tune's): ``choice: [a, b, ...]``, ``grid: [a, b, ...]``,
    ``uniform | loguniform | randint | lograndint: [low, high]``,
    ``quniform | qloguniform | qrandint: [low, high, q]``, ``randn: [mean, sd]``.
    The file is read as ``config``'s own files are, with RecBole's YAML loader
    (``config.yaml_loader``: ``1e-4`` is a float).

    Args:
        config: the base ``Config`` of the search; a key it does not hold is an error.

    Returns:
        dict: key -> value as written (validated).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"search space file not found: {path}")
    space = read_yaml(path, config.yaml_loader)
    for key, value in space.items():
        _check_entry(f"search space file {path}, key '{key}'", key, value, config.final_config_dict)
    return space


def _check_entry(where, key, value, known_keys):
    """Raise ``ValueError`` (naming ``where``) for a key or sampler the search cannot use."""
    if key in RESERVED_KEYS:
        hint = " (list seeds in the config key tune_seeds)" if key == "seed" else ""
        raise ValueError(f"{where}: '{key}' cannot be searched{hint}")
    if key not in known_keys:
        raise ValueError(f"{where}: not a config key of this model / dataset / plugin (typo?)")
    if isinstance(value, dict) and len(value) == 1 and not is_distribution(value):
        name = next(iter(value))
        if re.fullmatch(r"[a-z_]+", str(name)) and str(name) not in VOCABULARY and key not in ("eval_args",):
            raise ValueError(f"{where}: unknown sampler '{name}'; use one of {', '.join(VOCABULARY)}")
    if not is_distribution(value):
        return
    name, args = next(iter(value.items()))
    arity = VOCABULARY[name]
    if not isinstance(args, list) or not args:
        raise ValueError(f"{where}: {name} needs a non-empty list, got {args!r}")
    if arity is None:
        return
    if len(args) != arity or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{where}: {name} needs {arity} numbers, got {args!r}")
    if name.startswith(("log", "qlog")) and args[0] <= 0:
        raise ValueError(f"{where}: {name} needs a positive lower bound, got {args[0]!r}")
    if name != "randn" and args[0] >= args[1]:
        raise ValueError(f"{where}: {name} needs low < high, got {args!r}")


def to_param_space(space):
    """Ray Tune ``param_space`` of a loaded search space (fixed values stay constants)."""
    from ray import tune

    out = {}
    for key, value in space.items():
        if not is_distribution(value):
            out[key] = value
            continue
        name, args = next(iter(value.items()))
        if name == "grid":
            out[key] = tune.grid_search(list(args))
        elif name == "choice":
            out[key] = tune.choice(list(args))
        else:
            out[key] = getattr(tune, name)(*args)
    return out
