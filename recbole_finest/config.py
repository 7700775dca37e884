"""``Config``: RecBole's configurator plus the plugin's properties and key validation.

Precedence is RecBole's: command line > config dict > config files > the plugin's
properties (``properties/overall/finest.yaml``, ``properties/model/<model>.yaml``,
``properties/dataset/<dataset>.yaml``) > RecBole's own properties.

Validation lives here and only here: :data:`KEYS` is a declarative table of every plugin
key (name, default, what is allowed, whether it is a per-run value), and :func:`validate`
checks a built ``Config`` against it once, before any data is loaded. A key with one of the
plugin's prefixes (:data:`PREFIXES`) that the table does not know is an error with a
"did you mean" suggestion. Each :class:`Key` is a frozen record, so the table can later
become frozen dataclasses of settings without changing the checks.
"""

import difflib
import math
import os
from dataclasses import dataclass
from typing import Callable

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_finest.data.casper import EXACT_MAX_NODES as CASPER_EXACT_MAX_NODES
from recbole_finest.data.casper import METHODS as CASPER_METHODS
from recbole_finest.utils import get_model

SIM_KINDS = ("random", "deletion", "replacement", "insertion", "mixed")
TRAIN_UNITS = ("auto", "sequence", "prefix")
REFERENCE_PROTOCOLS = ("shared", "independent")
REPLACE_RULES = ("random", "least_popular")
#: every key starting with one of these belongs to the plugin and must be in :data:`KEYS`
PREFIXES = ("finest_", "perturb_", "study_", "tune_", "adv_", "apt_", "rbo_", "jaccard_", "emb_", "pamacf_",
            "vat_", "casper_")


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message names it and what is allowed."""


# ---------------------------------------------------------------------------------- checks
# A check is ``(test(value) -> bool, description of what is allowed)``.
@dataclass(frozen=True)
class Check:
    test: Callable
    allowed: str

    def __call__(self, value):
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def optional(check):
    return Check(lambda v: v is None or check(v), f"{check.allowed} or ~")


def one_of(*allowed):
    return Check(lambda v: isinstance(v, str) and v in allowed, f"one of {', '.join(allowed)}")


def lazy_one_of(names_fn, what):
    """Choice among names only known at validation time (e.g. registered methods)."""
    return Check(lambda v: isinstance(v, str) and v in names_fn(), what)


RATIO = Check(lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)")
POSITIVE_INT = Check(lambda v: _is_int(v) and v >= 1, "a positive integer")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "an integer >= 0")
NON_NEGATIVE = Check(lambda v: _is_number(v) and v >= 0, "a non-negative number")
POSITIVE = Check(lambda v: _is_number(v) and v > 0, "a positive number")
BOOL = Check(lambda v: isinstance(v, bool), "True or False")
TEXT = Check(lambda v: isinstance(v, str) and v != "", "a non-empty string")
ANY = Check(lambda v: True, "any value")
RBO_P = Check(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")
SHARE_OR_COUNT = Check(lambda v: _is_number(v) and v > 0 and (v < 1 or float(v) == int(v)),
                       "a positive integer or a share in (0, 1)")
FAKE_LENGTH = Check(lambda v: _is_int(v) and v >= 2, "an integer >= 2")
LIST = Check(lambda v: isinstance(v, (list, tuple, str, int, float)) and v != [], "a value or a non-empty list")
SEEDS = Check(lambda v: (_is_int(v) and v >= 1) or (isinstance(v, (list, tuple)) and v and all(_is_int(s) for s in v)),
              "a positive count or a list of integer seeds")
DICT = Check(lambda v: isinstance(v, dict), "a mapping")
GRIDS = Check(lambda v: isinstance(v, (list, tuple)) and all(isinstance(g, dict) for g in v),
              "a list of dicts of study_* keys")
RESOURCES = Check(lambda v: isinstance(v, dict) and not set(v) - {"cpu", "gpu"}
                  and all(_is_number(x) and x >= 0 for x in v.values())
                  and (v.get("gpu", 0) <= 1 or float(v["gpu"]) == int(v["gpu"])),
                  "a mapping like {cpu: 1, gpu: 0.5} (gpu above 1 a whole number)")
EPOCHS = Check(lambda v: (_is_int(v) and v >= 1) or (isinstance(v, (list, tuple)) and v
                                                     and all(_is_int(e) and e >= 1 for e in v)),
               "a positive epoch count or a list of them")
SEEDS_LIST = Check(lambda v: isinstance(v, (list, tuple)) and v and all(_is_int(s) for s in v),
                   "a list of integer seeds")


def _methods():
    from recbole_finest.methods import METHODS

    return METHODS


def _selections():
    from recbole_finest.data.perturb import SELECTIONS

    return SELECTIONS


def _kinds():
    from recbole_finest.data.perturb import KINDS

    return KINDS


def _tune_metrics():
    from recbole_finest.tune import REPORTED

    return REPORTED


# ---------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Key:
    """One plugin key: its default (as in ``properties/overall/finest.yaml``) and what is allowed.

    ``runtime``: a per-run value (a study cell's or a trial's seed, method, perturbation),
    passed to the code that runs one cell; two runs that differ only in these keys share a
    study folder.
    """

    name: str
    default: object
    check: Check
    runtime: bool = False


def _key(name, default, check, runtime=False):
    return Key(name, default, check, runtime)


KEYS = {k.name: k for k in (
    # --- training data layout
    _key("train_unit", "auto", one_of(*TRAIN_UNITS)),
    _key("train_neg_sample_args", None, ANY),  # RecBole's key; the plugin turns it off for sequential models
    _key("mask_copies", 1, POSITIVE_INT),
    _key("window_stride", None, optional(POSITIVE_INT)),
    _key("length_bucketing", True, BOOL),
    _key("target_split", 1, POSITIVE_INT),
    # --- FINEST fine-tuning
    _key("finest", True, BOOL),
    _key("finetune_method", "finest", lazy_one_of(_methods, "a method of recbole_finest.methods.METHODS"),
         runtime=True),
    _key("pretrained_model_path", None, optional(TEXT)),
    _key("finest_epochs", 50, POSITIVE_INT),
    _key("finest_learning_rate", 0.0001, POSITIVE),
    _key("finest_topk", 100, POSITIVE_INT),
    _key("finest_sim_ratio", 0.01, RATIO),
    _key("finest_sim_kind", "random", one_of(*SIM_KINDS)),
    _key("finest_lambda", 1.0, NON_NEGATIVE),
    _key("finest_beta1", 0.1, NON_NEGATIVE),
    _key("finest_beta2", 0.1, NON_NEGATIVE),
    _key("finest_order_loss", True, BOOL),
    _key("finest_score_loss", True, BOOL),
    _key("finest_simulation", True, BOOL),
    _key("finest_select_best", False, BOOL),
    _key("finest_reference_file", None, optional(TEXT)),
    # --- stability evaluation
    _key("stability", True, BOOL),
    _key("reference_protocol", "shared", one_of(*REFERENCE_PROTOCOLS)),
    _key("perturb_family", None, optional(TEXT)),
    _key("perturb_selection", "random", lazy_one_of(_selections, "one of random, earliest, latest, casper"),
         runtime=True),
    _key("perturb_kind", "deletion", lazy_one_of(_kinds, "one of deletion, replacement, insertion, mixed"),
         runtime=True),
    _key("perturb_ratio", 0.001, RATIO, runtime=True),
    _key("perturb_count", None, optional(POSITIVE_INT), runtime=True),
    _key("perturb_replace_with", "random", one_of(*REPLACE_RULES)),
    _key("perturb_insert_with", "random", one_of(*REPLACE_RULES)),
    _key("casper_roots_only", False, BOOL),
    _key("casper_method", "auto", one_of(*CASPER_METHODS)),
    _key("casper_exact_max_nodes", CASPER_EXACT_MAX_NODES, POSITIVE_INT),
    _key("perturb_time_fraction", 0.1, RATIO),
    _key("rbo_p", 1.0, RBO_P),
    _key("rbo_depth", None, optional(POSITIVE_INT)),
    _key("jaccard_k", 10, POSITIVE_INT),
    _key("results_dir", "saved/finest", TEXT),
    # --- datasets
    _key("raw_data_file", None, optional(TEXT)),
    _key("download_datasets", True, BOOL),
    # --- baselines
    _key("adv_eps", 0.1, NON_NEGATIVE),
    _key("adv_alpha", None, optional(NON_NEGATIVE)),
    _key("adv_steps", 3, POSITIVE_INT),
    _key("adv_lambda", 1.0, NON_NEGATIVE),
    _key("pamacf_rho", 0.2, NON_NEGATIVE),
    _key("vat_rho", 0.2, NON_NEGATIVE),
    _key("apt_fake_users", 0.01, SHARE_OR_COUNT),
    _key("apt_fake_length", None, optional(FAKE_LENGTH)),
    # --- embedding-level stability
    _key("emb_stability_objective", "loss", one_of("loss", "ranks")),
    # --- stability study
    _key("study_models", None, optional(LIST)),
    _key("study_methods", ["original", "finest"], LIST),
    _key("study_selections", ["random", "casper"], LIST),
    _key("study_kinds", ["deletion"], LIST),
    _key("study_ratios", [0.001], LIST),
    _key("study_seeds", 3, SEEDS),
    _key("study_grids", None, optional(GRIDS)),
    _key("study_model_config", None, optional(DICT)),
    _key("study_method_config", None, optional(DICT)),
    _key("study_eval_epochs", None, optional(EPOCHS)),
    _key("study_dir", None, optional(TEXT)),
    _key("study_reference_method", "finest", lazy_one_of(_methods, "a method of recbole_finest.methods.METHODS")),
    _key("study_group_fraction", 0.2, Check(lambda v: _is_number(v) and 0 < v <= 0.5, "a number in (0, 0.5]")),
    _key("study_save_models", True, BOOL),
    _key("study_plot_dpi", 80, POSITIVE_INT),
    _key("study_backend", "local", one_of("local", "ray")),
    _key("study_resources_per_cell", {"cpu": 1, "gpu": 0}, RESOURCES),
    # --- tuning
    _key("tune_dir", "saved/tune", TEXT),
    _key("tune_name", None, optional(TEXT)),
    _key("tune_num_samples", 8, POSITIVE_INT),
    _key("tune_metric", "rbo", lazy_one_of(_tune_metrics, "one of rbo, jaccard@10, ndcg@10, mrr, mrr@10, recall@10")),
    _key("tune_mode", "max", one_of("max", "min")),
    _key("tune_accuracy_metric", "ndcg@10",
         lazy_one_of(_tune_metrics, "one of rbo, jaccard@10, ndcg@10, mrr, mrr@10, recall@10")),
    _key("tune_max_accuracy_drop", 0.02, optional(NON_NEGATIVE)),
    _key("tune_seeds", None, optional(SEEDS_LIST)),
    _key("tune_resources_per_trial", {"cpu": 1, "gpu": 0}, RESOURCES),
    _key("tune_num_cpus", None, optional(POSITIVE_INT)),
    _key("tune_num_gpus", None, optional(NON_NEGATIVE_INT)),
    _key("tune_max_concurrent_trials", None, optional(POSITIVE_INT)),
    _key("tune_scheduler", "fifo", one_of("fifo", "asha")),
    _key("tune_asha_grace_period", 1, POSITIVE_INT),
    _key("tune_asha_reduction_factor", 2, Check(lambda v: _is_int(v) and v >= 2, "an integer >= 2")),
    _key("tune_reuse_pretrained", True, BOOL),
    _key("tune_verbose", 1, Check(lambda v: _is_int(v) and 0 <= v <= 2, "0, 1 or 2")),
    _key("tune_methods", None, optional(LIST)),
)}

#: RecBole keys the plugin relies on: checked too (their defaults are RecBole's)
RECBOLE_KEYS = {k.name: k for k in (
    _key("epochs", None, POSITIVE_INT),
    _key("train_batch_size", None, POSITIVE_INT),
    _key("eval_batch_size", None, POSITIVE_INT),
    _key("learning_rate", None, POSITIVE),
    _key("stopping_step", None, POSITIVE_INT),
    _key("eval_step", None, POSITIVE_INT),
    _key("seed", None, Check(_is_int, "an integer"), runtime=True),
    _key("MAX_ITEM_LIST_LENGTH", None, POSITIVE_INT),
    _key("checkpoint_dir", None, TEXT),
)}

RUNTIME_KEYS = frozenset(k.name for k in (*KEYS.values(), *RECBOLE_KEYS.values()) if k.runtime)
#: keys of where and how a run happens (devices, folders, logging, the command line): they change no
#: number, so no cache identity (a study's fingerprint, tune's pretrain_digest) reads them
ENVIRONMENT_KEYS = frozenset({
    "device", "gpu_id", "use_gpu", "checkpoint_dir", "results_dir", "show_progress", "state",
    "log_wandb", "wandb_project", "worker", "single_spec", "local_rank", "nproc", "world_size", "offset",
    "ip", "port", "raw_data_file", "download_datasets", "verbose", "search_space", "ray_address", "tune",
})


def identity_items(config, ignored=frozenset()):
    """The ``(key, value)`` items of ``config`` (sorted) that identify cached results.

    The one place cache identity is cut from a config: leaves out :data:`ENVIRONMENT_KEYS`
    and ``ignored`` (a caller's own per-run or phase keys). Used by
    :func:`recbole_finest.study.fingerprint` and :func:`recbole_finest.tune.pretrain_digest`.
    """
    skip = ENVIRONMENT_KEYS | frozenset(ignored)
    return [(k, v) for k, v in sorted(config.final_config_dict.items()) if k not in skip]


def properties_dir():
    """Folder of the plugin's YAML properties, in a source checkout or an installed wheel."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(here, "properties"), os.path.join(here, os.pardir, "properties")):
        if os.path.isdir(os.path.join(candidate, "overall")):
            return os.path.realpath(candidate)
    raise FileNotFoundError(f"recbole-finest properties/ folder not found next to {here}")


def declared_keys():
    """Every key the plugin knows: the table plus the keys of every ``properties/overall/*.yaml``."""
    known = set(KEYS)
    folder = os.path.join(properties_dir(), "overall")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            known |= set(read_yaml(os.path.join(folder, name)))
    return known


def read_yaml(path, loader=yaml.SafeLoader):
    """A YAML mapping from ``path``; :class:`ConfigError` naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.load(f.read(), Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file {path}:{where}: YAML syntax error: {problem}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must be a mapping of config keys, got {type(content).__name__}")
    return content


class Config(RecBoleConfig):
    """RecBole ``Config`` that knows the plugin's models and YAML defaults."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        from recbole_finest.registry import register

        register()  # NumPy 2 aliases RecBole 1.2.1 needs
        super().__init__(model, dataset, config_file_list, config_dict)
        validate(self)

    def _load_config_files(self, file_list):
        out = {}
        for file in file_list or []:
            if not os.path.isfile(file):
                raise ConfigError(f"config file not found: {file}")
            out.update(read_yaml(file, self.yaml_loader))
        return out

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("model must be given: --model=<name>, a config file or a config dict")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("dataset must be given: --dataset=<name>, a config file or a config dict")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        recbole_negatives = self.internal_config_dict.get("train_neg_sample_args")
        root = properties_dir()
        dataset_file = os.path.join(root, "dataset", f"{dataset}.yaml")
        for file in (
            os.path.join(root, "overall", "finest.yaml"),
            os.path.join(root, "overall", "update.yaml"),
            os.path.join(root, "model", f"{model}.yaml"),
            dataset_file,
        ):
            if os.path.isfile(file):
                loaded = self._update_internal_config_dict(file) or {}
                if file == dataset_file:
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        recbole_file = os.path.join(os.path.dirname(recbole_properties()), "dataset", f"{dataset}.yaml")
        if not os.path.isfile(dataset_file) and not os.path.isfile(recbole_file):
            # a dataset the plugin converts from a raw file: the columns of INTER_HEADER
            self.internal_config_dict.update(default_dataset_keys())
            self.parameters["Dataset"] += [k for k in default_dataset_keys() if k not in self.parameters["Dataset"]]
        if getattr(model_class, "type", None) != ModelType.SEQUENTIAL:
            # the plugin samples BPR negatives itself for sequential models only; general
            # models (stability: False) keep RecBole's own negative sampling
            self.internal_config_dict["train_neg_sample_args"] = recbole_negatives


def recbole_properties():
    """RecBole's ``properties/overall.yaml``."""
    import recbole

    return os.path.join(os.path.dirname(recbole.__file__), "properties", "overall.yaml")


def default_dataset_keys():
    """Columns of a converted raw file (``recbole_finest.data.datasets.INTER_HEADER``)."""
    return {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}


def did_you_mean(name, known):
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if not close:
        close = [k for k in sorted(known) if k.lower() == name.lower()]
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_value(key, value):
    """``ConfigError`` naming ``key``, ``value`` and what is allowed unless ``value`` passes the table."""
    spec = KEYS.get(key) or RECBOLE_KEYS[key]
    if not spec.check(value):
        raise ConfigError(f"config key '{key}' must be {spec.check.allowed}, got {value!r}")
    return value


def checked(config, key):
    """``config[key]`` after :func:`check_value` (for code that reads a key outside :func:`validate`)."""
    return check_value(key, config[key])


def check_unknown_keys(keys, known=None):
    """``ConfigError`` for the first key with a plugin prefix that the plugin does not know."""
    known = declared_keys() if known is None else known
    for key in keys:
        if isinstance(key, str) and key.startswith(PREFIXES) and key not in known:
            raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, known)}: keys starting with "
                              f"{', '.join(PREFIXES)} belong to recbole-finest (docs/config.md lists them)")


