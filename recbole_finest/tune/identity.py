"""Cache identity of a pre-trained pair: which config keys can change models A and B.

A pair is cached under ``<tune_dir>/pretrained/<model>-<dataset>-<digest>-seed<seed>``;
``digest`` hashes every key that pre-training reads and the MD5 of the data it reads. Left out are the fine-tuning keys
(:func:`is_finetune_key`), the keys of where and how a run happens (``ENVIRONMENT_KEYS``)
and the per-run keys of :data:`recbole_finest.config.RUNTIME_KEYS` that pre-training does
not read (the seed names the file; the method is fine-tuning's). The perturbation keys are
per-run keys too, but they make model B: they stay in the digest.

The digest of a given config never changes between versions (an existing cache stays
valid): ``tests/test_tune.py`` recomputes it from first principles.
"""

import hashlib
import os

from recbole_finest.config import ENVIRONMENT_KEYS, RUNTIME_KEYS, identity_items
from recbole_finest.settings import LATER_DEFAULTS  # left out of the digest at their value (a bf16 pair is never an fp32 pair's cache)
from recbole_finest.data.files import data_digest

FINETUNE_KEYS = {"finest", "finetune_method", "reference_protocol"}
#: per-run keys that shape the pre-trained models (model B's training data)
PRETRAIN_RUN_KEYS = frozenset(k for k in RUNTIME_KEYS if k.startswith("perturb_"))
#: keys outside the digest besides the fine-tuning keys
PRETRAIN_IGNORED = ENVIRONMENT_KEYS | (RUNTIME_KEYS - PRETRAIN_RUN_KEYS)
PATH_KEYS = ("raw_data_file", "checkpoint_dir", "results_dir", "tune_dir", "pretrained_model_path")
CLI_KEYS = {"search_space", "ray_address", "tune", "config_files", "study"}


def is_finetune_key(key):
    """True for keys that only the fine-tuning phase (or the search itself) reads."""
    return key.startswith(("finest_", "tune_")) or key in FINETUNE_KEYS


def pretrain_digest(config, data_md5=None):
    """Short hash (12 hex digits) of every config value that can change the pre-trained A / B models.

    SHA-1 of the lines ``f"{key}={value!r}"`` of the sorted ``final_config_dict`` items
    outside :func:`is_finetune_key`, ``PRETRAIN_IGNORED`` and ``LATER_DEFAULTS`` at their
    value, joined by newlines; with
    ``data_md5`` (the content of the data, :func:`recbole_finest.data.files.data_digest`) the
    line ``data_md5='<md5>'`` is appended.
    """
    items = [f"{k}={v!r}" for k, v in identity_items(config, PRETRAIN_IGNORED)
             if not is_finetune_key(k) and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])]
    if data_md5 is not None:
        items.append(f"data_md5={data_md5!r}")
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:12]


def pretrained_paths(cache_dir, config):
    """Cache files of the pair pre-trained with ``config``: ``{"A", "B", "original"}`` paths.

    Named by :func:`pretrain_digest` of ``config`` and of the data's content: a pair trained on
    another file under the same dataset name is never found (the data must be on disk).
    """
    data_md5 = data_digest(config)
    if data_md5 is None:
        raise FileNotFoundError(f"dataset [{config['dataset']}]: no atomic file in {config['data_path']} "
                                f"to name the pre-trained pair after (prepare the data first)")
    stem = os.path.join(cache_dir, f"{config['model']}-{config['dataset']}-{pretrain_digest(config, data_md5)}"
                                   f"-seed{int(config['seed'])}")
    return {"A": stem + "-A.pth", "B": stem + "-B.pth", "original": stem + "-original.json"}


def cache_stem(paths):
    """The common stem of :func:`pretrained_paths` (lock and temporary folders are named after it)."""
    return paths["A"][: -len("-A.pth")]
