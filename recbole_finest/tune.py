"""Ray Tune search over FINEST (and model) hyper-parameters with a stability-aware objective.

    python run_recbole_finest.py --tune --model=SASRec --dataset=reddit \
        --search_space properties/tune/finest.yaml [--ray_address=auto]

Every trial runs the stability protocol on the *validation* split: models A (original
training data) and B (perturbed training data), pre-trained from the same initial
parameters, are fine-tuned with the trial's sampled configuration and compared with RBO and
Jaccard@k; their NDCG@10 / MRR / Recall@10 are reported too. The objective maximises
``tune_metric`` (default RBO) subject to ``tune_accuracy_metric`` (default NDCG@10) of
model A staying within ``tune_max_accuracy_drop`` (relative) of the un-fine-tuned model A;
infeasible trials rank below every feasible one.

Pre-training is shared: A and B are pre-trained once per seed (and per pre-training
configuration, when the search space holds model keys) in a Ray task, cached atomically
under ``<tune_dir>/pretrained/`` and handed to the trials through Ray's object store; a
trial only builds its ``StabilityRun`` and fine-tunes.

Outputs in ``<tune_dir>/<name>/`` next to Ray's own trial folders: ``results.csv`` and
``results.md`` (all trials, failed ones with their reason), ``best_config.yaml`` (ready for
``run_recbole_finest.py --config_files``), ``frontier.png`` (the tuned metric against the
accuracy metric across trials) and ``summary.json``.
"""

import contextlib
import csv
import hashlib
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, List, Optional

import numpy as np
import torch
import yaml
from recbole.utils import get_local_time, init_logger, init_seed, set_color

from recbole_finest.config import Config
from recbole_finest.fileio import atomic_path, check_writable, load_checkpoint, save_checkpoint, write_json, write_text

# ---------------------------------------------------------------------------------- search space
#: Ray Tune's sampling vocabulary: name -> (number of arguments or None for a list, builder name)
VOCABULARY = {
    "choice": None,
    "grid": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "randint": 2,
    "qrandint": 3,
    "lograndint": 2,
    "randn": 2,
}
RESERVED_KEYS = {"model", "dataset", "seed"}


def _yaml_loader():
    """PyYAML loader that reads ``1e-4`` as a float, as RecBole's own loader does."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def _is_distribution(value):
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in VOCABULARY


def load_search_space(path, known_keys=None):
    """Read a search-space YAML file: ``key: {<vocabulary>: args}`` or ``key: fixed value``.

    Vocabulary (Ray Tune's): ``choice: [a, b, ...]``, ``grid: [a, b, ...]``,
    ``uniform | loguniform | randint | lograndint: [low, high]``,
    ``quniform | qloguniform | qrandint: [low, high, q]``, ``randn: [mean, sd]``.

    Args:
        known_keys: config keys that exist (the base ``Config``); a key outside it is an error.

    Returns:
        dict: key -> value as written (validated).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"search space file not found: {path}")
    with open(path, encoding="utf-8") as f:
        space = yaml.load(f, Loader=_yaml_loader()) or {}
    if not isinstance(space, dict):
        raise ValueError(f"search space file {path} must be a mapping of config keys, got {type(space).__name__}")
    for key, value in space.items():
        where = f"search space file {path}, key '{key}'"
        if key in RESERVED_KEYS:
            hint = " (list seeds in the config key tune_seeds)" if key == "seed" else ""
            raise ValueError(f"{where}: '{key}' cannot be searched{hint}")
        if known_keys is not None and key not in known_keys:
            raise ValueError(f"{where}: not a config key of this model / dataset / plugin (typo?)")
        if isinstance(value, dict) and len(value) == 1 and not _is_distribution(value):
            name = next(iter(value))
            if re.fullmatch(r"[a-z_]+", str(name)) and str(name) not in VOCABULARY and key not in ("eval_args",):
                raise ValueError(f"{where}: unknown sampler '{name}'; use one of {', '.join(VOCABULARY)}")
        if not _is_distribution(value):
            continue
        name, args = next(iter(value.items()))
        arity = VOCABULARY[name]
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where}: {name} needs a non-empty list, got {args!r}")
        if arity is not None:
            if len(args) != arity or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
                raise ValueError(f"{where}: {name} needs {arity} numbers, got {args!r}")
            if name.startswith(("log", "qlog")) and args[0] <= 0:
                raise ValueError(f"{where}: {name} needs a positive lower bound, got {args[0]!r}")
            if name != "randn" and args[0] >= args[1]:
                raise ValueError(f"{where}: {name} needs low < high, got {args!r}")
    return space


