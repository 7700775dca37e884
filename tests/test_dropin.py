"""Issue 40, items 3 and 4: in a user's RecBole script the plugin swaps the trainer and nothing else.

* The plugin's ``Config`` equals RecBole's ``Config`` for every RecBole key; only plugin keys
  are added. The plugin's protocol (paper split, filters, metrics) applies in its own entry
  points (``run_config``) or with ``finest_protocol: True``.
* ``FinestTrainer`` honours RecBole's ``Trainer`` contract: ``resume_checkpoint`` resumes the
  phase and epoch it was saved in (same weights as an uninterrupted run), ``enable_amp``
  trains under autocast, ``saved_model_file`` points at a loaded ``pretrained_model_path``,
  multi-process training is refused before any training, and RecBole's own ``Trainer``
  keeps working with the plugin's ``Config`` for a general model.
"""

import sys

import pytest
import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

from conftest import tiny
from recbole_finest.config import Config, declared_keys, run_config
from recbole_finest.finest.trainer import FINETUNE, PRETRAIN, FinestTrainer

#: what a user's own yaml of a tiny SASRec on ml-100k holds (RecBole's keys only; CE needs no negatives)
USER_YAML = {k: v for k, v in tiny(drop=("finest_protocol", "finest_epochs", "finest_topk")).items()}
USER_YAML["train_neg_sample_args"] = None
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


@pytest.fixture
def user_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # RecBole reads the command line
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({**USER_YAML, "checkpoint_dir": str(tmp_path / "saved")}))
    return str(path)


def _differences(model, files, extra=None):
    ours = Config(model, "ml-100k", config_file_list=files, config_dict=extra).final_config_dict
    theirs = RecBoleConfig(model, "ml-100k", config_file_list=files, config_dict=extra).final_config_dict
    changed = {k: (theirs[k], ours.get(k, "<absent>")) for k in theirs if ours.get(k, "<absent>") != theirs[k]}
    added = set(ours) - set(theirs) - declared_keys()
    return changed, added


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BPR"])
def test_library_config_equals_recbole_config_for_every_recbole_key(user_yaml, model):
    changed, added = _differences(model, [user_yaml])
    assert changed == {} and added == set()


def test_protocol_applies_in_entry_points_or_when_asked(user_yaml):
    library = Config("SASRec", "ml-100k", config_file_list=[user_yaml])
    assert library.protocol_files == [] and library["eval_args"]["split"] == {"LS": "valid_and_test"}
    for config in (run_config("SASRec", "ml-100k", config_file_list=[user_yaml]),
                   Config("SASRec", "ml-100k", config_file_list=[user_yaml], config_dict={"finest_protocol": True})):
        assert config.protocol_files == ["overall/protocol.yaml", "dataset/ml-100k.yaml"]
        assert config["eval_args"]["split"] == {"RS": [0.85, 0.05, 0.1]}
        assert config["metrics"] == ["MRR", "Recall", "NDCG"]
    # the user's own keys still win over the protocol, and finest_protocol: False turns it off
    assert run_config("SASRec", "ml-100k", config_file_list=[user_yaml],
                      config_dict={"metrics": ["Hit"]})["metrics"] == ["Hit"]
    off = run_config("SASRec", "ml-100k", config_file_list=[user_yaml], config_dict={"finest_protocol": False})
    assert off.protocol_files == [] and off["eval_args"]["split"] == {"LS": "valid_and_test"}


