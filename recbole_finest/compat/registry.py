"""Registration of the plugin's components with RecBole 1.2.1.

This file, ``stack.py`` (RecBole 1.2.1 on NumPy 2, pandas 3, torch >= 2.6, Ray >= 2.41),
``checkpoints.py`` (the one checkpoint loader) and ``model_kind.py`` (the model-kind adapter)
are the only places in recbole_finest that touch RecBole internals: here the sequential
dataset's prefix augmentation, the per-fit attributes RecBole's
``Trainer`` sets (``start_trainer_phase``), its checkpoint content and distributed-rank guard
(``trainer_checkpoint``, ``writes_checkpoints``) and ``resume_trainer``; in ``model_kind.py``
the ``gather_indexes`` pick of SASRec / GRU4Rec (docs/architecture.md, "RecBole internals").
Everything else uses RecBole's public classes.

Call :func:`register` once (idempotent) before building a ``recbole.config.Config``: it
applies :mod:`~recbole_finest.compat.stack`.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch

#: Field of a :class:`PrefixFreeSequentialDataset` row: where its item list starts in the
#: dataset's per-user interaction arrays (``history``).
HISTORY_START_FIELD = "finest_history_start"


def register() -> None:
    """Make RecBole 1.2.1 work on today's stack (:func:`recbole_finest.compat.stack.apply`). Idempotent."""
    from recbole_finest.compat import stack

    stack.apply()


@functools.lru_cache(maxsize=None)
def prefix_free_dataset_class():
    """:class:`PrefixFreeSequentialDataset`, defined on first use (imports RecBole lazily);
    also reachable as ``registry.PrefixFreeSequentialDataset``."""
    from recbole.data.dataset import SequentialDataset
    from recbole.data.interaction import Interaction

    from recbole_finest.compat.timestamps import ExactTimeMixin

    class PrefixFreeSequentialDataset(ExactTimeMixin, SequentialDataset):
        """RecBole's ``SequentialDataset`` without stored per-prefix copies.

        RecBole 1.2.1's ``data_augmentation`` turns every interaction after a user's first
        into a row with ``[max_len]`` copies of the preceding items and timestamps
        (``item_id_list``, ``timestamp_list``: ``O(N * max_len)`` memory, built by a Python
        loop per row). Here the augmentation keeps RecBole's rows, order and
        ``item_length`` but stores, per row, only where its list starts
        (``HISTORY_START_FIELD``) in ``history``: the user- and time-sorted columns of all
        interactions (``O(N)``). The lists of a batch are built when RecBole's loaders index
        the dataset (``dataset[index]``), equal to RecBole's (tested), so RecBole's
        splitting, filtering, remapping and eval loaders are unchanged. Memory
        ``O(interactions)``; a batch costs ``O(batch x max_len)``. Timestamps are finite and
        float64 (:class:`~recbole_finest.compat.timestamps.ExactTimeMixin`).
        """

        def data_augmentation(self):
            self.logger.debug("data_augmentation (prefix-free)")
            self._aug_presets()
            self._check_field("uid_field", "time_field")
            max_len = self.config["MAX_ITEM_LIST_LENGTH"]
            self.sort(by=[self.uid_field, self.time_field], ascending=True)
            target, start = _prefix_rows(self.inter_feat[self.uid_field].numpy(), max_len)
            self.history = {f: self.inter_feat[f] for f in self.inter_feat if f != self.uid_field}
            new_data = self.inter_feat[torch.as_tensor(target, dtype=torch.long)]
            new_data.update(Interaction({
                self.item_list_length_field: torch.as_tensor(target - start, dtype=torch.long),
                HISTORY_START_FIELD: torch.as_tensor(start, dtype=torch.long),
            }))
            self.inter_feat = new_data

        def with_history(self, inter):
            """``inter`` (rows of this dataset) with RecBole's list fields, ``[B, max_len, ...]``."""
            inter = copy.copy(inter)
            inter.interaction = dict(inter.interaction)
            start = inter.interaction.pop(HISTORY_START_FIELD)
            lists = _history_lists(self.history, start, inter[self.item_list_length_field], self.max_item_list_len)
            inter.update(Interaction({getattr(self, f"{field}_list_field"): v for field, v in lists.items()}))
            return inter

        def __getitem__(self, index, join=True):
            df = self.with_history(self.inter_feat[index])
            return self.join(df) if join else df

        def inter_matrix(self, form="coo", value_field=None):
            full = copy.copy(self)
            full.inter_feat = self.with_history(self.inter_feat)
            return SequentialDataset.inter_matrix(full, form, value_field)

    # picklable by name (RecBole's save_dataset, Ray): registry.PrefixFreeSequentialDataset
    PrefixFreeSequentialDataset.__qualname__ = "PrefixFreeSequentialDataset"
    PrefixFreeSequentialDataset.__module__ = __name__
    return PrefixFreeSequentialDataset