def to_param_space(space):
    """Ray Tune ``param_space`` of a loaded search space (fixed values stay constants)."""
    from ray import tune

    out = {}
    for key, value in space.items():
        if not _is_distribution(value):
            out[key] = value
            continue
        name, args = next(iter(value.items()))
        if name == "grid":
            out[key] = tune.grid_search(list(args))
        elif name == "choice":
            out[key] = tune.choice(list(args))
        else:
            out[key] = getattr(tune, name)(*args)
    return out


# ---------------------------------------------------------------------------------- objective
INFEASIBLE = -1000.0
REPORTED = ("rbo", "jaccard@10", "ndcg@10", "mrr", "mrr@10", "recall@10")


def score(metrics, baseline, metric="rbo", mode="max", accuracy_metric="ndcg@10", max_drop=0.02):
    """Stability-aware objective of one trial (always maximised by Ray).

    Args:
        metrics: the trial's validation metrics (model A's accuracy, A vs B stability).
        baseline: the same metrics of the un-fine-tuned models.
        max_drop: largest allowed relative drop of ``accuracy_metric``; None = no constraint.

    Returns:
        dict: ``accuracy_drop`` = (base - trial) / base, ``feasible``, ``objective`` =
        ``metric`` (negated for ``mode: min``) when feasible, else ``INFEASIBLE - accuracy_drop``
        (below every feasible trial; the smaller the drop, the higher).
    """
    value = float(metrics[metric])
    if not math.isfinite(value):
        raise ValueError(f"trial metric '{metric}' is {value}")
    base, acc = float(baseline[accuracy_metric]), float(metrics[accuracy_metric])
    drop = (base - acc) / base if base > 0 else 0.0
    feasible = max_drop is None or drop <= max_drop + 1e-12
    objective = (value if mode == "max" else -value) if feasible else INFEASIBLE - drop
    return {"accuracy_drop": drop, "feasible": bool(feasible), "objective": objective}


# ---------------------------------------------------------------------------------- configs
FINETUNE_KEYS = {"finest", "finetune_method", "reference_protocol"}
#: keys that change neither the pre-trained models nor their metrics
RUNTIME_KEYS = {
    "seed", "device", "gpu_id", "use_gpu", "checkpoint_dir", "results_dir", "show_progress", "state",
    "log_wandb", "wandb_project", "worker", "single_spec", "local_rank", "nproc", "world_size", "offset",
    "ip", "port", "raw_data_file", "download_datasets", "verbose", "search_space", "ray_address", "tune",
}
PATH_KEYS = ("raw_data_file", "checkpoint_dir", "results_dir", "tune_dir", "pretrained_model_path")
CLI_KEYS = {"search_space", "ray_address", "tune", "config_files", "study"}


def is_finetune_key(key):
    """True for keys that only the fine-tuning phase (or the search itself) reads."""
    return key.startswith(("finest_", "tune_")) or key in FINETUNE_KEYS


def pretrain_digest(config):
    """Short hash of every config value that can change the pre-trained A / B models."""
    items = [
        f"{k}={v!r}" for k, v in sorted(config.final_config_dict.items())
        if not is_finetune_key(k) and k not in RUNTIME_KEYS
    ]
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:12]


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
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