def test_recbole_trainer_trains_a_general_model_with_the_plugin_config(user_yaml):
    """Before: the plugin turned off RecBole's negative sampling for every model -> KeyError 'neg_item_id'."""
    general = yaml.safe_load(open(user_yaml, encoding="utf-8"))
    del general["train_neg_sample_args"]  # RecBole's default negative sampling, as a BPR user has it
    with open("bpr.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump({**general, "epochs": 1}, f)
    config = Config("BPR", "ml-100k", config_file_list=["bpr.yaml"])
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    model = get_model("BPR")(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    trainer.fit(train, valid, show_progress=False)
    result = trainer.evaluate(test, load_best_model=True)
    assert result["recall@10"] > 0


# --------------------------------------------------------------------------- the Trainer contract
def _setup(tmp_path, **keys):
    config = Config("SASRec", "ml-100k", config_dict={**tiny(**NO_DROPOUT), **keys,
                                                      "checkpoint_dir": str(tmp_path / "saved")})
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, train.dataset)
    return config, train, valid, test, model


def _state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resumed_finetuning_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, train, valid, _, model = _setup(tmp_path, finest_epochs=2)
    whole = FinestTrainer(config, model)
    whole.fit(train, valid)
    expected = _state(whole)

    # the same run stopped after its first fine-tuning epoch (its checkpoint is that epoch's)
    config1, train1, valid1, _, model1 = _setup(tmp_path, finest_epochs=1)
    stopped = FinestTrainer(config1, model1)
    stopped.fit(train1, valid1)
    checkpoint = stopped.saved_model_file
    assert stopped.phase == FINETUNE and checkpoint.endswith("finetune.pth")

    config2, train2, valid2, _, model2 = _setup(tmp_path, finest_epochs=2)
    resumed = FinestTrainer(config2, model2)
    ran = []
    monkeypatch.setattr(FinestTrainer, "pretrain", lambda *a, **k: pytest.fail("pre-trained again"))
    original = FinestTrainer._train_epoch

    def counting(self, data, epoch_idx, *args, **kwargs):
        ran.append((self.phase, epoch_idx))
        return original(self, data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(FinestTrainer, "_train_epoch", counting)
    resumed.resume_checkpoint(checkpoint)
    resumed.fit(train2, valid2)
    assert ran == [(FINETUNE, 1)]
    _assert_same(_state(resumed), expected)


def test_resumed_pretraining_goes_on_from_the_saved_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, train, _, _, model = _setup(tmp_path, epochs=2, finest=False)
    whole = FinestTrainer(config, model)
    whole.pretrain(train, None)
    expected = _state(whole)

    config1, train1, _, _, model1 = _setup(tmp_path, epochs=1, finest=False)
    stopped = FinestTrainer(config1, model1)
    stopped.pretrain(train1, None)

    config2, train2, _, _, model2 = _setup(tmp_path, epochs=2, finest=False)
    resumed = FinestTrainer(config2, model2)
    resumed.resume_checkpoint(stopped.saved_model_file)
    assert resumed._resume[0] == PRETRAIN
    resumed.fit(train2, None)
    assert resumed.start_epoch == 1
    _assert_same(_state(resumed), expected)


def test_enable_amp_trains_under_autocast(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, train, valid, _, model = _setup(tmp_path, enable_amp=True, finest=False)
    seen = []
    original = FinestTrainer.batch_losses

    def spying(self, batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        return original(self, batch)

    monkeypatch.setattr(FinestTrainer, "batch_losses", spying)
    FinestTrainer(config, model).fit(train, valid)
    assert seen and all(seen)


def test_pretrained_model_path_is_the_model_evaluate_reloads(tmp_path, monkeypatch):
    """Before: ``finest: False`` + ``pretrained_model_path`` then ``evaluate(test)`` -> checkpoint file not found."""
    monkeypatch.chdir(tmp_path)
    config, train, valid, test, model = _setup(tmp_path, finest=False)
    first = FinestTrainer(config, model)
    first.fit(train, valid)
    path = first.saved_model_file

    config2, train2, valid2, test2, model2 = _setup(tmp_path, finest=False, pretrained_model_path=path)
    loaded = FinestTrainer(config2, model2)
    loaded.fit(train2, valid2)
    assert loaded.saved_model_file == path
    assert loaded.evaluate(test2) == first.evaluate(test, load_best_model=False)


def test_multi_process_training_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, *_, model = _setup(tmp_path)
    config["nproc"], config["world_size"], config["single_spec"] = 2, 2, False
    with pytest.raises(ValueError, match=r"'nproc' \(2\).*would not sync gradients"):
        FinestTrainer(config, model)
