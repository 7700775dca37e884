"""CASPER's automatic method choice: exact up to ``casper_exact_max_nodes`` DAG nodes, sketch above."""
import logging

import numpy as np
import pytest

from recbole_finest.data.casper import (
    EXACT_MAX_NODES,
    SKETCH_SEED,
    build_dag,
    cascading_scores,
    casper_select,
    choose_method,
)
from recbole_finest.data.perturb import perturb

from test_casper import random_seqs


@pytest.fixture
def seqs():
    return random_seqs(np.random.default_rng(4), n_users=40, n_items=15, max_rows=25)


def test_choose_method_threshold():
    assert choose_method(EXACT_MAX_NODES) == "exact"
    assert choose_method(EXACT_MAX_NODES + 1) == "sketch"
    assert choose_method(10, exact_max_nodes=9) == "sketch"
    assert choose_method(10, "exact", exact_max_nodes=9) == "exact"
    assert choose_method(10 ** 9, "exact") == "exact"
    assert choose_method(1, "sketch") == "sketch"
    with pytest.raises(ValueError, match="method='fast'"):
        choose_method(1, "fast")


def test_auto_is_exact_up_to_the_threshold_and_sketch_above(seqs, caplog):
    m = len(build_dag(seqs, 10)[0])
    exact = cascading_scores(seqs, 10)
    sketch = cascading_scores(seqs, 10, method="sketch", rng=np.random.default_rng(SKETCH_SEED))
    assert not np.array_equal(exact, sketch)  # the two methods differ on this graph
    with caplog.at_level(logging.INFO):
        at = cascading_scores(seqs, 10, method="auto", exact_max_nodes=m)
        above = cascading_scores(seqs, 10, method="auto", exact_max_nodes=m - 1)
    np.testing.assert_array_equal(at, exact)
    np.testing.assert_array_equal(above, sketch)
    messages = [r.getMessage() for r in caplog.records if "CASPER" in r.getMessage()]
    assert len(messages) == 2
    assert "exact" in messages[0] and f"{m:,} DAG nodes <=" in messages[0]
    assert "sketch" in messages[1] and f"{m:,} DAG nodes >" in messages[1]


def test_perturb_casper_selection_follows_the_choice(seqs):
    m = len(build_dag(seqs, 50)[0])
    n = 7
    for limit, method in ((m, "exact"), (m - 1, "sketch")):
        out = perturb(seqs, "casper", "deletion", np.random.default_rng(0), count=n, max_len=50,
                      casper_method="auto", casper_exact_max_nodes=limit)
        rng = None if method == "exact" else np.random.default_rng(SKETCH_SEED)
        expected = np.sort(casper_select(seqs, n, 50, method=method, rng=rng))
        np.testing.assert_array_equal(out.selected_rows, expected)


def test_config_rejects_unknown_casper_method(tmp_path):
    from recbole_finest.config import Config

    base = dict(checkpoint_dir=str(tmp_path), finest_protocol=True)
    with pytest.raises(ValueError, match=r"'casper_method' must be one of exact, sketch, auto, got 'fast'"):
        Config("SASRec", "ml-100k", config_dict={**base, "casper_method": "fast"})
    with pytest.raises(ValueError, match=r"'casper_exact_max_nodes' must be a positive integer"):
        Config("SASRec", "ml-100k", config_dict={**base, "casper_exact_max_nodes": 0})
    config = Config("SASRec", "ml-100k", config_dict=base)
    assert config["casper_method"] == "auto" and config["casper_exact_max_nodes"] == EXACT_MAX_NODES