@dataclass
class TuneSetup:
    """What a trial needs to rebuild its configuration anywhere in the Ray cluster."""

    model: str
    dataset: str
    config_files: List[str]
    overrides: Dict  # user overrides (dict + command line) with absolute paths
    seeds: List[int]
    cache_dir: str
    budgets: List[int]
    metric: str = "rbo"
    mode: str = "max"
    accuracy_metric: str = "ndcg@10"
    max_drop: Optional[float] = 0.02
    reuse_pretrained: bool = True
    started: float = field(default_factory=time.time)

    def config(self, params=None, seed=None, gpu_id=""):
        """The ``Config`` of one trial / seed: files < overrides < sampled ``params``."""
        config_dict = {**self.overrides, **(params or {}), "gpu_id": gpu_id, "show_progress": False}
        if seed is not None:
            config_dict["seed"] = seed
        with isolated():
            return Config(self.model, self.dataset, self.config_files, config_dict)


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


# ---------------------------------------------------------------------------------- pre-training
def _load_splits(config):
    from recbole_finest.quick_start import load_data

    init_seed(config["seed"], config["reproducibility"])
    _, (train_data, valid_data, _) = load_data(config)
    return train_data, valid_data


def pretrained_paths(setup, config):
    """Cache files of the pair pre-trained with ``config``: ``{"A", "B", "original"}`` paths."""
    stem = os.path.join(setup.cache_dir, f"{config['model']}-{config['dataset']}-{pretrain_digest(config)}"
                                         f"-seed{int(config['seed'])}")
    return {"A": stem + "-A.pth", "B": stem + "-B.pth", "original": stem + "-original.json"}


def _usable(setup, paths):
    """The cached pair exists, may be reused, and reads back (an unreadable entry is trained again)."""
    if not all(os.path.isfile(p) for p in paths.values()):
        return False
    if not (setup.reuse_pretrained or min(os.path.getmtime(p) for p in paths.values()) >= setup.started):
        return False
    try:
        load_pretrained(paths)
    except (OSError, ValueError) as exc:  # UnreadableFileError, JSONDecodeError
        getLogger().warning(f"pre-trained cache entry {paths['A'][: -len('-A.pth')]}-* cannot be read "
                            f"({type(exc).__name__}: {exc}); training A and B again")
        return False
    return True


def ensure_pretrained(setup, config, splits=None, shared=None):
    """Make the cache files of ``config``'s pre-trained pair exist; returns their paths.

    In order: files already there (this search's, or an earlier one's with
    ``tune_reuse_pretrained``); the pair received from the driver through Ray's object store
    (``shared``, keyed by ``(digest, seed)``; a node of a cluster without a shared file system
    writes its own copy); otherwise A and B are pre-trained now. A file lock makes
    concurrent callers on one machine pre-train once.
    """
    from filelock import FileLock

    from recbole_finest.stability import StabilityRun

    os.makedirs(setup.cache_dir, exist_ok=True)
    paths = pretrained_paths(setup, config)
    with FileLock(paths["A"][: -len("-A.pth")] + ".lock"):
        if _usable(setup, paths):
            return paths
        entry = (shared or {}).get((pretrain_digest(config), int(config["seed"])))
        if entry is None:
            train_data, valid_data = splits or _load_splits(config)
            checkpoints = paths["A"][: -len("-A.pth")] + f".checkpoints-{os.getpid()}"
            config["checkpoint_dir"], previous = checkpoints, config["checkpoint_dir"]
            try:
                run = StabilityRun(config, train_data, valid_data, valid_data, saved=True)
                original = run.pretrain()
                entry = {side: {k: v.detach().cpu() for k, v in run.pretrained[side].items()} for side in ("A", "B")}
                entry["original"] = original
            finally:
                shutil.rmtree(checkpoints, ignore_errors=True)  # the run folders of its trainers
                config["checkpoint_dir"] = previous
        save_checkpoint(entry["A"], paths["A"])
        save_checkpoint(entry["B"], paths["B"])
        write_json(paths["original"], entry["original"])
    return paths


