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
  (``<method>@e<epoch>.json``, :mod:`recbole_finest.study.epochs`).

``study_method_config`` gives a method its own fine-tuning keys
(:mod:`recbole_finest.finest.method_config`); each cell records them (``method_config``).

After the grid, :mod:`recbole_finest.report` writes ``results.md`` / ``results.csv`` /
``tests.csv`` / ``results.json`` and the plots into ``study_dir`` next to the resolved
configuration (``config-<model>.yaml``) and ``study.json``.

Perturbation families: the cells of a study are computed by the runner registered for
``perturb_family`` (``interaction``, the default, = ``StabilityRun``). A new family (e.g.
``embedding``) registers ``runner(context, seed, perturbation, methods) -> {method: (row,
instances)}`` with :func:`register_family`; the grid, cache and reports stay the same.

This module is the study's driver (:func:`run_study`); the jobs it drives are modules of
their own, and their public names are importable from here too:
:mod:`~recbole_finest.study.grid` (the ``study_*`` grid), :mod:`~recbole_finest.study.cells`
(families, :class:`ModelContext`, :func:`compute_group`), :mod:`~recbole_finest.study.folder`
(cell and state files), :mod:`~recbole_finest.study.resume` (settings fingerprints),
:mod:`~recbole_finest.study.backend` (local / Ray), :mod:`~recbole_finest.study.epochs`
(``study_eval_epochs``) and :mod:`~recbole_finest.study.report` (tables and plots).
"""

import os
import sys
import time
from logging import FileHandler, Formatter, getLogger

import yaml
from recbole.utils import init_seed, set_color
from tqdm import tqdm

from recbole_finest import report

from recbole_finest.study import epochs as study_epochs
from recbole_finest.config import run_config
from recbole_finest.data.perturb import perturbation_size
from recbole_finest.fileio import check_writable, write_json, write_text
from recbole_finest.finest.method_config import method_overrides
from recbole_finest.compat.registry import init_logger
from recbole_finest.study.backend import check_backend, local_groups, ray_groups
from recbole_finest.study.cells import (  # noqa: F401  (re-exported)
    ModelContext, check_interaction_grid, compute_group, get_family, interaction_cells, register_family,
)
from recbole_finest.study.folder import StudyFolder, ratio_tag, study_folder  # noqa: F401  (re-exported)
from recbole_finest.study.grid import GRID_KEYS, _as_list, _first_model, grid_cells, resolve_grid  # noqa: F401  (re-exported)
from recbole_finest.study.report import user_groups, write_report  # noqa: F401  (re-exported)
from recbole_finest.study.resume import (  # noqa: F401  (re-exported)
    VOLATILE_KEYS, _check_fingerprint, _plain, _store_fingerprint, fingerprint, resolved_config,
)


def _model_config(model, dataset, config_file_list, config_dict, overrides):
    cfg_dict = dict(config_dict or {})
    cfg_dict.update(overrides.get(model, {}) if overrides else {})
    return run_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=cfg_dict)


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
    base = run_config(model=first, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
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
    from recbole_finest.quick_start import dataset_digest

    # the cells are keyed by the content of the data too: another raw file under the same name is refused
    checked = [_check_fingerprint(folder, model, config, dataset_digest(config)) for model, config in configs.items()]
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
        # the settings of this run, next to its grid in study.json (also when every cell is cached)
        write_text(os.path.join(folder.root, f"config-{model}.yaml"),
                   yaml.safe_dump(resolved_config(config), sort_keys=True))
        if not any(t[2] for t in todo):
            logger.info(f"{model}: all {n_model} cells finished earlier")
        else:
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
            if base["study_backend"] == "ray":  # the same groups as Ray tasks (recbole_finest.study.backend)
                finished = ray_groups(base, config, runner, groups, saved, config_file_list, config_dict,
                                      overrides, folder, ray_address)
            else:
                finished = local_groups(context, runner, groups)
            for seed, pert, methods, start in finished:
                if start is None:  # another run on this study_dir computed them (study.locks)
                    progress.update(len(methods))
                    logger.info(f"{model} seed {seed} {pert[0]} {pert[1]} {report.ratio_label(pert[2])}: "
                                f"[{', '.join(methods)}] computed by another run")
                    continue
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
