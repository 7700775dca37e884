"""Checkpoints are loaded with ``torch.load(weights_only=True)`` and an allow-list, everywhere.

A planted checkpoint whose pickle runs code when opened (``__reduce__`` -> ``builtins.open``
creating a marker file) is given to every route that opens a checkpoint: the plugin's
``--pretrained_model_path=`` and ``--update --deployed_model_path=`` command lines, and
RecBole's own ``load_data_and_model``, ``Trainer.evaluate(load_best_model=True)`` and
``Trainer.resume_checkpoint``. Each must refuse it with an error naming the file, and the
marker file must never exist. (Before compat.checkpoints, fileio loaded with
torch's full unpickler and RecBole with torch's default: the plugin's routes ran the code.)
"""

import builtins
import pickle
import sys

import pytest
import torch
import yaml

import run_recbole_finest
from conftest import TINY, tiny


class Planted:
    """Unpickling it calls ``open(marker, "w")``: the file appears only if the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture(params=[2, 4], ids=["protocol2", "protocol4"])
def planted(request, tmp_path):
    """``(checkpoint path, marker path)``: a RecBole-shaped checkpoint with a code-running config."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "planted.pth"
    torch.save({"config": Planted(marker), "state_dict": {"w": torch.ones(2)}, "epoch": 0, "cur_step": 0,
                "best_valid_score": 0.0, "other_parameter": None, "optimizer": {}},
               path, pickle_protocol=request.param)
    return path, marker


def _refused(exc_info, path, marker, kind="UnsafeCheckpointError"):
    """The planted pickle did not run; the error (``kind``) names the file."""
    assert not marker.exists(), "the planted pickle ran"
    assert type(exc_info.value).__name__ == kind, repr(exc_info.value)
    assert str(path) in str(exc_info.value)


def test_load_checkpoint_refuses_and_names_the_file(planted):
    path, marker = planted
    from recbole_finest.fileio import load_checkpoint

    with pytest.raises(Exception) as exc_info:
        load_checkpoint(path)
    _refused(exc_info, path, marker)
    assert "io.open" in str(exc_info.value)  # builtins.open pickles as io.open


def test_pretrained_model_path_on_the_command_line(planted, tmp_path, monkeypatch):
    path, marker = planted
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "my.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "checkpoint_dir": str(tmp_path / "saved"),
                                   "results_dir": str(tmp_path / "results")}))
    argv = ["--model=SASRec", "--dataset=ml-100k", f"--config_files={cfg}", f"--pretrained_model_path={path}"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])
    with pytest.raises(SystemExit) as exc_info:  # the command line's one-line error
        run_recbole_finest.main(argv)
    _refused(exc_info, path, marker, kind="SystemExit")
    assert "outside the allow-list" in str(exc_info.value)


def test_deployed_model_path_of_update(planted, tmp_path, monkeypatch):
    path, marker = planted
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "my.yaml"
    cfg.write_text(yaml.safe_dump({**tiny(drop=("finest_epochs",), update_epochs=1, train_neg_sample_args=None),
                                   "checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results"),
                                   "update_methods": ["warm_start"]}))
    argv = ["--update", "--model=SASRec", "--dataset=ml-100k", f"--config_files={cfg}",
            f"--deployed_model_path={path}"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])
    with pytest.raises(SystemExit) as exc_info:  # the command line's one-line error
        run_recbole_finest.main(argv)
    _refused(exc_info, path, marker, kind="SystemExit")
    assert "outside the allow-list" in str(exc_info.value)


def test_recbole_load_data_and_model(planted):
    path, marker = planted
    from recbole.quick_start import load_data_and_model

    with pytest.raises(Exception) as exc_info:
        load_data_and_model(str(path))
    _refused(exc_info, path, marker)


def test_recbole_trainer_evaluate_and_resume(planted):
    """RecBole's ``Trainer`` opens checkpoints in ``evaluate(load_best_model=True)`` and ``resume_checkpoint``."""
    path, marker = planted
    from recbole.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # the load comes first: nothing else of the trainer is read
    trainer.device = torch.device("cpu")
    with pytest.raises(Exception) as exc_info:
        trainer.evaluate([object()], load_best_model=True, model_file=str(path))
    _refused(exc_info, path, marker)
    with pytest.raises(Exception) as exc_info:
        trainer.resume_checkpoint(str(path))
    _refused(exc_info, path, marker)


def test_truncated_checkpoint_is_unreadable_not_unsafe(tmp_path):
    from recbole_finest.fileio import UnreadableFileError, load_checkpoint

    path = tmp_path / "cut.pth"
    torch.save({"state_dict": {"w": torch.ones(3)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UnreadableFileError, match="cut.pth"):
        load_checkpoint(path)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_protocol2_rewrite_keeps_the_value(protocol):
    """RecBole saves with protocol 4; torch's weights-only unpickler reads protocol 2 only."""
    import collections

    import numpy as np
    from recbole.utils.enum_type import ModelType

    value = {"s": ["x" * 300, "x" * 300, "é"], "enum": [ModelType.SEQUENTIAL, ModelType.GENERAL, ModelType.SEQUENTIAL],
             "od": collections.OrderedDict(a=1), "big": 2 ** 70, "f": 0.25, "np": np.float64(0.5), "b": b"\x00\xff",
             "t": (1, None, True)}
    from recbole_finest.compat.checkpoints import protocol2

    data = protocol2(pickle.dumps(value, protocol=protocol))
    assert data[:2] == b"\x80\x02"
    assert pickle.loads(data) == value
