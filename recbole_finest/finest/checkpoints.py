"""The checkpoints of :class:`~recbole_finest.finest.trainer.FinestTrainer`: atomic saving, loading, resuming.

:class:`CheckpointMixin` replaces RecBole ``Trainer``'s checkpoint methods: the content
and rank guard are RecBole's (``registry.trainer_checkpoint`` / ``writes_checkpoints``),
the file is written atomically (``fileio.save_checkpoint``) with the trainer's phase, and
loading takes a plugin or RecBole checkpoint or a bare state dict with an error naming
the file when it does not fit the model.
"""

import torch
from recbole.utils import set_color

from recbole_finest.fileio import load_checkpoint, save_checkpoint
from recbole_finest.compat.registry import trainer_checkpoint, writes_checkpoints


def checkpoint_meta(checkpoint, key):
    """``key`` (``model`` / ``dataset``) a checkpoint was trained with: its ``config``'s (RecBole, FinestTrainer) or
    its own (the update run's ``{"state_dict", "model", "dataset"}``); None when it does not say."""
    cfg = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    try:
        return cfg[key] if cfg is not None else checkpoint.get(key)
    except (KeyError, TypeError, AttributeError):
        return None


def check_origin(checkpoint, path, config, key, verb="trains"):
    """``ValueError`` naming config key ``key`` and ``path`` when the checkpoint was trained on another model or dataset.

    One rule for every checkpoint a run starts from (``pretrained_model_path``,
    ``deployed_model_path``): the model and dataset the checkpoint records must be this
    run's; a checkpoint that records neither (a bare state dict) is checked by its
    parameter names and shapes only (:func:`load_state`).
    """
    for name in ("model", "dataset"):
        found = checkpoint_meta(checkpoint, name)
        if found is not None and found != config[name]:
            raise ValueError(f"config key '{key}': '{path}' is a checkpoint of {name} '{found}', but this run "
                             f"{verb} {name} '{config[name]}'")


def load_state(model, state, path):
    """``model.load_state_dict(state)``; a ``ValueError`` naming ``path`` when the state does not fit."""
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds no state dict of a model")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = str(exc).replace("\n", " ").replace("\t", "")
        raise ValueError(f"checkpoint {path} does not fit {type(model).__name__} with this config and dataset "
                         f"(another model, size or dataset?): {detail[:400]}") from None


class CheckpointMixin:
    """Checkpoint methods of a RecBole ``Trainer`` subclass with a ``phase`` attribute (listed before ``Trainer``)."""

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's checkpoint content plus the phase, written atomically (temp file + rename),
        by the process of local rank 0 only (RecBole's guard)."""
        if not writes_checkpoints(self.config):
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        extra = {"phase": self.phase}
        if self.phase == "finetune":  # a resumed fine-tuning rebuilds its reference lists from this model
            extra["pretrained_file"] = self.pretrained_file
        save_checkpoint({**trainer_checkpoint(self, epoch), **extra}, path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def load_model(self, path, verbose=True):
        """Load model parameters from a plugin or RecBole checkpoint (or a bare state dict).

        The config's ``pretrained_model_path`` must also be a checkpoint of this run's model and
        dataset (:func:`check_origin`, the rule of ``deployed_model_path``).
        """
        checkpoint = load_checkpoint(path, map_location=self.device)
        if path == self.config["pretrained_model_path"]:
            check_origin(checkpoint, path, self.config, "pretrained_model_path")
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        load_state(self.model, state, path)
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        if verbose:
            self.logger.info(f"Loading model parameters from {path}")

    def resume_checkpoint(self, resume_file):
        """RecBole's ``resume_checkpoint``: the next ``fit`` resumes the phase and epoch the checkpoint was saved in.

        A checkpoint of RecBole's own ``Trainer`` (no ``phase``) resumes pre-training. A
        fine-tuning checkpoint skips pre-training: its reference lists are rebuilt from the
        pre-trained checkpoint it names (``pretrained_file``), then fine-tuning goes on from
        the saved epoch with the saved model and optimizer.
        """
        checkpoint = load_checkpoint(str(resume_file), map_location=self.device)
        phase = checkpoint.get("phase", "pretrain") if isinstance(checkpoint, dict) else None
        if phase not in ("pretrain", "finetune"):
            raise ValueError(f"checkpoint {resume_file} is not a training checkpoint of RecBole or recbole-finest")
        self._resume = (phase, checkpoint, str(resume_file))
        self.logger.info(f"Checkpoint loaded. Resume {phase} from epoch {checkpoint['epoch'] + 1}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's evaluation; the best checkpoint is reloaded with the plugin's loader."""
        if load_best_model and eval_data:
            self.load_model(model_file or self.saved_model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
