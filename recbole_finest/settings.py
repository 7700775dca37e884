"""The plugin's settings, in one place: frozen dataclasses, one group per key prefix.

Every plugin key is one field of a group (``finest_topk`` is ``FinestSettings.topk``); the
field's metadata carries its config key, the :class:`~recbole_finest.checks.Check` of what
is allowed and two tags:

* ``runtime``: a per-run value (a study cell's or a trial's method, seed, perturbation),
  passed as an argument to the code that runs one cell; runs that differ only in these
  share a study folder;
* ``environment``: where and how a run happens (folders, downloads); it changes no number.

Everything else derives from these fields: the key table :data:`KEYS` (and
:data:`RECBOLE_KEYS`, the RecBole keys the plugin relies on) that ``config.validate``
checks, :data:`RUNTIME_KEYS`, :data:`ENVIRONMENT_KEYS` and :func:`identity_items`, the one
place cache identity (a study's fingerprint, tune's ``pretrain_digest``) is cut from a
config. :class:`PluginSettings` holds every group; the plugin's ``Config`` builds it once,
after validation, as ``config.settings`` (read-only; ``config[key]`` keeps working).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import ClassVar

from recbole_finest.checks import (
    ANY, BOOL, DICT, EPOCHS, FAKE_LENGTH, GRIDS, GROUP_FRACTION, INTEGER, KIND, LIST, METHOD, NON_NEGATIVE,
    NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, PROBABILITY, RATIO, RBO_P, REDUCTION_FACTOR, RESOURCES, SEEDS,
    SEEDS_LIST, SELECTION, SHARE_OR_COUNT, TEXT, TUNE_METRIC, VERBOSITY, Check, one_of, optional,
)
from recbole_finest.data.casper import EXACT_MAX_NODES as CASPER_EXACT_MAX_NODES
from recbole_finest.data.casper import METHODS as CASPER_METHODS

SIM_KINDS = ("random", "deletion", "replacement", "insertion", "mixed")
TRAIN_UNITS = ("auto", "sequence", "prefix")
REFERENCE_PROTOCOLS = ("shared", "independent")
PRECISIONS = ("fp32", "bf16")  # train_precision (recbole_finest/finest/precision.py)
REPLACE_RULES = ("random", "least_popular")
#: every key starting with one of these belongs to the plugin and must be in :data:`KEYS`
PREFIXES = ("finest_", "perturb_", "study_", "tune_", "adv_", "apt_", "rbo_", "jaccard_", "frbo_", "emb_", "pamacf_",
            "vat_", "casper_")
#: environment keys of RecBole and the command line (the plugin's own are tagged on their fields)
OTHER_ENVIRONMENT_KEYS = frozenset({
    "device", "gpu_id", "use_gpu", "show_progress", "state", "log_wandb", "wandb_project", "worker",
    "single_spec", "local_rank", "nproc", "world_size", "offset", "ip", "port", "verbose", "search_space",
    "ray_address", "tune",
})


class FrozenMap(Mapping):
    """A read-only mapping (picklable, unlike ``MappingProxyType``): a frozen config dict value."""

    def __init__(self, items):
        self._items = dict(items)

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"FrozenMap({self._items!r})"


def freeze(value):
    """``value`` with lists as tuples and dicts as :class:`FrozenMap`, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    return value


#: stability pass: instances per full_sort_predict call (eval_score_rows; stability/evaluate.py)
EVAL_SCORE_ROWS = 256


def key(default, check, name=None, runtime=False, environment=False):
    """A settings field: the key's default (as in ``properties/overall/finest.yaml``), check and tags.

    ``name``: the config key when it is not the group's ``PREFIX`` + the field's name.
    """
    meta = {"default": default, "check": check, "key": name, "runtime": runtime, "environment": environment}
    return field(default_factory=lambda: freeze(default), metadata=meta)


# ---------------------------------------------------------------------------------- the groups
class Group:
    """A settings group: its fields' keys are ``PREFIX`` + the field name unless the field names its key."""

    PREFIX: ClassVar[str] = ""


