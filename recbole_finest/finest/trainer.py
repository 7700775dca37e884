"""``FinestTrainer``: RecBole's ``Trainer`` plus FINEST's three phases.

1. pre-train with the model's own next-item loss (or load ``pretrained_model_path``);
2. reference lists: top-2K items of every training instance from the pre-trained model;
3. fine-tune ``finest_epochs`` epochs with ``finest_learning_rate``: every epoch the
   training data is perturbed (simulation) and the loss is the model's next-item loss
   plus ``finest_lambda`` times the rank-preserving loss of the unperturbed instances.

Drop-in for RecBole scripts: ``trainer = FinestTrainer(config, model)`` then
``trainer.fit(train_data, valid_data)`` runs all three phases on RecBole's loaders.
The phases are also public (``pretrain``, ``build_reference``, ``finetune``) for the
stability protocol, which trains several models from one initialisation. Plugin keys are
read from ``config.settings`` and the method's :class:`MethodSettings`; the checkpoint
methods live in :mod:`recbole_finest.finest.checkpoints`.
"""

import os

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_finest.config import check_topk
from recbole_finest.data.loader import PREFIX, SEQUENCE, SequenceLoader, eval_batches
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.fileio import new_run_id, run_file
from recbole_finest.finest.loss import rank_preserving_loss
from recbole_finest.finest.method_config import MethodSettings, method_settings
from recbole_finest.finest.reference import ReferenceLists
from recbole_finest.compat.registry import check_single_process, grad_scaler, resume_trainer, start_trainer_phase
from recbole_finest.finest.scoring import SequenceScorer
from recbole_finest.finest.precision import autocast, check_precision
from recbole_finest.finest.checkpoints import CheckpointMixin

PRETRAIN, FINETUNE = "pretrain", "finetune"
SIM_KINDS_PER_EPOCH = ("deletion", "replacement", "insertion")


def resolve_train_unit(config, adapter):
    """``train_unit`` -> ``"sequence"`` or ``"prefix"`` for the model of ``adapter`` (a ``ModelAdapter``)."""
    unit = config.settings.data.train_unit
    supported, model = adapter.sequence_unit, adapter.model
    if unit == "auto":
        return SEQUENCE if supported else PREFIX
    if unit == SEQUENCE and not supported:
        raise ValueError(
            f"train_unit: sequence is not supported by {type(model).__name__} (its hidden states are not "
            f"position-wise causal); use train_unit: prefix or auto"
        )
    return unit


def last_item_ratio(config, unit):
    """Share of BERT4Rec training batches that mask only each row's last item, for ``unit``.

    The prefix unit follows RecBole's ``ft_ratio`` (0.5 in its BERT4Rec.yaml): a last-item
    batch there still has one target per prefix. In the sequence unit such a batch has one
    target per window (5,070 on reddit, against 20% of its 97,934 rows in a masked batch), so
    the plugin's ``sequence_ft_ratio`` (default 0) applies instead (docs/performance.md,
    "BERT4Rec time to accuracy"). Models without a mask ignore it.
    """
    if unit == SEQUENCE:
        return config.settings.data.sequence_ft_ratio
    return (config["ft_ratio"] if "ft_ratio" in config else None) or 0.0


