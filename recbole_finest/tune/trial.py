"""The trial: fine-tune the shared pre-trained pair with the sampled values; report per budget."""

import json
import os
from logging import getLogger

import torch

from recbole_finest.tune.cluster import ray_gpu_id
from recbole_finest.tune.objective import flat, mean_rows, score
from recbole_finest.tune.pretrain import ensure_pretrained, load_splits, stability_run
from recbole_finest.tune.trial_cache import cached_row


def trial(params, setup=None, shared=None):
    """Ray Tune function trainable: fine-tune the shared A / B pair with ``params``; report metrics.

    One report per budget in ``setup.budgets`` (ASHA rungs): each budget fine-tunes from the
    pre-trained models for that many ``finest_epochs`` (metrics averaged over ``setup.seeds``).
    Rows finished by an earlier, interrupted run of the search are read back
    (:mod:`recbole_finest.tune.trial_cache`).
    """
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    gpu_id = ray_gpu_id()
    configs, pairs, originals, splits = [], [], [], None
    for seed in setup.seeds:  # Ray runs the trial in its own folder: its checkpoints go there
        config = setup.config(params, seed, gpu_id, checkpoint_dir=os.path.abspath("checkpoints"))
        splits = splits or load_splits(config)
        paths = ensure_pretrained(setup, config, splits, shared)
        with open(paths["original"], encoding="utf-8") as f:
            originals.append(json.load(f))
        configs.append(config)
        pairs.append(paths)
    baseline = mean_rows(originals)
    method = configs[0]["finetune_method"]
    for budget in setup.budgets:
        rows = []
        for config, paths in zip(configs, pairs):
            row, cached = cached_row(setup.trials_dir, config, budget, lambda: stability_run(
                config, splits, paths, {method: {"finest_epochs": budget}}).finetune(method))
            if cached:
                getLogger().info(f"{method} seed {config['seed']}, {budget} epochs: finished earlier, row read back")
            rows.append(row)
        metrics = mean_rows(rows)
        result = score(metrics, baseline, setup.metric, setup.mode, setup.accuracy_metric, setup.max_drop)
        tune.report({
            **flat(metrics), **result,
            **{f"base_{k}": v for k, v in flat(baseline).items()},
            "finest_epochs": budget, "finetune_method": method, "n_seeds": len(configs),
        })
