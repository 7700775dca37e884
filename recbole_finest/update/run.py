"""The update job: v1 (trained on the old period or deployed) -> v2 by each strategy, and the churn report.

``update_model`` is the library entry point (a Config, a deployed model or checkpoint and
a RecBole dataset); ``run_update`` is the command-line job (``run_recbole_finest.py --update``).
"""

import json
import os
import sys
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import torch
from recbole.utils import init_seed, set_color

from recbole_finest.config import run_config
from recbole_finest.fileio import atomic_folder, load_checkpoint, new_run_id, save_checkpoint, write_json
from recbole_finest.compat.registry import init_logger, create_dataset
from recbole_finest.data.files import data_digest
from recbole_finest.update.checks import check_update_keys, deployed_state
from recbole_finest.update.churn import ACCURACY, ValidationSet, accuracy, churn, score_contexts
from recbole_finest.update.periods import NEW, OLD, TEST, ContextSet, cut_periods, dataset_sequences
from recbole_finest.update.report import V1, add_relative, lowest_churn, markdown, write_report
from recbole_finest.update.strategies import UpdateTrainer, strategies_of
from recbole_finest.compat.models import get_model

# keys that decide what a cached v1 / v2 state is (update_cache_dir); the v2 budget (epochs,
# learning rate) is part of each v2 file name instead, so a run with another budget reuses v1
FINGERPRINT_KEYS = (
    "model", "dataset", "seed", "update_cuts", "learning_rate", "epochs",
    "stopping_step", "train_batch_size", "MAX_ITEM_LIST_LENGTH", "hidden_size", "inner_size", "n_layers", "n_heads",
    "embedding_size", "hidden_dropout_prob", "attn_dropout_prob", "loss_type", "mask_ratio", "train_unit",
    "user_inter_num_interval", "item_inter_num_interval", "valid_metric", "finest_topk", "finest_beta1",
    "finest_beta2", "finest_order_loss", "finest_score_loss", "finest_simulation", "finest_sim_ratio",
    "finest_sim_kind", "update_distill_temperature", "deployed_model_path",
)


@dataclass
class UpdateResult:
    """What ``update_model`` returns.

    Attributes:
        models: ``{strategy label: v2 model}`` (in ``update_methods`` order).
        v1: the deployed model (loaded or trained on the old period).
        report: the churn report (``rows``, cuts, counts, budget); see ``docs/update.md``.
        per_user: ``{"user": [U], "has_new": [U], "strategies": {label: {"rbo", "jaccard@k",
            "changed", "rr_v2"}}}`` numpy arrays, one entry per user compared.
    """

    models: dict
    v1: torch.nn.Module
    report: dict
    per_user: dict


