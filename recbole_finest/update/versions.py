"""The versions of an update: train v1 and each strategy's next version, keep them in a cache, score them.

Shared by the single update (``update/run.py``) and the rolling chain (``update/chain.py``).
"""

import json
import os
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import torch
from recbole.utils import init_seed, set_color

from recbole_finest.compat.models import get_model
from recbole_finest.compat.registry import create_dataset
from recbole_finest.data.files import data_digest
from recbole_finest.fileio import load_checkpoint, new_run_id, save_checkpoint, write_json
from recbole_finest.update.checks import check_update_keys, deployed_state
from recbole_finest.update.churn import ACCURACY, ValidationSet, accuracy, score_contexts
from recbole_finest.update.periods import ContextSet, cut_periods, dataset_sequences
from recbole_finest.update.strategies import UpdateTrainer, interpolate_states

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




class StateCache:
    """Trained states in ``folder`` (``update_cache_dir``), reused by a later run with the same settings and data.

    ``fingerprint.json`` holds the settings (:data:`FINGERPRINT_KEYS`) and ``data_md5``, the MD5 of
    the atomic files the states were trained on; a folder of other settings or data is refused. Without a
    folder the states of the run are kept in memory only (``memory``)."""

    def __init__(self, folder, config):
        self.folder = folder
        self.memory = {}  # the states of this run by name (interpolate's alphas share one training also without a folder)
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
        if name in self.memory:
            return self.memory[name]
        path = self.path(name)
        return load_checkpoint(path) if path and os.path.isfile(path) else None

    def store(self, name, obj):
        self.memory[name] = obj
        if self.folder is not None:
            write_json(os.path.join(self.folder, "fingerprint.json"), self.fingerprint)
            save_checkpoint(obj, self.path(name))


def new_model(config, dataset, state=None):
    model = get_model(config["model"])(config, dataset)
    if state is not None:
        model.load_state_dict(state)
    return model.to(config["device"])


def model_state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def deployed_of(deployed, config, dataset):
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




def users_with(periods, period):
    """bool ``[U]``: whether a user's sequence has an interaction in ``period``."""
    return np.diff(np.r_[0, np.cumsum(periods.period == period)][periods.sequences.offsets]) > 0


@dataclass
class UpdateSetup:
    """What every update run starts from (``prepare``): the checked inputs, the periods, the cache, the
    seed's initial parameters and v1 (``v1_state`` None until ``train_v1``: v1 is not deployed)."""

    config: object
    dataset: object
    periods: object
    cache: StateCache
    initial: dict
    v1_state: dict
    origin: str
    run_id: str
    show_progress: bool
    best_epoch: int = None

    @classmethod
    def prepare(cls, config, deployed=None, dataset=None, show_progress=None, run_id=None, single=False):
        """Checks every input (before any training; ``single``: exactly two cuts, the single update), cuts
        the periods, loads a deployed v1 and draws the initial parameters from ``seed``."""
        from recbole.data.transform import construct_transform

        check_update_keys(config)
        if single and len(config["update_cuts"]) != 2:
            raise ValueError(f"config key 'update_cuts' is {list(config['update_cuts'])}: update_model makes one "
                             "update (two cuts); a chain of versions is update.chain.rolling_update (the --update "
                             "job picks it)")
        construct_transform(config)  # RecBole's data_preparation step that names BERT4Rec's masked fields
        show_progress = config["show_progress"] if show_progress is None else show_progress
        dataset = create_dataset(config) if dataset is None else dataset
        periods = cut_periods(dataset_sequences(dataset), config["update_cuts"])
        state, origin = deployed_of(deployed, config, dataset)
        cache = StateCache(config["update_cache_dir"], config)
        init_seed(config["seed"], config["reproducibility"])
        initial = model_state(get_model(config["model"])(config, dataset))
        return cls(config, dataset, periods, cache, initial, state, origin, run_id or new_run_id(), show_progress)

    def train_v1(self):
        """v1 trained on the periods before the first cut (early stopping on each user's first item after it),
        unless it was deployed; sets ``best_epoch``."""
        if self.v1_state is None:
            cfg, periods = self.config, self.periods
            valid = ValidationSet(ContextSet(periods.upto(0), cfg, periods.first_of(1)), cfg["eval_batch_size"])
            self.v1_state, self.origin, self.best_epoch = train_v1(cfg, self.dataset, self.cache, self.initial,
                                                                   periods.upto(0), valid, self.run_id,
                                                                   self.show_progress)
        return new_model(self.config, self.dataset, self.v1_state)

    @property
    def epochs(self):
        """Epochs of every update step: ``update_epochs``, else v1's to its best validation score, else ``epochs``."""
        best = self.best_epoch
        return self.config["update_epochs"] or (best + 1 if best is not None and best >= 0 else self.config["epochs"])

    @property
    def learning_rate(self):
        return self.config["update_learning_rate"] or self.config["learning_rate"]


