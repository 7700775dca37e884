"""Where the cells of a stability study run: this process (``local``) or Ray tasks (``ray``).

A study's unit of work is a *group*: the unfinished methods of one (model, seed,
perturbation) cell group, computed by :func:`recbole_finest.study.driver.compute_group`.

* ``study_backend: local`` (the default): the groups run one after another in this process;
  model A of a seed is trained once and kept in memory for the seed's other perturbations.
* ``study_backend: ray``: every group is a Ray task with ``study_resources_per_cell``
  (``{cpu: 1, gpu: 0.25}`` puts four cells on one GPU), on this machine or, with
  ``--ray_address``, on a Ray cluster. Model A is shared through the study folder
  (``<study_dir>/states``): per seed, the first group trains A and saves its states; the
  seed's other groups start once it is done and load them. Groups of different seeds run
  at once. Each task writes its own cells (atomically), so the study folder must be one
  file system for every node of a cluster (``study_dir`` on a shared disk). The cells are
  the same as the local backend's with the same seeds and the same torch thread count
  (a task uses as many threads as its CPUs).
"""

import json
import os
from dataclasses import dataclass
from logging import getLogger
from typing import Dict, List

def check_backend(config):
    """For ``study_backend: ray``, that Ray is installed; raises ``ValueError`` before any training.

    The values of ``study_backend`` / ``study_resources_per_cell`` are checked by ``Config``
    (``recbole_finest.config.KEYS``).
    """
    if config["study_backend"] == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as e:
            raise ValueError("config key 'study_backend' is ray but Ray is not installed: "
                             "pip install 'ray[tune]>=2.41'") from e


@dataclass
class GroupSpec:
    """What a Ray task needs to rebuild one model's configuration and data anywhere in the cluster."""

    model: str
    dataset: str
    config_files: List[str]  # absolute paths
    config_dict: Dict  # user dict < study_model_config < command line, with absolute paths
    root: str  # the study folder, absolute
    saved: bool

    def config(self, seed, pert, gpu_id):
        """The model's ``Config`` in a task: its own checkpoint folder per group, no progress bars."""
        from recbole_finest.config import run_config
        from recbole_finest.study.folder import ratio_tag
        from recbole_finest.tune.cluster import isolated

        sel, kind, ratio = pert
        checkpoints = os.path.join(self.config_dict.get("checkpoint_dir") or os.path.abspath("saved"),
                                   f"study-{self.model}-seed{seed}-{sel}-{kind}-{ratio_tag(ratio)}")
        config_dict = {**self.config_dict, "gpu_id": gpu_id, "show_progress": False, "checkpoint_dir": checkpoints}
        with isolated():
            return run_config(self.model, self.dataset, self.config_files, config_dict)


def local_groups(context, runner, groups):
    """``study_backend: local``: compute ``groups`` here, one after another; yields ``(seed, perturbation,
    methods, start time or None)`` as each finishes (None: another run on the folder computed its cells).

    A group whose cells another run holds (:mod:`recbole_finest.study.locks`) is taken after the
    others, waiting for its locks then.
    """
    from recbole_finest.study.cells import compute_group
    from recbole_finest.study.locks import CellsBusy

    deferred = []
    for group in groups:
        try:
            start = compute_group(context, runner, *group, wait=False)
        except CellsBusy as busy:
            getLogger().info(f"cells of seed {group[0]} {group[1]} are computed by another run ({busy}): later")
            deferred.append(group)
            continue
        yield (*group, start)
    for group in deferred:
        yield (*group, compute_group(context, runner, *group))


def group_task(spec, runner, seed, pert, methods):
    """Ray task: load the model's data, compute one group's cells into the study folder; returns the start time."""
    from recbole.utils import init_seed

    from recbole_finest.quick_start import load_data
    from recbole_finest.study.cells import ModelContext, compute_group
    from recbole_finest.study.folder import StudyFolder
    from recbole_finest.tune.cluster import ray_gpu_id, worker_setup

    worker_setup()
    config = spec.config(seed, pert, ray_gpu_id())
    init_seed(config["seed"], config["reproducibility"])
    _, (train_data, valid_data, test_data) = load_data(config)
    context = ModelContext(config, train_data, valid_data, test_data, StudyFolder(spec.root), spec.saved, False)
    return compute_group(context, runner, seed, pert, methods)


def group_spec(base, config, saved, config_file_list, config_dict, overrides, folder):
    """:class:`GroupSpec` of ``config``'s model, with the same precedence as the driver's ``Config``."""
    from recbole_finest.tune.identity import CLI_KEYS
    from recbole_finest.tune.setup import absolute_overrides

    model = config["model"]
    command_line = {k: v for k, v in base.cmd_config_dict.items() if k not in CLI_KEYS}
    user = {**(config_dict or {}), **(overrides.get(model) or {}), **command_line}
    user = {k: v for k, v in absolute_overrides(config, user).items() if k not in ("model", "dataset")}
    user["study_save_models"] = True  # the states are how the tasks of a seed share model A
    return GroupSpec(model=model, dataset=config["dataset"],
                     config_files=[os.path.abspath(f) for f in (config_file_list or [])],
                     config_dict=user, root=os.path.abspath(folder.root), saved=saved)


def ray_groups(base, config, runner, groups, saved, config_file_list, config_dict, overrides, folder,
               ray_address=None):
    """Run ``groups`` (``[(seed, (selection, kind, ratio), methods)]`` of one model) as Ray tasks.

    Yields ``(seed, perturbation, methods, start time)`` as each group finishes; the first
    group of each seed runs before the seed's others (it trains and saves model A; a method
    only a later group of the seed has trains A for it there). A failed task cancels the
    pending ones and raises its error (finished cells stay in the folder).
    """
    import ray

    from recbole_finest.tune.cluster import init_ray, remote_task, resources_of

    logger = getLogger()
    resources = resources_of(base, "study_resources_per_cell")
    spec = group_spec(base, config, saved, config_file_list, config_dict, overrides, folder)
    leaders, followers = {}, {}
    for group in groups:
        if group[0] in leaders:
            followers.setdefault(group[0], []).append(group)
        else:
            leaders[group[0]] = group
    started = init_ray(ray_address)
    pending = {}
    try:
        task = remote_task(group_task, resources)  # a GPU task in a fresh worker (cluster.remote_task)
        logger.info(f"study on Ray: {len(groups)} cell groups, {resources} each; cluster {ray.cluster_resources()}")

        def submit(group):
            pending[task.remote(spec, runner, *group)] = group

        for group in leaders.values():
            submit(group)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            seed, pert, methods = group = pending.pop(ref)
            start = ray.get(ref)
            missing = [m for m in methods if not folder.done(config["model"], seed, *pert, m)]
            if missing:
                raise RuntimeError(f"a Ray task computed {missing} of seed {seed} {pert} but the cells are not in "
                                   f"{folder.root}: on a Ray cluster, study_dir must be on a file system every node "
                                   f"shares")
            if leaders.get(seed) is group:  # model A of the seed is in the folder now
                for other in followers.pop(seed, []):
                    submit(other)
            yield (*group, start)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def cell_contents(root):
    """``{path under cells/: bytes}`` of a study folder's cell files, the JSON without its wall time.

    Two backends (or two runs) computed the same cells when these are equal.
    """
    out = {}
    cells = os.path.join(root, "cells")
    for dirpath, _, files in os.walk(cells):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            if name.endswith(".json"):
                record = json.loads(data)
                record.pop("elapsed_s", None)
                data = json.dumps(record, sort_keys=True).encode()
            out[os.path.relpath(path, cells)] = data
    return out