def load_pretrained(paths):
    """``{"A", "B"}`` state dicts and the ``original`` row from :func:`pretrained_paths` files."""
    with open(paths["original"], encoding="utf-8") as f:
        original = json.load(f)
    return {"A": load_checkpoint(paths["A"]), "B": load_checkpoint(paths["B"]), "original": original}


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


def _pretrain_task(setup, seed, params):
    """Ray task: pre-train (or find) the base pair of ``seed``; returns it for the object store."""
    worker_setup()
    config = setup.config(params, seed, ray_gpu_id())
    entry = load_pretrained(ensure_pretrained(setup, config))
    return {**entry, "digest": pretrain_digest(config), "seed": seed}


def stability_run(config, splits, paths):
    """``StabilityRun`` on the validation split whose pre-trained A / B come from ``paths``."""
    from recbole_finest.stability import StabilityRun

    train_data, valid_data = splits
    if "state_path" in inspect.signature(StabilityRun).parameters:
        return StabilityRun(config, train_data, valid_data, valid_data, saved=False,
                            state_path=lambda side, stage: paths[side] if stage == "pretrained" else None)
    run = StabilityRun(config, train_data, valid_data, valid_data, saved=False)
    run.pretrained = {side: load_checkpoint(paths[side], map_location=config["device"]) for side in ("A", "B")}
    return run


def _mean_rows(rows):
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "method" and k in rows[-1]}


def _flat(row):
    """A stability row with Ray-friendly names: ``ndcg@10 (B)`` -> ``ndcg@10_B``."""
    return {k.replace(" (B)", "_B"): v for k, v in row.items()}


# ---------------------------------------------------------------------------------- the trial
def trial(params, setup=None, shared=None):
    """Ray Tune function trainable: fine-tune the shared A / B pair with ``params``; report metrics.

    One report per budget in ``setup.budgets`` (ASHA rungs): each budget fine-tunes from the
    pre-trained models for that many ``finest_epochs`` (metrics averaged over ``setup.seeds``).
    """
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    gpu_id = ray_gpu_id()
    configs, pairs, originals, splits = [], [], [], None
    for seed in setup.seeds:
        config = setup.config(params, seed, gpu_id)
        config["checkpoint_dir"] = os.path.abspath("checkpoints")  # Ray runs the trial in its own folder
        splits = splits or _load_splits(config)
        paths = ensure_pretrained(setup, config, splits, shared)
        with open(paths["original"], encoding="utf-8") as f:
            originals.append(json.load(f))
        configs.append(config)
        pairs.append(paths)
    baseline = _mean_rows(originals)
    method = configs[0]["finetune_method"]
    for budget in setup.budgets:
        rows = []
        for config, paths in zip(configs, pairs):
            config["finest_epochs"] = budget
            rows.append(stability_run(config, splits, paths).finetune(method))
        metrics = _mean_rows(rows)
        result = score(metrics, baseline, setup.metric, setup.mode, setup.accuracy_metric, setup.max_drop)
        tune.report({
            **_flat(metrics), **result,
            **{f"base_{k}": v for k, v in _flat(baseline).items()},
            "finest_epochs": budget, "finetune_method": method, "n_seeds": len(configs),
        })


