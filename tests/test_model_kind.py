"""The model-kind adapter on real RecBole models (and the plugin's TiSASRec).

* The kind of each model, from its capabilities or the registry (not from its name).
* The scorer's next-item scores equal the model's own ``full_sort_predict`` on prefix
  instances (causal and masked models, where the scorer computes them itself).
* Causal hidden states do not depend on later items (changing the last item leaves every
  earlier position's output unchanged), and the adapter leaves no attribute on the instance.
* ``register_model_kind`` overrides by exact class; a bad kind is an error.
"""


import pytest
import torch
from recbole.data.transform import construct_transform
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, NARM, SASRec, Caser
from recbole.utils import init_seed

from recbole_finest.config import Config
from recbole_finest.model import TiSASRec
from recbole_finest.data.sequences import TrainingSequences, take
from recbole_finest.compat.model_kind import CAUSAL, MASKED, PREFIX, PREFIX_ONLY, ModelAdapter, kind_of, register_model_kind
from recbole_finest.finest.scoring import SequenceScorer
from recbole_finest.utils import get_model

from _cpu import on_cpu
from conftest import load_splits

MAX_LEN = 10
TINY = dict(
    user_inter_num_interval="[300,inf)", hidden_size=16, embedding_size=16, inner_size=32, n_layers=1, n_heads=2,
    MAX_ITEM_LIST_LENGTH=MAX_LEN, epochs=1, finest_epochs=1, finest_topk=5, show_progress=False, seed=3,
    hidden_dropout_prob=0.0, attn_dropout_prob=0.0, dropout_prob=0.0, loss_type="CE", train_neg_sample_args=None,
)
KINDS = {"SASRec": CAUSAL, "GRU4Rec": CAUSAL, "TiSASRec": CAUSAL, "LRURec": CAUSAL, "BERT4Rec": MASKED,
         "NARM": PREFIX_ONLY, "Caser": PREFIX_ONLY}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model_kind")
    _, train, _, _ = load_splits(tmp, TINY)
    seqs = TrainingSequences.from_dataset(train.dataset)

    def make(name):
        cfg = on_cpu(Config(name, "ml-100k", config_dict={**TINY, "checkpoint_dir": str(tmp / "saved")}))
        init_seed(cfg["seed"], cfg["reproducibility"])
        construct_transform(cfg)  # BERT4Rec's mask field names, as data_preparation does
        model = get_model(name)(cfg, train.dataset).eval()
        batch = take(seqs.prefix_instances(MAX_LEN, cfg), torch.arange(0, 4000, 40))
        return model, batch

    return make


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind_from_capabilities_or_registry(build, name):
    model, _ = build(name)
    adapter = ModelAdapter(model)
    assert adapter.kind == kind_of(model) == KINDS[name]
    assert adapter.sequence_unit == (KINDS[name] != PREFIX_ONLY)
    assert SequenceScorer(model).masked == (KINDS[name] == MASKED)


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "TiSASRec", "LRURec", "BERT4Rec"])
def test_scorer_scores_equal_full_sort_predict(build, name):
    model, batch = build(name)
    with torch.no_grad():
        ours = SequenceScorer(model).last_scores(batch)
        theirs = model.full_sort_predict(batch)
    assert ours.shape == theirs.shape == (len(batch), model.n_items)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert "gather_indexes" not in vars(model)  # the adapter left nothing on the instance


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "TiSASRec", "LRURec"])
def test_causal_hidden_states_ignore_later_items(build, name):
    model, batch = build(name)
    adapter = ModelAdapter(model)
    changed = type(batch)(dict(batch.interaction))
    seq = batch[model.ITEM_SEQ].clone()
    last = batch[model.ITEM_SEQ_LEN] - 1
    rows = torch.arange(len(batch))
    seq[rows, last] = seq[rows, last] % (model.n_items - 1) + 1  # another real item at the last position
    changed.update(type(batch)({model.ITEM_SEQ: seq}))
    with torch.no_grad():
        before, after = adapter.position_hidden(batch), adapter.position_hidden(changed)
    earlier = torch.arange(seq.shape[1])[None, :] < last[:, None]
    torch.testing.assert_close(before[earlier], after[earlier], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before[rows, last], after[rows, last])


def test_prefix_only_model_has_no_position_hidden(build):
    model, batch = build("NARM")
    with pytest.raises(ValueError, match="NARM is a prefix-only model"):
        ModelAdapter(model).position_hidden(batch)


def test_registry_overrides_by_exact_class(build):
    sasrec, batch = build("SASRec")

    class PlainSASRec(SASRec):  # a subclass may change forward: not causal by inheritance
        pass

    model = PlainSASRec.__new__(PlainSASRec)
    model.__dict__.update(sasrec.__dict__)  # same modules and parameters, another class
    assert kind_of(model) == PREFIX_ONLY
    register_model_kind(PlainSASRec, CAUSAL)
    with torch.no_grad():
        torch.testing.assert_close(ModelAdapter(model).position_hidden(batch), ModelAdapter(sasrec).position_hidden(batch))
    with pytest.raises(ValueError, match="model kind 'bidirectional' is not one of causal, masked, prefix-only"):
        register_model_kind(PlainSASRec, "bidirectional")


@pytest.mark.parametrize("cls, kind", [(SASRec, CAUSAL), (GRU4Rec, CAUSAL), (TiSASRec, CAUSAL),
                                       (BERT4Rec, MASKED), (NARM, PREFIX), (Caser, PREFIX)])
def test_kind_of_real_model_classes(cls, kind):
    assert kind_of(cls) == kind


def test_new_models_get_their_kind_from_capabilities():
    """A renamed masked model and a new model with all_position_output need no plugin edit."""
    class MyMaskedRec(BERT4Rec):
        pass

    class MyCausalRec(NARM):
        def all_position_output(self, interaction):
            raise NotImplementedError

    class MyPrefixRec(SASRec.__mro__[1]):  # SequentialRecommender: no capability, not registered
        pass

    assert (kind_of(MyMaskedRec), kind_of(MyCausalRec), kind_of(MyPrefixRec)) == (MASKED, CAUSAL, PREFIX)