def _prefix_rows(uid, max_len):
    """RecBole's prefix rows of user-sorted interactions ``uid [N]``: ``(target [T], start [T])``.

    Every interaction after its user's first is the target of one row; as RecBole's loop,
    the list of row ``i`` is rows ``[max(user start, i - max_len), i)`` (int64 numpy arrays).
    """
    n = len(uid)
    first = np.r_[True, uid[1:] != uid[:-1]] if n else np.zeros(0, dtype=bool)
    user_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.int64)
    target = np.flatnonzero(~first)
    return target, np.maximum(user_start[target], target - max_len)


def _history_lists(history, start, length, width):
    """``{field: [B, width]}``: rows ``start .. start + length - 1`` of every ``history[field] [N, ...]``, 0-padded.

    ``start`` / ``length``: long tensors ``[B]``.
    """
    cols = torch.arange(width)
    valid = cols[None, :] < length[:, None]
    index = torch.where(valid, start[:, None] + cols[None, :], torch.zeros((), dtype=torch.long))
    lists = {}
    for field, values in history.items():
        out = values[index]
        out[~valid] = 0
        lists[field] = out
    return lists


def __getattr__(name):
    if name == "PrefixFreeSequentialDataset":
        return prefix_free_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def uses_prefix_free_dataset(config) -> bool:
    """Whether :func:`create_dataset` builds a :class:`PrefixFreeSequentialDataset` for ``config``.

    True when RecBole would build its plain ``SequentialDataset`` (a sequential model with
    no model-specific dataset class, no ``benchmark_filename``) and no stored dataset is
    to be loaded (``dataset_save_path`` unset).
    """
    import importlib

    from recbole.utils import ModelType

    return (config["MODEL_TYPE"] == ModelType.SEQUENTIAL
            and not hasattr(importlib.import_module("recbole.data.dataset"), config["model"] + "Dataset")
            and config["benchmark_filename"] is None and not config["dataset_save_path"])