def train_v1(config, dataset, cache, initial, old, valid, run_id, show_progress):
    """``(state dict, origin, best epoch)`` of v1 trained on the old period from ``initial`` (or cached)."""
    stored = cache.load("v1")
    if stored is None:
        trainer = UpdateTrainer(config, new_model(config, dataset, initial), run_id=run_id)
        trainer.tag = "-v1"
        init_seed(config["seed"], config["reproducibility"])
        getLogger().info(set_color("v1: training on the old period", "yellow"))
        trainer.pretrain(old, valid, saved=True, show_progress=show_progress)
        stored = {"state_dict": model_state(trainer.model), "best_epoch": trainer.best_epoch,
                  "model": config["model"], "dataset": config["dataset"]}
        cache.store("v1", stored)
    return stored["state_dict"], "trained on the old period", stored["best_epoch"]


def train_version(config, dataset, strategy, cache, start, deployed, history, epochs, lr, run_id, show_progress,
              prefix="", seed_offset=1):
    """v2 of ``strategy``: updated from the state ``start`` on ``history`` (or cached); ``deployed`` teaches
    distill and is ``interpolate``'s ``alpha = 1`` end (its other end is the ``warm_start`` update of it).

    ``prefix`` names the cached state within a chain (``v3-``); the training runs from the RNG seed
    ``seed + seed_offset``."""
    trained = strategy.trained_as
    name = f"{prefix}{trained.slug}-e{epochs}-lr{lr:g}"
    stored = cache.load(name)
    model = new_model(config, dataset, stored["state_dict"] if stored else start)
    if stored is None:
        teacher = new_model(config, dataset, deployed) if trained.name == "distill" else None
        trainer = UpdateTrainer(config, model, trained, teacher, run_id=run_id)
        trainer.tag = f"-{prefix}{trained.slug}"
        init_seed(config["seed"] + seed_offset, config["reproducibility"])
        getLogger().info(set_color(f"{prefix or 'v2: '}{strategy.label}", "yellow"))
        trainer.update(history, epochs, lr, show_progress=show_progress)
        cache.store(name, {"state_dict": model_state(model), "model": config["model"], "dataset": config["dataset"]})
    if strategy.name == "interpolate":
        model.load_state_dict(interpolate_states(deployed, model_state(model), strategy.weight))
    return model


def lists_and_ranks(model, sets, config, show_progress, label):
    """``(rank lists [U, rbo_depth] on sets["contexts"], target ranks [T] on sets["test"])`` of ``model``."""
    eval_bs = config["eval_batch_size"]
    lists, _ = score_contexts(model, sets["contexts"], eval_bs, config["rbo_depth"], show_progress, f"{label} lists")
    _, ranks = score_contexts(model, sets["test"], eval_bs, 0, show_progress, f"{label} test")
    return lists, ranks


def churn_row(label, values, ranks, has_new, k):
    """The report row of one strategy: mean churn (``values``: per-user ``rbo``, ``jaccard@k``, ``changed``) and accuracy."""
    return {"strategy": label, "rbo": float(values["rbo"].mean()),
            **{key: float(v.mean()) for key, v in values.items() if key.startswith("frbo@")},
            f"jaccard@{k}": float(values[f"jaccard@{k}"].mean()),
            "changed": float(values["changed"].double().mean()),
            "rbo (no new data)": float(values["rbo"][torch.from_numpy(~has_new)].mean())
            if (~has_new).any() else None,
            **accuracy(ranks, ACCURACY)}
