"""Conversion of a raw interaction file to a RecBole atomic ``.inter`` file, and its record.

A raw file is headerless and tab-separated, its *last three* columns ``user, item,
timestamp``; :func:`convert_raw_file` writes ``<dataset>.inter`` with the header
:data:`INTER_HEADER` (atomically). ``<dataset>.inter.source.json`` records the raw file a
conversion came from and its MD5, so that :func:`stale` can tell when ``raw_data_file``
changed since (:func:`recbole_finest.data.datasets.prepare_dataset` converts it again).
"""

import contextlib
import hashlib
import json
import math
import os

from recbole_finest.fileio import atomic_path

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


class MalformedDatasetError(ValueError):
    """A raw interaction file has a row that cannot be converted."""


def source_path(target):
    """``<dataset>.inter.source.json``: the raw file a converted ``.inter`` came from and its MD5."""
    return target + ".source.json"


def file_md5(path):
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stale(target, raw_file):
    """Why ``target`` is older than ``raw_file`` (a reason string), or ``""`` when it is current.

    Stale: the raw file's MD5 differs from the one recorded at conversion, or, without a
    record (an ``.inter`` made by hand or by an older version), the raw file is newer.
    """
    try:
        with open(source_path(target), encoding="utf-8") as f:
            recorded = json.load(f).get("md5")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None:
        return "" if recorded == file_md5(raw_file) else "its MD5 differs from the recorded one"
    if os.path.getmtime(raw_file) > os.path.getmtime(target):
        return "the raw file is newer"
    return ""


def convert_into_new_folder(raw_file, target, columns, display_name=None):
    """Convert, and remove the dataset folder again if it was created and stays empty."""
    folder = os.path.dirname(os.path.abspath(target))
    created = not os.path.isdir(folder)
    try:
        convert_raw_file(raw_file, target, columns=columns, display_name=display_name)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise


def convert_raw_file(raw_file, target, columns=None, display_name=None):
    """Convert a headerless tab-separated raw file to a RecBole atomic .inter file.

    Every non-blank row must have ``columns`` tab-separated fields (``None``: the count of
    the first row, at least 3); the last three are user, item, timestamp, and the timestamp
    must be a finite number. Rows are written in file order; values are written as they
    appear (surrounding whitespace removed). The output is written atomically.
    Returns the number of rows written.
    """
    name = display_name or os.fspath(raw_file)
    check_not_compressed(raw_file, name)
    n_rows = 0
    with atomic_path(target) as tmp:
        with open(raw_file, "rb") as src, open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.write(INTER_HEADER)
            buffer = []
            for lineno, raw_line in enumerate(src, 1):
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    _bad_row(name, lineno, raw_line, f"is not valid UTF-8 ({exc.reason})")
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue  # blank lines are skipped, as pandas.read_csv does
                fields = line.split("\t")
                if columns is None:
                    if len(fields) < 3:
                        _bad_row(
                            name, lineno, line,
                            f"has {len(fields)} tab-separated column(s), expected at least 3 "
                            f"(..., user, item, timestamp)",
                        )
                    columns = len(fields)
                if len(fields) != columns:
                    _bad_row(
                        name, lineno, line,
                        f"has {len(fields)} tab-separated column(s), expected {columns}",
                    )
                user, item, ts = (f.strip() for f in fields[-3:])
                if not user or not item:
                    _bad_row(name, lineno, line, "has an empty user or item")
                try:
                    ok = math.isfinite(float(ts))
                except ValueError:
                    ok = False
                if not ok:
                    _bad_row(name, lineno, line, f"has a non-numeric timestamp {ts!r} (the file must have no header)")
                buffer.append(f"{user}\t{item}\t{ts}\n")
                n_rows += 1
                if len(buffer) >= 65536:
                    out.writelines(buffer)
                    buffer.clear()
            out.writelines(buffer)
        if n_rows == 0:
            raise MalformedDatasetError(f"{name}: no interactions (the file is empty)")
    return n_rows


#: leading bytes of compressed files and archives: (format, the command that unpacks it)
MAGIC = {b"\x1f\x8b": ("gzip", "gunzip"), b"BZh": ("bzip2", "bunzip2"), b"\xfd7zXZ\x00": ("xz", "unxz"),
         b"PK\x03\x04": ("zip", "unzip"), b"(\xb5/\xfd": ("zstd", "unzstd")}


def check_not_compressed(raw_file, name):
    """:class:`MalformedDatasetError` when ``raw_file`` starts like a compressed file (whatever its name)."""
    with open(raw_file, "rb") as f:
        head = f.read(8)
    for magic, (kind, command) in MAGIC.items():
        if head.startswith(magic):
            raise MalformedDatasetError(f"{name} is {kind}-compressed, not tab-separated text: decompress it "
                                        f"({command}) and set raw_data_file to the text file")


def _bad_row(name, lineno, content, problem):
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    content = content.rstrip("\r\n")
    if len(content) > 200:
        content = content[:200] + "..."
    raise MalformedDatasetError(f"{name}, line {lineno}: row {content!r} {problem}")

