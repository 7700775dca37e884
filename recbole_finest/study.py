"""The stability study: a grid of stability runs, cached per cell, with reports.

One config describes the grid (``study_*`` keys, see ``properties/overall/finest.yaml``)::

    models x seeds x (selection, kind, ratio) x methods

The union of the main grid and of every sub-grid in ``study_grids`` is run. Nothing is
trained twice:

* per (model, seed), model A (original data) does not depend on the evaluation
  perturbation: it is pre-trained and fine-tuned by each method once and shared by every
  perturbation of that seed;
* per (model, seed, selection, kind, ratio), model B is pre-trained once and fine-tuned by
  each method;
* every trained state dict is kept under ``<study_dir>/states`` (``study_save_models``), so
  an interrupted study loads it instead of training again;
* a finished cell (one method of one perturbation and seed) is a JSON file
  ``<study_dir>/cells/<model>/<selection>-<kind>-r<ratio>/seed<seed>/<method>.json`` (plus
  the per-instance arrays in ``.npz``); a resumed study skips it. With ``study_eval_epochs``
  the states after earlier epochs of the same fine-tuning are cells too
  (``<method>@e<epoch>.json``, :mod:`recbole_finest.study_epochs`).

``study_method_config`` gives a method its own fine-tuning keys
(:mod:`recbole_finest.method_config`); each cell records them (``method_config``).

After the grid, :mod:`recbole_finest.report` writes ``results.md`` / ``results.csv`` /
``tests.csv`` / ``results.json`` and the plots into ``study_dir`` next to the resolved
configuration (``config-<model>.yaml``) and ``study.json``.

Perturbation families: the cells of a study are computed by the runner registered for
``perturb_family`` (``interaction``, the default, = ``StabilityRun``). A new family (e.g.
``embedding``) registers ``runner(context, seed, perturbation, methods) -> {method: (row,
instances)}`` with :func:`register_family`; the grid, cache and reports stay the same.
"""

import json
import os
import sys
import time
import zipfile
from collections import OrderedDict
from logging import FileHandler, Formatter, getLogger

import numpy as np
import yaml
from recbole.utils import init_seed, set_color
from tqdm import tqdm

from recbole_finest import report, study_epochs
from recbole_finest.registry import init_logger
from recbole_finest.config import RUNTIME_KEYS, Config, identity_items
from recbole_finest.data.perturb import KINDS, SELECTIONS, perturbation_size
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.fileio import atomic_path, check_writable, write_json, write_text
from recbole_finest.method_config import method_overrides
from recbole_finest.stability import Perturbation, StabilityRun
from recbole_finest.study_backend import check_backend, ray_groups

