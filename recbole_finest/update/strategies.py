"""Update strategies (v1 -> v2) and the trainer that runs them.

* ``retrain``: v2 from the initial parameters of the run's seed, the model's own loss.
* ``warm_start``: v2 starts from v1's parameters, the model's own loss.
* ``distill``: warm start plus ``weight * T^2 * KL(softmax(v1 / T) || softmax(v2 / T))`` at
  every training instance (Jiang et al., ICLR 2022), v1 frozen in eval mode.
* ``finest``: warm start plus ``weight`` times FINEST's rank-preserving loss toward v1's
  reference lists (top-2K of v1 at every training instance of old + new data, built once
  before fine-tuning), with the perturbation simulation when ``finest_simulation`` is on.
* ``interpolate``: BCWI (Schumann et al. 2023, arXiv 2301.10546): v2's weights are
  ``alpha * v1 + (1 - alpha) * w``, where ``w`` is the ``warm_start`` update of v1 (the same
  training); ``alpha = 1`` is v1, ``alpha = 0`` is ``warm_start``.

Every strategy trains on the same sequences (old + new period) for the same number of
epochs at the same learning rate, from the same RNG seed.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from recbole.trainer import Trainer

from recbole_finest.data.sequences import TARGET_ID
from recbole_finest.finest.loss import rank_preserving_loss
from recbole_finest.methods import get_method
from recbole_finest.finest.scoring import SequenceScorer
from recbole_finest.finest.trainer import FINETUNE, FinestTrainer

STRATEGIES = ("retrain", "warm_start", "distill", "finest", "interpolate")
#: the strength key of each strategy that has one (a number or a list: one v2 per value)
WEIGHTED = {"distill": "update_distill_weight", "finest": "update_finest_weight",
            "interpolate": "update_interpolate_alpha"}


@dataclass(frozen=True)
class Strategy:
    """One way to get v2: ``name`` in ``STRATEGIES``; ``weight`` of its extra term (distill / finest)."""

    name: str
    weight: float = 0.0
    temperature: float = 1.0

    @property
    def warm(self):
        return self.name != "retrain"

    @property
    def trained_as(self):
        """The strategy whose training this one runs (``interpolate`` mixes ``warm_start``'s result)."""
        return Strategy("warm_start") if self.name == "interpolate" else self

    def with_weight(self, weight):
        """This strategy at another strength (the churn budget's search)."""
        return Strategy(self.name, float(weight), self.temperature)

    @property
    def label(self):
        return f"{self.name} ({self.weight:g})" if self.name in WEIGHTED else self.name

    @property
    def slug(self):
        """File-name form of the label (``finest-0.5``)."""
        return f"{self.name}-{self.weight:g}" if self.name in WEIGHTED else self.name


def as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def method_names(value):
    """``update_methods`` as a list of names; the command line's ``"[retrain,finest]"`` (which
    RecBole leaves a string: the names are not Python literals) or ``"retrain,finest"`` too."""
    if isinstance(value, str):
        return [name.strip().strip("'\"") for name in value.strip().strip("[]").split(",") if name.strip()]
    return as_list(value)


def strategies_of(config):
    """The ``Strategy`` list of ``update_methods``: one per weight of ``update_distill_weight`` /
    ``update_finest_weight`` (a number or a list)."""
    out = []
    for name in method_names(config["update_methods"]):
        if name in WEIGHTED:
            out += [Strategy(name, float(w), float(config["update_distill_temperature"]))
                    for w in as_list(config[WEIGHTED[name]])]
        else:
            out.append(Strategy(name))
    return out


def interpolate_states(v1, end, alpha):
    """BCWI: ``alpha * v1 + (1 - alpha) * end`` for every floating tensor of two state dicts.

    Exactly ``v1`` at ``alpha = 1`` and exactly ``end`` at ``alpha = 0``; other tensors
    (integer buffers) are ``end``'s. Both dicts must hold the same names and shapes.
    """
    if set(v1) != set(end):
        raise ValueError("interpolate: the two states hold different parameters")
    out = {}
    for name, b in end.items():
        a = v1[name].to(b.device)
        out[name] = alpha * a + (1.0 - alpha) * b if b.is_floating_point() else b.clone()
    return out


def distillation_loss(student, teacher, temperature=1.0):
    """``T^2 * mean_i KL(softmax(teacher_i / T) || softmax(student_i / T))`` over real items.

    Args:
        student, teacher: float ``[M, n_items]`` scores of the same ``M`` instances; column 0
            (the padding item) is left out of both softmaxes.

    Returns a scalar tensor (zero, with a graph, when ``M == 0``).
    """
    if student.shape[0] == 0:
        return student.sum() * 0.0
    log_q = F.log_softmax(student[:, 1:] / temperature, dim=1)
    log_p = F.log_softmax(teacher[:, 1:].detach() / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


class UpdateTrainer(FinestTrainer):
    """``FinestTrainer`` that trains v1 (early stopping on a ``ValidationSet``) and v2 by a ``Strategy``.

    Args:
        strategy: the ``Strategy`` of v2 (None: v1 / plain training with the model's loss).
        teacher: v1 (``distill``), frozen; its scores are computed in eval mode.
        run_id: the update run this trainer belongs to (names its checkpoint folder).
    """

    def __init__(self, config, model, strategy=None, teacher=None, run_id=None):
        super().__init__(config, model, run_id=run_id)
        self.strategy = strategy or Strategy("retrain")
        self.method = get_method("finest" if self.strategy.name == "finest" else "original")
        self.teacher = None
        if teacher is not None:
            self.teacher = SequenceScorer(teacher.to(self.device).eval())
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.best_epoch = -1

    # ------------------------------------------------------------------ training
    def update(self, sequences, epochs, learning_rate, verbose=True, show_progress=False):
        """Train ``epochs`` epochs on ``sequences`` (``TrainingSequences``) by the strategy."""
        if self.strategy.name == "finest" and self.reference is None:
            self.build_reference(sequences, show_progress)  # the model is still v1 here
        self._start_phase(FINETUNE, learning_rate, epochs)
        loader = self.make_loader(sequences, self._simulation() if self.strategy.name == "finest" else None)
        if verbose:
            self.logger.info(f"update strategy {self.strategy.label}: {epochs} epochs at lr {learning_rate:g} "
                             f"({self.unit} instances)")
        return Trainer.fit(self, loader, None, verbose, saved=False, show_progress=show_progress)

    def teacher_scores(self, batch):
        """v1's scores ``[M, n_items]`` at the instances ``batch_outputs`` returns scores for (ids >= 0)."""
        with torch.no_grad():
            ids = batch[TARGET_ID]
            if ids.dim() == 2:  # windows: the clean window's scores at every known position
                return self.teacher.kept_window_scores(batch)[0]
            return self.teacher.last_scores(batch)[ids >= 0]

    def batch_losses(self, batch):
        """``(next_item_loss,)`` plus ``weight * extra term`` for ``distill`` / ``finest``."""
        name, cfg = self.strategy.name, self.config
        extra = self.phase == FINETUNE and name in WEIGHTED
        loss, scores, ids = self.scorer.batch_outputs(batch, self.unit, with_scores=extra)
        losses = (loss.reshape(()),)
        if extra and name == "finest":
            rank = rank_preserving_loss(scores, self.reference.lookup(ids), cfg["finest_beta1"], cfg["finest_beta2"],
                                        order_term=cfg["finest_order_loss"], score_term=cfg["finest_score_loss"])
            losses += (self.strategy.weight * rank,)
        elif extra:
            losses += (self.strategy.weight * distillation_loss(scores, self.teacher_scores(batch),
                                                                self.strategy.temperature),)
        return losses

    # ------------------------------------------------------------------ RecBole hooks
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """A ``ValidationSet`` is scored here (v1's early stopping); RecBole loaders as usual."""
        if hasattr(eval_data, "contexts"):
            return eval_data.evaluate(self.model, [self.valid_metric], show_progress)
        return super().evaluate(eval_data, load_best_model, model_file, show_progress)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        self.best_epoch = epoch  # RecBole's fit saves on every new best validation score
        super()._save_checkpoint(epoch, verbose, **kwargs)