@dataclass(frozen=True)
class DataSettings(Group):
    """Training data layout and arithmetic (docs/config.md, "training data layout")."""

    train_unit: str = key("auto", one_of(*TRAIN_UNITS))
    train_neg_sample_args: object = key(None, ANY)  # RecBole's; the plugin turns it off for sequential models
    mask_copies: int = key(1, POSITIVE_INT)
    sequence_ft_ratio: float = key(0.0, PROBABILITY)
    window_stride: int = key(None, optional(POSITIVE_INT))
    length_bucketing: bool = key(True, BOOL)
    target_split: int = key(1, POSITIVE_INT)
    # bf16 autocast of pre-training, fine-tuning and reference lists (finest/precision.py); not a
    # finest_* key: pre-training reads it, so it is no per-method key and stays in tune's pretrain digest
    train_precision: str = key("fp32", one_of(*PRECISIONS))


@dataclass(frozen=True)
class FinestSettings(Group):
    """FINEST fine-tuning: ``finest``, ``finetune_method``, ``pretrained_model_path`` and ``finest_*``."""

    PREFIX: ClassVar[str] = "finest_"
    enabled: bool = key(True, BOOL, name="finest")
    method: str = key("finest", METHOD, name="finetune_method", runtime=True)
    pretrained_model_path: str = key(None, optional(TEXT), name="pretrained_model_path")
    # its effect is the RecBole keys it sets (split, filters, metrics), which the identity holds
    protocol: bool = key(None, optional(BOOL), environment=True)
    epochs: int = key(50, POSITIVE_INT)
    learning_rate: float = key(0.0001, POSITIVE)
    topk: int = key(100, POSITIVE_INT)
    sim_ratio: float = key(0.01, RATIO)
    sim_kind: str = key("random", one_of(*SIM_KINDS))
    lambda_: float = key(1.0, NON_NEGATIVE, name="finest_lambda")
    beta1: float = key(0.1, NON_NEGATIVE)
    beta2: float = key(0.1, NON_NEGATIVE)
    order_loss: bool = key(True, BOOL)
    score_loss: bool = key(True, BOOL)
    simulation: bool = key(True, BOOL)
    select_best: bool = key(False, BOOL)
    reference_file: str = key(None, optional(TEXT))


@dataclass(frozen=True)
class StabilitySettings(Group):
    """The stability run: ``stability``, ``reference_protocol``, ``results_dir``."""

    stability: bool = key(True, BOOL)
    reference_protocol: str = key("shared", one_of(*REFERENCE_PROTOCOLS))
    results_dir: str = key("saved/finest", TEXT, environment=True)


@dataclass(frozen=True)
class PerturbSettings(Group):
    """Model B's perturbation (``perturb_*``): selection, kind, ratio and count are per-run values."""

    PREFIX: ClassVar[str] = "perturb_"
    family: str = key(None, optional(TEXT))
    selection: str = key("random", SELECTION, runtime=True)
    kind: str = key("deletion", KIND, runtime=True)
    ratio: float = key(0.001, RATIO, runtime=True)
    count: int = key(None, optional(POSITIVE_INT), runtime=True)
    replace_with: str = key("random", one_of(*REPLACE_RULES))
    insert_with: str = key("random", one_of(*REPLACE_RULES))
    time_fraction: float = key(0.1, RATIO)


@dataclass(frozen=True)
class CasperSettings(Group):
    """CASPER's dependency scores (``casper_*``)."""

    PREFIX: ClassVar[str] = "casper_"
    roots_only: bool = key(False, BOOL)
    method: str = key("auto", one_of(*CASPER_METHODS))
    exact_max_nodes: int = key(CASPER_EXACT_MAX_NODES, POSITIVE_INT)


@dataclass(frozen=True)
class MetricSettings(Group):
    """Stability metrics: RBO (``rbo_p``, ``rbo_depth``), Jaccard@``jaccard_k`` and FRBO@``frbo_k``."""

    rbo_p: float = key(1.0, RBO_P)
    rbo_depth: int = key(None, optional(POSITIVE_INT))
    jaccard_k: int = key(10, POSITIVE_INT)
    frbo_k: int = key(10, POSITIVE_INT)
    frbo_p: float = key(0.9, RBO_P)
    # instances per full_sort_predict call while the stability pass scores (stability/evaluate.py,
    # SlicedScoring: checked bitwise against whole batches); the same numbers, so not in cache identity
    eval_score_rows: int = key(EVAL_SCORE_ROWS, optional(POSITIVE_INT), environment=True)


