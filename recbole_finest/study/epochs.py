"""Intermediate-epoch cells of a study (``study_eval_epochs``): the epoch curve at no extra training.

With ``study_eval_epochs: [5, 20, 50]`` and ``finest_epochs: 50`` one fine-tuning run of a
method gives three cells: ``<method>@e5`` and ``<method>@e20`` (the states of A and B after
5 and 20 epochs of that run, evaluated on the test split) and ``<method>`` (the final
state, the cell a study without ``study_eval_epochs`` writes). The epoch is part of the
cell's name, so a resumed study skips the finished ones, and of its record (``epoch``), so
the report can draw the curve (:func:`recbole_finest.report.plot_epoch_gain`).
``original`` has no fine-tuning and keeps its one cell.
"""

import json
import os
import re
from collections import OrderedDict

from recbole_finest.fileio import write_json
from recbole_finest.finest.method_config import KEY as METHOD_CONFIG_KEY
from recbole_finest.finest.method_config import method_overrides, method_settings
from recbole_finest.report.labels import epoch_label

KEY = "study_eval_epochs"
_LABEL = re.compile(r"^(?P<method>.+)@e(?P<epoch>[0-9]+)$")


def split_label(label):
    """``"finest@e5"`` -> ``("finest", 5)``; a plain method name -> ``(name, None)`` (its final state)."""
    match = _LABEL.match(label)
    return (match["method"], int(match["epoch"])) if match else (label, None)


def eval_epochs(config):
    """The validated ``study_eval_epochs`` (sorted, unique; ``[]`` for ``~``)."""
    value = config[KEY]
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(e, int) and not isinstance(e, bool) and e > 0
                                                      for e in value):
        raise ValueError(f"config key '{KEY}' must be ~ or a list of positive epoch counts, got {value!r}")
    return sorted(set(value))


def final_epochs(config, method, overrides):
    """Fine-tuning epochs of ``method`` (0 for ``original``) under its overrides."""
    return 0 if method == "original" else int(overrides.get(method, {}).get("finest_epochs", config["finest_epochs"]))


def cell_labels(config, methods, overrides):
    """Cell names of ``methods``: per method its eval epochs below its ``finest_epochs``, then itself.

    An eval epoch equal to the method's ``finest_epochs`` is its final cell; one above it is
    a ``ValueError`` naming ``study_eval_epochs``, raised before any training.
    """
    epochs = eval_epochs(config)
    if epochs and (config["perturb_family"] or "interaction") != "interaction":
        raise ValueError(f"config key '{KEY}' needs perturb_family: interaction (the other families do not "
                         f"fine-tune by epochs)")
    labels = []
    for method in methods:
        if method != "original" and epochs:
            last = final_epochs(config, method, overrides)
            if epochs[-1] > last:
                raise ValueError(f"config key '{KEY}': epoch {epochs[-1]} exceeds finest_epochs {last} of {method} "
                                 f"({config['model']})")
            if method_settings(config, method, overrides.get(method))["finest_select_best"]:
                raise ValueError(f"config key '{KEY}' needs finest_select_best: False ({method}, {config['model']}): "
                                 f"the best-validation model is not the state after a given epoch")
            labels += [epoch_label(method, e) for e in epochs if e < last]
        labels.append(method)
    return labels


def expand_cells(cells, model_configs):
    """``grid_cells`` output with every method replaced by its :func:`cell_labels` (validated per model)."""
    out = OrderedDict()
    for model, seeds in cells.items():
        config = model_configs[model]
        overrides = method_overrides(config, model)
        out[model] = OrderedDict(
            (seed, OrderedDict((pert, cell_labels(config, methods, overrides)) for pert, methods in perts.items()))
            for seed, perts in seeds.items())
    return out


def cell_fields(config, label, overrides):
    """Record fields of a cell: ``method`` (the label), ``base_method``, ``epoch``, ``method_config``."""
    method, epoch = split_label(label)
    return {"method": label, "base_method": method,
            "epoch": final_epochs(config, method, overrides) if epoch is None else epoch,
            "method_config": overrides.get(method, {})}


def finetune_cells(run, labels):
    """Yields ``(label, (row, instances))`` of a ``StabilityRun``, method by method as each is
    fine-tuned (one fine-tuning per method for all its epochs), in the order of ``labels``."""
    by_method = OrderedDict()
    for label in labels:
        method, epoch = split_label(label)
        by_method.setdefault(method, []).append((label, epoch))
    for method, cells in by_method.items():
        run.finetune(method, sorted({e for _, e in cells if e is not None}))
        for label, _ in cells:
            yield label, (run.rows[label], run.instances[label])


def check_method_settings(path, model, overrides, labels):
    """Refuse to resume a study whose stored per-method settings of the cells' methods differ; record them.

    ``path`` (``configs/<model>.methods.json``) holds the ``study_method_config`` each method's
    cells were computed with; a method absent from it is added. ``labels``: cell names.
    """
    methods = list(OrderedDict.fromkeys(split_label(label)[0] for label in labels))
    current = json.loads(json.dumps({m: overrides.get(m, {}) for m in methods}))
    stored = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        changed = [m for m in methods if m in stored and stored[m] != current[m]]
        if changed:
            raise ValueError(
                f"config key '{METHOD_CONFIG_KEY}': the study in {os.path.dirname(os.path.dirname(path))!r} "
                f"computed {model} {', '.join(changed)} with other settings "
                f"({'; '.join(f'{m}: {stored[m]} now {current[m]}' for m in changed)}); resume it with the same "
                f"settings or choose another study_dir")
    if any(m not in stored for m in methods):
        write_json(path, {**stored, **current})
