"""Per-method tuning: the same search budget for every method, its chosen settings as one YAML.

    python run_recbole_finest.py --tune_methods --config_files "properties/study/reddit_paper.yaml \
        properties/study/tune_paper.yaml" [--search_space properties/tune/methods.yaml]

For every model (``study_models``, else ``model``) and every method (``tune_methods``, else
``study_methods`` without ``original``) one Ray Tune search (:func:`recbole_finest.tune.driver.run_tune`)
draws ``tune_num_samples`` trials of that method from its own space: ``finest_learning_rate``
and the method's one strength knob (``FinetuneMethod.strength``: ``finest_lambda`` for the
FINEST variants, ``adv_eps`` for ``acae`` / ``apr_*``, ``pamacf_rho``, ``vat_rho``,
``finest_sim_ratio`` for ``random`` and ``finest_no_reg``, ...), with the ranges of the
search-space file. Every search uses the same objective (``tune_metric`` on the validation
split, ``tune_accuracy_metric`` at most ``tune_max_accuracy_drop`` below the not fine-tuned
model), the same pre-trained pair (cached under ``<tune_dir>/pretrained``) and the same
number of trials.

Outputs under ``<tune_dir>/<tune_name>/`` (``tune_name`` ~ = ``methods-<dataset>``): one
Ray search folder ``<tune_name>-<model>-<method>`` per search (next to it), ``spaces/`` (each
method's search space), ``chosen/<model>-<method>.json`` (the best trial of a finished
search; a rerun skips that search) and ``methods.yaml``: ``study_method_config`` with the
chosen settings per model and method, ready to be listed after a study's config files.
"""

import json
import os
from collections import OrderedDict
from logging import getLogger

import yaml
from recbole.utils import set_color

from recbole_finest.compat.registry import init_logger
from recbole_finest.config import properties_dir, run_config
from recbole_finest.fileio import write_json, write_text
from recbole_finest.methods import get_method
from recbole_finest.tune import cluster, driver
from recbole_finest.tune.identity import CLI_KEYS
from recbole_finest.tune.objective import is_frbo, is_jaccard
from recbole_finest.tune.space import load_search_space

LEARNING_RATE = "finest_learning_rate"


def method_space(space, method):
    """The search space of ``method``: ``finest_learning_rate`` and its strength knob, from ``space``.

    Raises ``ValueError`` for a method without a knob (``original``) or a knob that
    ``space`` does not hold.
    """
    knob = get_method(method).strength
    if knob is None:
        raise ValueError(f"config key 'tune_methods': {method} has no fine-tuning settings to tune")
    missing = [k for k in (LEARNING_RATE, knob) if k not in space]
    if missing:
        raise ValueError(f"search space: {method} needs a range for {', '.join(missing)}")
    return {LEARNING_RATE: space[LEARNING_RATE], knob: space[knob]}


def expected_trials(space, num_samples):
    """Trials of a complete search: ``num_samples`` x the product of the space's grid sizes."""
    n = num_samples
    for value in space.values():
        if isinstance(value, dict) and list(value) == ["grid"]:
            n *= len(value["grid"])
    return n


def tuned_models_and_methods(config):
    """``(models, methods)`` of the per-method tuning, validated before any search."""
    from recbole_finest.study.grid import _as_list

    models = _as_list(config, "study_models", [config["model"]])
    methods = config["tune_methods"] or [m for m in _as_list(config, "study_methods") if m != "original"]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError(f"config key 'tune_methods' must be ~ or a non-empty list of methods, got {methods!r}")
    for method in methods:
        try:
            get_method(method)
        except ValueError:
            raise ValueError(f"config key 'tune_methods': unknown method {method!r}") from None
    return models, list(methods)


def methods_yaml(chosen, header=()):
    """YAML text of ``study_method_config: {model: {method: {key: value}}}`` from chosen records."""
    body = OrderedDict()
    for record in chosen:
        body.setdefault(record["model"], {})[record["method"]] = dict(record["params"])
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump({"study_method_config": {m: dict(v) for m, v in body.items()}},
                                     sort_keys=False, default_flow_style=None)


def _read_chosen(folder):
    out = []
    chosen_dir = os.path.join(folder, "chosen")
    for name in sorted(os.listdir(chosen_dir)) if os.path.isdir(chosen_dir) else ():
        if name.endswith(".json"):
            with open(os.path.join(chosen_dir, name), encoding="utf-8") as f:
                out.append(json.load(f))
    return out


def write_methods_yaml(folder, base, search_space):
    """``<folder>/methods.yaml`` from every ``chosen/`` record; returns ``(chosen, path)``."""
    chosen = _read_chosen(folder)
    header = [
        "Per-method settings chosen by run_recbole_finest.py --tune_methods (recbole-finest).",
        f"Objective: validation {base['tune_metric']} with {base['tune_accuracy_metric']} at most "
        f"{base['tune_max_accuracy_drop']} (relative) below the not fine-tuned model; {base['tune_num_samples']} "
        f"trials per method, finest_epochs {base['finest_epochs']}, search space {search_space}.",
    ] + [f"{r['model']} {r['method']}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items())
         + ("" if r["feasible"] else " (INFEASIBLE: no trial met the accuracy bound; the closest one)")
         for r in chosen]
    path = os.path.join(folder, "methods.yaml")
    write_text(path, methods_yaml(chosen, header))
    return chosen, path


