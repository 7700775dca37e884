"""The study grid on Ray (``study_backend: ray``): the same cells as the local backend, byte for byte."""

import os

import pytest
import torch

from recbole_finest.config import Config
from recbole_finest.study.driver import run_study
from recbole_finest.study.backend import cell_contents

ray = pytest.importorskip("ray")

from test_study import GRID, TINY, _cwd  # noqa: E402  (the tiny grid: 3 (seed, perturbation) groups, 6 cells)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The tiny grid by the local backend (one torch thread, as a 1-CPU Ray task) and by Ray (2 CPUs)."""
    tmp = tmp_path_factory.mktemp("backend")
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _cwd(tmp):
            for backend in ("local", "ray"):
                cfg = {**TINY, **GRID, "study_dir": str(tmp / backend), "checkpoint_dir": str(tmp / f"saved-{backend}"),
                       "study_backend": backend, "study_resources_per_cell": {"cpu": 1}}
                if backend == "ray":
                    ray.init(num_cpus=2, include_dashboard=False)
                try:
                    runs[backend] = run_study(dataset="ml-100k", config_dict=cfg)
                finally:
                    ray.shutdown()
    finally:
        torch.set_num_threads(threads)
    return tmp, runs


def test_ray_cells_are_byte_identical_to_local_cells(both):
    tmp, runs = both
    local, on_ray = cell_contents(tmp / "local"), cell_contents(tmp / "ray")
    assert len(local) == 12  # 6 cells: .json + per-instance .npz
    assert sorted(local) == sorted(on_ray)
    different = [k for k in local if local[k] != on_ray[k]]
    assert not different
    assert runs["ray"]["computed"] == runs["local"]["computed"] == 3
    assert runs["ray"]["summary"] == runs["local"]["summary"]


def test_groups_ran_as_tasks_sharing_model_a_through_the_folder(both):
    tmp, _ = both
    # each group's task had its own checkpoint folder (the local backend uses the configured one)
    groups = sorted(os.listdir(tmp / "saved-ray"))
    assert groups == ["study-SASRec-seed2020-casper-deletion-r0.01", "study-SASRec-seed2020-random-deletion-r0.01",
                      "study-SASRec-seed2021-random-deletion-r0.01"]
    # seed 2020's first group trained and saved model A; the casper group, started after it
    # finished, loaded A instead of training it again (a second training would rewrite the file)
    states = tmp / "ray" / "states" / "SASRec" / "seed2020"
    leader = tmp / "ray" / "cells" / "SASRec" / "random-deletion-r0.01" / "seed2020" / "finest.json"  # its last cell
    follower = tmp / "ray" / "cells" / "SASRec" / "casper-deletion-r0.01" / "seed2020" / "finest.json"
    for state in ("A-pretrained.pth", "A-finest.pth"):
        assert (states / state).stat().st_mtime_ns <= leader.stat().st_mtime_ns <= follower.stat().st_mtime_ns


@pytest.mark.parametrize("key,value,message", [
    ("study_backend", "dask", "must be one of local, ray"),
    ("study_resources_per_cell", {"cpu": 1, "tpu": 1}, "a mapping like {cpu: 1, gpu: 0.5}"),
    ("study_resources_per_cell", {"gpu": -0.5}, "a mapping like {cpu: 1, gpu: 0.5}"),
    ("study_resources_per_cell", {"gpu": 1.5}, "gpu above 1 a whole number"),
])
def test_bad_backend_keys_fail_before_training(tmp_path, key, value, message):
    with _cwd(tmp_path):
        with pytest.raises(ValueError, match=key) as error:
            Config("SASRec", "ml-100k", config_dict={**TINY, "study_backend": "ray", key: value})
    assert message in str(error.value)


def test_ray_address_belongs_to_study_and_tune(capsys):
    import run_recbole_finest

    assert run_recbole_finest.parse_args(["--study", "--ray_address=auto"]).ray_address == "auto"
    assert run_recbole_finest.parse_args(["--tune", "--ray_address=auto"]).ray_address == "auto"
    with pytest.raises(SystemExit):
        run_recbole_finest.parse_args(["--ray_address=auto"])
    assert "--ray_address belongs to --tune or --tune_methods or --study" in capsys.readouterr().err
