"""What a trial needs to rebuild its configuration anywhere in a Ray cluster."""

import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from recbole_finest.checks import ConfigError
from recbole_finest.config import run_config
from recbole_finest.tune.cluster import isolated
from recbole_finest.tune.identity import PATH_KEYS


@dataclass
class TuneSetup:
    """The search's fixed part: model, dataset, files, overrides, seeds, cache, budgets, objective."""

    model: str
    dataset: str
    config_files: List[str]
    overrides: Dict  # user overrides (dict + command line) with absolute paths
    seeds: List[int]
    cache_dir: str  # pre-trained pairs
    budgets: List[int]
    metric: str = "rbo"
    mode: str = "max"
    accuracy_metric: str = "ndcg@10"
    max_drop: Optional[float] = 0.02
    jaccard_k: int = 10  # the trials report jaccard@<jaccard_k> (tune.objective.reported)
    frbo_k: int = 10  # and frbo@<frbo_k>
    reuse_pretrained: bool = True
    trials_dir: Optional[str] = None  # finished trial rows (recbole_finest.tune.trial_cache); None: not kept
    started: float = field(default_factory=time.time)

    def config(self, params=None, seed=None, gpu_id="", checkpoint_dir=None):
        """The ``Config`` of one trial / seed: files < overrides < sampled ``params``.

        Args:
            checkpoint_dir: where this run's trainers write (default: the overrides' folder).
        """
        config_dict = {**self.overrides, **(params or {}), "gpu_id": gpu_id, "show_progress": False}
        if seed is not None:
            config_dict["seed"] = seed
        if checkpoint_dir is not None:
            config_dict["checkpoint_dir"] = checkpoint_dir
        with isolated():
            return run_config(self.model, self.dataset, self.config_files, config_dict)


def absolute_overrides(config, overrides):
    """``overrides`` plus every path key of ``config`` made absolute (trials run in their own folder)."""
    out = dict(overrides)
    out["data_path"] = os.path.abspath(os.path.dirname(os.path.normpath(config["data_path"])))
    for key in PATH_KEYS:
        value = config[key]
        if isinstance(value, str) and value:
            out[key] = os.path.abspath(value)
    return out


def budgets_of(epochs, scheduler, grace_period, reduction_factor):
    """Fine-tuning epochs at which a trial reports: ASHA's rungs then ``epochs``; ``[epochs]`` for fifo."""
    if scheduler != "asha":
        return [epochs]
    out, budget = [], grace_period
    while budget < epochs:
        out.append(int(budget))
        budget = int(math.ceil(budget * reduction_factor))
    return out + [epochs]


def setup_of(base, config_file_list, user_overrides, tune_dir):
    """The ``TuneSetup`` of a search from its base ``Config`` (its ``tune_*`` keys)."""
    return TuneSetup(
        model=base["model"], dataset=base["dataset"],
        config_files=[os.path.abspath(f) for f in (config_file_list or [])],
        overrides=absolute_overrides(base, user_overrides),
        seeds=[int(s) for s in (base["tune_seeds"] or [base["seed"]])],
        cache_dir=os.path.join(tune_dir, "pretrained"),
        trials_dir=os.path.join(tune_dir, "trials"),
        budgets=budgets_of(base["finest_epochs"], base["tune_scheduler"], base["tune_asha_grace_period"],
                           base["tune_asha_reduction_factor"]),
        metric=base["tune_metric"], mode=base["tune_mode"], accuracy_metric=base["tune_accuracy_metric"],
        max_drop=base["tune_max_accuracy_drop"], reuse_pretrained=bool(base["tune_reuse_pretrained"]),
        jaccard_k=int(base["jaccard_k"]), frbo_k=_frbo_k(base),
    )


def _frbo_k(base):
    """``frbo_k``; a ``tune_metric`` / ``tune_accuracy_metric`` naming another FRBO@k is a ``ConfigError``."""
    k = int(base["frbo_k"])
    for key in ("tune_metric", "tune_accuracy_metric"):
        name = base[key]
        if name.startswith("frbo@") and name != f"frbo@{k}":
            raise ConfigError(f"config key '{key}' is {name} but frbo_k is {k}: the trials report frbo@{k}; "
                              f"set {key}: frbo@{k} or frbo_k: {name[len('frbo@'):]}")
    return k
