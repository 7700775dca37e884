"""The files of a study folder: finished cells (``.json`` + per-instance ``.npz``) and model states.

A finished cell (one method of one perturbation and seed) is
``<study_dir>/cells/<model>/<selection>-<kind>-r<ratio>/seed<seed>/<method>.json`` (plus the
per-instance arrays in ``.npz``); a trained state is
``<study_dir>/states/<model>/seed<seed>/...`` (``study_save_models``). An unreadable file is
not a finished cell: it is warned about and computed again.
"""

import json
import os
import zipfile
from logging import getLogger

import numpy as np

from recbole_finest.fileio import atomic_path, write_json


def ratio_tag(ratio):
    return f"r{float(ratio):g}"


class StudyFolder:
    """Paths of a study folder: cells, model states, configs."""

    def __init__(self, root):
        self.root = root

    def cell(self, model, seed, selection, kind, ratio, method, ext="json"):
        return os.path.join(self.root, "cells", model, f"{selection}-{kind}-{ratio_tag(ratio)}", f"seed{seed}",
                            f"{method}.{ext}")

    def state(self, model, seed, side, stage, perturbation=None):
        """``states/<model>/seed<s>/A-<stage>.pth`` or ``.../<sel>-<kind>-r<ratio>/B-<stage>.pth``."""
        parts = [self.root, "states", model, f"seed{seed}"]
        if side == "B":
            sel, kind, ratio = perturbation
            parts.append(f"{sel}-{kind}-{ratio_tag(ratio)}")
        return os.path.join(*parts, f"{side}-{stage}.pth")

    def done(self, *key):
        """The cell's ``.json`` (and its ``.npz``, when there is one) can be read back.

        An unreadable file (truncated, corrupted) is not a finished cell: a warning names
        it and the cell is computed again.
        """
        return self.read_cell(key) is not None and self.read_instances(key, check=True) is not False

    def write_cell(self, key, record, instances):
        """Per-instance ``.npz`` first, then the ``.json`` that marks the cell finished."""
        if instances is not None:
            with atomic_path(self.cell(*key, ext="npz")) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **{k: _compact(v) for k, v in instances.items()})
        write_json(self.cell(*key), record)

    def read_cell(self, key):
        """The cell's record, or None when it is missing or unreadable (warned, naming the file)."""
        return _read_record(self.cell(*key))

    def records(self):
        """Every finished cell record of the folder, in path order (a study still running
        or stopped part-way included); unreadable files are warned about and left out."""
        root = os.path.join(self.root, "cells")
        paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".json"))
        return [r for r in map(_read_record, paths) if r is not None]

    def read_instances(self, key, check=False):
        """Per-instance arrays of a cell; None when there is no ``.npz``, None (or False with
        ``check``) when it is unreadable (warned, naming the file)."""
        path = self.cell(*key, ext="npz")
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            _unreadable(path, exc)
            return False if check else None


def _read_record(path):
    """A cell record, or None when ``path`` is missing or unreadable (warned, naming the file)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            raise ValueError("not a cell record")
        return record
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        _unreadable(path, exc)
        return None


def _unreadable(path, exc):
    getLogger().warning(f"study cache file {path} cannot be read ({type(exc).__name__}: {exc}); "
                        f"the cell is computed again")


def _compact(array):
    array = np.asarray(array)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.int64 and (array.size == 0 or array.max() < 2 ** 31):
        return array.astype(np.int32)
    return array


def study_folder(config):
    """``study_dir`` or ``<results_dir>/study-<dataset>``."""
    return config["study_dir"] or os.path.join(config["results_dir"], f"study-{config['dataset']}")