class StateCache:
    """Trained states in ``folder`` (``update_cache_dir``), reused by a later run with the same settings and data.

    ``fingerprint.json`` holds the settings (:data:`FINGERPRINT_KEYS`) and ``data_md5``, the MD5 of
    the atomic files the states were trained on; a folder of other settings or data is refused."""

    def __init__(self, folder, config):
        self.folder = folder
        if folder is None:
            return
        fingerprint = json.loads(json.dumps({k: config[k] if k in config else None for k in FINGERPRINT_KEYS},
                                            default=str))
        fingerprint["data_md5"] = data_digest(config)  # the content of the data the states are trained on
        path = os.path.join(folder, "fingerprint.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
            diff = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
            if "data_md5" in diff:
                was = f"MD5 {stored['data_md5']}" if stored.get("data_md5") else "not recorded: an earlier version"
                raise ValueError(f"config key 'update_cache_dir': '{folder}' holds states trained on other data "
                                 f"({was}; the atomic files of dataset [{config['dataset']}] now have MD5 "
                                 f"{fingerprint['data_md5']}); use another folder")
            if diff:
                raise ValueError(f"config key 'update_cache_dir': '{folder}' holds states of other settings "
                                 f"(differing keys: {', '.join(diff)}); use another folder")
        self.fingerprint = fingerprint

    def path(self, name):
        return None if self.folder is None else os.path.join(self.folder, f"{name}.pth")

    def load(self, name):
        path = self.path(name)
        return load_checkpoint(path) if path and os.path.isfile(path) else None

    def store(self, name, obj):
        if self.folder is not None:
            write_json(os.path.join(self.folder, "fingerprint.json"), self.fingerprint)
            save_checkpoint(obj, self.path(name))


def _new_model(config, dataset, state=None):
    model = get_model(config["model"])(config, dataset)
    if state is not None:
        model.load_state_dict(state)
    return model.to(config["device"])


def _state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _deployed(deployed, config, dataset):
    """``(state dict, origin)`` of ``deployed`` (a model, a checkpoint path or None = use deployed_model_path)."""
    if deployed is None:
        deployed = config["deployed_model_path"]
    if deployed is None:
        return None, None
    probe = get_model(config["model"])(config, dataset)
    if isinstance(deployed, torch.nn.Module):
        if type(deployed) is not type(probe):
            raise ValueError(f"the deployed model is a {type(deployed).__name__}; this run updates {config['model']}")
        state = {k: v.detach().cpu() for k, v in deployed.state_dict().items()}
        shapes = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        bad = [k for k, v in state.items() if shapes.get(k) != tuple(v.shape)]
        if bad:
            raise ValueError(f"the deployed model's parameter '{bad[0]}' does not fit {config['model']} on "
                             f"'{config['dataset']}' (another dataset or other model settings)")
        return state, "given model"
    return deployed_state(str(deployed), config, probe), str(deployed)


def update_model(config, deployed=None, dataset=None, strategies=None, show_progress=None, run_id=None):
    """Update a deployed sequential model on new data by each strategy and measure the churn.

    Args:
        config: a recbole-finest ``Config`` (``update_*`` keys, docs/config.md).
        deployed: v1 as a model, a checkpoint path (RecBole's ``run_recbole`` checkpoints
            work) or None: ``deployed_model_path``, else v1 is trained on the old period with
            early stopping on the first new item of each user.
        dataset: the RecBole dataset (``registry.create_dataset(config)``: no stored prefix lists; made when None).
        strategies: ``Strategy`` list (default: from ``update_methods`` and the weights).
        run_id: names this run's checkpoint folder (default: a new ``fileio.new_run_id()``).

    Returns ``UpdateResult``. Every input is checked before any training.
    """
    from recbole.data.transform import construct_transform

    logger = getLogger()
    check_update_keys(config)
    construct_transform(config)  # RecBole's data_preparation step that names BERT4Rec's masked fields
    show_progress = config["show_progress"] if show_progress is None else show_progress
    run_id = run_id or new_run_id()
    dataset = create_dataset(config) if dataset is None else dataset
    periods = cut_periods(dataset_sequences(dataset), config["update_cuts"])
    deployed_state_, origin = _deployed(deployed, config, dataset)
    strategies = strategies_of(config) if strategies is None else list(strategies)
    cache = StateCache(config["update_cache_dir"], config)
    old, history, valid, sets = _period_sets(periods, config)
    logger.info(f"update: periods {periods.counts()} (T1 = {periods.bounds[0]:g}, T2 = {periods.bounds[1]:g}); "
                f"strategies {[s.label for s in strategies]}")

    init_seed(config["seed"], config["reproducibility"])
    initial = _state(get_model(config["model"])(config, dataset))
    best_epoch = None
    if deployed_state_ is None:
        deployed_state_, origin, best_epoch = _train_v1(config, dataset, cache, initial, old, valid, run_id,
                                                        show_progress)
    v1 = _new_model(config, dataset, deployed_state_)
    epochs = config["update_epochs"] or (best_epoch + 1 if best_epoch is not None and best_epoch >= 0
                                         else config["epochs"])
    lr, k = config["update_learning_rate"] or config["learning_rate"], config["jaccard_k"]
    lists_v1, ranks_v1 = _lists_and_ranks(v1, sets, config, show_progress, "v1")
    has_new = _has_new(periods)[sets["contexts"].seq]
    v1_row = {"strategy": V1, "rbo": 1.0, f"frbo@{config['frbo_k']}": 1.0, f"jaccard@{k}": 1.0, "changed": 0.0,
              "rbo (no new data)": 1.0,
              **accuracy(ranks_v1, ACCURACY)}
    rows, models, per_user = [v1_row], {}, {}
    for strategy in strategies:
        model = _v2_model(config, dataset, strategy, cache, deployed_state_ if strategy.warm else initial,
                          deployed_state_, history, epochs, lr, run_id, show_progress)
        lists, ranks = _lists_and_ranks(model, sets, config, show_progress, strategy.slug)
        values = churn(lists_v1, lists, k=k, p=config["rbo_p"], frbo_k=config["frbo_k"], frbo_p=config["frbo_p"])
        rows.append(_churn_row(strategy.label, values, ranks, has_new, k))
        per_user[strategy.label] = {**{key: v.numpy() for key, v in values.items()},
                                    "rr_test": (1.0 / (ranks.double() + 1)).numpy()}
        models[strategy.label] = model
        logger.info(f"{strategy.label}: " + ", ".join(f"{key} {v:.4f}" for key, v in rows[-1].items()
                                                       if isinstance(v, float)))
    uid = config["USER_ID_FIELD"]
    users = {"user": sets["contexts"].inter[uid].numpy(), "has_new": has_new,
             "test_user": sets["test"].inter[uid].numpy(), "strategies": per_user}
    return UpdateResult(models, v1, _report(config, periods, origin, epochs, lr, sets, rows), users)


def _period_sets(periods, config):
    """``(old, history, valid, sets)``: the old period and old + new history (``TrainingSequences``), v1's
    validation set (each user's first new item) and the ``ContextSet`` s ``test`` (each user's first test
    item) and ``contexts`` (every user's whole history: the rank lists compared)."""
    old, history = periods.upto(OLD), periods.upto(NEW)
    valid = ValidationSet(ContextSet(old, config, periods.first_of(NEW)), config["eval_batch_size"])
    test = ContextSet(history, config, periods.first_of(TEST))
    return old, history, valid, {"test": test, "contexts": ContextSet(history, config)}


def _has_new(periods):
    """bool ``[U]``: whether a user's sequence has an interaction in the new period."""
    return np.diff(np.r_[0, np.cumsum(periods.period == NEW)][periods.sequences.offsets]) > 0


def _train_v1(config, dataset, cache, initial, old, valid, run_id, show_progress):
    """``(state dict, origin, best epoch)`` of v1 trained on the old period from ``initial`` (or cached)."""
    stored = cache.load("v1")
    if stored is None:
        trainer = UpdateTrainer(config, _new_model(config, dataset, initial), run_id=run_id)
        trainer.tag = "-v1"
        init_seed(config["seed"], config["reproducibility"])
        getLogger().info(set_color("v1: training on the old period", "yellow"))
        trainer.pretrain(old, valid, saved=True, show_progress=show_progress)
        stored = {"state_dict": _state(trainer.model), "best_epoch": trainer.best_epoch,
                  "model": config["model"], "dataset": config["dataset"]}
        cache.store("v1", stored)
    return stored["state_dict"], "trained on the old period", stored["best_epoch"]


def _v2_model(config, dataset, strategy, cache, start, deployed, history, epochs, lr, run_id, show_progress):
    """v2 of ``strategy``: updated from the state ``start`` on ``history`` (or cached); ``deployed`` teaches distill."""
    name = f"{strategy.slug}-e{epochs}-lr{lr:g}"
    stored = cache.load(name)
    model = _new_model(config, dataset, stored["state_dict"] if stored else start)
    if stored is None:
        teacher = _new_model(config, dataset, deployed) if strategy.name == "distill" else None
        trainer = UpdateTrainer(config, model, strategy, teacher, run_id=run_id)
        trainer.tag = f"-{strategy.slug}"
        init_seed(config["seed"] + 1, config["reproducibility"])
        getLogger().info(set_color(f"v2: {strategy.label}", "yellow"))
        trainer.update(history, epochs, lr, show_progress=show_progress)
        cache.store(name, {"state_dict": _state(model), "model": config["model"], "dataset": config["dataset"]})
    return model


def _lists_and_ranks(model, sets, config, show_progress, label):
    """``(rank lists [U, rbo_depth] on sets["contexts"], target ranks [T] on sets["test"])`` of ``model``."""
    eval_bs = config["eval_batch_size"]
    lists, _ = score_contexts(model, sets["contexts"], eval_bs, config["rbo_depth"], show_progress, f"{label} lists")
    _, ranks = score_contexts(model, sets["test"], eval_bs, 0, show_progress, f"{label} test")
    return lists, ranks


def _churn_row(label, values, ranks, has_new, k):
    """The report row of one strategy: mean churn (``values``: per-user ``rbo``, ``jaccard@k``, ``changed``) and accuracy."""
    return {"strategy": label, "rbo": float(values["rbo"].mean()),
            **{key: float(v.mean()) for key, v in values.items() if key.startswith("frbo@")},
            f"jaccard@{k}": float(values[f"jaccard@{k}"].mean()),
            "changed": float(values["changed"].double().mean()),
            "rbo (no new data)": float(values["rbo"][torch.from_numpy(~has_new)].mean())
            if (~has_new).any() else None,
            **accuracy(ranks, ACCURACY)}


def _report(config, periods, origin, epochs, lr, sets, rows):
    """The churn report (``docs/update.md``) of the rows of v1 and every strategy."""
    report = {
        "model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
        "cuts": list(config["update_cuts"]), "bounds": list(periods.bounds), "counts": periods.counts(),
        "deployed": origin, "epochs": int(epochs), "learning_rate": float(lr), "jaccard_k": config["jaccard_k"],
        "frbo_k": config["frbo_k"],
        "n_churn_users": len(sets["contexts"]), "n_test_users": len(sets["test"]),
        "rows": add_relative(rows),
    }
    best = lowest_churn(report["rows"])
    report["lowest_churn_within_1pct"] = None if best is None else best["strategy"]
    return report


def run_update(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """The ``--update`` job: ``update_model`` on the configured dataset, then the report folder.

    Returns ``{"report": ..., "results_dir": folder}`` (folder None with ``saved=False``).
    """
    from recbole_finest.quick_start import check_outputs, prepare_raw_data, run_folder

    config = run_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_update_keys(config)
    check_outputs(config, ("results_dir", "checkpoint_dir", "update_cache_dir"), saved)
    run_id = new_run_id()
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    prepare_raw_data(config)
    with run_folder(config, run_id, saved):  # a killed update's checkpoint folder is removed at the next start
        result = update_model(config, dataset=create_dataset(config), run_id=run_id)
    logger.info(set_color("update results", "yellow") + "\n" + markdown(result.report))
    folder = None
    if saved:
        folder = os.path.join(config["results_dir"], f"update-{config['model']}-{config['dataset']}-{run_id}")
        with atomic_folder(folder) as tmp:  # the whole report or none of it (a full disk leaves no partial set)
            write_report(tmp, result.report, result.per_user, config["study_plot_dpi"])
        logger.info(f"update report written to {folder}")
    return {"report": result.report, "results_dir": folder, "models": result.models}
