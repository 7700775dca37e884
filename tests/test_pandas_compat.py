"""RecBole 1.2.1's dataset code under pandas 3 (recbole_finest.compat.stack.PANDAS_EDITS).

A small atomic dataset exercises every edited method: a ``token_seq`` and a ``token`` field
with missing values (``_load_feat``, ``_fill_nan``), a missing float (filled with the mean),
``float_seq`` normalisation (``_normalize``: ``agg(len)``), ``token_seq`` remapping
(``_remap``), duplicates (``_remove_duplication``), a value interval (``_filter_by_field_value``),
a missing user and an unknown item (``_filter_nan_user_or_item``,
``_filter_inter_by_user_or_item``), the interaction-count filter and the index reset. The
result must be what RecBole 1.2.1 gives under pandas 2 (:data:`EXPECTED`, RecBole's own
methods under pandas 2.3.3) on the pandas installed here, 2.x or 3.x; RecBole's unedited
methods under copy-on-write (pandas 3's only mode) fail on the same data.
"""

import importlib

import pandas as pd
import pytest

from recbole_finest.compat import stack

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "u1\ti1\t5\t1\nu1\ti2\t3\t2\nu1\ti2\t4\t3\nu2\ti1\t4\t4\nu2\ti3\t1\t5\nu3\ti3\t2\t6\n\ti1\t3\t7\n"
         "u4\ti9\t3\t8\nu3\ti1\t5\t9\n")
ITEM = ("item_id:token\tgenre:token_seq\tprice:float\tvec:float_seq\tbrand:token\tweight:float\n"
        "i1\ta b\t10\t1 2\tx\t1\ni2\t\t20\t3\t\t2\ni3\tb c\t\t4 5 6\ty\t3\n")
CONFIG = {"rm_dup_inter": "first", "normalize_field": ["price", "vec"], "val_interval": {"rating": "[2,5]"},
          "user_inter_num_interval": "[1,inf)", "load_col": None, "show_progress": False, "state": "ERROR"}

#: RecBole 1.2.1's result with its own methods under pandas 2.3.3 (row 0 of item_feat is the padding row)
EXPECTED = {
    "inter": {"item_id": [1, 2, 1, 3, 1], "rating": [5.0, 3.0, 4.0, 2.0, 5.0],
              "timestamp": [1.0, 2.0, 4.0, 6.0, 9.0], "user_id": [1, 1, 2, 3, 3]},
    "item": {"brand": [0.0, 1.0, 0.0, 2.0], "genre": [[], [1, 2], [], [2, 3]], "item_id": [0, 1, 2, 3],
             "price": [0.5, 0.0, 1.0, 0.5], "vec": [[], [0.0, 0.2], [0.4], [0.6, 0.8, 1.0]],
             "weight": [2.0, 1.0, 2.0, 3.0]},
    "tokens": {"brand": ["[PAD]", "x", "y"], "genre": ["[PAD]", "a", "b", "c"],
               "item_id": ["[PAD]", "i1", "i2", "i3"], "user_id": ["[PAD]", "u1", "u2", "u3"]},
}


def _rounded(values):
    """A column as a list; sequence cells as lists; floats rounded to 6 digits."""
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    values = [x.tolist() if hasattr(x, "tolist") else x for x in values]
    return [[round(v, 6) for v in x] if isinstance(x, list) else (round(x, 6) if isinstance(x, float) else x)
            for x in values]


def build(tmp_path):
    """The toy dataset through RecBole's ``Config`` and ``create_dataset``, as plain lists."""
    from recbole.config import Config
    from recbole.data import create_dataset

    folder = tmp_path / "toy"
    folder.mkdir(exist_ok=True)
    (folder / "toy.inter").write_text(INTER)
    (folder / "toy.item").write_text(ITEM)
    config = Config(model="BPR", dataset="toy", config_dict={**CONFIG, "data_path": str(tmp_path)})
    dataset = create_dataset(config)
    return {
        "inter": {f: _rounded(dataset.inter_feat[f]) for f in sorted(dataset.inter_feat.columns)},
        "item": {f: _rounded(dataset.item_feat[f]) for f in sorted(dataset.item_feat.columns)},
        "tokens": {f: [str(t) for t in dataset.field2id_token[f]] for f in sorted(dataset.field2id_token)},
    }


def _recbole_methods(monkeypatch):
    """Put RecBole's unedited methods back (for the length of the test)."""
    for module, cls, method in stack.PANDAS_EDITS:
        owner = getattr(importlib.import_module(module), cls)
        monkeypatch.setattr(owner, method, owner.__dict__[method].__wrapped__)


@pytest.fixture(autouse=True)
def _chdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole's log/
    stack.apply()


@pytest.fixture
def copy_on_write():
    """pandas 3's copy-on-write: its only mode, an option in pandas 2."""
    if int(pd.__version__.split(".")[0]) >= 3:
        yield
        return
    with pd.option_context("mode.copy_on_write", True):
        yield


def test_every_edit_applies_to_recbole_1_2_1():
    """Each method of PANDAS_EDITS was recompiled (a changed RecBole would leave it unpatched with a warning)."""
    for module, cls, method in stack.PANDAS_EDITS:
        func = getattr(importlib.import_module(module), cls).__dict__[method]
        assert getattr(func, stack.PATCHED, False), f"{cls}.{method} is not patched"
    edits = [(old, count) for edits in stack.PANDAS_EDITS.values() for old, _, count in edits]
    assert sum(count for old, count in edits if "inplace=True" in old) == 18  # every inplace=True RecBole has
    assert sum(count for old, count in edits if "agg(len)" in old) == 6  # _normalize, _discretization x2, _remap, kg, seq


def test_dataset_equals_recbole_under_pandas_2(tmp_path):
    assert build(tmp_path) == EXPECTED, f"pandas {pd.__version__}"


@pytest.mark.skipif(int(pd.__version__.split(".")[0]) >= 3, reason="pandas 3: RecBole's own methods fail (next test)")
def test_recbole_own_methods_give_the_same_under_pandas_2(tmp_path, monkeypatch):
    _recbole_methods(monkeypatch)
    assert build(tmp_path) == EXPECTED


def test_recbole_own_methods_fail_under_copy_on_write(tmp_path, monkeypatch, copy_on_write):
    """pandas 3's copy-on-write (an option in pandas 2): RecBole's chained fillna(inplace=True) is a no-op."""
    _recbole_methods(monkeypatch)
    with pytest.raises((AttributeError, ValueError)):
        build(tmp_path)


def test_edited_methods_under_copy_on_write(tmp_path, copy_on_write):
    assert build(tmp_path) == EXPECTED