GRID_KEYS = ("study_models", "study_methods", "study_selections", "study_kinds", "study_ratios", "study_seeds")
# keys that may differ between runs resuming the same study folder, besides config.ENVIRONMENT_KEYS
# (the per-run keys, and the model's, which the grid sets per model)
VOLATILE_KEYS = RUNTIME_KEYS | {"finetune_method", "data_path", "config_files",
                                "model", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type"}

_FAMILIES = {}


def register_family(name, runner, check=None):
    """Register the cell runner of a perturbation family (``perturb_family: <name>``).

    ``check(grid)`` (optional) validates a grid's ``selections`` / ``kinds`` / ``ratios``
    for this family and raises ``ValueError`` naming the ``study_*`` key.

    ``runner(context, seed, perturbation, methods)`` computes the given methods of one
    (seed, perturbation) cell group and returns ``{method: (row, instances)}``: ``row`` the
    metrics dict (``rbo``, ``jaccard@10``, ``mrr``, ...), ``instances`` a dict of
    per-instance numpy arrays (``user``, ``rr_a`` and the metrics) or None. ``context`` is
    a :class:`ModelContext` (the runner may put ``n_perturbed`` into ``context.info``);
    ``perturbation`` a dict ``selection`` / ``kind`` / ``ratio``.
    """
    _FAMILIES[name] = (runner, check)


def get_family(name):
    """``(runner, check)`` of the family called ``name``."""
    if name not in _FAMILIES:
        raise ValueError(f"config key 'perturb_family' must be one of {', '.join(_FAMILIES)}; got {name!r} "
                         f"(a new family registers its cell runner with recbole_finest.study.register_family)")
    return _FAMILIES[name]


# ---------------------------------------------------------------------------------- the grid
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


def check_interaction_grid(grid):
    """``interaction`` family: selections / kinds of ``perturb``, ratios in (0, 1)."""
    for key, allowed in (("selections", SELECTIONS), ("kinds", KINDS)):
        for v in grid[key]:
            if v not in allowed:
                raise ValueError(f"config key 'study_{key}' must hold values of {', '.join(allowed)}; got {v!r}")
    for r in grid["ratios"]:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
            raise ValueError(f"config key 'study_ratios' must hold numbers in (0, 1); got {r!r}")


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


# ---------------------------------------------------------------------------------- files
def ratio_tag(ratio):
    return f"r{float(ratio):g}"


class StudyFolder:
    """Paths of a study folder: cells, model states, configs."""

    def __init__(self, root):
        self.root = root

    def cell(self, model, seed, selection, kind, ratio, method, ext="json"):
        return os.path.join(self.root, "cells", model, f"{selection}-{kind}-{ratio_tag(ratio)}", f"seed{seed}",
                            f"{method}.{ext}")

    def state(self, model, seed, side, stage, perturbation=None):
        """``states/<model>/seed<s>/A-<stage>.pth`` or ``.../<sel>-<kind>-r<ratio>/B-<stage>.pth``."""
        parts = [self.root, "states", model, f"seed{seed}"]
        if side == "B":
            sel, kind, ratio = perturbation
            parts.append(f"{sel}-{kind}-{ratio_tag(ratio)}")
        return os.path.join(*parts, f"{side}-{stage}.pth")

    def done(self, *key):
        """The cell's ``.json`` (and its ``.npz``, when there is one) can be read back.

        An unreadable file (truncated, corrupted) is not a finished cell: a warning names
        it and the cell is computed again.
        """
        return self.read_cell(key) is not None and self.read_instances(key, check=True) is not False

    def write_cell(self, key, record, instances):
        """Per-instance ``.npz`` first, then the ``.json`` that marks the cell finished."""
        if instances is not None:
            with atomic_path(self.cell(*key, ext="npz")) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **{k: _compact(v) for k, v in instances.items()})
        write_json(self.cell(*key), record)

    def read_cell(self, key):
        """The cell's record, or None when it is missing or unreadable (warned, naming the file)."""
        path = self.cell(*key)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
                raise ValueError("not a cell record")
            return record
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            _unreadable(path, exc)
            return None

    def read_instances(self, key, check=False):
        """Per-instance arrays of a cell; None when there is no ``.npz``, None (or False with
        ``check``) when it is unreadable (warned, naming the file)."""
        path = self.cell(*key, ext="npz")
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            _unreadable(path, exc)
            return False if check else None


def _unreadable(path, exc):
    getLogger().warning(f"study cache file {path} cannot be read ({type(exc).__name__}: {exc}); "
                        f"the cell is computed again")


def _compact(array):
    array = np.asarray(array)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.int64 and (array.size == 0 or array.max() < 2 ** 31):
        return array.astype(np.int32)
    return array