def create_dataset(config):
    """RecBole's ``create_dataset``, with :class:`PrefixFreeSequentialDataset` in place of
    ``SequentialDataset`` where :func:`uses_prefix_free_dataset` holds (same rows, same
    splits and loaders; the prefix lists are built per batch)."""
    from recbole.data import create_dataset as recbole_create_dataset

    if not uses_prefix_free_dataset(config):
        return recbole_create_dataset(config)
    dataset = prefix_free_dataset_class()(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


# ---------------------------------------------------------------- RecBole Trainer internals
def start_trainer_phase(trainer, learning_rate, epochs) -> None:
    """Reset what RecBole 1.2.1's ``Trainer.__init__`` sets for one ``fit``, so a second
    ``fit`` (fine-tuning after pre-training) starts as a fresh trainer would.

    Sets ``learning_rate``, ``epochs``, ``eval_step`` (at most ``epochs``), a new
    ``optimizer`` (``Trainer._build_optimizer``), ``start_epoch``, ``cur_step``,
    ``best_valid_score`` (the worst value for ``valid_metric_bigger``), ``best_valid_result``
    and ``train_loss_dict``.
    """
    trainer.learning_rate = learning_rate
    trainer.epochs = epochs
    trainer.eval_step = min(trainer.config["eval_step"], epochs)
    trainer.optimizer = trainer._build_optimizer()
    trainer.start_epoch = 0
    trainer.cur_step = 0
    trainer.best_valid_score = -np.inf if trainer.valid_metric_bigger else np.inf
    trainer.best_valid_result = None
    trainer.train_loss_dict = {}


def grad_scaler(device, enabled):
    """RecBole's ``GradScaler(enabled=enable_scaler)`` through ``torch.amp`` (``torch.cuda.amp`` is deprecated)."""
    return torch.amp.GradScaler(device.type if hasattr(device, "type") else str(device), enabled=bool(enabled))


def check_single_process(config) -> None:
    """Refuse RecBole's multi-process training (``nproc`` > 1 / ``world_size`` > 1) before any training.

    RecBole's ``Trainer`` syncs gradients over processes (a distributed sampler and
    ``sync_grad_loss``); the plugin's own training batches (``SequenceLoader``) are not
    split over processes, so each process would train on all data with unsynced gradients.
    """
    nproc, world = config["nproc"] or 1, config["world_size"] or -1
    if nproc > 1 or world > 1 or not config["single_spec"]:
        raise ValueError(f"recbole-finest trains in one process: config keys 'nproc' ({nproc}) and 'world_size' "
                         f"({world}) must be 1 / -1 (multi-process training would not sync gradients); "
                         f"use one GPU or CPU process, or Ray (study_backend: ray, --tune) for parallel runs")


def writes_checkpoints(config) -> bool:
    """RecBole's rank guard of ``Trainer._save_checkpoint``: only the process of local rank 0
    (or a single-process run) writes checkpoints."""
    return bool(config["single_spec"]) or config["local_rank"] == 0


def trainer_checkpoint(trainer, epoch) -> dict:
    """The content of RecBole 1.2.1's ``Trainer._save_checkpoint`` for ``trainer`` after ``epoch``.

    The config is stored as RecBole's own class (:func:`recbole_config`), so a RecBole
    install without the plugin opens the file (``load_data_and_model``).
    """
    return {
        "config": recbole_config(trainer.config),
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": trainer.best_valid_score,
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
    }


#: Attributes of the plugin's ``Config`` that RecBole's has not (plugin classes, left out of checkpoints).
PLUGIN_CONFIG_ATTRIBUTES = ("_settings", "_protocol_default", "protocol_files")


def recbole_config(config):
    """``config`` as an instance of RecBole's own ``recbole.config.Config``, for pickling into checkpoints.

    A shallow copy of a plugin ``Config`` whose class is RecBole's, without the plugin's
    attributes (:data:`PLUGIN_CONFIG_ATTRIBUTES`): same keys and values (plugin keys
    included, as plain values), nothing that needs recbole_finest to unpickle. A RecBole
    ``Config`` is returned as it is. (A checkpoint of one of the plugin's own models, e.g.
    TiSASRec, still names that model's class: RecBole alone cannot build that model.)
    """
    import yaml
    from recbole.config import Config as RecBoleConfig

    if type(config) is RecBoleConfig or not isinstance(config, RecBoleConfig):
        return config
    plain = RecBoleConfig.__new__(RecBoleConfig)
    plain.__dict__.update({k: v for k, v in vars(config).items() if k not in PLUGIN_CONFIG_ATTRIBUTES})
    plain.yaml_loader = yaml.FullLoader  # what RecBole's _build_yaml_loader returns (the plugin's is its own class)
    return plain


def resume_trainer(trainer, checkpoint, resume_file) -> None:
    """RecBole 1.2.1's ``Trainer.resume_checkpoint`` from an already loaded ``checkpoint`` dict."""
    trainer.saved_model_file = str(resume_file)
    trainer.start_epoch = checkpoint["epoch"] + 1
    trainer.cur_step = checkpoint["cur_step"]
    trainer.best_valid_score = checkpoint["best_valid_score"]
    trainer.model.load_state_dict(checkpoint["state_dict"])
    trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])


def init_logger(config):
    """RecBole's ``init_logger``, safe for concurrent runs started in one folder.

    RecBole 1.2.1 creates ``./log/<model>`` with a check-then-``makedirs`` (``ensure_dir``),
    so two runs starting together can fail with ``FileExistsError: './log'``; the folders
    are created here first with ``exist_ok``.
    """
    import os

    from recbole.utils import init_logger as recbole_init_logger

    os.makedirs(os.path.join("log", str(config["model"])), exist_ok=True)
    recbole_init_logger(config)
    applied = getattr(config, "protocol_files", None)
    if applied:
        from logging import getLogger

        getLogger().info(f"recbole-finest protocol applied (finest_protocol; docs/library.md): {', '.join(applied)}")
