"""Known datasets: raw-file conversion, downloads, clear errors, RecBole loading."""

import os
from pathlib import Path

import pytest

from recbole_finest.data import datasets as D
from recbole_finest.data.datasets import (
    INTER_HEADER,
    DatasetNotFoundError,
    MalformedDatasetError,
    prepare_dataset,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _leftovers(folder):
    """Every file under ``folder`` (temporary files included)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def test_convert_reddit_format_exact_content(tmp_path):
    raw = _write(tmp_path / "raw.tsv", "0\t0\t0\n1\t1\t6\n\n0\t2\t7\r\n")
    out = prepare_dataset("reddit", tmp_path / "data", raw_data_file=raw, download=False)
    assert out == str(tmp_path / "data" / "reddit" / "reddit.inter")
    assert Path(out).read_text() == INTER_HEADER + "0\t0\t0\n1\t1\t6\n0\t2\t7\n"
    # + the record of the raw file it came from (stale check)
    assert _leftovers(tmp_path / "data") == ["reddit/reddit.inter", "reddit/reddit.inter.source.json"]


def test_convert_wikipedia_four_columns_keeps_last_three(tmp_path):
    raw = _write(tmp_path / "wiki.tsv", "0\t0\t0\t0.000\n1\t1\t1\t36.000\n2\t7\t0\t384.000\n")
    out = prepare_dataset("wikipedia", tmp_path, raw_data_file=raw, download=False)
    assert Path(out).read_text() == INTER_HEADER + "0\t0\t0.000\n1\t1\t36.000\n7\t0\t384.000\n"


def test_wikipedia_rejects_three_column_rows(tmp_path):
    raw = _write(tmp_path / "wiki.tsv", "0\t0\t0\n")
    with pytest.raises(MalformedDatasetError, match="line 1.*expected 4"):
        prepare_dataset("wikipedia", tmp_path / "data", raw_data_file=raw)


@pytest.mark.parametrize(
    "bad_line, problem",
    [("3\t4\n", "2 tab-separated column"), ("3\t4\tnoon\n", "non-numeric timestamp"), ("3\t4\tnan\n", "non-numeric")],
)
def test_malformed_row_names_file_and_line_and_leaves_nothing(tmp_path, bad_line, problem):
    raw = _write(tmp_path / "bad.tsv", "0\t0\t0\n1\t1\t6\n" + bad_line + "2\t2\t9\n")
    data = tmp_path / "data"
    with pytest.raises(MalformedDatasetError) as info:
        prepare_dataset("reddit", data, raw_data_file=raw)
    message = str(info.value)
    assert str(raw) in message
    assert "line 3" in message
    assert repr(bad_line.rstrip("\n")) in message
    assert problem in message
    assert not data.exists() or _leftovers(data) == []
    assert not (data / "reddit").exists()


def test_failure_keeps_existing_folder_but_no_partial_files(tmp_path):
    (tmp_path / "reddit").mkdir()
    _write(tmp_path / "reddit" / "notes.txt", "mine")
    raw = _write(tmp_path / "bad.tsv", "0\t0\t0\n0\t1\tx\n")
    with pytest.raises(MalformedDatasetError, match="line 2"):
        prepare_dataset("reddit", tmp_path, raw_data_file=raw)
    assert _leftovers(tmp_path / "reddit") == ["notes.txt"]


def test_missing_known_dataset_offline_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset("reddit", tmp_path, download=False)
    message = str(info.value)
    expected = os.path.join(str(tmp_path), "reddit", "reddit.inter")
    assert "reddit" in message and expected in message
    assert "raw_data_file" in message and "download" in message
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "reddit").exists()


def test_failing_download_is_a_clear_error(tmp_path, monkeypatch):
    spec = D.KNOWN_DATASETS["reddit"]
    missing = (tmp_path / "nowhere.tsv").as_uri()
    monkeypatch.setitem(D.KNOWN_DATASETS, "reddit", D.dataclasses.replace(spec, urls=(missing,)))
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset("reddit", tmp_path / "data")
    message = str(info.value)
    assert missing in message and "raw_data_file" in message and "internet" in message
    assert not (tmp_path / "data" / "reddit").exists()


def test_failing_urlopen_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(D, "_urlopen", offline)
    with pytest.raises(DatasetNotFoundError, match="network unreachable"):
        prepare_dataset("wikipedia", tmp_path)


def test_download_through_file_url(tmp_path, monkeypatch):
    served = _write(tmp_path / "served.tsv", "0\t5\t1.5\n1\t6\t2\n")
    spec = D.KNOWN_DATASETS["foursquare"]
    urls = ((tmp_path / "missing.tsv").as_uri(), served.as_uri())  # first mirror fails
    monkeypatch.setitem(D.KNOWN_DATASETS, "foursquare", D.dataclasses.replace(spec, urls=urls))
    out = prepare_dataset("foursquare", tmp_path / "data")
    assert Path(out).read_text() == INTER_HEADER + "0\t5\t1.5\n1\t6\t2\n"
    assert _leftovers(tmp_path / "data") == ["foursquare/foursquare.inter"]


def test_md5_mismatch_only_warns(tmp_path, monkeypatch, caplog):
    served = _write(tmp_path / "served.tsv", "0\t0\t0\n")
    spec = D.dataclasses.replace(D.KNOWN_DATASETS["reddit"], urls=(served.as_uri(),))
    monkeypatch.setitem(D.KNOWN_DATASETS, "reddit", spec)
    with caplog.at_level("WARNING"):
        prepare_dataset("reddit", tmp_path / "data")
    assert "MD5" in caplog.text


def test_existing_inter_is_returned_untouched(tmp_path, monkeypatch):
    folder = tmp_path / "reddit"
    folder.mkdir()
    inter = _write(folder / "reddit.inter", "anything at all\n")
    mtime = inter.stat().st_mtime_ns
    monkeypatch.setattr(D, "_urlopen", lambda url, timeout: pytest.fail("must not download"))
    raw = _write(tmp_path / "raw.tsv", "0\t0\t0\n")
    os.utime(raw, ns=(mtime - 10**9, mtime - 10**9))  # older than the .inter (a newer one is converted again)
    assert prepare_dataset("reddit", tmp_path, raw_data_file=raw) == str(inter)
    assert inter.read_text() == "anything at all\n" and inter.stat().st_mtime_ns == mtime


def test_unknown_dataset_present_locally_passes_through(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    inter = _write(folder / "mydata.inter", "user_id:token\titem_id:token\n")
    assert prepare_dataset("mydata", tmp_path, download=False) == str(inter)
    assert inter.read_text() == "user_id:token\titem_id:token\n"


def test_recbole_downloadable_dataset_passes_through(tmp_path):
    # ml-100k is in RecBole's own url.yaml: RecBole fetches it, this module does nothing.
    out = prepare_dataset("ml-100k", tmp_path)
    assert out == os.path.join(str(tmp_path), "ml-100k", "ml-100k.inter")
    assert _leftovers(tmp_path) == []


def test_unknown_dataset_missing_lists_known_names(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset("no-such-data", tmp_path)
    message = str(info.value)
    for name in ("reddit", "wikipedia", "lastfm", "foursquare"):
        assert name in message
    assert os.path.join("no-such-data", "no-such-data.inter") in message
    assert "raw_data_file" in message


def test_lastfm_without_url_asks_for_raw_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="raw_data_file"):
        prepare_dataset("lastfm", tmp_path)
    raw = _write(tmp_path / "lastfm.tsv", "9\t0\t1\t5\n9\t1\t2\t6\n")
    out = prepare_dataset("lastfm", tmp_path, raw_data_file=raw)
    assert Path(out).read_text() == INTER_HEADER + "0\t1\t5\n1\t2\t6\n"


def test_missing_raw_data_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="raw_data_file"):
        prepare_dataset("reddit", tmp_path, raw_data_file=tmp_path / "absent.tsv")


def test_registry_urls_are_raw_github_files():
    for name in ("reddit", "wikipedia", "foursquare"):
        urls = D.KNOWN_DATASETS[name].urls
        assert urls and all(u.startswith("https://raw.githubusercontent.com/claws-lab/") for u in urls)
    assert D.KNOWN_DATASETS["wikipedia"].columns == 4
    assert D.KNOWN_DATASETS["reddit"].columns == 3


def test_shared_reddit_loads_in_recbole_with_paper_protocol(tmp_path):
    raw = SHARED_DATA / "reddit.tsv"
    if not raw.is_file():
        pytest.skip(f"{raw} is absent (the public reddit.tsv is not committed to this repo)")
    from recbole.config import Config
    from recbole.data import create_dataset

    out = prepare_dataset("reddit", tmp_path, raw_data_file=raw, download=False)
    with open(out) as f:
        assert sum(1 for _ in f) == 134489 + 1
    config = Config(
        model="SASRec",
        dataset="reddit",
        config_file_list=[str(REPO / "properties" / "dataset" / "reddit.yaml")],
        config_dict={"finest_protocol": True, "data_path": str(tmp_path), "train_neg_sample_args": None, "state": "ERROR"},
    )
    dataset = create_dataset(config)
    assert dataset.user_num - 1 == 4675  # user_num counts the padding user
    assert dataset.item_num - 1 == 952  # 966 items in the file, 952 left after the user filter
    assert dataset.inter_num == 113219