# ---------------------------------------------------------------------------------- outputs
def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _error_reason(error):
    """Last meaningful line of a trial's exception (Ray wraps it with the remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception)\b", line):
            return line[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


def collect_rows(results, param_keys, full_epochs):
    """Table rows of a ``ResultGrid``: params, metrics, status (ok / stopped / failed), reason."""
    rows = []
    for result in results:
        metrics, params = dict(result.metrics or {}), dict(result.config or {})
        row = {"trial": os.path.basename(str(result.path or "")) or metrics.get("trial_id", "?")}
        row.update({k: _plain(params.get(k)) for k in param_keys})
        if result.error is not None or "objective" not in metrics:
            row.update(status="failed", error=_error_reason(result.error) if result.error else "no result reported")
        else:
            row["status"] = "ok" if metrics.get("finest_epochs", full_epochs) >= full_epochs else "stopped"
            for key, value in metrics.items():
                if key.startswith("base_") or key in REPORTED or key.endswith("_B") or key in (
                        "accuracy_drop", "feasible", "objective", "finest_epochs"):
                    row.setdefault(key, _plain(value))
            row["error"] = ""
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] == "failed", -r.get("objective", -math.inf)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def table_columns(rows, param_keys, metric, accuracy_metric):
    metrics = [metric, accuracy_metric] + [k for k in REPORTED if k not in (metric, accuracy_metric)]
    metrics = [k for k in metrics if any(k in r for r in rows)]
    tail = [f"base_{accuracy_metric}", "accuracy_drop", "feasible", "objective", "finest_epochs", "error"]
    return ["rank", "trial", "status"] + list(param_keys) + metrics + tail


def to_csv(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return buffer.getvalue()


def _cell(value):
    if isinstance(value, float) and abs(value) >= 100:  # infeasible objectives: keep the drop visible
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e3 else f"{value:.4f}"
    return "" if value is None else str(value).replace("|", "\\|")


def to_markdown(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def pareto_front(points):
    """Indices of the points not dominated when maximising both coordinates, by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front[::-1]


def plot_frontier(path, rows, baseline, metric, accuracy_metric, threshold, title):
    """Scatter of ``metric`` (y) against ``accuracy_metric`` (x) of every finished trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] != "failed"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for feasible, color, label in ((True, "tab:blue", "feasible"), (False, "tab:gray", "infeasible")):
        pts = [r for r in done if bool(r.get("feasible")) == feasible]
        if pts:
            ax.scatter([r[accuracy_metric] for r in pts], [r[metric] for r in pts], c=color, label=label, zorder=3)
    if done:
        pts = [(r[accuracy_metric], r[metric]) for r in done]
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", c="tab:orange",
                label="frontier", zorder=2)
        best = done[0]
        ax.scatter([best[accuracy_metric]], [best[metric]], s=160, facecolors="none", edgecolors="tab:red",
                   label=f"best ({best['trial']})", zorder=4)
    if baseline:
        ax.scatter([baseline[accuracy_metric]], [baseline[metric]], marker="*", s=180, c="black",
                   label="not fine-tuned", zorder=4)
    if threshold is not None:
        ax.axvline(threshold, ls=":", c="tab:red", label=f"{accuracy_metric} bound")
    ax.set_xlabel(f"validation {accuracy_metric} (model A)")
    ax.set_ylabel(f"validation {metric} (A vs B)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def best_config_yaml(setup, user_overrides, best, header):
    """YAML text of the best trial: the search's own overrides plus the best sampled values."""
    body = {"model": setup.model, "dataset": setup.dataset}
    body.update({k: _plain(v) for k, v in user_overrides.items() if not k.startswith("tune_") and k not in CLI_KEYS})
    body.update({k: _plain(v) for k, v in best.items()})
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------------------------- the driver
def resources_of(config, key):
    """``{"cpu", "gpu"}`` Ray resources of the config key ``key`` (checked by ``Config``), with the defaults."""
    return {"cpu": 1, "gpu": 0, **config[key]}


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


