"""The atomic files RecBole loads for a config: their paths, their content digest, their row count.

Every cache of the plugin (a study's cells and states, tune's pre-trained pairs and trial rows,
the update job's ``update_cache_dir``) holds numbers that were computed from some data. A cache is
keyed by the *content* of that data, not by the dataset's name: :func:`data_digest` is the MD5 of
the atomic files RecBole reads for a ``Config`` (``<data_path>/<dataset>.inter``, or the
``benchmark_filename`` files, plus the ``.user`` / ``.item`` files it loads), so another
``raw_data_file`` under the same dataset name, or an edited ``.inter``, gives another digest.

A file is read once per process and content: digests are kept by (path, size, modification
time, inode), so every later caller of the same load (the study's fingerprint, tune's cache
keys) gets it without reading the file again.
"""

import hashlib
import os
import threading

#: the feature files RecBole 1.2.1 reads besides the interactions, by ``load_col`` source
SIDE_SUFFIXES = ("user", "item")

_DIGESTS = {}
_LOCK = threading.Lock()


def atomic_files(config):
    """The atomic files of ``config`` that exist and RecBole would read, in load order.

    ``<data_path>/<dataset>.inter`` (or ``<dataset>.<name>.inter`` for every
    ``benchmark_filename``), then ``<dataset>.user`` / ``<dataset>.item`` when ``load_col``
    loads them (``load_col: ~`` loads every file there is).
    """
    folder, token = config["data_path"], config["dataset"]
    benchmark = config["benchmark_filename"]
    names = [f"{token}.{b}.inter" for b in benchmark] if benchmark else [f"{token}.inter"]
    load_col = config["load_col"]
    names += [f"{token}.{s}" for s in SIDE_SUFFIXES if load_col is None or s in load_col]
    return [p for p in (os.path.join(folder, n) for n in names) if os.path.isfile(p)]


def file_digest(path):
    """Hex MD5 of ``path``, read in 1 MiB chunks once per (path, size, mtime, inode)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    with _LOCK:
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def data_digest(config):
    """Hex MD5 over the names and contents of :func:`atomic_files`; None when none exists yet.

    The names are part of it so that the same bytes loaded as ``.inter`` or as ``.item`` differ.
    """
    files = atomic_files(config)
    if not files:
        return None
    lines = "".join(f"{os.path.basename(p)}\t{file_digest(p)}\n" for p in files)
    return hashlib.md5(lines.encode()).hexdigest()


def data_rows(path):
    """Number of non-blank lines of an atomic file after its header line (streamed)."""
    rows = -1
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                rows += 1
    return max(rows, 0)


def check_has_rows(config):
    """``ValueError`` naming an interaction file of ``config`` that holds nothing but its header line.

    Called when RecBole's dataset came out empty, so that an empty file is not blamed on the filters.
    """
    for path in atomic_files(config):
        if path.endswith(".inter") and data_rows(path) == 0:
            raise ValueError(f"dataset [{config['dataset']}]: {path} has no interactions (only a header line); "
                             f"put the interactions in it, or point raw_data_file at the raw file")


def load_error(config, exc):
    """A ``ValueError`` naming the atomic file behind pandas' error ``exc`` raised while RecBole loaded
    ``config``'s data, or None when ``exc`` is not about a file's column.

    pandas says ``Unable to convert column timestamp:float to type float64`` without the file;
    the file is the one whose header line holds that column.
    """
    text = str(exc)
    prefix = "Unable to convert column "
    if not text.startswith(prefix):
        return None
    column = text[len(prefix):].split(" to type ")[0]
    for path in atomic_files(config):
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", errors="replace").rstrip("\r\n").split("\t")
        if column in header:
            kind = column.partition(":")[2] or "its type"
            return ValueError(f"{path}: column {column} holds a value that is not a {kind} number "
                              f"(pandas: {text}); fix the file or declare the column's type in its header")
    return None