def _plain(value):
    """YAML/JSON-safe copy of a config value."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def resolved_config(config):
    """The resolved configuration as a plain dict (keys sorted)."""
    return {k: _plain(v) for k, v in sorted(config.final_config_dict.items())}


def fingerprint(config):
    """Keys that must match for a resumed study to reuse its cells and states."""
    return {k: _plain(v) for k, v in identity_items(config, VOLATILE_KEYS) if not k.startswith("study_")}


# ---------------------------------------------------------------------------------- one model
class ModelContext:
    """Config, data and study folder of one model of the study."""

    def __init__(self, config, train_data, valid_data, test_data, folder, saved, show_progress):
        self.config, self.folder = config, folder
        self.train_data, self.valid_data, self.test_data = train_data, valid_data, test_data
        self.saved, self.show_progress = saved, show_progress
        self.shared = {}  # model A of the current seed (StabilityRun's `shared`)
        self.shared_seed = None
        self.info = {}
        self.n_rows = TrainingSequences.from_dataset(train_data.dataset).n_rows

    def set_cell(self, seed, perturbation):
        """Start the cell group of ``seed`` and ``perturbation`` ``(selection, kind, ratio)``; the Config is not changed."""
        self.info = {}  # facts about the cell a runner wants recorded (n_perturbed)
        if seed != self.shared_seed:
            self.shared, self.shared_seed = {}, seed  # frees the previous seed's model A


def interaction_cells(context, seed, perturbation, methods):
    """Cell runner of the ``interaction`` family: ``StabilityRun`` with shared model A."""
    cfg, folder, model = context.config, context.folder, context.config["model"]
    key = (perturbation["selection"], perturbation["kind"], perturbation["ratio"])
    save_models = cfg["study_save_models"]

    def state_path(side, stage):
        return folder.state(model, seed, side, stage, key) if save_models else None

    run = StabilityRun(cfg, context.train_data, context.valid_data, context.test_data, context.saved,
                       context.show_progress, shared=context.shared, state_path=state_path,
                       method_overrides=method_overrides(cfg), seed=seed, perturbation=Perturbation(*key))
    context.info["n_perturbed"] = int(len(run.perturbation.selected_ids))
    return study_epochs.finetune_cells(run, methods)  # methods: cell labels, "<method>@e<epoch>" included


register_family("interaction", interaction_cells, check_interaction_grid)


def compute_group(context, runner, seed, pert, methods):
    """Compute the cells ``methods`` of one (seed, perturbation) group and write them; returns the start time."""
    start, model, family = time.time(), context.config["model"], context.config["perturb_family"] or "interaction"
    context.set_cell(seed, pert)
    out = runner(context, seed, dict(zip(("selection", "kind", "ratio"), pert)), methods)
    settings = method_overrides(context.config, model)
    for method in methods:
        row, instances = out[method]
        record = {
            "model": model, "dataset": context.config["dataset"], "seed": seed, "selection": pert[0],
            "kind": pert[1], "ratio": pert[2], **study_epochs.cell_fields(context.config, method, settings),
            "family": family,
            "n_perturbed": context.info.get("n_perturbed"), "n_training_interactions": context.n_rows,
            "n_test_instances": None if instances is None else int(len(instances["user"])),
            "metrics": {k: v for k, v in row.items() if k != "method"},
            "elapsed_s": round(time.time() - start, 1),
        }
        context.folder.write_cell((model, seed, *pert, method), record, instances)
    return start


def _model_config(model, dataset, config_file_list, config_dict, overrides):
    cfg_dict = dict(config_dict or {})
    cfg_dict.update(overrides.get(model, {}) if overrides else {})
    return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=cfg_dict)


def _first_model(model, config_file_list, config_dict):
    """The model of the first Config: ``model``, the dict / files' ``model`` or first ``study_models``."""
    if model is not None:
        return model
    sources = [dict(config_dict or {})]
    for path in config_file_list or []:
        with open(path, encoding="utf-8") as f:
            sources.append(yaml.safe_load(f) or {})
    for key in ("model", "study_models"):
        for src in sources:
            value = src.get(key)
            if value:
                return value[0] if isinstance(value, list) else value
    return None


def study_folder(config):
    """``study_dir`` or ``<results_dir>/study-<dataset>``."""
    return config["study_dir"] or os.path.join(config["results_dir"], f"study-{config['dataset']}")


def _check_fingerprint(folder, model, config):
    """``ValueError`` if ``study_dir`` holds ``model`` with other settings; returns the fingerprint to store.

    Writes nothing: the caller stores the fingerprints (:func:`_store_fingerprint`) once every
    model of the study passed, so a refused resume leaves the folder as it was.
    """
    path = os.path.join(folder.root, "configs", f"{model}.json")
    current = fingerprint(config)
    stored = None
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, ValueError) as exc:  # the cells cannot be trusted without it
            raise ValueError(f"study settings file {path} cannot be read ({type(exc).__name__}: {exc}); the "
                             f"cells of {model} cannot be checked against the current settings: delete "
                             f"{os.path.dirname(path)} and the cells to start over, or choose another study_dir") from None
    if stored is not None:
        # keys added or removed since (e.g. a newer plugin version's defaults) are only reported
        new = sorted(set(stored) ^ set(current))
        if new:
            getLogger().warning(f"{model}: keys not in both the stored and the current settings (ignored): "
                                f"{', '.join(new[:12])}{'...' if len(new) > 12 else ''}")
        diff = sorted(k for k in set(stored) & set(current) if stored[k] != current[k])
        if diff:
            raise ValueError(
                f"study_dir {folder.root!r} holds a {model} study with different settings "
                f"(keys {', '.join(diff[:8])}{'...' if len(diff) > 8 else ''}); resume it with the same "
                f"configuration or choose another study_dir")
        return None
    return path, current


def _store_fingerprint(checked):
    if checked is not None:
        write_json(*checked)


