"""The Rank List Stability protocol (spec section 3): model A vs model B.

A is trained on the original training split, B on a perturbed copy, both from the same
initial parameters and the same seeds. Their rank lists on identical test inputs (built
from the original history by RecBole's test loader) are compared with RBO and Jaccard@k.
The run reports Original (A_pre vs B_pre) and the fine-tuning method (A_pre+method vs
B_pre+method) side by side with next-item accuracy.
"""

import copy
from logging import getLogger

import numpy as np
import torch
from recbole.utils import init_seed, set_color

from recbole_finest.data.perturb import perturb
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.metrics import jaccard, rank_lists, rbo
from recbole_finest.trainer import FinestTrainer
from recbole_finest.utils import get_model

ACCURACY_KEYS = ("mrr", "mrr@10", "recall@10", "ndcg@10")


@torch.no_grad()
def test_rank_lists(model, eval_data, depth=None):
    """Rank lists and target ranks of every eval instance.

    Returns ``(lists [N, depth] long, target_rank [N] long)``: ``target_rank`` is the
    0-based position of the instance's next item in the full ranking.
    """
    model.eval()
    lists, ranks = [], []
    for interaction, _, _, positive_i in eval_data:
        interaction = interaction.to(model.device)
        scores = model.full_sort_predict(interaction).view(len(positive_i), -1)
        scores[:, 0] = -torch.inf
        target = positive_i.to(scores.device)
        ranks.append((scores > scores.gather(1, target[:, None])).sum(1))
        lists.append(rank_lists(scores, depth))
    return torch.cat(lists), torch.cat(ranks)


def evaluate(trainer, eval_data, depth=None):
    """Accuracy metrics of a trained model and its rank lists on ``eval_data``."""
    result = dict(trainer.evaluate(eval_data, load_best_model=False))
    lists, ranks = test_rank_lists(trainer.model, eval_data, depth)
    result["mrr"] = float((1.0 / (ranks.double() + 1)).mean())
    return result, lists


def compare(lists_a, lists_b, config):
    """RLS of two models: mean RBO and Jaccard@k over instances."""
    k = config["jaccard_k"]
    return {
        "rbo": float(rbo(lists_a, lists_b, p=config["rbo_p"]).mean()),
        f"jaccard@{k}": float(jaccard(lists_a, lists_b, k=k).mean()),
    }


def perturbed_sequences(config, sequences):
    """The evaluation perturbation of the training split for model B (``perturb_*`` keys)."""
    rng = np.random.default_rng([int(config["seed"]), 2718])
    return perturb(
        sequences, config["perturb_selection"], config["perturb_kind"], rng,
        ratio=None if config["perturb_count"] else config["perturb_ratio"],
        count=config["perturb_count"],
        replace_with=config["perturb_replace_with"], insert_with=config["perturb_insert_with"],
        time_fraction=config["perturb_time_fraction"], max_len=config["MAX_ITEM_LIST_LENGTH"],
        casper_roots_only=config["casper_roots_only"],
    )


class StabilityRun:
    """Models A and B of one seed: pre-trained once, fine-tuned by any number of methods."""

    def __init__(self, config, train_data, valid_data, test_data, saved=True, show_progress=False):
        self.config = config
        self.valid_data, self.test_data = valid_data, test_data
        self.saved, self.show_progress = saved, show_progress
        self.logger = getLogger()
        self.dataset = train_data.dataset
        self.seqs_a = TrainingSequences.from_dataset(self.dataset)
        self.perturbation = perturbed_sequences(config, self.seqs_a)
        self.seqs_b = self.perturbation.seqs
        init_seed(config["seed"], config["reproducibility"])
        model_cls = get_model(config["model"])
        self.initial_state = copy.deepcopy(model_cls(config, self.dataset).state_dict())
        self.model_cls = model_cls
        self.pretrained = {}
        self.reference = {}

    def _trainer(self, state, tag):
        model = self.model_cls(self.config, self.dataset).to(self.config["device"])
        model.load_state_dict(state)
        trainer = FinestTrainer(self.config, model)
        trainer.tag = tag
        return trainer

    def _seqs(self, side):
        return self.seqs_a if side == "A" else self.seqs_b

    def pretrain(self):
        """Pre-train A and B from the same initial parameters and seed; evaluate both."""
        out = {}
        for side in ("A", "B"):
            trainer = self._trainer(self.initial_state, f"-{side}")
            init_seed(self.config["seed"], self.config["reproducibility"])
            self.logger.info(set_color(f"model {side}: pre-training", "yellow"))
            trainer.pretrain(self._seqs(side), self.valid_data, saved=self.saved, show_progress=self.show_progress)
            self.pretrained[side] = copy.deepcopy(trainer.model.state_dict())
            out[side] = evaluate(trainer, self.test_data, self.config["rbo_depth"])
        return self._row("original", out)

    def finetune(self, method):
        """Fine-tune A_pre and B_pre with ``method``; returns the result row."""
        if not self.pretrained:
            self.pretrain()
        cfg = self.config
        cfg["finetune_method"] = method
        out = {}
        for side in ("A", "B"):
            trainer = self._trainer(self.pretrained[side], f"-{side}-{method}")
            reference = None
            if trainer.method.regularizer:
                ref_side = "A" if cfg["reference_protocol"] == "shared" else side
                if ref_side not in self.reference:
                    ref_trainer = self._trainer(self.pretrained[ref_side], f"-{ref_side}-ref")
                    self.reference[ref_side] = ref_trainer.build_reference(self._seqs(ref_side), self.show_progress)
                reference = self.reference[ref_side]
            init_seed(cfg["seed"] + 1, cfg["reproducibility"])
            self.logger.info(set_color(f"model {side}: fine-tuning with {method}", "yellow"))
            if trainer.method.finetune:
                trainer.finetune(self._seqs(side), self.valid_data, reference, saved=self.saved,
                                 show_progress=self.show_progress)
            out[side] = evaluate(trainer, self.test_data, cfg["rbo_depth"])
        return self._row(method, out)

    def _row(self, method, out):
        (acc_a, lists_a), (acc_b, lists_b) = out["A"], out["B"]
        row = {"method": method, **compare(lists_a, lists_b, self.config)}
        for key in ACCURACY_KEYS:
            if key in acc_a:
                row[key] = acc_a[key]
                row[f"{key} (B)"] = acc_b[key]
        return row


def run_stability(config, train_data, valid_data, test_data, saved=True, show_progress=False):
    """Original vs ``finetune_method`` on one seed; returns a results dict (rows + settings)."""
    method = config["finetune_method"]
    run = StabilityRun(config, train_data, valid_data, test_data, saved, show_progress)
    rows = [run.pretrain()]
    if method != "original":
        rows.append(run.finetune(method))
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "reference_protocol": config["reference_protocol"],
        "perturbation": {
            "selection": config["perturb_selection"],
            "kind": config["perturb_kind"],
            "n_perturbed": int(len(run.perturbation.selected_ids)),
            "n_training_interactions": int(run.seqs_a.n_rows),
        },
        "rows": rows,
    }


def format_table(rows, keys=("rbo", "jaccard@10", "mrr", "recall@10", "ndcg@10")):
    """Markdown table of result rows (one per method)."""
    keys = [k for k in keys if any(k in r for r in rows)]
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in keys) + " |")
    return "\n".join(lines)
