"""benchmarks/_flops.py counts the matmul FLOP torch itself counts; benchmarks/_matmul.py charges them.

The scale benchmark's FLOP per phase comes from a formula applied to the shapes SASRec
ran (``_flops.FlopCounter``). Here that count is compared with
``torch.utils.flop_counter.FlopCounterMode`` (which counts every ``mm`` / ``bmm`` / ``addmm``
dispatched, backward included) on a real RecBole SASRec: a training batch of the sequence
unit (forward + backward through ``SequenceScorer.batch_outputs``) and RecBole's
``full_sort_predict`` (evaluation), and the phase attribution is checked.
"""

import os
import sys

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender.sasrec import SASRec
from torch.utils.flop_counter import FlopCounterMode

from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ
from recbole_finest.finest.scoring import SequenceScorer

from conftest import FakeDataset, model_only_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from _flops import FlopCounter, encoder_flop, output_flop  # noqa: E402
from _matmul import bound_seconds, model_shapes  # noqa: E402

N_ITEMS, MAX_LEN, H, INNER, LAYERS = 37, 7, 16, 24, 2


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = model_only_config(MAX_LEN, 0.2, n_layers=LAYERS, n_heads=2, hidden_size=H, embedding_size=H,
                               inner_size=INNER)
    return SASRec(config, FakeDataset(N_ITEMS))


@pytest.fixture
def counter():
    phase = {"now": "training"}
    c = FlopCounter(lambda: phase["now"])
    undo = c.install()
    yield c, phase
    undo()


def window_batch(width=5, rows=3):
    """Window instances cut to ``width``: inputs, their next items (0 = pad) and target ids."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([width, 2, 4][:rows])
    seq = torch.zeros((rows, width), dtype=torch.long)
    target = torch.zeros_like(seq)
    for r in range(rows):
        seq[r, : lengths[r]] = torch.randint(1, N_ITEMS, (int(lengths[r]),), generator=g)
        target[r, : lengths[r]] = torch.randint(1, N_ITEMS, (int(lengths[r]),), generator=g)
    ids = torch.where(target > 0, torch.arange(seq.numel()).view(seq.shape), -1)
    return Interaction({"item_id_list": seq, "item_length": lengths, TARGET_SEQ: target, TARGET_ID: ids,
                        "item_id": target[torch.arange(rows), lengths - 1], "user_id": torch.arange(rows)})


def test_training_batch_flop_equal_torch_count(model, counter):
    c, _ = counter
    scorer = SequenceScorer(model)
    batch = window_batch()
    with FlopCounterMode(display=False) as torch_count:
        loss, scores, _ = scorer.batch_outputs(batch, "sequence")
        loss.backward()
    ours = c.flop["training"]
    assert set(ours) == {"encoder_train", "output_train"}
    assert sum(ours.values()) == torch_count.get_total_flops()
    # the formula by hand: 3 rows x width 5 through the encoder, 11 targets scored
    b, w = batch["item_id_list"].shape
    assert ours["encoder_train"] == 3 * encoder_flop(b, w, H, H, INNER, LAYERS)
    assert ours["output_train"] == 3 * output_flop(int((batch[TARGET_SEQ] > 0).sum()), H, N_ITEMS)
    assert scores.shape == (11, N_ITEMS)


def test_evaluation_flop_equal_torch_count_and_go_to_the_running_phase(model, counter):
    c, phase = counter
    model.eval()
    phase["now"] = "evaluation"
    g = torch.Generator().manual_seed(2)
    inter = Interaction({"item_id_list": torch.randint(1, N_ITEMS, (4, MAX_LEN), generator=g),
                         "item_length": torch.tensor([7, 3, 1, 5])})
    with torch.no_grad(), FlopCounterMode(display=False) as torch_count:
        model.full_sort_predict(inter)
    assert c.flop == {"evaluation": {"encoder_fwd": encoder_flop(4, MAX_LEN, H, H, INNER, LAYERS),
                                     "output_fwd": output_flop(4, H, N_ITEMS)}}
    assert sum(c.flop["evaluation"].values()) == torch_count.get_total_flops()
    snap = c.snapshot()
    phase["now"] = None
    with torch.no_grad():
        model.full_sort_predict(inter)
    assert c.since(snap) == {"other": c.flop["evaluation"]}


def test_install_undo_restores_the_classes(model):
    before = SASRec.full_sort_predict, SequenceScorer.item_logits
    undo = FlopCounter(lambda: None).install()
    assert SASRec.full_sort_predict is not before[0]
    undo()
    assert (SASRec.full_sort_predict, SequenceScorer.item_logits) == before


def test_bound_seconds_charges_each_kind_at_its_rate():
    rates = {"score eval": 10.0, "score train": 20.0, "score grad input": 40.0, "score grad weight": 5.0,
             "encoder": 2.0, "square": 100.0}
    flop = {"output_fwd": 30e9, "output_train": 60e9, "encoder_fwd": 1e9, "encoder_train": 3e9}
    # 30/10 + 20/20 + 20/40 + 20/5 + 4/2
    assert bound_seconds(flop, rates) == pytest.approx(3 + 1 + 0.5 + 4 + 2)
    assert model_shapes(64, 256, 2000, 1024, 2048)["score grad weight"] == (2000, 1024, 64)