# ---------------------------------------------------------------------------------- the study
def run_study(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, ray_address=None):
    """Run (or resume) the grid of the ``study_*`` keys and write its reports.

    Args mirror :func:`recbole_finest.quick_start.run_recbole_finest`; ``model`` may be
    omitted when ``study_models`` is given. ``ray_address``: the Ray cluster of
    ``study_backend: ray`` (None = start Ray on this machine).

    Returns:
        dict: ``folder`` (the study folder), ``summary`` / ``tests`` (see
        :func:`recbole_finest.report.summarize`), ``cells`` (records), ``computed``
        (number of (model, seed, perturbation) groups with unfinished cells in this call).
    """
    from recbole_finest.quick_start import load_data

    first = _first_model(model, config_file_list, config_dict)
    base = Config(model=first, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    grids = resolve_grid(base)
    check_backend(base)
    cells = grid_cells(grids)
    overrides = base["study_model_config"] or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"config key 'study_model_config' must map model names to dicts of keys, got {overrides!r}")
    if base["pretrained_model_path"]:
        raise ValueError("config key 'pretrained_model_path' applies to one stability run; a study trains "
                         "model A for every seed (remove the key, or run python run_recbole_finest.py without --study)")
    folder = StudyFolder(study_folder(base))
    # per-method settings and eval epochs of every model, checked before any training
    cells = study_epochs.expand_cells(cells, {m: _model_config(m, dataset, config_file_list, config_dict, overrides)
                                              for m in cells})
    check_writable(folder.root, "study_dir")
    if saved:
        check_writable(base["checkpoint_dir"], "checkpoint_dir")

    init_seed(base["seed"], base["reproducibility"])
    init_logger(base)
    logger = getLogger()
    handler = FileHandler(os.path.join(folder.root, "study.log"))
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s  %(message)s", "%d %b %H:%M"))
    logger.addHandler(handler)
    try:
        return _run(base, grids, cells, overrides, folder, dataset, config_file_list, config_dict, saved, load_data,
                    ray_address)
    finally:
        logger.removeHandler(handler)
        handler.close()


def _run(base, grids, cells, overrides, folder, dataset, config_file_list, config_dict, saved, load_data,
         ray_address=None):
    logger = getLogger()
    n_total = sum(len(m) for seeds in cells.values() for perts in seeds.values() for m in perts.values())
    configs = {model: _model_config(model, dataset, config_file_list, config_dict, overrides) for model in cells}
    # every model is checked (also when all its cells are cached: no stale results) before anything is written
    checked = [_check_fingerprint(folder, model, config) for model, config in configs.items()]
    for entry in checked:
        _store_fingerprint(entry)
    method_settings = {model: method_overrides(config, model) for model, config in configs.items()}
    for model, seeds in cells.items():  # a method's cells were computed with its current settings
        labels = [m for perts in seeds.values() for ms in perts.values() for m in ms]
        study_epochs.check_method_settings(os.path.join(folder.root, "configs", f"{model}.methods.json"), model,
                                           method_settings[model], labels)
    write_json(os.path.join(folder.root, "study.json"), {"grids": grids, "argv": sys.argv, "n_cells": n_total})
    logger.info(set_color("stability study", "green") + f": {n_total} cells in {folder.root}")
    records, n_done, computed = [], 0, 0
    progress = tqdm(total=n_total, ncols=100, desc=set_color("study", "pink"), disable=not base["show_progress"])
    for model, seeds in cells.items():
        todo = [(seed, pert, [m for m in methods if not folder.done(model, seed, *pert, m)])
                for seed, perts in seeds.items() for pert, methods in perts.items()]
        n_model = sum(len(m) for perts in seeds.values() for m in perts.values())
        progress.update(n_model - sum(len(t[2]) for t in todo))  # finished earlier
        config = configs[model]
        if not any(t[2] for t in todo):
            logger.info(f"{model}: all {n_model} cells finished earlier")
        else:
            write_text(os.path.join(folder.root, f"config-{model}.yaml"),
                       yaml.safe_dump(resolved_config(config), sort_keys=True))
            _, (train_data, valid_data, test_data) = load_data(config)
            context = ModelContext(config, train_data, valid_data, test_data, folder, saved, config["show_progress"])
            family = config["perturb_family"] or "interaction"
            for _, (sel, kind, ratio), _ in todo if family == "interaction" else ():
                try:  # every bad size fails before any training
                    perturbation_size(context.n_rows, ratio=ratio)
                except ValueError as e:
                    raise ValueError(f"config key 'study_ratios': {e}") from None
            runner, _ = get_family(family)
            groups = [(seed, pert, methods) for seed, pert, methods in todo if methods]
            if base["study_backend"] == "ray":  # the same groups as Ray tasks (recbole_finest.study_backend)
                finished = ray_groups(base, config, runner, groups, saved, config_file_list, config_dict,
                                      overrides, folder, ray_address)
            else:
                finished = ((*g, compute_group(context, runner, *g)) for g in groups)
            for seed, pert, methods, start in finished:
                computed += 1
                n_done += len(methods)
                progress.update(len(methods))
                logger.info(set_color("cell done", "blue") + f": {model} seed {seed} {pert[0]} {pert[1]} "
                            f"{report.ratio_label(pert[2])} [{', '.join(methods)}] in {time.time() - start:.0f} s "
                            f"({n_done} new cells)")
        records += [folder.read_cell((model, seed, *pert, m))
                    for seed, perts in seeds.items() for pert, methods in perts.items() for m in methods]
        if None in records:
            raise RuntimeError(f"{model}: a cell of {folder.root} could not be read back after it was written")
    progress.close()
    result = write_report(base, grids, cells, folder, records)
    result["computed"] = computed
    return result


