"""Ray helpers shared by the search and the study backend: start / join Ray, resources, workers."""

import contextlib
import logging
import os
import sys

import torch


@contextlib.contextmanager
def isolated():
    """Build a ``Config`` without reading ``sys.argv`` or leaking ``CUDA_VISIBLE_DEVICES``.

    RecBole parses ``--key=value`` from ``sys.argv`` (a Ray worker's are Ray's own) and sets
    ``CUDA_VISIBLE_DEVICES`` to ``gpu_id`` (which would hide the GPUs from Ray).
    """
    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        restore_cuda(cuda)


def restore_cuda(cuda):
    """Set ``CUDA_VISIBLE_DEVICES`` back to ``cuda`` (None: unset) after RecBole set it to ``gpu_id``."""
    if cuda is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def resources_of(config, key):
    """``{"cpu", "gpu"}`` Ray resources of the config key ``key`` (checked by ``Config``), with the defaults."""
    return {"cpu": 1, "gpu": 0, **config[key]}


def remote_task(fn, resources):
    """``fn`` as a Ray task on ``resources`` (``{"cpu", "gpu"}``, :func:`resources_of`).

    Declared by ``ray.remote(num_cpus=, num_gpus=)``, not ``ray.remote(fn).options(...)``: with
    a GPU Ray then runs every call in a fresh worker process (its ``max_calls=1`` default for
    GPU functions, which ``.options`` does not apply). CUDA reads ``CUDA_VISIBLE_DEVICES`` once
    per process, so a reused worker would stay on its first task's GPU while Ray assigns the
    next task another one (Ray issue 29624): on a machine with several GPUs, tasks would pile
    onto one GPU that Ray counts as shared out.
    """
    import ray

    return ray.remote(num_cpus=resources["cpu"], num_gpus=resources["gpu"])(fn)


def init_ray(address, num_cpus=None, num_gpus=None):
    """Join ``address`` or start a local Ray with ``num_cpus`` / ``num_gpus`` (None = all).

    Returns True when this call started Ray (the caller shuts it down).
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    return True


def ray_gpu_id():
    """``gpu_id`` for RecBole inside a Ray worker: the GPUs Ray assigned, or ``""`` (CPU)."""
    import ray

    return os.environ.get("CUDA_VISIBLE_DEVICES", "") if ray.get_gpu_ids() else ""


def worker_setup():
    """In a Ray task: torch threads = the task's CPUs (Ray's ``OMP_NUM_THREADS``); log lines to stdout.

    Ray forwards the worker's stdout, so training progress shows in the driver's console.
    """
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