def run_tune(model=None, dataset=None, config_file_list=None, config_dict=None, search_space=None,
             ray_address=None):
    """Run the search; mirrors ``run_recbole_finest`` for its arguments.

    Args:
        search_space: path of the search-space YAML (default ``properties/tune/finest.yaml``).
        ray_address: address of an existing Ray cluster (``auto`` = the local ``ray start``
            one); None starts Ray on this machine with ``tune_num_cpus`` / ``tune_num_gpus``.

    Returns:
        dict: ``folder``, ``rows`` (the results table), ``best`` (row of the best trial or
        None), ``best_config`` / ``table_csv`` / ``table_md`` / ``plot`` paths.
    """
    import ray
    from ray import tune
    from ray.tune import FailureConfig, RunConfig
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from recbole_finest.config import properties_dir

    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    base = Config(model, dataset, config_file_list, config_dict)  # the only Config that reads the command line
    if cuda is None:  # RecBole set it to gpu_id; Ray must see every GPU of the machine
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda
    check_writable(base["tune_dir"], "tune_dir")  # the keys were checked by Config (recbole_finest.config)
    init_logger(base)
    logger = getLogger()
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)  # Ray's TBX logger renames keys with '@' at INFO
    search_space = search_space or os.path.join(properties_dir(), "tune", "finest.yaml")
    space = load_search_space(search_space, known_keys=set(base.final_config_dict))
    if base["tune_scheduler"] == "asha" and "finest_epochs" in space:
        raise ValueError(f"search space {search_space}: finest_epochs cannot be searched with tune_scheduler: asha "
                         f"(ASHA's budget is finest_epochs)")

    user_overrides = {**(config_dict or {}), **{k: v for k, v in base.cmd_config_dict.items() if k not in CLI_KEYS}}
    name = base["tune_name"] or f"{base['model']}-{base['dataset']}-{get_local_time()}"
    tune_dir = os.path.abspath(base["tune_dir"])
    folder = os.path.join(tune_dir, name)
    epochs = base["finest_epochs"]
    setup = TuneSetup(
        model=base["model"], dataset=base["dataset"],
        config_files=[os.path.abspath(f) for f in (config_file_list or [])],
        overrides=absolute_overrides(base, user_overrides),
        seeds=[int(s) for s in (base["tune_seeds"] or [base["seed"]])],
        cache_dir=os.path.join(tune_dir, "pretrained"),
        budgets=budgets_of(epochs, base["tune_scheduler"], base["tune_asha_grace_period"],
                           base["tune_asha_reduction_factor"]),
        metric=base["tune_metric"], mode=base["tune_mode"], accuracy_metric=base["tune_accuracy_metric"],
        max_drop=base["tune_max_accuracy_drop"], reuse_pretrained=bool(base["tune_reuse_pretrained"]),
    )
    resources = resources_of(base, "tune_resources_per_trial")
    logger.info(set_color("Ray Tune search", "green") + f" {name}: {search_space} -> {folder}")

    started = init_ray(ray_address, base["tune_num_cpus"], base["tune_num_gpus"])
    try:
        logger.info(f"Ray resources: {ray.cluster_resources()}; per trial: {resources}")
        # pre-train A and B once per seed, as Ray tasks on the trials' resources
        task = ray.remote(_pretrain_task).options(num_cpus=resources["cpu"], num_gpus=resources["gpu"])
        logger.info(set_color(f"pre-training A and B for seeds {setup.seeds}", "yellow"))
        constants = {k: v for k, v in space.items() if not _is_distribution(v)}
        entries = ray.get([task.remote(setup, seed, constants) for seed in setup.seeds])
        shared = {(e["digest"], e["seed"]): e for e in entries}
        baseline = _mean_rows([e["original"] for e in entries])
        logger.info(f"not fine-tuned (validation): {baseline}")

        scheduler = FIFOScheduler()
        if base["tune_scheduler"] == "asha":
            scheduler = ASHAScheduler(time_attr="finest_epochs", max_t=epochs,
                                      grace_period=base["tune_asha_grace_period"],
                                      reduction_factor=base["tune_asha_reduction_factor"])
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trial, setup=setup, shared=shared), resources),
            param_space=to_param_space(space),
            tune_config=tune.TuneConfig(
                metric="objective", mode="max", num_samples=base["tune_num_samples"], scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=int(base["seed"])),
                max_concurrent_trials=base["tune_max_concurrent_trials"],
                trial_name_creator=lambda t: f"trial_{t.trial_id}",
                trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
            ),
            run_config=RunConfig(name=name, storage_path=tune_dir, verbose=base["tune_verbose"],
                                 failure_config=FailureConfig(max_failures=0, fail_fast=False)),
        )
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return write_outputs(folder, setup, base, space, search_space, user_overrides, results, baseline)