def epoch_perturbation(trainer):
    """Per-epoch perturbation ``f(sequences, epoch)`` of ``trainer``'s method, or None.

    ``f`` perturbs the ``TrainingSequences`` with FINEST's simulation or a baseline's
    perturbation (``finest_sim_ratio``, ``finest_sim_kind``; seeded by the trainer's seed
    and the epoch), then applies the method's ``augment`` hook (APT).
    """
    from recbole_finest.data.perturb import perturb, simulate

    method, settings = trainer.method, trainer.settings
    simulation = method.simulation
    if method.name.startswith("finest") and not settings["finest_simulation"]:
        simulation = None
    if simulation is None and method.augment is None:
        return None
    ratio, kind, seed = settings["finest_sim_ratio"], settings["finest_sim_kind"], trainer.seed
    time_fraction = trainer.config.settings.perturb.time_fraction
    max_len = trainer.config["MAX_ITEM_LIST_LENGTH"]

    def apply(seqs, epoch):
        rng = np.random.default_rng([seed, 104729, epoch])
        epoch_kind = SIM_KINDS_PER_EPOCH[rng.integers(3)] if kind == "random" else kind
        if simulation == "finest":
            seqs = simulate(seqs, ratio, epoch_kind, rng).seqs
        elif simulation is not None:
            seqs = perturb(seqs, simulation, epoch_kind, rng, ratio=ratio, time_fraction=time_fraction,
                           max_len=max_len).seqs
        if method.augment is not None:
            seqs = method.augment(trainer, seqs, epoch)
        return seqs

    return apply


