"""The prefix-free sequential dataset gives RecBole's prefix inputs without storing them (issue 19).

``registry.create_dataset`` builds ``PrefixFreeSequentialDataset`` for sequential models:
per row only where its list starts in the per-user arrays; the lists of a batch are built
when a loader indexes the dataset. Its train / valid / test loaders must yield exactly
RecBole's ``SequentialDataset`` batches (``item_id_list``, ``timestamp_list``,
``item_length``, targets, users), and the training sequences must be the same.
"""
import contextlib

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_finest.compat import registry
from recbole_finest.config import Config
from recbole_finest.data.sequences import TrainingSequences
from recbole_finest.utils import get_model
from conftest import tiny

TINY = tiny(drop=("epochs", "finest_epochs", "finest_topk", "seed"),
            user_inter_num_interval="[100,inf)", train_batch_size=256, eval_batch_size=128)


def recbole_sequential_dataset(config):
    """RecBole's ``SequentialDataset`` (stored prefix lists) with the plugin's exact timestamps.

    The prefix-free dataset reads the time field as float64 (issue 41: RecBole's float32 turns
    ml-100k's raw seconds into 64-second steps and reorders same-user interactions); the
    reference keeps everything else RecBole's, so the two must agree exactly.
    """
    from recbole.data.dataset import SequentialDataset

    from recbole_finest.compat.timestamps import ExactTimeMixin

    return type("ExactTimeSequentialDataset", (ExactTimeMixin, SequentialDataset), {})(config)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """``{name: (config, dataset, (train, valid, test))}`` for RecBole's and the prefix-free dataset."""
    out = {}
    with contextlib.chdir(tmp_path_factory.mktemp("prefix_free")):
        config = Config("SASRec", "ml-100k", config_dict=TINY)
        for name, make in (("recbole", recbole_sequential_dataset), ("prefix_free", registry.create_dataset)):
            init_seed(config["seed"], config["reproducibility"])
            dataset = make(config)
            out[name] = (config, dataset, data_preparation(config, dataset))
    return out


def test_create_dataset_picks_the_prefix_free_class_for_sequential_models(both):
    config, dataset, _ = both["prefix_free"]
    assert registry.uses_prefix_free_dataset(config)
    assert type(dataset).__name__ == "PrefixFreeSequentialDataset"
    reference = both["recbole"][1]
    assert "SequentialDataset" in [c.__name__ for c in type(reference).__mro__]
    assert not isinstance(reference, registry.PrefixFreeSequentialDataset)


def test_no_per_prefix_lists_are_stored(both):
    config, dataset, splits = both["prefix_free"]
    rb_config, rb_dataset, rb_splits = both["recbole"]
    list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    assert list_field in rb_dataset.inter_feat.interaction
    for ds in [dataset] + [s.dataset for s in splits]:
        stored = ds.inter_feat.interaction
        assert list_field not in stored
        assert all(v.dim() == 1 for v in stored.values())  # O(rows) columns only
    assert len(dataset) == len(rb_dataset)


def _batches(loader):
    for batch in loader:
        yield batch[0] if isinstance(batch, tuple) else batch


@pytest.mark.parametrize("split", [0, 1, 2], ids=["train", "valid", "test"])
def test_loader_batches_equal_recbole_prefix_inputs(both, split):
    config, _, splits = both["prefix_free"]
    _, _, rb_splits = both["recbole"]
    fields = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"],
              config["TIME_FIELD"] + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"], config["TIME_FIELD"]]
    init_seed(3, True)
    ours = list(_batches(splits[split]))
    init_seed(3, True)
    theirs = list(_batches(rb_splits[split]))
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        for field in fields:
            assert a[field].dtype == b[field].dtype, field
            assert torch.equal(a[field], b[field]), field
        assert registry.HISTORY_START_FIELD not in a.interaction
    # the lists are not trivial: long histories are cut to the last max_len items
    lengths = torch.cat([b[config["ITEM_LIST_LENGTH_FIELD"]] for b in ours])
    assert lengths.max() == config["MAX_ITEM_LIST_LENGTH"] and lengths.min() >= 1


def test_training_sequences_and_scores_equal(both):
    config, dataset, splits = both["prefix_free"]
    _, _, rb_splits = both["recbole"]
    ours, theirs = TrainingSequences.from_dataset(splits[0].dataset), TrainingSequences.from_dataset(rb_splits[0].dataset)
    for attr in ("offsets", "user_ids", "items", "timestamps", "ids"):
        np.testing.assert_array_equal(getattr(ours, attr), getattr(theirs, attr))
    init_seed(1, True)
    model = get_model("SASRec")(config, splits[2].dataset).eval()
    with torch.no_grad():
        for (a, *_), (b, *_) in zip(splits[2], rb_splits[2]):
            assert torch.equal(model.full_sort_predict(a), model.full_sort_predict(b))


def test_inter_matrix_equals_recbole(both):
    _, dataset, _ = both["prefix_free"]
    _, rb_dataset, _ = both["recbole"]
    assert (dataset.inter_matrix(form="csr") != rb_dataset.inter_matrix(form="csr")).nnz == 0


def test_class_is_reachable_by_name(both):
    assert isinstance(both["prefix_free"][1], registry.PrefixFreeSequentialDataset)


def test_dataset_pickles_and_still_builds_lists(both):
    import pickle

    config, dataset, splits = both["prefix_free"]
    test_ds = splits[2].dataset
    clone = pickle.loads(pickle.dumps(test_ds))
    list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    assert torch.equal(clone[np.arange(5)][list_field], test_ds[np.arange(5)][list_field])
