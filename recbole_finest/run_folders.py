"""Checkpoint folders of unfinished runs: marked while a run works, removed at the next start.

A run's trainers write into ``<checkpoint_dir>/<model>-<run id>/``. While the run works,
:func:`running` keeps a marker ``<checkpoint_dir>/.<model>-<run id>.running`` and holds an OS
lock on ``<marker>.lock`` (``filelock``: freed when the process ends, killed included); a run
that finishes removes its marker and keeps its folder. A run that fails removes its folder
itself; a run killed part-way leaves its marker behind: :func:`remove_unfinished`, called when
the next run in that ``checkpoint_dir`` starts, removes the folder of every marker whose lock
nobody holds. A killed run is not resumed: the next run starts from scratch (its own run id)
and the unfinished folder does not stay behind. Folders of runs still working (their lock
held) are left alone.
"""

import contextlib
import os
import shutil
from logging import getLogger

from filelock import FileLock, Timeout

from recbole_finest.fileio import write_text

SUFFIX = ".running"


def marker_path(checkpoint_dir, name):
    """``<checkpoint_dir>/.<name>.running``: the marker of the run folder ``<checkpoint_dir>/<name>``."""
    return os.path.join(checkpoint_dir, f".{name}{SUFFIX}")


@contextlib.contextmanager
def running(checkpoint_dir, name):
    """Mark ``<checkpoint_dir>/<name>`` as the folder of a run that works until the block ends.

    Ends without error: the marker goes, the folder stays. Ends with an error: the folder goes
    too (an unfinished run). Killed: the marker stays for :func:`remove_unfinished`.
    """
    os.makedirs(checkpoint_dir, exist_ok=True)
    marker = marker_path(checkpoint_dir, name)
    lock = FileLock(marker + ".lock")
    lock.acquire()  # before the marker exists: a starting run never sees this marker unlocked
    try:
        write_text(marker, f"pid {os.getpid()}\n")
        yield
    except BaseException:
        shutil.rmtree(os.path.join(checkpoint_dir, name), ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.remove(marker)
        lock.release()
        with contextlib.suppress(OSError):
            os.remove(marker + ".lock")


def remove_unfinished(checkpoint_dir):
    """Remove the folders of runs in ``checkpoint_dir`` that ended before they finished; returns their paths."""
    if not os.path.isdir(checkpoint_dir):
        return []
    removed = []
    for entry in sorted(os.listdir(checkpoint_dir)):
        if not (entry.startswith(".") and entry.endswith(SUFFIX)):
            continue
        marker = os.path.join(checkpoint_dir, entry)
        folder = os.path.join(checkpoint_dir, entry[1:-len(SUFFIX)])
        lock = FileLock(marker + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # that run is still working
        try:
            if os.path.isfile(marker):  # it may have finished between the listing and the lock
                shutil.rmtree(folder, ignore_errors=True)
                os.remove(marker)
                removed.append(folder)
                getLogger().warning(f"removed {folder}: the checkpoint folder of a run that did not finish "
                                    f"(killed or failed); runs are not resumed, they start again")
        finally:
            lock.release()
        with contextlib.suppress(OSError):
            os.remove(marker + ".lock")
    return removed
