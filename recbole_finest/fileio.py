"""Atomic file writes: results and checkpoints never exist half-written.

Every writer in the plugin goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder and renamed over the destination only when the
write finished without an exception. The file gets the mode ``open()`` would give it
(``0666`` less the umask), not ``mkstemp``'s ``0600``.
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
import time
import uuid

import torch

# the loader and its errors live with RecBole's other compat code; callers catch the errors from here
from recbole_finest.compat.checkpoints import UnreadableFileError, UnsafeCheckpointError, safe_load  # noqa: F401


_UMASK_LOCK = threading.Lock()


def current_umask():
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; keep what open() would give
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        _raise_no_space(exc, path)
        raise


#: errno values of a full disk (ENOSPC) or a full quota (EDQUOT)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """A write failed because the disk (or the quota) is full; the message names the path."""

    def __init__(self, path):
        super().__init__(errno.ENOSPC, "no space left on device", os.fspath(path))

    def __str__(self):
        return f"no space left on device: cannot write {self.filename} (free space in {os.path.dirname(self.filename)})"


def _raise_no_space(exc, path, rename=False):
    """:class:`NoSpaceError` naming ``path`` from ``exc`` when ``exc`` is a full disk's ``OSError``
    (``rename``: also when it already is one, naming a temporary path)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE and (rename or not isinstance(exc, NoSpaceError)):
        raise NoSpaceError(path) from exc


@contextlib.contextmanager
def atomic_folder(path):
    """Yield a temporary folder next to the folder ``path`` (which must not exist); rename it to ``path``
    once everything in it was written. On failure it is removed: a result set is whole or absent."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
        os.rename(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_no_space(exc, os.path.join(path, os.path.basename(getattr(exc, "filename", None) or "")), rename=True)
        raise


def new_run_id():
    """A unique id of one run: ``<local time>-<8 hex digits>``.

    Two runs started in the same second (or two Ray trials of one process) still differ,
    so the checkpoints, reference files and result folders named by it are never shared.
    """
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def run_file(path, run_id, tag=""):
    """``path`` with ``-<run_id><tag>`` before its extension: ``ref.npy`` -> ``ref-<run_id><tag>.npy``."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}-{run_id}{tag}{ext}"


def check_writable(folder, key):
    """Create ``folder`` and write (then remove) a one-byte probe file in it; ``ValueError`` naming ``key`` if that fails.

    Called for every output location before the first epoch, so an unwritable
    ``results_dir`` / ``checkpoint_dir`` / ``study_dir`` is not found after all training.
    """
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        try:
            os.write(fd, b"\0")  # a full disk fails here (ENOSPC), before any data is loaded
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as exc:
        raise ValueError(f"config key '{key}': cannot write to {folder}: {exc.strerror or exc}") from None


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
        with open(tmp, "wb") as f:  # a file object: a full disk raises OSError (ENOSPC), not torch's RuntimeError
            torch.save(obj, f)


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint` or by RecBole's trainer.

    :func:`recbole_finest.compat.checkpoints.safe_load`: ``torch.load(weights_only=True)`` with
    RecBole's and the plugin's classes allowed. Raises ``FileNotFoundError``,
    :class:`UnsafeCheckpointError` (a pickle naming anything else: never executed) or
    :class:`UnreadableFileError` (truncated or not a checkpoint), each naming ``path``.
    """
    return safe_load(path, map_location=map_location)