def validate(config):
    """Check every plugin key of a built ``Config``: one :class:`ConfigError` naming the key, value and what is allowed.

    Runs before any data is loaded. Dataset-dependent limits (``finest_topk`` against the
    number of items, ``jaccard_k`` / ``rbo_depth`` against it) are checked once the
    dataset is loaded, still before the first epoch (:func:`check_dataset_limits`).
    """
    check_unknown_keys(config.external_config_dict)
    for key in (*KEYS, *RECBOLE_KEYS):
        if key in config.final_config_dict:
            check_value(key, config[key])
    depth, k = config["rbo_depth"], config["jaccard_k"]
    if depth is not None and k > depth:
        raise ConfigError(f"config key 'jaccard_k' ({k}) must not exceed 'rbo_depth' ({depth}): both are "
                          f"read from the same rank lists of rbo_depth items")
    path = config["pretrained_model_path"]
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"config key 'pretrained_model_path': checkpoint file not found: {path}")


def check_dataset_limits(config, n_items):
    """Limits that need the dataset's ``n_items`` (id 0 = padding): rank-list depths fit the catalogue."""
    n_real = n_items - 1
    topk = config["topk"]
    for key, value in (("jaccard_k", config["jaccard_k"]), ("rbo_depth", config["rbo_depth"]),
                       ("topk", max(topk) if isinstance(topk, (list, tuple)) and topk else topk)):
        if value is not None and value > n_real:
            raise ConfigError(f"config key '{key}' is {value} but the dataset has only {n_real} items; "
                              f"set {key} <= {n_real}")
