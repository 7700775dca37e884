"""Per-method settings: ``study_method_config`` and the immutable :class:`MethodSettings` of one method.

The study pre-trains A and B once and fine-tunes them by every method, so a tuned setting
of one method (its learning rate, its strength knob) must reach that method's fine-tuning
and nothing else. ``study_method_config`` holds those settings::

    study_method_config:
      acae: {adv_eps: 0.05, finest_learning_rate: 0.001}      # every model
      SASRec:                                                 # one model (wins over the above)
        finest: {finest_lambda: 3.0}

Only fine-tuning keys (``FINETUNE_PREFIXES``) may differ per method: pre-training is
shared by every method. A method runs with :class:`MethodSettings`: its name and the
fine-tuning keys of ``config.settings`` with its overrides, checked against the key table
once (:func:`method_settings`) and passed to ``FinestTrainer(config, model, method=...)`` as an
argument; the ``Config`` itself is never changed or copied.
"""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from recbole_finest.config import check_value
from recbole_finest.methods import METHODS, get_method
from recbole_finest.settings import KEYS as KEY_TABLE

KEY = "study_method_config"
#: keys read by the fine-tuning phase only (FINEST's, the baselines')
FINETUNE_PREFIXES = ("finest_", "adv_", "apt_", "pamacf_", "vat_")


def checked_override(key, value):
    """``value`` of a per-method override of ``key``; ``ValueError`` naming the key when it is not
    a fine-tuning key (pre-training is shared by every method) or ``ConfigError`` for a bad value."""
    if not str(key).startswith(FINETUNE_PREFIXES):
        raise ValueError(f"'{key}' is not a fine-tuning key; pre-training is shared by every method, only keys "
                         f"starting with {', '.join(FINETUNE_PREFIXES)} can differ per method")
    return check_value(key, value) if key in KEY_TABLE else value


def _check_entry(config, where, entry):
    if not isinstance(entry, dict):
        raise ValueError(f"config key '{KEY}' {where}: must map config keys to values, got {entry!r}")
    for key in entry:
        if key not in config.final_config_dict:
            raise ValueError(f"config key '{KEY}' {where}: '{key}' is not a config key (typo?)")
        try:  # the value too, before any training
            checked_override(key, entry[key])
        except ValueError as exc:
            raise ValueError(f"config key '{KEY}' {where}: {exc}") from None


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


@dataclass(frozen=True)
class MethodSettings:
    """One fine-tuning method and the values of its fine-tuning keys (read-only).

    ``settings["finest_lambda"]`` reads a key of ``FINETUNE_PREFIXES``: the method's own
    value (``study_method_config``, a tuning trial's budget) or else the ``Config``'s.
    """

    name: str
    values: Mapping

    def __getitem__(self, key):
        return self.values[key]

    @property
    def method(self):
        """The :class:`recbole_finest.methods.Method` called ``name``."""
        return get_method(self.name)


def method_settings(config, name=None, overrides=None):
    """:class:`MethodSettings` of ``name`` (default: ``finetune_method``) with ``overrides`` checked.

    ``overrides``: ``{key: value}`` of fine-tuning keys that differ for this method; each
    is checked against the key table (``ConfigError`` naming it) before any training.
    """
    name = config.settings.finest.method if name is None else name
    get_method(name)  # ValueError naming finetune_method for an unknown method
    values = {k: v for k, v in config.settings.by_key().items() if k.startswith(FINETUNE_PREFIXES)}
    for key, value in (overrides or {}).items():
        values[key] = checked_override(key, value)
    return MethodSettings(name, MappingProxyType(values))