def run_tune_methods(model=None, dataset=None, config_file_list=None, config_dict=None, search_space=None,
                     ray_address=None):
    """Tune every (model, method) with the same budget; write ``methods.yaml``.

    Args mirror :func:`recbole_finest.tune.run_tune`; ``search_space`` (default
    ``properties/tune/methods.yaml``) gives the range of each knob.

    Returns:
        dict: ``folder``, ``chosen`` (one record per finished search: ``model``, ``method``,
        ``params``, ``metrics``, ``feasible``, ``search``), ``methods_yaml`` (path),
        ``searched`` (the (model, method) pairs searched in this call).
    """
    import ray

    from recbole_finest.study.grid import _first_model

    base = run_config(_first_model(model, config_file_list, config_dict), dataset, config_file_list, config_dict)
    init_logger(base)
    models, methods = tuned_models_and_methods(base)
    search_space = search_space or os.path.join(properties_dir(), "tune", "methods.yaml")
    space = load_search_space(search_space, base)
    spaces = {m: method_space(space, m) for m in methods}  # every missing range fails before any search
    prefix = base["tune_name"] or f"methods-{base['dataset']}"
    folder = os.path.join(os.path.abspath(base["tune_dir"]), prefix)
    for method, sub in spaces.items():
        write_text(os.path.join(folder, "spaces", f"{method}.yaml"), yaml.safe_dump(sub, sort_keys=False))
    overrides = {**(config_dict or {}), **{k: v for k, v in base.cmd_config_dict.items() if k not in CLI_KEYS}}
    searched = []
    started = cluster.init_ray(ray_address, base["tune_num_cpus"], base["tune_num_gpus"])  # one Ray for all
    try:
        for model_name in models:
            for method in methods:
                search = MethodSearch(folder, prefix, model_name, method, spaces[method])
                if search.run(dataset, config_file_list, overrides, ray_address, base["tune_num_samples"]):
                    searched.append((model_name, method))
                    write_methods_yaml(folder, base, search_space)  # usable while later searches run
    finally:
        if started:
            ray.shutdown()
    chosen, path = write_methods_yaml(folder, base, search_space)
    getLogger().info(set_color("per-method settings", "yellow") + f": {path}")
    return {"folder": folder, "chosen": chosen, "methods_yaml": path, "searched": searched}


class MethodSearch:
    """One (model, method) search of the per-method tuning; its record ``chosen/<model>-<method>.json``."""

    def __init__(self, folder, prefix, model, method, space):
        self.folder, self.model, self.method, self.space = folder, model, method, space
        self.name = f"{prefix}-{model}-{method}"
        self.done = os.path.join(folder, "chosen", f"{model}-{method}.json")

    def run(self, dataset, config_file_list, overrides, ray_address, num_samples):
        """Search unless chosen earlier; True when it searched. A complete search writes its record."""
        logger = getLogger()
        if os.path.isfile(self.done):
            logger.info(f"{self.model} {self.method}: tuned earlier ({self.done})")
            return False
        logger.info(set_color(f"per-method tuning: {self.model} {self.method}", "green")
                    + f" over {', '.join(self.space)}")
        overrides = {**overrides, "finetune_method": self.method, "tune_name": self.name}
        with cluster.isolated():  # the command line is in `overrides`; it must not override them again
            out = driver.run_tune(self.model, dataset, config_file_list, overrides,
                                  search_space=os.path.join(self.folder, "spaces", f"{self.method}.yaml"),
                                  ray_address=ray_address)
        expected = expected_trials(self.space, num_samples)
        finished = [r for r in out["rows"] if r["status"] == "ok" or (
            r["status"] == "failed" and r.get("error") != "no result reported")]
        if len(finished) < expected:  # interrupted: not chosen, the next call searches again
            logger.warning(f"{self.model} {self.method}: {len(finished)} of {expected} trials finished; "
                           f"not chosen, a rerun searches it again")
        elif out["best"] is None:
            logger.error(f"{self.model} {self.method}: every trial failed ({out['table_md']}); not chosen")
        else:
            self.choose(out)
        return True

    def choose(self, out):
        """Write the record of the best trial of the finished search ``out``."""
        best = out["best"]
        jaccards = [k for k in best if is_frbo(k) or is_jaccard(k)]  # the search's frbo_k / jaccard_k
        write_json(self.done, {
            "model": self.model, "method": self.method, "params": {k: best[k] for k in self.space},
            "metrics": {k: best[k] for k in ("rbo", *jaccards, "ndcg@10", "mrr") if k in best},
            "feasible": bool(best["feasible"]), "objective": best["objective"], "search": out["folder"],
        })
