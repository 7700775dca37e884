"""Resuming a study: the settings that must match for its cells and states to be reused.

``configs/<model>.json`` in the study folder holds the fingerprint of each model's
settings (:func:`fingerprint`: every key but the per-run, environment and ``study_*``
ones, cut by :func:`recbole_finest.config.identity_items`) and the MD5 of the data it was
computed on (``data_md5``); a resumed study with other settings or other data is refused
before anything is written. :func:`resolved_config` is the plain copy of a
Config the study writes next to its results.
"""

import json
import os
from logging import getLogger

from recbole_finest.config import RUNTIME_KEYS, identity_items
from recbole_finest.settings import LATER_DEFAULTS
from recbole_finest.fileio import write_json

# keys that may differ between runs resuming the same study folder, besides config.ENVIRONMENT_KEYS
# (the per-run keys, and the model's, which the grid sets per model)
VOLATILE_KEYS = RUNTIME_KEYS | {"finetune_method", "data_path", "config_files",
                                "model", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type"}


#: the fingerprint entry of the data's content (MD5 of the atomic files loaded)
DATA_KEY = "data_md5"


def _plain(value):
    """YAML/JSON-safe copy of a config value."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def resolved_config(config):
    """The resolved configuration as a plain dict (keys sorted)."""
    return {k: _plain(v) for k, v in sorted(config.final_config_dict.items())}


def fingerprint(config):
    """Keys that must match for a resumed study to reuse its cells and states."""
    return {k: _plain(v) for k, v in identity_items(config, VOLATILE_KEYS) if not k.startswith("study_")}


def _check_fingerprint(folder, model, config, data_md5=None):
    """``ValueError`` if ``study_dir`` holds ``model`` with other settings or computed on other data;
    returns the fingerprint to store.

    ``data_md5``: the digest of the data the cells are computed on
    (:func:`recbole_finest.quick_start.dataset_digest`), stored as ``data_md5`` with the settings.
    Writes nothing: the caller stores the fingerprints (:func:`_store_fingerprint`) once every
    model of the study passed, so a refused resume leaves the folder as it was.
    """
    path = os.path.join(folder.root, "configs", f"{model}.json")
    current = fingerprint(config)
    if data_md5 is not None:
        current[DATA_KEY] = data_md5
    stored = None
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, ValueError) as exc:  # the cells cannot be trusted without it
            raise ValueError(f"study settings file {path} cannot be read ({type(exc).__name__}: {exc}); the "
                             f"cells of {model} cannot be checked against the current settings: delete "
                             f"{os.path.dirname(path)} and the cells to start over, or choose another study_dir") from None
    if stored is not None:
        # a key added since with the value the stored cells were computed with (LATER_DEFAULTS) is compared
        # at that value: a study of fp32 cells resumed with train_precision: bf16 is refused
        stored = {**{k: v for k, v in LATER_DEFAULTS.items() if k in current}, **stored}
        # keys added or removed since (e.g. a newer plugin version's defaults) are only reported
        new = sorted(set(stored) ^ set(current))
        if new:
            getLogger().warning(f"{model}: keys not in both the stored and the current settings (ignored): "
                                f"{', '.join(new[:12])}{'...' if len(new) > 12 else ''}")
        diff = sorted(k for k in set(stored) & set(current) if stored[k] != current[k])
        if DATA_KEY in diff:
            raise ValueError(
                f"study_dir {folder.root!r} holds a {model} study computed on other data: the atomic files of "
                f"dataset [{config['dataset']}] now have MD5 {current[DATA_KEY]}, its cells were computed on "
                f"{stored[DATA_KEY]} (another raw_data_file or an edited .inter?); choose another study_dir")
        if diff:
            raise ValueError(
                f"study_dir {folder.root!r} holds a {model} study with different settings "
                f"(keys {', '.join(diff[:8])}{'...' if len(diff) > 8 else ''}); resume it with the same "
                f"configuration or choose another study_dir")
        return None
    return path, current


def _store_fingerprint(checked):
    if checked is not None:
        write_json(*checked)
