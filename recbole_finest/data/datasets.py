"""Known raw datasets of the FINEST paper and their conversion to RecBole atomic files.

The paper's datasets are published by the authors (claws-lab) as headerless, tab-separated
files whose *last three* columns are ``user, item, timestamp`` (the reference
implementation reads them with ``pd.read_csv(path, sep="\\t", header=None).values[:, -3:]``).
:func:`prepare_dataset` turns such a file into ``<data_path>/<dataset>/<dataset>.inter``
with the header ``user_id:token  item_id:token  timestamp:float``, which RecBole 1.2.1 loads
with ``properties/dataset/<dataset>.yaml``.

Known datasets (:data:`KNOWN_DATASETS`), as established from the authors' repositories:

``reddit``
    ``claws-lab/iscon`` ``data/reddit.tsv`` (the FINEST / CASPER repositories do not ship it).
    3 columns: user, subreddit, timestamp (integers); 134,489 rows, 1,983,004 bytes.
``wikipedia``
    ``claws-lab/casper`` ``data/wikipedia.tsv``. 4 columns: interaction index (0, 1, 2, ...),
    user, page, timestamp (``0.000``-style floats); 157,474 rows, 4,140,706 bytes.
``foursquare``
    ``claws-lab/finest-recsys`` ``data/foursquare.tsv`` (3,347,734 bytes, MD5
    ``c930a4c7e07d803b8067b482e594b583``). 3 columns: user, venue, timestamp (integers); the
    row count is not recorded here.
``lastfm``
    No raw file is published in the authors' GitHub repositories: the FINEST README links the
    paper's datasets as one Google Drive archive
    (https://drive.google.com/file/d/1AvpAqBQvr0BduHDPVqssM5KIyIO_hHa4/view), a viewer page
    that cannot be fetched as a raw file, and an earlier ``demo.sh`` read ``data/lastfm.tsv``
    which was never committed. The file's format could not be established here; like the other
    files it is expected to end with the columns user, item, timestamp, so any consistent
    column count >= 3 is accepted and the last three columns are used. Set ``raw_data_file``.
    Note that RecBole 1.2.1 also knows a dataset named ``lastfm`` (the HetRec 2011 artist
    data, a different data set); :func:`prepare_dataset` never lets RecBole fetch that one in
    place of the paper's LastFM.

The conversion itself (and the record of the raw file a ``.inter`` came from) is
:mod:`recbole_finest.data.convert`; this module knows where the files are and gets them.

Raw URLs are pinned to the commit the file was found at, with the default branch (``HEAD``)
as a fallback (foursquare: the default branch, the only place of ``data/foursquare.tsv``
known here). A downloaded file whose MD5 differs from the known one is converted anyway and
a warning is logged.

Config keys (read by the plugin's entry points, passed here as arguments):
``raw_data_file`` (path of a local raw file to convert; default ``None``) and
``download_datasets`` (whether a known dataset may be downloaded; default ``True``).
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import tempfile
import urllib.request

from recbole_finest.data.convert import (INTER_HEADER, MalformedDatasetError, convert_into_new_folder,
                                         convert_raw_file, file_md5, source_path, stale)
from recbole_finest.fileio import write_json

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "INTER_HEADER",
    "KNOWN_DATASETS",
    "DatasetNotFoundError",
    "MalformedDatasetError",
    "RawDataset",
    "convert_raw_file",
    "download_raw_file",
    "inter_path",
    "prepare_dataset",
]

DOWNLOAD_TIMEOUT = 60  # seconds, per blocking network operation

_RAW = "https://raw.githubusercontent.com"


@dataclasses.dataclass(frozen=True)
class RawDataset:
    """A raw interaction file published by the paper's authors.

    ``columns`` is the number of tab-separated columns of every row (``None``: any count
    >= 3, the same on every row); the last three columns are user, item, timestamp.
    """

    name: str
    urls: tuple
    columns: object  # int or None
    description: str
    md5: object = None  # str or None
    rows: object = None  # int or None
    manual_source: object = None  # where to get the file by hand when urls is empty


KNOWN_DATASETS = {
    d.name: d
    for d in (
        RawDataset(
            name="reddit",
            urls=(
                f"{_RAW}/claws-lab/iscon/660019e521c9c55fa8cf4af0d0ce7ff3006c2475/data/reddit.tsv",
                f"{_RAW}/claws-lab/iscon/HEAD/data/reddit.tsv",
            ),
            columns=3,
            description="user, subreddit, timestamp",
            md5="101fb1431a66c423199a35656263b35c",
            rows=134489,
        ),
        RawDataset(
            name="wikipedia",
            urls=(
                f"{_RAW}/claws-lab/casper/1f47a375e21cdda0d6b256b5bad5893306d2d9b4/data/wikipedia.tsv",
                f"{_RAW}/claws-lab/casper/HEAD/data/wikipedia.tsv",
            ),
            columns=4,
            description="interaction index, user, page, timestamp",
            md5="663439f8608c2016c6baad2059766f18",
            rows=157474,
        ),
        RawDataset(
            name="foursquare",
            urls=(
                f"{_RAW}/claws-lab/finest-recsys/HEAD/data/foursquare.tsv",
            ),
            columns=3,
            description="user, venue, timestamp",
            md5="c930a4c7e07d803b8067b482e594b583",
        ),
        RawDataset(
            name="lastfm",
            urls=(),
            columns=None,
            description="..., user, item, timestamp (format not verified)",
            manual_source="https://drive.google.com/file/d/1AvpAqBQvr0BduHDPVqssM5KIyIO_hHa4/view "
            "(the FINEST paper's dataset archive)",
        ),
    )
}


class DatasetNotFoundError(RuntimeError):
    """The dataset's atomic .inter file is missing and cannot be produced."""


