"""``Config``: RecBole's configurator plus the plugin's properties and key validation.

Precedence is RecBole's: command line > config dict > config files > the plugin's
properties (``properties/overall/finest.yaml``, ``properties/model/<model>.yaml``,
``properties/dataset/<dataset>.yaml``) > RecBole's own properties.
"""

import os

from recbole.config import Config as RecBoleConfig

from recbole_finest.utils import get_model

SIM_KINDS = ("random", "deletion", "replacement", "insertion", "mixed")
TRAIN_UNITS = ("auto", "sequence", "prefix")
REFERENCE_PROTOCOLS = ("shared", "independent")
REPLACE_RULES = ("random", "least_popular")


def properties_dir():
    """Folder of the plugin's YAML properties, in a source checkout or an installed wheel."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(here, "properties"), os.path.join(here, os.pardir, "properties")):
        if os.path.isdir(os.path.join(candidate, "overall")):
            return os.path.realpath(candidate)
    raise FileNotFoundError(f"recbole-finest properties/ folder not found next to {here}")


class Config(RecBoleConfig):
    """RecBole ``Config`` that knows the plugin's models and YAML defaults."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        from recbole_finest.registry import register

        register()  # plugin metrics must be known before RecBole checks `metrics:`
        super().__init__(model, dataset, config_file_list, config_dict)
        validate(self)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given: --model=<name>, a config file or a config dict")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given: --dataset=<name>, a config file or a config dict")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        dataset_file = os.path.join(root, "dataset", f"{dataset}.yaml")
        for file in (
            os.path.join(root, "overall", "finest.yaml"),
            os.path.join(root, "model", f"{model}.yaml"),
            dataset_file,
        ):
            if os.path.isfile(file):
                loaded = self._update_internal_config_dict(file) or {}
                if file == dataset_file:
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]


def _check_ratio(config, key, allow_none=False):
    value = config[key]
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
        raise ValueError(f"config key '{key}' must be a number in (0, 1), got {value!r}")


def _check_choice(config, key, allowed):
    if config[key] not in allowed:
        raise ValueError(f"config key '{key}' must be one of {', '.join(allowed)}; got {config[key]!r}")


def _check_positive_int(config, key):
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"config key '{key}' must be a positive integer, got {value!r}")


def validate(config):
    """Check the plugin's keys; one ``ValueError`` naming the key, the value and what is allowed."""
    from recbole_finest.data.perturb import KINDS, SELECTIONS
    from recbole_finest.methods import METHODS

    _check_ratio(config, "finest_sim_ratio")
    _check_ratio(config, "perturb_ratio")
    _check_ratio(config, "perturb_time_fraction")
    _check_choice(config, "finest_sim_kind", SIM_KINDS)
    _check_choice(config, "train_unit", TRAIN_UNITS)
    _check_choice(config, "reference_protocol", REFERENCE_PROTOCOLS)
    _check_choice(config, "perturb_replace_with", REPLACE_RULES)
    _check_choice(config, "perturb_insert_with", REPLACE_RULES)
    _check_choice(config, "perturb_selection", SELECTIONS)
    _check_choice(config, "perturb_kind", KINDS)
    _check_choice(config, "finetune_method", tuple(METHODS))
    for key in ("finest_topk", "finest_epochs", "jaccard_k", "mask_copies", "target_split"):
        _check_positive_int(config, key)
    for key in ("perturb_count", "window_stride"):
        if config[key] is not None:
            _check_positive_int(config, key)
    for key in ("finest_lambda", "finest_beta1", "finest_beta2"):
        if not isinstance(config[key], (int, float)) or config[key] < 0:
            raise ValueError(f"config key '{key}' must be a non-negative number, got {config[key]!r}")
    if not 0 < config["rbo_p"] <= 1:
        raise ValueError(f"config key 'rbo_p' must be in (0, 1], got {config['rbo_p']!r}")
