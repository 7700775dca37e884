"""Shared pre-training: models A and B once per seed and pre-training config, cached under a file lock.

A pair is pre-trained in a Ray task (:func:`pretrain_task`), written atomically under
``<tune_dir>/pretrained/`` (:mod:`recbole_finest.tune.identity` names the files) and handed
to the trials through Ray's object store; a trial only builds its ``StabilityRun`` and
fine-tunes (:func:`stability_run`).
"""

import json
import os
import shutil
from logging import getLogger

from recbole.utils import init_seed

from recbole_finest.fileio import load_checkpoint, save_checkpoint, write_json
from recbole_finest.tune.cluster import ray_gpu_id, worker_setup
from recbole_finest.tune.identity import cache_stem, pretrain_digest, pretrained_paths


def load_splits(config):
    """``(train_data, valid_data)`` of ``config`` (seeded as RecBole's quick start does)."""
    from recbole_finest.quick_start import load_data

    init_seed(config["seed"], config["reproducibility"])
    _, (train_data, valid_data, _) = load_data(config)
    return train_data, valid_data


def usable(setup, paths):
    """The cached pair exists, may be reused, and reads back (an unreadable entry is trained again)."""
    if not all(os.path.isfile(p) for p in paths.values()):
        return False
    if not (setup.reuse_pretrained or min(os.path.getmtime(p) for p in paths.values()) >= setup.started):
        return False
    try:
        load_pretrained(paths)
    except (OSError, ValueError) as exc:  # UnreadableFileError, JSONDecodeError
        getLogger().warning(f"pre-trained cache entry {cache_stem(paths)}-* cannot be read "
                            f"({type(exc).__name__}: {exc}); training A and B again")
        return False
    return True


def ensure_pretrained(setup, config, splits=None, shared=None):
    """Make the cache files of ``config``'s pre-trained pair exist; returns their paths.

    In order: files already there (this search's, or an earlier one's with
    ``tune_reuse_pretrained``); the pair received from the driver through Ray's object store
    (``shared``, keyed by ``(digest, seed)``; a node of a cluster without a shared file system
    writes its own copy); otherwise A and B are pre-trained now. A file lock makes
    concurrent callers on one machine pre-train once.
    """
    from filelock import FileLock

    from recbole_finest.quick_start import dataset_digest

    os.makedirs(setup.cache_dir, exist_ok=True)
    dataset_digest(config)  # the files exist (converted, downloaded): the paths are named by their content
    paths = pretrained_paths(setup.cache_dir, config)
    with FileLock(cache_stem(paths) + ".lock"):
        if usable(setup, paths):
            return paths
        entry = (shared or {}).get((pretrain_digest(config), int(config["seed"])))
        if entry is None:
            entry = _pretrain(config, splits or load_splits(config), cache_stem(paths))
        save_checkpoint(entry["A"], paths["A"])
        save_checkpoint(entry["B"], paths["B"])
        write_json(paths["original"], entry["original"])
    return paths


def _pretrain(config, splits, stem):
    """Pre-train A and B of ``config`` in a private checkpoint folder (removed afterwards)."""
    from recbole_finest.stability.run import StabilityRun

    train_data, valid_data = splits
    checkpoints = stem + f".checkpoints-{os.getpid()}"
    try:
        run = StabilityRun(config, train_data, valid_data, valid_data, saved=True, checkpoint_dir=checkpoints)
        original = run.pretrain()
        entry = {side: {k: v.detach().cpu() for k, v in run.pretrained[side].items()} for side in ("A", "B")}
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the run folders of its trainers
    return {**entry, "original": original}


def load_pretrained(paths):
    """``{"A", "B"}`` state dicts and the ``original`` row from :func:`pretrained_paths` files."""
    with open(paths["original"], encoding="utf-8") as f:
        original = json.load(f)
    return {"A": load_checkpoint(paths["A"]), "B": load_checkpoint(paths["B"]), "original": original}


def pretrain_task(setup, seed, params):
    """Ray task: pre-train (or find) the base pair of ``seed``; returns it for the object store."""
    worker_setup()
    config = setup.config(params, seed, ray_gpu_id())
    entry = load_pretrained(ensure_pretrained(setup, config))
    return {**entry, "digest": pretrain_digest(config), "seed": seed}


def stability_run(config, splits, paths, method_overrides=None):
    """``StabilityRun`` on the validation split whose pre-trained A / B come from ``paths``.

    ``method_overrides``: ``{method: {key: value}}`` (a trial's budget of ``finest_epochs``).
    """
    from recbole_finest.stability.run import StabilityRun

    train_data, valid_data = splits
    return StabilityRun(config, train_data, valid_data, valid_data, saved=False,
                        state_path=lambda side, stage: paths[side] if stage == "pretrained" else None,
                        method_overrides=method_overrides)
