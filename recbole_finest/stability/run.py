"""The Rank List Stability protocol (spec section 3): model A vs model B.

A is trained on the original training split, B on a perturbed copy, both from the same
initial parameters and the same seeds. Their rank lists on identical test inputs (built
from the original history by RecBole's test loader) are compared with RBO and Jaccard@k.
The run reports Original (A_pre vs B_pre) and the fine-tuning method (A_pre+method vs
B_pre+method) side by side with next-item accuracy.
"""

import copy
from dataclasses import dataclass
from logging import getLogger

import numpy as np
from recbole.utils import init_seed, set_color

from recbole_finest.config import check_dataset_limits
from recbole_finest.data.perturb import perturb
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.fileio import new_run_id
from recbole_finest.finest.method_config import method_settings
from recbole_finest.stability.evaluate import (  # noqa: F401  (re-exported: the comparison's public names)
    ACCURACY_KEYS, EvalOutput, compare_instances, compare_models, evaluate_model, eval_scores, target_ranks,
    test_outputs, test_rank_lists,
)
from recbole_finest.stability.states import ModelStates
from recbole_finest.finest.trainer import FinestTrainer
from recbole_finest.compat.models import get_model
from recbole_finest.report.labels import epoch_label  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Perturbation:
    """The evaluation perturbation of model B's training data (a per-run value).

    ``selection`` / ``kind`` as in :func:`recbole_finest.data.perturb.perturb`; ``count``
    interactions when given, else the share ``ratio``.
    """

    selection: str
    kind: str
    ratio: float
    count: int = None

    @classmethod
    def of(cls, config):
        """The ``perturb_selection`` / ``perturb_kind`` / ``perturb_ratio`` / ``perturb_count`` of ``config``."""
        return cls(config["perturb_selection"], config["perturb_kind"], config["perturb_ratio"],
                   config["perturb_count"])


def perturbed_sequences(config, sequences, seed=None, perturbation=None):
    """The evaluation perturbation of the training split for model B (``perturb_*`` keys)."""
    seed = config["seed"] if seed is None else seed
    p = Perturbation.of(config) if perturbation is None else perturbation
    rng = np.random.default_rng([int(seed), 2718])
    return perturb(
        sequences, p.selection, p.kind, rng, ratio=None if p.count else p.ratio, count=p.count,
        replace_with=config["perturb_replace_with"], insert_with=config["perturb_insert_with"],
        time_fraction=config["perturb_time_fraction"], max_len=config["MAX_ITEM_LIST_LENGTH"],
        casper_roots_only=config["casper_roots_only"], casper_method=config["casper_method"],
        casper_exact_max_nodes=config["casper_exact_max_nodes"],
    )


