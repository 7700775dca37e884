"""Config values as literals, never code: the parser that replaces RecBole's ``eval`` and the safe YAML loader.

RecBole 1.2.1 turns every string of a config dict and of the command line into a value with
``eval(param)`` (``Config._convert_config_dict``), and reads YAML files with PyYAML's
``FullLoader``, which builds Python objects from ``!!python/name:...`` tags. A config value
could thus run code: ``hidden_act: "__import__('os').system('...') or 'gelu'"`` in a config
dict, a study's ``study_model_config`` or a search space's fixed value. Here:

* :func:`parse_value` reads a string as a Python *literal* (``ast.literal_eval``: numbers,
  ``True`` / ``False`` / ``None``, quoted strings, lists, tuples, dicts), which is what RecBole
  users write (``--topk=[10,20]``, ``--metrics="['Recall','NDCG']"``, ``--learning_rate=1e-4``).
  Any other string stays the string as written, as RecBole's ``eval`` leaves names
  (``gelu``, ``inf``), its interval strings (``[10,inf)``), ``Recall@10`` or a path;
  ``true`` / ``false`` in any case are booleans, as in RecBole. An expression
  (``float('inf')``, ``__import__('os').system(...)``, ``1/3``) is not a literal: it too is
  kept as a plain string, and whatever reads the key then finds no such value. Nothing is
  ever evaluated. (A refusal of "expressions" was not chosen: paths such as
  ``data/report(2).tsv`` parse as Python calls.)
* :func:`yaml_loader` is RecBole's YAML loader (its float resolver: ``1e-4`` is a float)
  built on PyYAML's ``SafeLoader``: a ``!!python/...`` tag is refused
  (:func:`python_tag_error` words the one-line error naming the file).
"""

import ast
import re
from enum import Enum

import yaml

#: the types RecBole's ``_convert_config_dict`` keeps from ``eval``; anything else stays the string
KEPT_TYPES = (str, int, float, list, tuple, dict, bool, Enum)

#: RecBole 1.2.1's implicit float resolver (``Config._build_yaml_loader``): ``1e-4``, ``.5``, ``-.inf``
RECBOLE_FLOAT = re.compile(
    """^(?:
     [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*
    |[-+]?\\.(?:inf|Inf|INF)
    |\\.(?:nan|NaN|NAN))$""",
    re.X,
)


def parse_value(text):
    """``text`` (a config value given as a string) as RecBole's ``eval`` would read a literal, without running anything.

    Returns the literal (number, bool, None, list, tuple, dict, quoted string) when ``text`` is
    one, ``True`` / ``False`` for ``true`` / ``false`` in any case, else ``text`` itself.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return {"true": True, "false": False}.get(text.lower(), text)
    if value is not None and not isinstance(value, KEPT_TYPES):
        return text  # a set, bytes or complex number: RecBole keeps the string too
    return value


def convert_config_dict(config_dict):
    """RecBole's ``Config._convert_config_dict`` with :func:`parse_value` in place of ``eval`` (in place; returned)."""
    for key, value in config_dict.items():
        if isinstance(value, str):
            config_dict[key] = parse_value(value)
    return config_dict


class RecBoleSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus RecBole 1.2.1's float resolver (``1e-4`` is a float); picklable by name
    (RecBole's checkpoints and Ray hold the ``Config`` with its ``yaml_loader``)."""


RecBoleSafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", RECBOLE_FLOAT, list("-+0123456789."))


def yaml_loader():
    """RecBole's YAML loader (its implicit float resolver) on ``yaml.SafeLoader``: no Python tags."""
    return RecBoleSafeLoader


def python_tag_error(path, error):
    """The one-line message for a YAML ``error`` that is a refused ``!!python/...`` tag in ``path``, or None."""
    problem = getattr(error, "problem", None) or ""
    match = re.search(r"tag:yaml\.org,2002:(python/[^'\s]*)", problem)
    if not isinstance(error, yaml.constructor.ConstructorError) or match is None:
        return None
    mark = getattr(error, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    return (f"config file {path}:{where}: YAML tag '!!{match.group(1)}' is refused: config files hold plain values "
            f"(numbers, strings, lists, mappings), never Python objects")
