"""Computing the cells of a study: perturbation families, one model's context, one cell group.

The cells of a study are computed by the runner registered for ``perturb_family``
(``interaction``, the default, = ``StabilityRun``). A new family (e.g. ``embedding``)
registers ``runner(context, seed, perturbation, methods) -> {method: (row, instances)}`` (or an
iterator of ``(method, (row, instances))`` pairs) with :func:`register_family`; the grid,
cache and reports stay the same. :func:`compute_group` runs one (seed, perturbation) group
and writes each cell record as soon as the runner gives it.
"""

import time

from recbole_finest.study import epochs as study_epochs
from recbole_finest.data.perturb import KINDS, SELECTIONS
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.finest.method_config import method_overrides
from recbole_finest.stability.run import Perturbation, StabilityRun
from recbole_finest.study.families import get_family, register_family  # noqa: F401  (re-exported)
from recbole_finest.study.locks import cell_locks

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


def check_interaction_grid(grid):
    """``interaction`` family: selections / kinds of ``perturb``, ratios in (0, 1)."""
    for key, allowed in (("selections", SELECTIONS), ("kinds", KINDS)):
        for v in grid[key]:
            if v not in allowed:
                raise ValueError(f"config key 'study_{key}' must hold values of {', '.join(allowed)}; got {v!r}")
    for r in grid["ratios"]:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
            raise ValueError(f"config key 'study_ratios' must hold numbers in (0, 1); got {r!r}")


register_family("interaction", interaction_cells, check_interaction_grid)


def compute_group(context, runner, seed, pert, methods, wait=True):
    """Compute the cells ``methods`` of one (seed, perturbation) group and write them; returns the start time.

    The cells' locks (:mod:`recbole_finest.study.locks`) are held meanwhile, and the cells another
    run finished before they were taken are skipped: None when none was left. ``wait=False``:
    :class:`~recbole_finest.study.locks.CellsBusy` when another run holds one of them.
    """
    with cell_locks(context.folder, context.config["model"], seed, pert, methods, wait):
        methods = [m for m in methods if not context.folder.done(context.config["model"], seed, *pert, m)]
        return _compute_group(context, runner, seed, pert, methods) if methods else None


def _compute_group(context, runner, seed, pert, methods):
    start, model, family = time.time(), context.config["model"], context.config["perturb_family"] or "interaction"
    context.set_cell(seed, pert)
    out = runner(context, seed, dict(zip(("selection", "kind", "ratio"), pert)), methods)
    settings = method_overrides(context.config, model)
    for method, (row, instances) in (((m, out[m]) for m in methods) if isinstance(out, dict) else out):
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
