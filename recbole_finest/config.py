"""``Config``: RecBole's configurator plus the plugin's properties and key validation.

Precedence is RecBole's: command line > config dict > config files > the plugin's
properties (``properties/overall/finest.yaml``, ``properties/model/<model>.yaml``,
``properties/dataset/<dataset>.yaml``) > RecBole's own properties.

Validation lives here and only here: :func:`validate` checks a built ``Config`` once,
before any data is loaded, against the key table :data:`~recbole_finest.settings.KEYS`
(derived from the settings dataclasses of :mod:`recbole_finest.settings`: name, default,
what is allowed, runtime / environment tags). A key with one of the plugin's prefixes
(:data:`~recbole_finest.settings.PREFIXES`) that the table does not know is an error with a
"did you mean" suggestion. Then the ``Config`` builds its read-only
:class:`~recbole_finest.settings.PluginSettings` (``config.settings``) once; plugin keys
cannot be written into a built ``Config`` (per-run values are arguments).
"""

import difflib
import os

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_finest.checks import DATASET_NAME, ConfigError
from recbole_finest.settings import (
    ENVIRONMENT_KEYS, KEYS, PREFIXES, RECBOLE_KEYS, RUNTIME_KEYS, PluginSettings, identity_items,
)
from recbole_finest.compat.literal import convert_config_dict, python_tag_error, yaml_loader
from recbole_finest.compat.models import get_model

#: the settings' tables and cache identity are importable from here too (``settings`` holds them)
__all__ = ["Config", "run_config", "PROTOCOL_KEY", "ConfigError", "validate", "check_dataset_limits", "check_topk", "check_value", "checked",
           "check_unknown_keys", "read_yaml", "properties_dir", "declared_keys", "KEYS", "RECBOLE_KEYS",
           "RUNTIME_KEYS", "ENVIRONMENT_KEYS", "identity_items"]


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


def read_yaml(path, loader=None):
    """A YAML mapping from ``path``; :class:`ConfigError` naming the file when it is not one.

    ``loader`` defaults to :func:`~recbole_finest.compat.literal.yaml_loader` (RecBole's floats,
    ``SafeLoader``): a ``!!python/...`` tag is a ``ConfigError`` naming the file.
    """
    loader = loader or yaml_loader()
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.load(f.read(), Loader=loader)
    except yaml.YAMLError as e:
        refused = python_tag_error(path, e)
        if refused:
            raise ConfigError(refused) from None
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


#: the key that applies the plugin's protocol (paper split, filters, metrics) in a user's script
PROTOCOL_KEY = "finest_protocol"

#: plugin-table keys that RecBole itself may set (its own key, shared with the table)
RECBOLE_WRITES = frozenset({"train_neg_sample_args"})


