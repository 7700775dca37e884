"""What a plugin key allows: :class:`Check` records (a test and its description) and :class:`ConfigError`.

A check is ``(test(value) -> bool, description of what is allowed)``; the description is
the end of the error message (``config key 'finest_sim_ratio' must be a number in (0, 1),
got 1.5``). The settings dataclasses (:mod:`recbole_finest.settings`) attach one check to
every key.
"""

import math
from dataclasses import dataclass
from typing import Callable


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message names it and what is allowed."""


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
PROBABILITY = Check(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
POSITIVE_INT = Check(lambda v: _is_int(v) and v >= 1, "a positive integer")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "an integer >= 0")
INTEGER = Check(_is_int, "an integer")
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
GROUP_FRACTION = Check(lambda v: _is_number(v) and 0 < v <= 0.5, "a number in (0, 0.5]")
REDUCTION_FACTOR = Check(lambda v: _is_int(v) and v >= 2, "an integer >= 2")
VERBOSITY = Check(lambda v: _is_int(v) and 0 <= v <= 2, "0, 1 or 2")


def _methods():
    from recbole_finest.methods import METHODS

    return METHODS


def _selections():
    from recbole_finest.data.perturb import SELECTIONS

    return SELECTIONS


def _kinds():
    from recbole_finest.data.perturb import KINDS

    return KINDS


METHOD = lazy_one_of(_methods, "a method of recbole_finest.methods.METHODS")
SELECTION = lazy_one_of(_selections, "one of random, earliest, latest, casper")
KIND = lazy_one_of(_kinds, "one of deletion, replacement, insertion, mixed")


def _tune_metric(name):
    from recbole_finest.tune.objective import is_reported

    return is_reported(name)


#: a tuned metric's name; ``config.validate`` checks that a Jaccard@k is the one of ``jaccard_k``
TUNE_METRIC = Check(_tune_metric, "one of rbo, frbo@<frbo_k>, jaccard@<jaccard_k>, ndcg@10, mrr, mrr@10, recall@10")


def _plain_name(name):
    return (isinstance(name, str) and name not in (".", "..") and name.strip() == name
            and all(c.isalnum() or c in "._-" for c in name) and not name.startswith("-"))


#: a dataset name: one plain folder / file name (it names ``<data_path>/<dataset>/``, log and result paths)
DATASET_NAME = Check(_plain_name, "a plain name of letters, digits, '.', '_' and '-' (no '/', not '..')")
