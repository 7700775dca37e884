"""Shared by the unit tests that compare the plugin with hand computations or RecBole's own
outputs on tensors they build themselves (CPU tensors)."""

import torch


def on_cpu(config):
    """Run ``config``'s model on the CPU, also on a GPU machine.

    RecBole 1.2.1 picks ``device`` from ``gpu_id`` alone, and ``gpu_id: ''`` would set
    ``CUDA_VISIBLE_DEVICES=''`` for the whole test process, hiding the GPU from every later
    test; setting ``device`` after the config is built pins one config only. The GPU paths
    are covered by ``tests/test_cuda.py`` and by the end-to-end tests, which follow RecBole's
    default device.
    """
    config["device"] = torch.device("cpu")
    return config