def inter_path(dataset, data_path):
    """``<data_path>/<dataset>/<dataset>.inter``."""
    return os.path.join(os.fspath(data_path), dataset, f"{dataset}.inter")


def prepare_dataset(dataset, data_path, raw_data_file=None, download=True, logger=None):
    """Make sure ``<data_path>/<dataset>/<dataset>.inter`` exists and return its path.

    - The .inter file exists: it is returned untouched (whatever the dataset), unless
      ``raw_data_file`` is given and the file is stale (:func:`~recbole_finest.data.convert.stale`):
      then it is converted again.
    - ``raw_data_file`` is given: that local raw file is converted.
    - The dataset is in :data:`KNOWN_DATASETS` and ``download`` is true: the raw file is
      downloaded to a temporary file and converted.
    - A dataset unknown to this module that RecBole 1.2.1 can download itself (its
      ``url.yaml``), or whose folder already holds benchmark ``<dataset>.*.inter`` files,
      is left to RecBole: the expected path is returned and nothing is done.
    - Otherwise :class:`DatasetNotFoundError` says what to do.

    Raises :class:`MalformedDatasetError` for a bad raw row; no partial file is left.
    """
    logger = logger or logging.getLogger(__name__)
    target = inter_path(dataset, data_path)
    if os.path.isfile(target):
        reason = raw_data_file is not None and os.path.isfile(raw_data_file) and stale(target, raw_data_file)
        if not reason:
            return target
        logger.warning(f"{target} was converted from another version of raw_data_file {raw_data_file} "
                       f"({reason}); converting it again.")

    spec = KNOWN_DATASETS.get(dataset)
    columns = spec.columns if spec is not None else None
    if raw_data_file is not None:
        return _convert_local(dataset, os.fspath(raw_data_file), target, columns, logger)
    if spec is None and _recbole_handles(dataset, target):
        return target
    _check_downloadable(dataset, spec, target, download)
    return _download_and_convert(spec, target, logger)


def _convert_local(dataset, raw_data_file, target, columns, logger):
    """Convert the local ``raw_data_file`` into ``target`` and record where it came from."""
    if not os.path.isfile(raw_data_file):
        raise DatasetNotFoundError(
            f"raw_data_file for dataset [{dataset}] not found: {raw_data_file}. "
            f"Point raw_data_file at the raw tab-separated file, or put the atomic file "
            f"at {target}."
        )
    logger.info(f"Converting raw file {raw_data_file} to RecBole atomic file {target}.")
    convert_into_new_folder(raw_data_file, target, columns)
    write_json(source_path(target), {"raw_data_file": os.path.abspath(raw_data_file),
                                     "md5": file_md5(raw_data_file)})
    return target


