"""Training batches built from ``TrainingSequences`` each epoch.

``SequenceLoader`` stands in for RecBole's training ``DataLoader`` inside
``FinestTrainer``: it keeps the RecBole training dataset (``.dataset``, used by RecBole's
collector), rebuilds the instances every epoch from the current (possibly perturbed)
sequences and yields shuffled ``Interaction`` batches.
"""

import numpy as np
import torch

from recbole_finest.data.sequences import take

SEQUENCE = "sequence"
PREFIX = "prefix"


class SequenceLoader:
    """Iterable of training batches over ``TrainingSequences``.

    Args:
        dataset: the RecBole training dataset the sequences came from.
        sequences: ``TrainingSequences``.
        config: RecBole config (field names, ``MAX_ITEM_LIST_LENGTH``, batch size, seed).
        unit: ``"sequence"`` (window instances, every target scored once) or ``"prefix"``.
        perturb_fn: optional ``f(sequences, epoch) -> sequences``, the per-epoch
            perturbation simulation.

    In sequence mode a batch holds about as many *targets* as a prefix batch of
    ``train_batch_size`` instances: ``windows per batch = train_batch_size * W / T``.
    """

    def __init__(self, dataset, sequences, config, unit, perturb_fn=None):
        self.dataset = dataset
        self.sequences = sequences
        self.config = config
        self.unit = unit
        self.perturb_fn = perturb_fn
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        self.batch_size = config["train_batch_size"]
        self.epoch = 0
        self.current = sequences

    def set_epoch(self, epoch):
        self.epoch = epoch

    def instances(self, sequences=None):
        """All instances of ``sequences`` (default: this epoch's) as one Interaction."""
        seqs = self.current if sequences is None else sequences
        if self.unit == SEQUENCE:
            return seqs.window_instances(self.max_len, self.config)
        return seqs.prefix_instances(self.max_len, self.config)

    def _rows_per_batch(self, inter, seqs):
        if self.unit == PREFIX:
            return self.batch_size
        n_targets = max(1, int(np.maximum(seqs.lengths - 1, 0).sum()))
        return max(1, round(self.batch_size * len(inter) / n_targets))

    def __iter__(self):
        seqs = self.sequences if self.perturb_fn is None else self.perturb_fn(self.sequences, self.epoch)
        self.current = seqs
        inter = self.instances(seqs)
        if self.config["loss_type"] == "BPR" and self.unit == PREFIX:
            n_items = seqs.n_items
            gen = torch.Generator().manual_seed(int(self.config["seed"]) * 1000003 + self.epoch)
            inter.update(type(inter)({
                self.config["NEG_PREFIX"] + self.config["ITEM_ID_FIELD"]:
                    torch.randint(1, n_items, (len(inter),), generator=gen)
            }))
        gen = torch.Generator().manual_seed(int(self.config["seed"]) * 7919 + self.epoch)
        order = torch.randperm(len(inter), generator=gen)
        step = self._rows_per_batch(inter, seqs)
        for start in range(0, len(inter), step):
            yield take(inter, order[start:start + step])


def eval_batches(sequences, config, unit, batch_size):
    """Unshuffled batches of all instances of ``sequences`` for scoring (reference lists)."""
    loader = SequenceLoader(None, sequences, config, unit)
    inter = loader.instances()
    step = batch_size if unit == PREFIX else max(1, batch_size // config["MAX_ITEM_LIST_LENGTH"])
    for start in range(0, len(inter), step):
        yield take(inter, slice(start, start + step))