@dataclass(frozen=True)
class DatasetSettings(Group):
    """Raw datasets: conversion and download."""

    raw_data_file: str = key(None, optional(TEXT), environment=True)
    download_datasets: bool = key(True, BOOL, environment=True)


@dataclass(frozen=True)
class AdversarialSettings(Group):
    """The adversarial baselines: ``adv_*`` (ACAE / APR), ``pamacf_rho``, ``vat_rho``."""

    PREFIX: ClassVar[str] = "adv_"
    eps: float = key(0.1, NON_NEGATIVE)
    alpha: float = key(None, optional(NON_NEGATIVE))
    steps: int = key(3, POSITIVE_INT)
    lambda_: float = key(1.0, NON_NEGATIVE, name="adv_lambda")
    pamacf_rho: float = key(0.2, NON_NEGATIVE, name="pamacf_rho")
    vat_rho: float = key(0.2, NON_NEGATIVE, name="vat_rho")


@dataclass(frozen=True)
class AptSettings(Group):
    """The APT baseline's fake users (``apt_*``)."""

    PREFIX: ClassVar[str] = "apt_"
    fake_users: float = key(0.01, SHARE_OR_COUNT)
    fake_length: int = key(None, optional(FAKE_LENGTH))


@dataclass(frozen=True)
class EmbSettings(Group):
    """Embedding-level stability (``emb_*``)."""

    PREFIX: ClassVar[str] = "emb_"
    stability_objective: str = key("loss", one_of("loss", "ranks"))


@dataclass(frozen=True)
class StudySettings(Group):
    """The stability study (``study_*``)."""

    PREFIX: ClassVar[str] = "study_"
    models: object = key(None, optional(LIST))
    methods: object = key(["original", "finest"], LIST)
    selections: object = key(["random", "casper"], LIST)
    kinds: object = key(["deletion"], LIST)
    ratios: object = key([0.001], LIST)
    seeds: object = key(3, SEEDS)
    grids: object = key(None, optional(GRIDS))
    model_config: object = key(None, optional(DICT))
    method_config: object = key(None, optional(DICT))
    eval_epochs: object = key(None, optional(EPOCHS))
    dir: str = key(None, optional(TEXT))
    reference_method: str = key("finest", METHOD)
    group_fraction: float = key(0.2, GROUP_FRACTION)
    save_models: bool = key(True, BOOL)
    plot_dpi: int = key(80, POSITIVE_INT)
    backend: str = key("local", one_of("local", "ray"))
    resources_per_cell: object = key({"cpu": 1, "gpu": 0}, RESOURCES)


@dataclass(frozen=True)
class TuneSettings(Group):
    """The Ray Tune search (``tune_*``)."""

    PREFIX: ClassVar[str] = "tune_"
    dir: str = key("saved/tune", TEXT)
    name: str = key(None, optional(TEXT))
    num_samples: int = key(8, POSITIVE_INT)
    metric: str = key("rbo", TUNE_METRIC)
    mode: str = key("max", one_of("max", "min"))
    accuracy_metric: str = key("ndcg@10", TUNE_METRIC)
    max_accuracy_drop: float = key(0.02, optional(NON_NEGATIVE))
    seeds: object = key(None, optional(SEEDS_LIST))
    resources_per_trial: object = key({"cpu": 1, "gpu": 0}, RESOURCES)
    num_cpus: int = key(None, optional(POSITIVE_INT))
    num_gpus: int = key(None, optional(NON_NEGATIVE_INT))
    max_concurrent_trials: int = key(None, optional(POSITIVE_INT))
    scheduler: str = key("fifo", one_of("fifo", "asha"))
    asha_grace_period: int = key(1, POSITIVE_INT)
    asha_reduction_factor: int = key(2, REDUCTION_FACTOR)
    reuse_pretrained: bool = key(True, BOOL)
    verbose: int = key(1, VERBOSITY)
    methods: object = key(None, optional(LIST))


@dataclass(frozen=True)
class RecBoleSettings(Group):
    """RecBole keys the plugin relies on: checked too; their defaults are RecBole's (None here)."""

    epochs: int = key(None, POSITIVE_INT)
    train_batch_size: int = key(None, POSITIVE_INT)
    eval_batch_size: int = key(None, POSITIVE_INT)
    learning_rate: float = key(None, POSITIVE)
    stopping_step: int = key(None, POSITIVE_INT)
    eval_step: int = key(None, POSITIVE_INT)
    seed: int = key(None, INTEGER, runtime=True)
    MAX_ITEM_LIST_LENGTH: int = key(None, POSITIVE_INT)
    checkpoint_dir: str = key(None, TEXT, environment=True)


