"""APT baseline: fine-tune on data augmented with generated fake user profiles.

APT (Wu et al., SIGIR 2021) trains on the real data plus fake users produced by a
generator. As in the FINEST paper, the generator is data-free model extraction (Yue et
al., RecSys 2021): fake sequences are sampled autoregressively from the model being
fine-tuned, regenerated every fine-tuning epoch:

1. the first item of every fake user is uniform over the real items ``1..n_items-1``;
2. item ``t + 1`` is drawn from ``softmax(scores)`` over the real items, ``scores`` = the
   model's next-item scores (eval mode) given the fake user's last ``MAX_ITEM_LIST_LENGTH``
   items; repeats are allowed (as in the real data).

Knobs: ``apt_fake_users`` (an integer = number of fake users; a number in (0, 1) = that
share of the real training sequences, at least 1) and ``apt_fake_length`` (items per fake
user; ``~`` = the median length of the real training sequences). Fake rows get ids -1
(they are never instances of the rank-preserving loss), user ids after the real ones and
timestamps ``0, 1, 2, ...``. Sampling uses a generator seeded by ``(seed, epoch)``.
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_finest.methods.attacks import eval_mode
from recbole_finest.data.sequences import TrainingSequences


def fake_user_count(value, n_real):
    """Number of fake users from ``apt_fake_users`` (count or share of ``n_real``)."""
    if isinstance(value, float) and value < 1:
        return max(1, int(round(value * n_real)))
    return int(value)


def fake_length(value, seqs):
    """Items per fake user from ``apt_fake_length`` (``None`` = median real length)."""
    if value is None:
        return max(2, int(np.median(seqs.lengths)))
    return value


@torch.no_grad()
def generate_profiles(scorer, n_users, length, config, generator):
    """Sample ``n_users`` sequences of ``length`` items from the model, autoregressively.

    Returns long ``[n_users, length]`` item ids in ``1..n_items-1`` (CPU).
    """
    model = scorer.model
    device = model.item_embedding.weight.device
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    n_items = model.n_items
    time_list = (config["TIME_FIELD"] or "timestamp") + config["LIST_SUFFIX"]
    out = torch.zeros((n_users, length), dtype=torch.long)
    out[:, 0] = torch.randint(1, n_items, (n_users,), generator=generator)
    with eval_mode(model):
        for t in range(1, length):
            start = max(0, t - max_len)
            width = t - start
            seq = torch.zeros((n_users, max_len), dtype=torch.long)
            seq[:, :width] = out[:, start:t]
            times = torch.zeros((n_users, max_len))
            times[:, :width] = torch.arange(start, t, dtype=torch.float32)
            inter = Interaction({
                model.ITEM_SEQ: seq,
                model.ITEM_SEQ_LEN: torch.full((n_users,), width, dtype=torch.long),
                time_list: times,
            }).to(device)
            scores = scorer.last_scores(inter)[:, :n_items].float()
            scores[:, 0] = -torch.inf
            probs = torch.softmax(scores, dim=1).cpu()
            out[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return out


def append_profiles(seqs, profiles):
    """``seqs`` plus one new sequence per row of ``profiles [F, T]`` (ids -1, times 0..T-1)."""
    profiles = np.asarray(profiles, dtype=np.int64)
    n_fake, length = profiles.shape
    first_user = int(seqs.user_ids.max()) + 1 if seqs.n_sequences else 0
    fake_seq = np.repeat(np.arange(seqs.n_sequences, seqs.n_sequences + n_fake), length)
    return TrainingSequences.from_rows(
        np.concatenate([seqs.seq_of_row(), fake_seq]),
        np.concatenate([seqs.items, profiles.reshape(-1)]),
        np.concatenate([seqs.timestamps, np.tile(np.arange(length, dtype=np.float64), n_fake)]),
        np.concatenate([seqs.ids, np.full(n_fake * length, -1, dtype=np.int64)]),
        np.concatenate([seqs.user_ids, np.arange(first_user, first_user + n_fake, dtype=np.int64)]),
        seqs.n_items,
    )


def apt_augment(trainer, seqs, epoch):
    """``augment`` hook of ``apt``: this epoch's sequences plus freshly generated fake users."""
    settings = trainer.settings
    n_fake = fake_user_count(settings["apt_fake_users"], seqs.n_sequences)
    length = fake_length(settings["apt_fake_length"], seqs)
    generator = torch.Generator().manual_seed(trainer.seed * 1_000_003 + 7_919 * int(epoch) + 17)
    profiles = generate_profiles(trainer.scorer, n_fake, length, trainer.config, generator)
    return append_profiles(seqs, profiles.numpy())
