"""Bad input gets one clear error (naming the key / model / file) and leaves no partial file."""

import contextlib
import os
from pathlib import Path

import pytest
import torch

from recbole_finest.config import Config
from recbole_finest.data.datasets import DatasetNotFoundError, MalformedDatasetError
from recbole_finest.fileio import save_checkpoint, write_json, write_text
from recbole_finest.quick_start import run_recbole_finest
from conftest import tiny

TINY = tiny(embedding_size=16)


_cwd = contextlib.chdir  # RecBole writes log_tensorboard/ into the working directory


@pytest.fixture
def dirs(tmp_path):
    """checkpoint_dir / results_dir / data_path in tmp_path, cwd = tmp_path (RecBole's log/)."""
    out = {"checkpoint_dir": tmp_path / "saved", "results_dir": tmp_path / "results", "data_path": tmp_path / "data"}
    with _cwd(tmp_path):
        yield {k: str(v) for k, v in out.items()}


def _files(folder):
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _assert_nothing_written(dirs):
    for key in ("checkpoint_dir", "results_dir"):
        assert _files(dirs[key]) == [], key
    assert not [f for f in _files(dirs["data_path"]) if not f.startswith("raw/")]


def test_unknown_model_is_named(dirs):
    with pytest.raises(ValueError, match="unknown model 'NoSuchRec'"):
        run_recbole_finest("NoSuchRec", "ml-100k", config_dict={**TINY, **dirs})
    _assert_nothing_written(dirs)


def test_non_sequential_model_in_stability_run(dirs):
    with pytest.raises(ValueError, match=r"stability.*sequential model.*'BPR'.*stability: False"):
        run_recbole_finest("BPR", "ml-100k", config_dict={**TINY, **dirs})
    _assert_nothing_written(dirs)


def test_non_sequential_model_with_finest_trainer(dirs):
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import BPR

    from recbole_finest.finest.trainer import FinestTrainer

    config = Config("BPR", "ml-100k", config_dict={**TINY, **dirs})
    train, _, _ = data_preparation(config, create_dataset(config))
    with pytest.raises(ValueError, match=r"FINEST needs a RecBole sequential model; 'BPR'"):
        FinestTrainer(config, BPR(config, train.dataset))


def test_missing_known_dataset_offline_says_what_to_do(dirs):
    with pytest.raises(DatasetNotFoundError) as info:
        run_recbole_finest("SASRec", "reddit", config_dict={**TINY, **dirs, "download_datasets": False})
    message = str(info.value)
    assert "reddit" in message and "download_datasets: False" in message and "raw_data_file" in message
    _assert_nothing_written(dirs)


def test_missing_raw_file_is_named(dirs):
    missing = os.path.join(dirs["data_path"], "raw", "nope.tsv")
    with pytest.raises(DatasetNotFoundError, match="raw_data_file.*nope.tsv"):
        run_recbole_finest("SASRec", "mydata", config_dict={**TINY, **dirs, "raw_data_file": missing,
                                                            "download_datasets": False})
    _assert_nothing_written(dirs)


def test_unknown_dataset_offline(dirs):
    with pytest.raises(DatasetNotFoundError, match=r"\[mydata\].*raw_data_file"):
        run_recbole_finest("SASRec", "mydata", config_dict={**TINY, **dirs, "download_datasets": False})
    _assert_nothing_written(dirs)


def test_malformed_raw_row_names_file_and_line(dirs):
    raw = Path(dirs["data_path"]) / "raw" / "bad.tsv"
    raw.parent.mkdir(parents=True)
    raw.write_text("0\t0\t0\n1\t1\t6\n2\t2\tnoon\n3\t3\t9\n", encoding="utf-8")
    with pytest.raises(MalformedDatasetError, match=r"bad\.tsv, line 3: .*timestamp"):
        run_recbole_finest("SASRec", "mydata", config_dict={**TINY, **dirs, "raw_data_file": str(raw)})
    assert _files(dirs["data_path"]) == ["raw/bad.tsv"]  # no .inter, no temporary file, no folder
    assert not (Path(dirs["data_path"]) / "mydata").exists()
    _assert_nothing_written(dirs)


def test_topk_too_large_fails_before_training(dirs):
    with pytest.raises(ValueError, match=r"'finest_topk' is 900.*finest_topk <= 798"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs, "finest_topk": 900})
    _assert_nothing_written(dirs)  # no pre-training was wasted: no checkpoint at all


@pytest.mark.parametrize("key", ["finest_sim_ratio", "perturb_ratio"])
@pytest.mark.parametrize("value", [0, 1, 1.5, -0.01, "abc", True])
def test_ratio_outside_open_unit_interval(dirs, key, value):
    with pytest.raises(ValueError, match=rf"'{key}' must be a number in \(0, 1\)"):
        Config("SASRec", "ml-100k", config_dict={**TINY, **dirs, key: value})


@pytest.mark.parametrize("key", ["finest_sim_ratio", "perturb_ratio"])
def test_ratio_inside_is_accepted(dirs, key):
    assert Config("SASRec", "ml-100k", config_dict={**TINY, **dirs, key: 0.5})[key] == 0.5


def test_failed_writes_leave_no_temporary_file(tmp_path):
    """A result or checkpoint whose write fails leaves neither a *.tmp nor a changed file."""
    target = tmp_path / "results" / "results.json"
    write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_text(target, 123)  # fails inside the atomic block, after the temporary file exists
    assert target.read_text() == '{\n  "ok": 1\n}\n'

    ckpt = tmp_path / "saved" / "model.pth"
    with pytest.raises(Exception):
        save_checkpoint({"fn": lambda: 0}, ckpt)  # lambdas cannot be pickled
    assert _files(tmp_path) == ["results/results.json"]
    assert not list(tmp_path.rglob("*.tmp"))
    save_checkpoint({"w": torch.ones(2)}, ckpt)
    assert torch.equal(torch.load(ckpt)["w"], torch.ones(2))