class StabilityRun:
    """Models A and B of one seed: pre-trained once, fine-tuned by any number of methods.

    ``pretrain()`` returns the Original row, ``finetune(method)`` the row of ``method``
    (pre-training first if needed). Every row is the mean over test instances; the
    per-instance values of the last call are kept in ``instances[method]`` (numpy arrays
    ``rbo [N]``, ``jaccard@k [N]``, ``frbo@k [N]``, ``rr_a`` / ``rr_b [N]`` reciprocal ranks of A / B,
    ``user [N]`` internal user ids).

    ``finetune(method, epochs)`` also evaluates the states after the given earlier
    fine-tuning epochs of the same run (no extra training): their rows and per-instance
    values are ``rows`` / ``instances[epoch_label(method, e)]``.

    Args:
        shared: optional dict shared by every run of the same model, seed and settings
            but different evaluation perturbations. Model A does not depend on the
            perturbation, so its pre-trained / fine-tuned states, test outputs and
            reference lists are computed once and kept there.
        state_path: optional ``f(side, stage) -> path or None`` (side ``"A"`` / ``"B"``,
            stage ``"pretrained"`` or a method name). A state dict found there is loaded
            instead of training; a trained one is saved there (atomically), so an
            interrupted study never trains a model twice.
        method_overrides: optional ``{method: {key: value}}`` of fine-tuning keys that differ
            per method (``study_method_config``, a trial's budget); a method fine-tunes with
            its :class:`~recbole_finest.finest.method_config.MethodSettings`.
        seed: the run's seed (default: ``config["seed"]``).
        perturbation: model B's :class:`Perturbation` (default: the ``perturb_*`` keys).
        checkpoint_dir: folder of the trainers' checkpoints (default: ``checkpoint_dir``).
    """

    def __init__(self, config, train_data, valid_data, test_data, saved=True, show_progress=False,
                 shared=None, state_path=None, run_id=None, method_overrides=None, seed=None, perturbation=None,
                 checkpoint_dir=None):
        self.config = config
        self.seed = int(config["seed"] if seed is None else seed)
        self.checkpoint_dir = checkpoint_dir
        self.run_id = run_id or new_run_id()  # names every checkpoint / reference file of this run
        self.valid_data, self.test_data = valid_data, test_data
        self.saved, self.show_progress = saved, show_progress
        self.logger = getLogger()
        self.dataset = train_data.dataset
        check_dataset_limits(config, self.dataset.item_num)  # before any training
        self.seqs_a = TrainingSequences.from_dataset(self.dataset)
        self.perturbation = perturbed_sequences(config, self.seqs_a, self.seed, perturbation)
        self.seqs_b = self.perturbation.seqs
        self.model_cls = get_model(config["model"])
        self.shared = {} if shared is None else shared
        self.states = ModelStates(self.shared, state_path, config["device"])
        self.sides = self.states.sides
        self.method_overrides = method_overrides or {}
        self.instances, self.rows = {}, {}
        self._initial_state = None

    @property
    def initial_state(self):
        """State dict of the seed's initial parameters (shared by A and B)."""
        if self._initial_state is None:
            init_seed(self.seed, self.config["reproducibility"])
            self._initial_state = copy.deepcopy(self.model_cls(self.config, self.dataset).state_dict())
        return self._initial_state

    @property
    def pretrained(self):
        """``{side: state dict}`` of the pre-trained models available so far (settable: not trained again)."""
        return self.states.pretrained

    @pretrained.setter
    def pretrained(self, states):
        self.states.pretrained = states

    def _build_model(self, state):
        """A model of this run's class with ``state``, on the config's device."""
        model = self.model_cls(self.config, self.dataset).to(self.config["device"])
        model.load_state_dict(state)
        return model

    def _trainer(self, state, tag, settings=None):
        """A trainer of ``state`` fine-tuning with ``settings`` (default: ``finetune_method``'s)."""
        trainer = FinestTrainer(self.config, self._build_model(state), method=settings, run_id=self.run_id,
                                seed=self.seed, checkpoint_dir=self.checkpoint_dir)
        trainer.tag = tag
        return trainer

    def _eval_model(self, state):
        """A model with ``state`` on the config's device (eval mode), for the comparison."""
        return self._build_model(state).eval()

    def _seqs(self, side):
        return self.seqs_a if side == "A" else self.seqs_b

    def _model(self, side, stage, train, snapshots=None, settings=None):
        """Outputs of ``side`` after ``stage`` (and ``snapshots``): :meth:`ModelStates.outputs`."""
        return self.states.outputs(side, stage, train, snapshots)

    def pretrain(self):
        """Pre-train A and B from the same initial parameters and seed; evaluate both."""
        out = {}
        for side in ("A", "B"):
            def train(side=side):
                trainer = self._trainer(self.initial_state, f"-{side}")
                path = self.config["pretrained_model_path"]
                if side == "A" and path:
                    self.logger.info(set_color(f"model A: loading {path} (pretrained_model_path)", "yellow")
                                     + "; model B is pre-trained from the seed's initial parameters on the "
                                       "perturbed data, as without it")
                    trainer.load_model(path)
                    return trainer
                init_seed(self.seed, self.config["reproducibility"])
                self.logger.info(set_color(f"model {side}: pre-training", "yellow"))
                trainer.pretrain(self._seqs(side), self.valid_data, saved=self.saved,
                                 show_progress=self.show_progress)
                return trainer

            out[side] = self._model(side, "pretrained", train)["pretrained"]
        return self._row("original", out)

    def _reference(self, side, settings):
        """Reference lists of the pre-trained ``side`` on its own training sequences (per ``finest_topk``)."""
        cache = self.sides[side]
        key = ("reference", settings["finest_topk"])
        if key not in cache:
            trainer = self._trainer(cache["states"]["pretrained"], f"-{side}-ref", settings)
            cache[key] = trainer.build_reference(self._seqs(side), self.show_progress)
        return cache[key]

    def method_settings(self, method):
        """The :class:`~recbole_finest.finest.method_config.MethodSettings` ``method`` fine-tunes with (its overrides)."""
        return method_settings(self.config, method, self.method_overrides.get(method))

    def finetune(self, method, epochs=()):
        """Fine-tune A_pre and B_pre with ``method``; returns the result row.

        Args:
            epochs: fine-tuning epoch counts below the method's ``finest_epochs`` whose
                intermediate states are evaluated too (rows in ``self.rows``, per-instance
                values in ``self.instances``, both under ``epoch_label(method, e)``).
        """
        if method == "original":
            return self.pretrain()
        if len(self.pretrained) < 2:
            self.pretrain()
        cfg = self.method_settings(method)
        epochs = sorted({int(e) for e in epochs})
        if epochs and not 0 < epochs[0] <= epochs[-1] < cfg["finest_epochs"]:
            raise ValueError(f"{method}: evaluation epochs {epochs} must lie in 1..{cfg['finest_epochs'] - 1} "
                             f"(below its finest_epochs)")
        if epochs and cfg["finest_select_best"]:
            raise ValueError(f"{method}: evaluation epochs need finest_select_best: False (the best-validation "
                             f"model is not the state after a given epoch)")
        outs, protocol = {e: {} for e in epochs}, self.config["reference_protocol"]
        out = {}
        for side in ("A", "B"):
            def train(side=side):
                trainer = self._trainer(self.sides[side]["states"]["pretrained"], f"-{side}-{method}", cfg)
                reference = None
                if trainer.method.regularizer:
                    reference = self._reference("A" if protocol == "shared" else side, cfg)
                init_seed(self.seed + 1, self.config["reproducibility"])
                self.logger.info(set_color(f"model {side}: fine-tuning with {method}", "yellow"))
                if trainer.method.finetune:
                    trainer.finetune(self._seqs(side), self.valid_data, reference, saved=self.saved,
                                     show_progress=self.show_progress, snapshot_epochs=epochs)
                return trainer

            # A always preserves its own lists; B's fine-tuned model depends on the protocol
            independent = side == "B" and protocol == "independent" and cfg.method.regularizer
            stage = f"{method}@independent" if independent else method
            snapshots = {e: epoch_label(stage, e) for e in epochs}
            outputs = self._model(side, stage, train, snapshots, cfg)
            out[side] = outputs[stage]
            for e in epochs:
                outs[e][side] = outputs[snapshots[e]]
        for e in epochs:
            self._row(epoch_label(method, e), outs[e])
        return self._row(method, out)

    def _row(self, method, out):
        a, b = out["A"], out["B"]
        compared = compare_models(self._eval_model(a.state), self._eval_model(b.state), self.test_data,
                                  self.config, self.show_progress)
        k = f"jaccard@{self.config['jaccard_k']}"
        rr_a = 1.0 / (compared["rank_a"].double() + 1)
        rr_b = 1.0 / (compared["rank_b"].double() + 1)
        f = f"frbo@{self.config['frbo_k']}"
        self.instances[method] = {
            "rbo": compared["rbo"].numpy(), k: compared[k].numpy(), f: compared[f].numpy(),
            "rr_a": rr_a.numpy(), "rr_b": rr_b.numpy(), "user": compared["user"].numpy(),
        }
        row = {"method": method, "rbo": float(compared["rbo"].mean()), k: float(compared[k].mean()),
               f: float(compared[f].mean())}
        results = {"A": {**compared["result_a"], "mrr": float(rr_a.mean())},
                   "B": {**compared["result_b"], "mrr": float(rr_b.mean())}}
        for key in ACCURACY_KEYS:
            if key in results["A"]:
                row[key] = results["A"][key]
                row[f"{key} (B)"] = results["B"][key]
        self.rows[method] = row
        return row


