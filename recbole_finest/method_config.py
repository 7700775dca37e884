"""Per-method settings: ``study_method_config`` and the per-method copies of a ``Config``.

The study pre-trains A and B once and fine-tunes them by every method, so a tuned setting
of one method (its learning rate, its strength knob) must reach that method's fine-tuning
and nothing else. ``study_method_config`` holds those settings::

    study_method_config:
      acae: {adv_eps: 0.05, finest_learning_rate: 0.001}      # every model
      SASRec:                                                 # one model (wins over the above)
        finest: {finest_lambda: 3.0}

Only fine-tuning keys (``FINETUNE_PREFIXES``) may differ per method: pre-training is
shared by every method. A method's ``Config`` is a copy of the model's with the overrides
(:func:`with_overrides`); the model's ``Config`` itself is never changed.
"""

import copy

from recbole_finest.config import validate
from recbole_finest.methods import METHODS

KEY = "study_method_config"
#: keys read by the fine-tuning phase only (FINEST's, the baselines')
FINETUNE_PREFIXES = ("finest_", "adv_", "apt_", "pamacf_", "vat_")


def _check_entry(config, where, entry):
    if not isinstance(entry, dict):
        raise ValueError(f"config key '{KEY}' {where}: must map config keys to values, got {entry!r}")
    for key in entry:
        if key not in config.final_config_dict:
            raise ValueError(f"config key '{KEY}' {where}: '{key}' is not a config key (typo?)")
        if not str(key).startswith(FINETUNE_PREFIXES):
            raise ValueError(
                f"config key '{KEY}' {where}: '{key}' is not a fine-tuning key; pre-training is shared by every "
                f"method, only keys starting with {', '.join(FINETUNE_PREFIXES)} can differ per method")


def method_overrides(config, model=None):
    """``study_method_config`` of ``model`` (default: ``config["model"]``) as ``{method: {key: value}}``.

    Entries keyed by a method name apply to every model; entries keyed by a model name map
    that model's methods to their keys and win key by key. Raises ``ValueError`` naming
    ``study_method_config`` for a key that does not exist or is read by pre-training, and
    for an entry that is neither a method nor a model's mapping of methods.
    """
    value = config[KEY] or {}
    model = model or config["model"]
    if not isinstance(value, dict):
        raise ValueError(f"config key '{KEY}' must map methods (or models) to dicts of keys, got {value!r}")
    common, own = {}, {}
    for name, entry in value.items():
        if name in METHODS:
            _check_entry(config, f"entry '{name}'", entry)
            common[name] = dict(entry)
            continue
        if not isinstance(entry, dict) or not all(m in METHODS and isinstance(e, dict) for m, e in entry.items()):
            raise ValueError(f"config key '{KEY}': '{name}' is neither a method ({', '.join(METHODS)}) nor a "
                             f"model mapping methods to dicts of keys; got {entry!r}")
        for method, keys in entry.items():
            _check_entry(config, f"entry '{name}.{method}'", keys)
            if name == model:
                own[method] = dict(keys)
    return {m: {**common.get(m, {}), **own.get(m, {})} for m in list(common) + [m for m in own if m not in common]}


def with_overrides(config, overrides):
    """A validated copy of ``config`` with ``overrides`` set; ``config`` is left unchanged."""
    out = copy.copy(config)
    out.final_config_dict = {**config.final_config_dict, **overrides}
    validate(out)
    return out
