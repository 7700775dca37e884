"""Ray places fractional-GPU work 4 per GPU, and the plugin's workers follow Ray's GPU choice or fall back to the CPU.

No GPU is needed: a local Ray declares 4 logical GPUs (``ray.init(num_gpus=4)``), which Ray
schedules and assigns exactly as real ones (``ray.get_gpu_ids()``, ``CUDA_VISIBLE_DEVICES``
of the worker); only ``torch.cuda`` is absent. Checked, with the resources written as the
plugin's keys (``study_resources_per_cell`` / ``tune_resources_per_trial`` through
``cluster.resources_of``):

* 16 tasks of ``{cpu: 0.1, gpu: 0.25}`` held at once (a barrier) fill the 4 GPUs with
  exactly 4 each, every worker seeing ``CUDA_VISIBLE_DEVICES`` = its GPU; a 17th such task
  stays pending while they hold and starts only after one of them has finished (no 5th on
  a GPU; CPU is not what holds it: 1.7 of 2 CPUs would be free);
* in such a worker, ``cluster.ray_gpu_id()`` gives Ray's GPU, a trial's ``Config``
  (``TuneSetup.config``, the path of trials and pre-training tasks) gets that ``gpu_id`` and,
  ``torch.cuda`` being unavailable, the CPU device; ``CUDA_VISIBLE_DEVICES`` is Ray's again
  afterwards (RecBole's ``Config`` sets it to ``gpu_id``);
* a task without GPUs runs on the CPU even where it inherits a ``CUDA_VISIBLE_DEVICES``
  (Ray 2.60 leaves the variable alone for 0-GPU tasks);
* ``cluster.remote_task`` runs each GPU call in a fresh worker process (CUDA reads
  ``CUDA_VISIBLE_DEVICES`` once per process, so a reused worker would keep its first GPU).
"""

import os
import time

import pytest

ray = pytest.importorskip("ray")

N_GPUS, PER_GPU = 4, 4
RESOURCES = {"cpu": 0.1, "gpu": 1.0 / PER_GPU}
TINY = {"hidden_size": 8, "inner_size": 8, "n_layers": 1, "n_heads": 1, "embedding_size": 8,
        "state": "WARNING", "log_wandb": False}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        pytest.skip("Ray already running in this process")
    # the workers import this module's task functions: they inherit PYTHONPATH from ray.init
    # RecBole's Config sets CUDA_VISIBLE_DEVICES from gpu_id (an earlier test's '0'); Ray refuses to
    # declare 4 GPUs beside it, so the cluster starts without it and it is put back afterwards
    visible = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)), path]))
    try:
        ray.init(num_cpus=2, num_gpus=N_GPUS, include_dashboard=False, log_to_driver=False)
    finally:
        if path is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = path
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()
        if visible is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible


@ray.remote(num_cpus=0)
class Barrier:
    """Counts the tasks that hold their resources; lets them go when the driver says so."""

    def __init__(self):
        self.n, self.go = 0, False

    def arrive(self):
        self.n += 1

    def count(self):
        return self.n

    def release(self):
        self.go = True

    def released(self):
        return self.go


def placed(barrier):
    """In a task: hold the resources until ``barrier`` is released; what Ray gave this task."""
    start = time.time()
    ray.get(barrier.arrive.remote())
    deadline = start + 150
    while not ray.get(barrier.released.remote()):
        if time.time() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.2)
    return {"gpu_ids": [str(i) for i in ray.get_gpu_ids()], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "start": start, "end": time.time()}


def wait_for(barrier, n, seconds=150):
    deadline = time.time() + seconds
    while ray.get(barrier.count.remote()) < n:
        assert time.time() < deadline, f"only {ray.get(barrier.count.remote())} of {n} tasks ran at once"
        time.sleep(0.2)


