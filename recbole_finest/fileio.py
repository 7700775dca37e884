"""Atomic file writes: results and checkpoints never exist half-written.

Every writer in the plugin goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder and renamed over the destination only when the
write finished without an exception.
"""

import contextlib
import json
import os
import tempfile

import torch


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On failure the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path, text):
    """Atomically write ``text`` (str) to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, obj):
    """Atomically write ``obj`` as indented JSON to ``path``."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def save_checkpoint(obj, path):
    """Atomically ``torch.save`` a checkpoint dict (tensors, numbers, strings, dicts)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint` or by RecBole's trainer.

    RecBole 1.2.1 stores its ``Config`` object inside checkpoints, which ``torch.load``
    refuses under ``weights_only=True`` (the default since torch 2.6). Checkpoints are
    files the user produced, so they are loaded with ``weights_only=False``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=False)