def _check_downloadable(dataset, spec, target, download):
    """:class:`DatasetNotFoundError` saying what to do when ``target`` cannot be downloaded."""
    if spec is None:
        raise DatasetNotFoundError(
            f"Dataset [{dataset}] not found: {target} does not exist and [{dataset}] is not a "
            f"dataset this plugin knows (known: {', '.join(sorted(KNOWN_DATASETS))}). "
            f"Put the RecBole atomic file at {target}, or set raw_data_file: /path/to/{dataset}.tsv "
            f"(tab-separated, no header, last three columns user, item, timestamp)."
        )
    if not spec.urls:
        where = f" It is available from {spec.manual_source}." if spec.manual_source else ""
        raise DatasetNotFoundError(
            f"Dataset [{dataset}] not found: {target} does not exist and no public raw-file URL "
            f"is known for it.{where} Set raw_data_file: /path/to/{dataset}.tsv "
            f"(tab-separated, no header, last three columns user, item, timestamp), "
            f"or put the RecBole atomic file at {target}."
        )
    if not download:
        raise DatasetNotFoundError(
            f"Dataset [{dataset}] not found: {target} does not exist and downloading is "
            f"disabled (download_datasets: False). Set raw_data_file: /path/to/{dataset}.tsv, "
            f"enable downloads with an internet connection (raw file: {spec.urls[0]}), "
            f"or put the RecBole atomic file at {target}."
        )


def _download_and_convert(spec, target, logger):
    """Download the raw file of ``spec`` to a temporary file and convert it into ``target``."""
    fd, tmp = tempfile.mkstemp(prefix=f"{spec.name}.", suffix=".tsv.download")
    os.close(fd)
    try:
        download_raw_file(spec, tmp, logger=logger)
        logger.info(f"Converting downloaded [{spec.name}] to RecBole atomic file {target}.")
        convert_into_new_folder(tmp, target, spec.columns, display_name=f"{spec.urls[0]} (downloaded)")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    return target


def _recbole_handles(dataset, target):
    folder = os.path.dirname(target)
    if os.path.isdir(folder) and any(
        f.startswith(dataset + ".") and f.endswith(".inter") for f in os.listdir(folder)
    ):
        return True  # benchmark files (benchmark_filename): RecBole loads them itself
    try:
        import recbole
        import yaml
    except ImportError:
        return False
    url_file = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")
    try:
        with open(url_file, encoding="utf-8") as f:
            return dataset in (yaml.safe_load(f) or {})
    except (OSError, yaml.YAMLError):
        return False


def _urlopen(url, timeout):
    """Open ``url``; a seam for tests."""
    return urllib.request.urlopen(url, timeout=timeout)


def download_raw_file(spec, dest, logger=None, timeout=DOWNLOAD_TIMEOUT):
    """Download the raw file of ``spec`` (a :class:`RawDataset`) to ``dest``.

    The URLs are tried in order. Raises :class:`DatasetNotFoundError` when none works.
    """
    logger = logger or logging.getLogger(__name__)
    errors = []
    for url in spec.urls:
        logger.info(f"Downloading dataset [{spec.name}] from {url}")
        try:
            digest = hashlib.md5()
            with _urlopen(url, timeout) as response, open(dest, "wb") as out:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are OSErrors
            errors.append(f"{url}: {exc}")
            continue
        if spec.md5 is not None and digest.hexdigest() != spec.md5:
            logger.warning(
                f"Downloaded [{spec.name}] from {url} has MD5 {digest.hexdigest()}, expected "
                f"{spec.md5}: the published file changed; converting it anyway."
            )
        return dest
    raise DatasetNotFoundError(
        f"Dataset [{spec.name}] could not be downloaded ({'; '.join(errors)}). "
        f"Connect to the internet, or download the raw file yourself and set "
        f"raw_data_file: /path/to/{spec.name}.tsv, or put the RecBole atomic file at "
        f"<data_path>/{spec.name}/{spec.name}.inter."
    )