def plugin_worker(tmp):
    """In a task: what the plugin's worker code does with Ray's GPU (trial / pre-training path)."""
    import torch

    from recbole_finest.tune.cluster import ray_gpu_id, worker_setup
    from recbole_finest.tune.setup import TuneSetup

    worker_setup()
    ray_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_id = ray_gpu_id()
    setup = TuneSetup(model="SASRec", dataset="ml-100k", config_files=[],
                      overrides={**TINY, "checkpoint_dir": os.path.join(tmp, "saved")}, seeds=[2020],
                      cache_dir=os.path.join(tmp, "cache"), budgets=[1])
    config = setup.config(seed=2020, gpu_id=gpu_id)
    return {"gpu_ids": [str(i) for i in ray.get_gpu_ids()], "ray_cuda": ray_cuda, "gpu_id": gpu_id,
            "config_gpu_id": config["gpu_id"], "device": str(config["device"]),
            "cuda_after": os.environ.get("CUDA_VISIBLE_DEVICES"), "cuda_available": torch.cuda.is_available(),
            "threads": torch.get_num_threads()}


def options(resources):
    return {"num_cpus": resources["cpu"], "num_gpus": resources["gpu"]}


def pid():
    return os.getpid(), [str(i) for i in ray.get_gpu_ids()]


def test_quarter_gpus_are_placed_four_per_gpu(cluster):
    from recbole_finest.tune.cluster import resources_of

    assert cluster["GPU"] == N_GPUS
    resources = resources_of({"study_resources_per_cell": RESOURCES}, "study_resources_per_cell")
    assert resources == RESOURCES
    task = ray.remote(placed).options(**options(resources))
    barrier = Barrier.remote()
    full = N_GPUS * PER_GPU
    held = [task.remote(barrier) for _ in range(full)]
    wait_for(barrier, full)  # all 16 hold a quarter GPU at the same time
    late = task.remote(barrier)  # a 17th: no GPU has a free quarter left
    ready, _ = ray.wait([late], timeout=3)
    assert not ready and ray.get(barrier.count.remote()) == full
    ray.get(barrier.release.remote())
    got = ray.get(held, timeout=150)
    extra = ray.get(late, timeout=150)
    per_gpu = {}
    for r in got:
        assert len(r["gpu_ids"]) == 1 and r["cuda"] == r["gpu_ids"][0]
        per_gpu[r["gpu_ids"][0]] = per_gpu.get(r["gpu_ids"][0], 0) + 1
    assert per_gpu == {str(g): PER_GPU for g in range(N_GPUS)}
    # the 17th started only once one of the 16 had ended, on the GPU it freed
    assert extra["start"] >= min(r["end"] for r in got) - 0.05
    assert extra["cuda"] == extra["gpu_ids"][0]


def test_plugin_worker_takes_rays_gpu_and_falls_back_to_cpu(cluster, tmp_path):
    quarter = ray.remote(plugin_worker).options(**options(RESOURCES))
    r = ray.get(quarter.remote(str(tmp_path)), timeout=180)
    assert not r["cuda_available"]
    assert len(r["gpu_ids"]) == 1 and r["ray_cuda"] == r["gpu_ids"][0]
    assert r["gpu_id"] == r["ray_cuda"] == r["config_gpu_id"]  # the trial's gpu_id is Ray's GPU ...
    assert r["device"] == "cpu"  # ... and without torch.cuda the model runs on the CPU
    assert r["cuda_after"] == r["ray_cuda"]  # RecBole's Config did not leave its own value behind
    assert r["threads"] == 1  # worker_setup: the task's OMP_NUM_THREADS (fractional CPU -> 1)


def test_task_without_gpus_runs_on_cpu_whatever_it_inherits(cluster, tmp_path):
    cpu_only = ray.remote(plugin_worker).options(num_cpus=0.1, num_gpus=0,
                                                 runtime_env={"env_vars": {"CUDA_VISIBLE_DEVICES": "3"}})
    r = ray.get(cpu_only.remote(str(tmp_path)), timeout=180)
    assert r["gpu_ids"] == [] and r["ray_cuda"] == "3"  # Ray 2.60 leaves a 0-GPU task's variable as it was
    assert r["gpu_id"] == "" and r["config_gpu_id"] == "" and r["device"] == "cpu"
    assert r["cuda_after"] == "3"


def test_remote_task_gives_every_gpu_call_a_fresh_worker(cluster):
    from recbole_finest.tune.cluster import remote_task

    task = remote_task(pid, RESOURCES)
    runs = [ray.get(task.remote(), timeout=120) for _ in range(3)]  # one after another
    assert len({p for p, _ in runs}) == 3 and all(len(g) == 1 for _, g in runs)
    cpu_task = remote_task(pid, {"cpu": 0.1, "gpu": 0})
    assert ray.get(cpu_task.remote(), timeout=120)[1] == []