class FinestTrainer(CheckpointMixin, Trainer):
    """RecBole trainer that pre-trains, builds reference lists and fine-tunes with FINEST."""

    def __init__(self, config, model, method=None, run_id=None, seed=None, checkpoint_dir=None):
        """Per-run values are arguments; the ``Config`` is only read.

        Args:
            method: the fine-tuning method: a :class:`~recbole_finest.finest.method_config.MethodSettings`
                (name + its fine-tuning keys), a method name, or None for ``finetune_method``.
            run_id: the run this trainer belongs to (default: a new one, :func:`fileio.new_run_id`).
                Its checkpoints are ``<checkpoint_dir>/<model>-<run_id>/<phase><tag>.pth`` and its
                reference file (``finest_reference_file``) gets ``-<run_id><tag>`` before the
                extension, so concurrent runs and the models of one run never share a file.
            seed: the run's seed (default: ``config["seed"]``): data order and simulation draws.
            checkpoint_dir: folder of the run's checkpoints (default: ``config["checkpoint_dir"]``).
        """
        # RecBole expects ``model.to(config["device"])`` from the caller; a model left on the
        # CPU would fail on the first GPU batch with a device-mismatch error, so move it here.
        model = model.to(config["device"])
        check_single_process(config)
        super().__init__(config, model)
        self.scorer = SequenceScorer(model)
        self.unit = resolve_train_unit(config, self.scorer.adapter)
        self.scorer.ft_ratio = last_item_ratio(config, self.unit)
        self.settings = method if isinstance(method, MethodSettings) else method_settings(config, method)
        self.method = self.settings.method
        self.seed = int(config["seed"] if seed is None else seed)
        # train_precision (fp32 / bf16 autocast): refused or warned about here, before any training
        self.precision = check_precision(config.settings.data.train_precision, self.device, self.enable_amp)
        if self.method.regularizer:  # a library script builds no load_data: fail before pre-training here too
            check_topk(self.settings["finest_topk"], model.n_items)
        self.reference = None
        self.phase = PRETRAIN
        self.tag = ""
        self.run_id = run_id or new_run_id()
        self.checkpoint_dir = checkpoint_dir or self.checkpoint_dir
        self.run_dir = os.path.join(self.checkpoint_dir, f"{config['model']}-{self.run_id}")
        self._sequences_cache = {}
        self.snapshot_epochs, self.snapshots = frozenset(), {}  # finetune(snapshot_epochs=...)
        self.pretrained_file = None  # the checkpoint of the model the reference lists come from
        self._resume = None  # (phase, checkpoint, file) of resume_checkpoint, applied when that phase starts

    # ------------------------------------------------------------------ data
    def sequences_of(self, train_data):
        """``TrainingSequences`` of a RecBole train loader / dataset, a SequenceLoader or sequences."""
        if isinstance(train_data, TrainingSequences):
            return train_data
        if isinstance(train_data, SequenceLoader):
            return train_data.sequences
        dataset = getattr(train_data, "dataset", train_data)
        key = id(dataset)
        if key not in self._sequences_cache:
            self._sequences_cache[key] = TrainingSequences.from_dataset(dataset)
        return self._sequences_cache[key]

    def make_loader(self, train_data, perturb_fn=None):
        dataset = getattr(train_data, "dataset", None)
        return SequenceLoader(dataset, self.sequences_of(train_data), self.config, self.unit, perturb_fn,
                              seed=self.seed, masked=self.scorer.masked)

    def _simulation(self):
        """Per-epoch perturbation of the trainer's method, or None (:func:`epoch_perturbation`)."""
        return epoch_perturbation(self)

    # ------------------------------------------------------------------ phases
    def _start_phase(self, phase, learning_rate, epochs):
        self.phase = phase
        start_trainer_phase(self, learning_rate, epochs)  # RecBole's per-fit attributes (registry.py)
        self.saved_model_file = os.path.join(self.run_dir, f"{phase}{self.tag}.pth")
        if self._resume is not None and self._resume[0] == phase:
            _, checkpoint, resume_file = self._resume
            self._resume = None
            resume_trainer(self, checkpoint, resume_file)  # model, optimizer, epoch: RecBole's resume
            self.logger.info(f"resuming {phase} from {resume_file} at epoch {self.start_epoch}")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """All phases: pre-train (or load ``pretrained_model_path``), then fine-tune.

        Returns RecBole's ``(best_valid_score, best_valid_result)`` of the last phase run.
        """
        path = self.config.settings.finest.pretrained_model_path
        resumed = self._resume[0] if self._resume is not None else None
        if resumed == FINETUNE:
            # the reference lists are those of the pre-trained model the interrupted run started from
            path = self._resume[1].get("pretrained_file")
            if not path or not os.path.isfile(path):
                raise ValueError(f"cannot resume fine-tuning from {self._resume[2]}: the pre-trained checkpoint its "
                                 f"reference lists come from is missing ({path})")
            self.load_model(path, verbose=verbose)
            self.pretrained_file = self.saved_model_file = path
            result = (-1, None)
        elif path and resumed is None:
            self.load_model(path)
            self.pretrained_file = self.saved_model_file = path  # RecBole's evaluate(load_best_model=True) reloads it
            result = (-1, None)
        else:
            result = self.pretrain(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        if not self.config.settings.finest.enabled or not self.method.finetune:
            return result
        return self.finetune(train_data, valid_data, None, verbose, saved, show_progress, callback_fn)

    def pretrain(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """Phase 1: train with the model's own loss, early stopping on ``valid_data``; keeps the best model."""
        self._start_phase(PRETRAIN, self.config["learning_rate"], self.config["epochs"])
        loader = self.make_loader(train_data)
        if verbose:
            self.logger.info(set_color(f"pre-training {self.config['model']} ({self.unit} instances)", "green"))
        result = super().fit(loader, valid_data, verbose, saved, show_progress, callback_fn)
        if saved and valid_data is not None and os.path.isfile(self.saved_model_file):
            self.load_model(self.saved_model_file, verbose=verbose)
        self.pretrained_file = self.saved_model_file if saved and os.path.isfile(self.saved_model_file) else None
        return result

    def build_reference(self, train_data, show_progress=False):
        """Phase 2: reference top-2K lists of every training instance from the current model."""
        seqs = self.sequences_of(train_data)
        k = self.settings["finest_topk"]
        check_topk(k, seqs.n_items)  # references asked of a method without the regularizer
        unit = self.unit  # sequence only for models that score windows (resolve_train_unit)
        path = self.settings["finest_reference_file"]
        path = run_file(path, self.run_id, self.tag) if path else None
        ref = ReferenceLists.empty(int(seqs.ids.max()) + 1, k, seqs.n_items, self.device, path)
        batches = (b.to(self.device) for b in eval_batches(seqs, self.config, unit, self.config["eval_batch_size"],
                                                               masked=self.scorer.masked))
        self.reference = ref.fill(self.scorer, batches, show_progress, precision=self.precision)
        return self.reference

    def finetune(self, train_data, valid_data=None, reference=None, verbose=True, saved=True,
                 show_progress=False, callback_fn=None, snapshot_epochs=()):
        """Phase 3: ``finest_epochs`` epochs of the trainer's method (its settings: ``self.settings``).

        Args:
            reference: ``ReferenceLists`` to preserve (default: built now from the current
                model on ``train_data``'s original sequences). The stability protocol
                passes model A's lists to model B (``reference_protocol: shared``).
            snapshot_epochs: epoch counts e whose states are kept: ``self.snapshots[e]`` is
                a copy of the state dict after the e-th fine-tuning epoch of this run.
        """
        self.snapshot_epochs, self.snapshots = frozenset(int(e) for e in snapshot_epochs), {}
        if reference is not None:
            self.reference = reference
        if self.method.regularizer and self.reference is None:
            self.build_reference(train_data, show_progress)
        self._start_phase(FINETUNE, self.settings["finest_learning_rate"], self.settings["finest_epochs"])
        loader = self.make_loader(train_data, self._simulation())
        if verbose:
            self.logger.info(set_color(f"fine-tuning with {self.method.name} ({self.unit} instances)", "green"))
        select_best = self.settings["finest_select_best"] and valid_data is not None
        result = super().fit(loader, valid_data if select_best else None, verbose, saved, show_progress, callback_fn)
        if select_best and saved and os.path.isfile(self.saved_model_file):
            self.load_model(self.saved_model_file, verbose=verbose)
        elif valid_data is not None:
            valid_result = self.evaluate(valid_data, load_best_model=False, show_progress=show_progress)
            result = (valid_result.get(self.valid_metric), valid_result)
        return result

    # ------------------------------------------------------------------ one epoch
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch over ``SequenceLoader`` batches; returns the summed loss terms (tuple)."""
        self.model.train()
        train_data.set_epoch(epoch_idx)
        batches = train_data
        if show_progress:
            batches = tqdm(train_data, ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
        total = None
        scaler = grad_scaler(self.device, self.enable_scaler)  # RecBole's enable_amp / enable_scaler
        for batch in batches:
            batch = batch.to(self.device)
            self.optimizer.zero_grad()
            with autocast(self.precision, self.device, self.enable_amp):  # bf16, RecBole's enable_amp, or none
                losses = loss_func(batch) if loss_func else self.batch_losses(batch)
            loss = sum(losses)
            scaler.scale(loss).backward()
            if self.clip_grad_norm:
                scaler.unscale_(self.optimizer)
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
            detached = torch.stack([part.detach() for part in losses])
            total = detached if total is None else total + detached
        if total is None:
            raise ValueError("the training split produced no training instances")
        values = tuple(total.tolist())  # one host sync per epoch
        self._check_nan(torch.tensor(sum(values)))
        if self.phase == FINETUNE and epoch_idx + 1 in self.snapshot_epochs:
            self.snapshots[epoch_idx + 1] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return values if len(values) > 1 else values[0]

    def batch_losses(self, batch):
        """``(next_item_loss,)`` or ``(next_item_loss, lambda * rank_loss)`` of one batch."""
        finetuning = self.phase == FINETUNE
        regularize = finetuning and self.method.regularizer
        loss, scores, ids = self.scorer.batch_outputs(batch, self.unit, with_scores=regularize)
        losses = (loss.reshape(()),)  # GCSAN, TransRec return a [1]-shaped loss
        cfg = self.settings
        if regularize:
            rank_loss = rank_preserving_loss(
                scores, self.reference.lookup(ids), cfg["finest_beta1"], cfg["finest_beta2"],
                order_term=self.method.order_term and cfg["finest_order_loss"],
                score_term=self.method.score_term and cfg["finest_score_loss"],
            )
            losses += (cfg["finest_lambda"] * rank_loss,)
        if finetuning and self.method.extra_loss is not None:
            losses += (self.method.extra_loss(self, batch),)
        return losses