def run_stability(config, train_data, valid_data, test_data, saved=True, show_progress=False, run_id=None,
                  method=None, seed=None, perturbation=None):
    """Original vs ``method`` (default: ``finetune_method``) on one seed; returns a results dict (rows + settings).

    ``seed`` / ``perturbation`` default to ``seed`` and the ``perturb_*`` keys.
    """
    method = config["finetune_method"] if method is None else method
    perturbation = Perturbation.of(config) if perturbation is None else perturbation
    seed = int(config["seed"] if seed is None else seed)
    run = StabilityRun(config, train_data, valid_data, test_data, saved, show_progress, run_id=run_id,
                       seed=seed, perturbation=perturbation)
    rows = [run.pretrain()]
    if method != "original":
        rows.append(run.finetune(method))
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": seed,
        "pretrained_model_path": config["pretrained_model_path"],
        "reference_protocol": config["reference_protocol"],
        "perturbation": {
            "selection": perturbation.selection,
            "kind": perturbation.kind,
            "n_perturbed": int(len(run.perturbation.selected_ids)),
            "n_training_interactions": int(run.seqs_a.n_rows),
        },
        "rows": rows,
    }


def format_table(rows, keys=None):
    """Markdown table of result rows (one per method); default columns: RBO, every FRBO@k and Jaccard@k, accuracy."""
    if keys is None:
        by_k = lambda name: sorted({k for r in rows for k in r if k.startswith(name)}, key=lambda k: int(k[len(name):]))
        keys = ("rbo", *by_k("frbo@"), *by_k("jaccard@"), "mrr", "recall@10", "ndcg@10")
    keys = [k for k in keys if any(k in r for r in rows)]
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in keys) + " |")
    return "\n".join(lines)
