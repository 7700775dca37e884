"""The grid of a stability study: the ``study_*`` keys, validated, and the union of its cells.

One config describes the grid::

    models x seeds x (selection, kind, ratio) x methods

The union of the main grid and of every sub-grid in ``study_grids`` is run
(:func:`grid_cells`); the methods are checked here, the perturbations by the grid check of
the ``perturb_family`` (:func:`recbole_finest.study.cells.register_family`).
"""

from collections import OrderedDict

from recbole_finest.config import read_yaml
from recbole_finest.study.families import get_family

GRID_KEYS = ("study_models", "study_methods", "study_selections", "study_kinds", "study_ratios", "study_seeds")


def _as_list(config, key, default=None):
    value = config[key]
    if value is None:
        value = default
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"config key '{key}' must be a non-empty list, got {config[key]!r}")
    return list(value)


def _seeds(config, value, key="study_seeds"):
    """``study_seeds``: a count n (seeds ``seed .. seed+n-1``) or a list of seeds."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"config key '{key}' must be a positive count or a list of seeds, got {value!r}")
        return [int(config["seed"]) + i for i in range(value)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return [int(s) for s in value]
    raise ValueError(f"config key '{key}' must be a positive count or a list of integer seeds, got {value!r}")


def resolve_grid(config):
    """The main grid and the sub-grids of ``study_grids``, validated (methods here, the rest by the family).

    Returns a list of dicts with keys ``models``, ``methods``, ``selections``, ``kinds``,
    ``ratios``, ``seeds`` (the main grid first).
    """
    from recbole_finest.methods import METHODS

    main = {
        "models": _as_list(config, "study_models", [config["model"]]),
        "methods": _as_list(config, "study_methods"),
        "selections": _as_list(config, "study_selections"),
        "kinds": _as_list(config, "study_kinds"),
        "ratios": _as_list(config, "study_ratios"),
        "seeds": _seeds(config, config["study_seeds"]),
    }
    grids = [main]
    extra = config["study_grids"] or []
    if not isinstance(extra, (list, tuple)) or not all(isinstance(g, dict) for g in extra):
        raise ValueError(f"config key 'study_grids' must be a list of dicts of study_* keys, got {extra!r}")
    for i, sub in enumerate(extra):
        unknown = [k for k in sub if k not in GRID_KEYS]
        if unknown:
            raise ValueError(f"config key 'study_grids' entry {i}: unknown keys {unknown}; allowed: {', '.join(GRID_KEYS)}")
        grid = dict(main)
        for k, v in sub.items():
            name = k[len("study_"):]
            grid[name] = _seeds(config, v, f"study_grids[{i}].{k}") if name == "seeds" else \
                list(v) if isinstance(v, (list, tuple)) else [v]
        grids.append(grid)
    _, check = get_family(config["perturb_family"] or "interaction")
    for grid in grids:
        for v in grid["methods"]:
            if v not in METHODS:
                raise ValueError(f"config key 'study_methods' must hold values of {', '.join(METHODS)}; got {v!r}")
        if check is not None:
            check(grid)
    return grids


def grid_cells(grids):
    """``OrderedDict model -> seed -> (selection, kind, ratio) -> [methods]`` of the union of ``grids``."""
    cells = OrderedDict()
    for g in grids:
        for model in g["models"]:
            for seed in g["seeds"]:
                for sel in g["selections"]:
                    for kind in g["kinds"]:
                        for ratio in g["ratios"]:
                            methods = cells.setdefault(model, OrderedDict()).setdefault(seed, OrderedDict()) \
                                .setdefault((sel, kind, float(ratio)), [])
                            methods += [m for m in g["methods"] if m not in methods]
    return cells


def _first_model(model, config_file_list, config_dict):
    """The model of the first Config: ``model``, the dict / files' ``model`` or first ``study_models``."""
    if model is not None:
        return model
    sources = [dict(config_dict or {})]
    for path in config_file_list or []:
        sources.append(read_yaml(path))  # python tags refused, naming the file
    for key in ("model", "study_models"):
        for src in sources:
            value = src.get(key)
            if value:
                return value[0] if isinstance(value, list) else value
    return None
