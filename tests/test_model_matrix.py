"""FINEST on every RecBole 1.2.1 sequential model (plus the plugin's TiSASRec).

Each supported model is pre-trained 1 epoch and fine-tuned 1 epoch by ``FinestTrainer`` on a
tiny ml-100k subset (users with 20-30 interactions: 213 users, 717 items, 4938 interactions), then:

* the regularizer is active: in the fine-tune phase ``batch_losses`` returns a second term
  that is > 0, and backpropagating that term alone reaches the model's parameters;
* the regularizer is wired to the right reference lists: with reference lists rebuilt from
  the current model, in eval mode, every reference pair is already in order, so each hinge
  is at most its margin and the loss is at most ``beta1 + beta2``. Reference lists of the
  wrong instances would put pairs out of order and exceed that bound.

Refused models (docs/models.md) must fail up front with an error naming the model and the reason.
"""

import inspect
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recbole  # noqa: E402
import recbole.model.sequential_recommender as recbole_seq  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.data.transform import construct_transform  # noqa: E402
from recbole.model.abstract_recommender import SequentialRecommender  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_finest.config import Config  # noqa: E402
from recbole_finest.compat.model_kind import REFUSED_MODELS, check_model  # noqa: E402
from recbole_finest.finest.trainer import FINETUNE, FinestTrainer  # noqa: E402
from recbole_finest.utils import get_model  # noqa: E402
from _cpu import on_cpu  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_PATH = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")

RECBOLE_SEQUENTIAL = sorted(
    name for name, cls in vars(recbole_seq).items()
    if inspect.isclass(cls) and issubclass(cls, SequentialRecommender) and cls is not SequentialRecommender
)
SUPPORTED = [name for name in RECBOLE_SEQUENTIAL if name not in REFUSED_MODELS] + ["TiSASRec"]
# BERT4Rec's regularizer scores come from its masked training pass, not from the clean
# windows its reference lists are built on, so the "already in order" bound does not apply.
MASKED = {"BERT4Rec"}

BETA = 0.1  # finest_beta1 = finest_beta2 (defaults)


def tiny_config(model, tmp_dir, **overrides):
    config = {
        "data_path": DATA_PATH,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[20,30]",
        "hidden_size": 8,
        "embedding_size": 8,
        "inner_size": 16,
        "n_layers": 1,
        "n_heads": 1,
        "MAX_ITEM_LIST_LENGTH": 10,
        "epochs": 1,
        "finest_epochs": 1,
        "finest_topk": 5,
        "finest_learning_rate": 0.001,
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "show_progress": False,
        "seed": 0,
        "reproducibility": True,
        "state": "WARNING",
        "finest_protocol": True,
        "checkpoint_dir": str(tmp_dir / "saved"),
        "results_dir": str(tmp_dir / "results"),
    }
    config.update(MODEL_OVERRIDES.get(model, {}))
    config.update(overrides)
    config = on_cpu(Config(model=model, dataset="ml-100k", config_dict=config))
    construct_transform(config)  # sets the field names of the model's batch transform (BERT4Rec's mask fields)
    return config


# Test-only overrides that keep each model tiny (recommended settings: docs/models.md).
MODEL_OVERRIDES = {
    "Caser": {"nh": 2, "nv": 2},
    "NextItNet": {"block_num": 1},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """The training loader of the tiny ml-100k subset, built once for all models."""
    config = tiny_config("SASRec", tmp_path_factory.mktemp("data"))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    assert (dataset.user_num - 1, dataset.item_num - 1) == (213, 717)
    return train


def test_every_recbole_sequential_model_is_classified():
    """Every RecBole sequential model is either in the matrix or refused with a reason."""
    assert len(RECBOLE_SEQUENTIAL) == 31  # RecBole 1.2.1
    assert set(REFUSED_MODELS) <= set(RECBOLE_SEQUENTIAL)
    assert len(SUPPORTED) == 31 - len(REFUSED_MODELS) + 1


@pytest.mark.parametrize("name", SUPPORTED)
def test_finest_regularizer_active(name, train_data, tmp_path):
    config = tiny_config(name, tmp_path)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(name)(config, train_data.dataset)
    trainer = FinestTrainer(config, model)
    trainer.pretrain(train_data, None, verbose=False, saved=False)
    trainer.finetune(train_data, None, verbose=False, saved=False)
    assert trainer.phase == FINETUNE

    batch = next(iter(trainer.make_loader(train_data)))
    model.train()
    model.zero_grad()
    losses = trainer.batch_losses(batch)
    assert len(losses) == 2, f"{name}: no regularizer term in the fine-tune phase"
    reg = losses[1]
    assert reg.dim() == 0 and float(reg) > 0, f"{name}: regularizer {float(reg)}"
    reg.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), name
    assert any(float(g.abs().sum()) > 0 for g in grads), f"{name}: no gradient from the regularizer"

    if name in MASKED:
        return
    trainer.reference = None
    trainer.build_reference(train_data)  # from the current model, in eval mode
    model.eval()
    with torch.no_grad():
        reg = trainer.batch_losses(batch)[1]
    assert 0 <= float(reg) <= 2 * BETA + 1e-5, f"{name}: {float(reg)} (reference lists of other instances?)"


@pytest.mark.parametrize("name", sorted(REFUSED_MODELS))
def test_refused_models_named_with_reason(name):
    with pytest.raises(ValueError) as info:
        check_model(get_model(name))
    message = str(info.value)
    assert f"FINEST cannot fine-tune {name}: it {REFUSED_MODELS[name]}" in message
    assert "docs/models.md" in message


def test_trainer_refuses_a_feature_model_up_front(tmp_path):
    """FDSA builds on ml-100k with its genre feature, and FinestTrainer refuses it before training."""
    config = tiny_config(
        "FDSA", tmp_path,
        load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "class"]},
        selected_features=["class"],
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    model = get_model("FDSA")(config, train.dataset)
    with pytest.raises(ValueError, match=r"FINEST cannot fine-tune FDSA: it needs item side features"):
        FinestTrainer(config, model)


def test_docs_table_lists_every_model():
    text = open(os.path.join(REPO_ROOT, "docs", "models.md"), encoding="utf-8").read()
    for name in SUPPORTED + sorted(REFUSED_MODELS):
        assert f"| {name} |" in text, f"docs/models.md has no row for {name}"
