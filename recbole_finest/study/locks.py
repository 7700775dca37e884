"""Per-cell locks of a study folder: two studies on one ``study_dir`` never compute a cell twice.

A cell is computed while its lock file ``<study_dir>/locks/<model>/<selection>-<kind>-r<ratio>/
seed<seed>/<method>.lock`` is held (``filelock``: an OS lock, freed when its process ends, even
killed). A group of cells takes its cells' locks in sorted order (no two runs wait for each
other), then skips the cells another run finished meanwhile. A run that finds a group held
by another run computes its other groups first and waits for that one at the end
(:func:`recbole_finest.study.backend.local_groups`), so two runs share the grid.
"""

import contextlib
import os

from filelock import FileLock, Timeout


class CellsBusy(Exception):
    """Another run holds the lock of a cell of the group (raised only when not waiting)."""


def lock_path(folder, model, seed, selection, kind, ratio, method):
    """The lock file of one cell: its path under ``cells/`` moved to ``locks/``, ending in ``.lock``."""
    cell = folder.cell(model, seed, selection, kind, ratio, method, ext="lock")
    relative = os.path.relpath(cell, os.path.join(folder.root, "cells"))
    return os.path.join(folder.root, "locks", relative)


@contextlib.contextmanager
def cell_locks(folder, model, seed, pert, methods, wait=True):
    """Hold the locks of the cells ``methods`` of one (seed, perturbation) group.

    Args:
        folder: the :class:`~recbole_finest.study.folder.StudyFolder`.
        pert: ``(selection, kind, ratio)``.
        wait: block until each lock is free; False: :class:`CellsBusy` at once when one is held.
    """
    held = []
    try:
        for method in sorted(methods):
            path = lock_path(folder, model, seed, *pert, method)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            lock = FileLock(path)
            try:
                lock.acquire(timeout=-1 if wait else 0)
            except Timeout:
                raise CellsBusy(path) from None
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()
