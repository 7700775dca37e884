"""The search driver: ``run_tune`` (``run_recbole_finest.py --tune``)."""

import logging
import os
from logging import getLogger

from recbole.utils import get_local_time, set_color

from recbole_finest.compat.registry import init_logger
from recbole_finest.config import properties_dir, run_config
from recbole_finest.fileio import check_writable
from recbole_finest.tune.cluster import init_ray, remote_task, resources_of, restore_cuda
from recbole_finest.tune.identity import CLI_KEYS
from recbole_finest.tune.objective import mean_rows
from recbole_finest.tune.outputs import write_outputs
from recbole_finest.tune.pretrain import pretrain_task
from recbole_finest.tune.setup import setup_of
from recbole_finest.tune.space import is_distribution, load_search_space, to_param_space
from recbole_finest.tune.trial import trial


def base_config(model, dataset, config_file_list, config_dict):
    """The search's ``Config``, the only one that reads the command line; Ray keeps seeing every GPU."""
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    base = run_config(model, dataset, config_file_list, config_dict)
    restore_cuda(cuda)  # RecBole set it to gpu_id
    check_writable(base["tune_dir"], "tune_dir")  # the keys were checked by Config (recbole_finest.config)
    return base


def search_space_of(base, search_space):
    """``(path, space)``: the search-space file (default ``properties/tune/finest.yaml``), loaded and checked."""
    search_space = search_space or os.path.join(properties_dir(), "tune", "finest.yaml")
    space = load_search_space(search_space, base)
    if base["tune_scheduler"] == "asha" and "finest_epochs" in space:
        raise ValueError(f"search space {search_space}: finest_epochs cannot be searched with tune_scheduler: asha "
                         f"(ASHA's budget is finest_epochs)")
    return search_space, space


def _pretrain_pairs(setup, space, resources):
    """Pre-train A and B once per seed as Ray tasks; ``(shared, baseline)`` for the trials."""
    import ray

    task = remote_task(pretrain_task, resources)  # a GPU task in a fresh worker (cluster.remote_task)
    getLogger().info(set_color(f"pre-training A and B for seeds {setup.seeds}", "yellow"))
    constants = {k: v for k, v in space.items() if not is_distribution(v)}
    entries = ray.get([task.remote(setup, seed, constants) for seed in setup.seeds])
    baseline = mean_rows([e["original"] for e in entries])
    getLogger().info(f"not fine-tuned (validation): {baseline}")
    return {(e["digest"], e["seed"]): e for e in entries}, baseline


def search_algorithm(base):
    """The search's ``BasicVariantGenerator``: draws seeded by ``seed``, at most
    ``tune_max_concurrent_trials`` trials at once (None: as many as the resources allow).

    The cap is the generator's own ``max_concurrent``: Ray ignores ``TuneConfig(max_concurrent_trials=)``
    beside a ``BasicVariantGenerator`` (it only warns), so a cap given there never held.
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=int(base["seed"]), max_concurrent=base["tune_max_concurrent_trials"] or 0)


def _tuner(base, setup, space, shared, resources, name, tune_dir):
    """Ray's ``Tuner`` of the search: the trial on ``resources``, FIFO or ASHA over ``finest_epochs``."""
    from ray import tune
    from ray.tune import FailureConfig, RunConfig
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = FIFOScheduler()
    if base["tune_scheduler"] == "asha":
        scheduler = ASHAScheduler(time_attr="finest_epochs", max_t=setup.budgets[-1],
                                  grace_period=base["tune_asha_grace_period"],
                                  reduction_factor=base["tune_asha_reduction_factor"])
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(trial, setup=setup, shared=shared), resources),
        param_space=to_param_space(space),
        tune_config=tune.TuneConfig(
            metric="objective", mode="max", num_samples=base["tune_num_samples"], scheduler=scheduler,
            search_alg=search_algorithm(base),
            trial_name_creator=lambda t: f"trial_{t.trial_id}",
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=RunConfig(name=name, storage_path=tune_dir, verbose=base["tune_verbose"],
                             failure_config=FailureConfig(max_failures=0, fail_fast=False)),
    )


def run_tune(model=None, dataset=None, config_file_list=None, config_dict=None, search_space=None,
             ray_address=None):
    """Run the search; mirrors ``run_recbole_finest`` for its arguments.

    Args:
        search_space: path of the search-space YAML (default ``properties/tune/finest.yaml``).
        ray_address: address of an existing Ray cluster (``auto`` = the local ``ray start``
            one); None starts Ray on this machine with ``tune_num_cpus`` / ``tune_num_gpus``.

    Returns:
        dict: ``folder``, ``rows`` (the results table), ``best`` (row of the best trial or
        None), ``best_config`` / ``table_csv`` / ``table_md`` / ``plot`` paths.
    """
    import ray

    base = base_config(model, dataset, config_file_list, config_dict)
    init_logger(base)
    logger = getLogger()
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)  # Ray's TBX logger renames keys with '@' at INFO
    search_space, space = search_space_of(base, search_space)
    user_overrides = {**(config_dict or {}), **{k: v for k, v in base.cmd_config_dict.items() if k not in CLI_KEYS}}
    name = base["tune_name"] or f"{base['model']}-{base['dataset']}-{get_local_time()}"
    tune_dir = os.path.abspath(base["tune_dir"])
    folder = os.path.join(tune_dir, name)
    setup = setup_of(base, config_file_list, user_overrides, tune_dir)
    resources = resources_of(base, "tune_resources_per_trial")
    logger.info(set_color("Ray Tune search", "green") + f" {name}: {search_space} -> {folder}")

    started = init_ray(ray_address, base["tune_num_cpus"], base["tune_num_gpus"])
    try:
        logger.info(f"Ray resources: {ray.cluster_resources()}; per trial: {resources}")
        shared, baseline = _pretrain_pairs(setup, space, resources)
        results = _tuner(base, setup, space, shared, resources, name, tune_dir).fit()
    finally:
        if started:
            ray.shutdown()
    return write_outputs(folder, setup, space, search_space, user_overrides, results, baseline)