#: the groups of :class:`PluginSettings`: ``settings.<name>`` is a group's frozen dataclass
GROUPS = dict(data=DataSettings, finest=FinestSettings, stability=StabilitySettings, perturb=PerturbSettings,
              casper=CasperSettings, metrics=MetricSettings, datasets=DatasetSettings,
              adversarial=AdversarialSettings, apt=AptSettings, emb=EmbSettings, study=StudySettings,
              tune=TuneSettings, recbole=RecBoleSettings)


class _PluginSettingsMethods:
    """Every plugin key of one built ``Config``, by group (``settings.finest.topk``), read-only.

    One field per entry of :data:`GROUPS`; ``PluginSettings()`` holds the defaults.
    """

    @classmethod
    def of(cls, values):
        """The settings of a config dict ``values`` (a ``Config``'s ``final_config_dict``); a key
        it lacks keeps the field's default. Values are frozen (lists as tuples, dicts as
        :class:`FrozenMap`)."""
        groups = {}
        for group in fields(cls):
            group_cls = group.default_factory
            groups[group.name] = group_cls(**{f.name: freeze(values.get(key_name(group_cls, f), f.metadata["default"]))
                                              for f in fields(group_cls)})
        return cls(**groups)

    def by_key(self):
        """``{config key: value}`` of every field of every group."""
        return {key_name(type(g), f): getattr(g, f.name) for g in self._groups() for f in fields(g)}

    def _groups(self):
        return [getattr(self, g.name) for g in fields(self)]


PluginSettings = make_dataclass("PluginSettings", [(name, group, field(default_factory=group))
                                                   for name, group in GROUPS.items()],
                                bases=(_PluginSettingsMethods,), frozen=True,
                                namespace={"__doc__": _PluginSettingsMethods.__doc__, "__module__": __name__})


# ---------------------------------------------------------------------------------- derived tables
@dataclass(frozen=True)
class Key:
    """One key of a settings field: its default, what is allowed and its tags (see the module doc)."""

    name: str
    default: object
    check: Check
    runtime: bool = False
    environment: bool = False


def key_name(group_cls, f):
    """The config key of field ``f`` of the settings group ``group_cls``."""
    return f.metadata["key"] or group_cls.PREFIX + f.name


def _keys(group_classes):
    return {key_name(g, f): Key(key_name(g, f), f.metadata["default"], f.metadata["check"], f.metadata["runtime"],
                                f.metadata["environment"]) for g in group_classes for f in fields(g)}


#: every plugin key (the groups but :class:`RecBoleSettings`)
KEYS = _keys([g for g in GROUPS.values() if g is not RecBoleSettings])
#: RecBole keys the plugin relies on
RECBOLE_KEYS = _keys([RecBoleSettings])
_ALL = [*KEYS.values(), *RECBOLE_KEYS.values()]
#: per-run keys: the fields tagged ``runtime``
RUNTIME_KEYS = frozenset(k.name for k in _ALL if k.runtime)
#: keys of where and how a run happens (devices, folders, logging, the command line): they change no
#: number, so no cache identity (a study's fingerprint, tune's pretrain_digest) reads them
ENVIRONMENT_KEYS = frozenset(k.name for k in _ALL if k.environment) | OTHER_ENVIRONMENT_KEYS


#: keys added after caches were written, with the value every earlier cache was computed with: a cache
#: identity left them out (tune's pretrain digest) or lacks them (a study's stored fingerprint), so at
#: this value they match such a cache and at any other they do not
LATER_DEFAULTS = {"train_precision": "fp32"}


def identity_items(config, ignored=frozenset()):
    """The ``(key, value)`` items of ``config`` (sorted) that identify cached results.

    The one place cache identity is cut from a config: leaves out :data:`ENVIRONMENT_KEYS`
    and ``ignored`` (a caller's own per-run or phase keys). Used by
    :func:`recbole_finest.study.driver.fingerprint` and :func:`recbole_finest.tune.pretrain_digest`.
    """
    skip = ENVIRONMENT_KEYS | frozenset(ignored)
    return [(k, v) for k, v in sorted(config.final_config_dict.items()) if k not in skip]