def user_groups(base, grids, cells, folder, reference):
    """``plot_user_groups`` input: per (model, selection, kind) at the main grid's first ratio."""
    ratio = float(grids[0]["ratios"][0])
    fraction = base["study_group_fraction"]
    groups = []
    for model, seeds in cells.items():
        for (sel, kind, r) in OrderedDict.fromkeys(p for perts in seeds.values() for p in perts):
            if r != ratio:
                continue
            per_seed = []
            for seed, perts in seeds.items():
                methods = perts.get((sel, kind, r), [])
                if "original" not in methods or reference not in methods:
                    continue
                orig = folder.read_instances((model, seed, sel, kind, r, "original"))
                fine = folder.read_instances((model, seed, sel, kind, r, reference))
                if orig is not None and fine is not None:
                    per_seed.append(report.user_group_stability(orig, fine, fraction))
            if per_seed:
                groups.append({"title": f"{model}, {sel} {kind} {report.ratio_label(r)}", "method": reference,
                               "model": model, "selection": sel, "kind": kind, "ratio": r, "seeds": per_seed})
    return groups


def write_report(base, grids, cells, folder, records):
    """Tables, plots and the log summary of the study's cells."""
    logger = getLogger()
    reference = base["study_reference_method"]
    methods = list(OrderedDict.fromkeys(m for g in grids for m in g["methods"]))
    stats_ = report.summarize([r for r in records if report.is_final(r)], methods=methods, reference=reference)
    groups = user_groups(base, grids, cells, folder, reference)
    text = report.write_tables(folder.root, stats_, extra={"user_groups": groups, "grids": grids, "cells": records})
    dpi = base["study_plot_dpi"]
    plots = {}
    if not all(report.is_final(r) for r in records):  # study_eval_epochs: the epoch curves
        curves = report.epoch_curves(records, methods=methods)
        write_text(os.path.join(folder.root, "epochs.md"), report.epoch_markdown(curves) + "\n")
        write_text(os.path.join(folder.root, "epochs.csv"), report.to_csv(curves))
        if report.plot_epoch_gain(records, os.path.join(folder.root, "epoch_gain.png"), methods=methods, dpi=dpi):
            plots["epoch_gain"] = "epoch_gain.png"
    if report.plot_scale(stats_["summary"], os.path.join(folder.root, "scale_rbo.png"),
                         methods=("original", reference), dpi=dpi):
        plots["scale"] = "scale_rbo.png"
    if report.plot_user_groups(groups, os.path.join(folder.root, "user_groups.png"), dpi=dpi,
                               fraction=base["study_group_fraction"]):
        plots["user_groups"] = "user_groups.png"
    if report.plot_methods(stats_["summary"], os.path.join(folder.root, "methods.png"), dpi=dpi,
                           ratio=float(grids[0]["ratios"][0])):
        plots["methods"] = "methods.png"
    logger.info(set_color("study results", "yellow") + f" ({folder.root})\n" + text)
    return {"folder": folder.root, **stats_, "user_groups": groups, "cells": records, "plots": plots}