def write_outputs(folder, setup, base, space, search_space, user_overrides, results, baseline):
    """Results table (CSV + Markdown), best YAML, frontier plot, summary; returns their paths."""
    logger = getLogger()
    param_keys = list(space)
    epochs = setup.budgets[-1]
    rows = collect_rows(results, param_keys, epochs)
    columns = table_columns(rows, param_keys, setup.metric, setup.accuracy_metric)
    drop = setup.max_drop
    threshold = None if drop is None else baseline[setup.accuracy_metric] * (1 - drop)
    goal = (f"{setup.mode}imise validation {setup.metric}"
            + (f" s.t. {setup.accuracy_metric} >= {threshold:.4f} ({drop:.0%} below the not fine-tuned "
               f"{baseline[setup.accuracy_metric]:.4f})" if drop is not None else ""))
    out = {"folder": folder, "rows": rows, "best": None, "best_config": None,
           "table_csv": os.path.join(folder, "results.csv"), "table_md": os.path.join(folder, "results.md"),
           "plot": os.path.join(folder, "frontier.png")}
    write_text(out["table_csv"], to_csv(rows, columns))
    base_cells = ", ".join(f"{k} {baseline[k]:.4f}" for k in REPORTED if k in baseline)
    n_failed = sum(r["status"] == "failed" for r in rows)
    write_text(out["table_md"], (
        f"# Ray Tune search: {setup.model} on {setup.dataset}\n\n"
        f"Objective: {goal}. Seeds: {setup.seeds}. Search space: `{search_space}`.\n\n"
        f"Not fine-tuned (validation): {base_cells}.\n\n"
        f"{len(rows)} trials, {n_failed} failed.\n\n{to_markdown(rows, columns)}\n"))
    write_text(os.path.join(folder, "search_space.yaml"), yaml.safe_dump(space, sort_keys=False))
    done = [r for r in rows if r["status"] != "failed"]
    if done:
        best = done[0]
        out["best"] = best
        header = [
            f"Best configuration of the Ray Tune search {os.path.basename(folder)} (recbole-finest).",
            f"Objective: {goal}.",
            f"Trial {best['trial']}: {setup.metric} {best[setup.metric]:.4f}, {setup.accuracy_metric} "
            f"{best[setup.accuracy_metric]:.4f}, feasible: {best['feasible']}.",
            "Use: python run_recbole_finest.py --config_files \""
            + " ".join(setup.config_files + [os.path.join(folder, "best_config.yaml")]) + "\"",
        ]
        if not best["feasible"]:
            header.insert(2, f"WARNING: no trial met the {setup.accuracy_metric} bound; this is the closest one.")
        out["best_config"] = os.path.join(folder, "best_config.yaml")
        tuned = {k: best[k] for k in param_keys}
        write_text(out["best_config"], best_config_yaml(setup, user_overrides, tuned, header))
        plot_frontier(out["plot"], rows, baseline, setup.metric, setup.accuracy_metric, threshold,
                      f"{setup.model} on {setup.dataset}: {len(done)} trials")
    else:
        out["plot"] = None
        logger.error(f"every trial failed; see {out['table_md']}")
    write_json(os.path.join(folder, "summary.json"), {
        "objective": goal, "baseline": baseline, "seeds": setup.seeds, "budgets": setup.budgets,
        "search_space": space, "best": out["best"], "n_trials": len(rows), "n_failed": n_failed,
        "files": {k: out[k] for k in ("table_csv", "table_md", "best_config", "plot")},
    })
    logger.info(set_color("Ray Tune results", "yellow") + f" ({goal})\n" + to_markdown(rows, columns))
    logger.info(f"best configuration: {out['best_config']}; frontier plot: {out['plot']}")
    return out