class Config(RecBoleConfig):
    """RecBole ``Config`` that knows the plugin's models and YAML defaults."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, protocol_default=False):
        """RecBole's arguments; ``protocol_default``: apply the plugin's protocol when ``finest_protocol`` is unset.

        In a user's RecBole script (``protocol_default=False``) every RecBole key keeps RecBole's
        value; the plugin's own entry points (:func:`run_config`) pass ``True``.
        """
        from recbole_finest.compat.registry import register

        register()  # NumPy 2 aliases RecBole 1.2.1 needs
        self._protocol_default = protocol_default
        self.protocol_files = []
        super().__init__(model, dataset, config_file_list, config_dict)
        validate(self)
        self._settings = PluginSettings.of(self.final_config_dict)

    @property
    def settings(self):
        """The plugin's :class:`~recbole_finest.settings.PluginSettings`, built once with the ``Config`` (read-only)."""
        return self._settings

    def __setitem__(self, key, value):
        """RecBole's ``config[key] = value``, refused for a plugin key once the ``Config`` is built."""
        if key in KEYS and key not in RECBOLE_WRITES and "_settings" in self.__dict__:
            raise ConfigError(f"config key '{key}' cannot be changed in a built Config (its settings are fixed "
                              f"when it is built): give it in config_dict, or pass a per-run value as an argument "
                              f"(FinestTrainer(method=, seed=), StabilityRun(seed=, perturbation=, method_overrides=))")
        super().__setitem__(key, value)

    def _build_yaml_loader(self):
        """RecBole's YAML loader on ``yaml.SafeLoader`` (:func:`~recbole_finest.compat.literal.yaml_loader`): no Python tags."""
        return yaml_loader()

    def __getstate__(self):
        """The pickled state (checkpoints, Ray) holds no loader class: the safe checkpoint loader's allow-list stays as it is."""
        state = dict(self.__dict__)
        state.pop("yaml_loader", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.yaml_loader = yaml_loader()

    def _convert_config_dict(self, config_dict):
        """RecBole's string conversion of config-dict and command-line values, by a literal parser instead of ``eval``.

        See :func:`~recbole_finest.compat.literal.parse_value`: literals are read; names, RecBole's
        interval strings and expressions stay the strings as written (nothing is evaluated).
        """
        return convert_config_dict(config_dict)

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
        if not DATASET_NAME(dataset):  # it becomes a folder, a log and a result path: nothing outside them
            raise ConfigError(f"dataset must be {DATASET_NAME.allowed}, got {dataset!r}")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        """RecBole's defaults, then the plugin's keys; the protocol's RecBole keys only when it applies.

        Always: ``properties/overall/finest.yaml`` and ``update.yaml`` (plugin keys only) and the
        properties of the plugin's own models (``properties/model/<model>.yaml`` of TiSASRec, ...).
        With the protocol (:meth:`uses_protocol`): ``properties/overall/protocol.yaml``, the
        dataset's ``properties/dataset/<dataset>.yaml`` (split, filters, metrics of the paper),
        a RecBole model's ``properties/model/<model>.yaml`` and, for a dataset RecBole has no
        properties for, the columns of a converted raw file. The files applied are listed in
        ``protocol_files`` and logged by :func:`recbole_finest.compat.registry.init_logger`.
        """
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        model_file = os.path.join(root, "model", f"{model}.yaml")
        plugin_model = getattr(model_class, "__module__", "").startswith("recbole_finest.")
        for file in (os.path.join(root, "overall", "finest.yaml"), os.path.join(root, "overall", "update.yaml")):
            self._update_internal_config_dict(file)
        if plugin_model and os.path.isfile(model_file):
            self._update_internal_config_dict(model_file)
        if not self.uses_protocol():
            return
        recbole_negatives = self.internal_config_dict.get("train_neg_sample_args")
        dataset_file = os.path.join(root, "dataset", f"{dataset}.yaml")
        for file in (os.path.join(root, "overall", "protocol.yaml"), None if plugin_model else model_file,
                     dataset_file):
            if file is not None and os.path.isfile(file):
                loaded = self._update_internal_config_dict(file) or {}
                self.protocol_files.append(os.path.relpath(file, root))
                if file == dataset_file:
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        recbole_file = os.path.join(os.path.dirname(recbole_properties()), "dataset", f"{dataset}.yaml")
        if not os.path.isfile(dataset_file) and not os.path.isfile(recbole_file):
            # a dataset the plugin converts from a raw file: the columns of INTER_HEADER
            self.internal_config_dict.update(default_dataset_keys())
            self.parameters["Dataset"] += [k for k in default_dataset_keys() if k not in self.parameters["Dataset"]]
            self.protocol_files.append("raw-file columns (user_id, item_id, timestamp)")
        if getattr(model_class, "type", None) != ModelType.SEQUENTIAL:
            # the plugin samples BPR negatives itself for sequential models only; general
            # models (stability: False) keep RecBole's own negative sampling
            self.internal_config_dict["train_neg_sample_args"] = recbole_negatives

    def uses_protocol(self):
        """Whether the plugin's protocol applies: ``finest_protocol`` if given, else the entry point's default."""
        given = self.external_config_dict.get(PROTOCOL_KEY)
        if given is None:
            return bool(self._protocol_default)
        if not isinstance(given, bool):
            raise ConfigError(f"config key '{PROTOCOL_KEY}' must be True, False or ~, got {given!r}")
        return given


def run_config(model=None, dataset=None, config_file_list=None, config_dict=None):
    """The ``Config`` of the plugin's own entry points (command line, study, tune, update): protocol on by default."""
    return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                  protocol_default=True)


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
    for key in ("tune_metric", "tune_accuracy_metric"):
        name = config[key]
        if name.startswith("jaccard@") and name != f"jaccard@{k}":
            raise ConfigError(f"config key '{key}' is {name} but jaccard_k is {k}: the trials report "
                              f"jaccard@{k}; set {key}: jaccard@{k} or jaccard_k: {name[len('jaccard@'):]}")
    path = config["pretrained_model_path"]
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"config key 'pretrained_model_path': checkpoint file not found: {path}")


def check_dataset_limits(config, n_items):
    """Limits that need the dataset's ``n_items`` (id 0 = padding): rank-list depths fit the catalogue.

    Every entry point calls it once the dataset is loaded, before any pre-training
    (``quick_start.load_data``, ``StabilityRun``): ``jaccard_k``, ``rbo_depth``, RecBole's
    ``topk`` and, when ``finetune_method`` preserves reference lists, ``finest_topk``
    (:func:`check_topk`).
    """
    from recbole_finest.methods import get_method

    n_real, metrics = n_items - 1, config.settings.metrics
    topk = config["topk"]  # RecBole's
    for key, value in (("jaccard_k", metrics.jaccard_k), ("rbo_depth", metrics.rbo_depth),
                       ("topk", max(topk) if isinstance(topk, (list, tuple)) and topk else topk)):
        if value is not None and value > n_real:
            raise ConfigError(f"config key '{key}' is {value} but the dataset has only {n_real} items; "
                              f"set {key} <= {n_real}")
    finest = config.settings.finest
    if get_method(finest.method).regularizer:
        check_topk(finest.topk, n_items)


def check_topk(k, n_items):
    """``ConfigError`` naming ``finest_topk`` when its 2K reference items exceed the real items (id 0 = padding)."""
    n_real_items = n_items - 1
    if 2 * k > n_real_items:
        raise ConfigError(
            f"config key 'finest_topk' is {k}: 2 * finest_topk = {2 * k} exceeds the number of items "
            f"({n_real_items}); set finest_topk <= {n_real_items // 2}"
        )
