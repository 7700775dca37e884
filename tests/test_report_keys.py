"""Study reports name their Jaccard column from the run's ``jaccard_k``, not a fixed ``jaccard@10``."""
import numpy as np
import pytest

from recbole_finest import report


def _cell(method, seed, rbo, jac):
    return dict(model="M", selection="random", kind="deletion", ratio=0.001, seed=seed, method=method,
                metrics={"rbo": rbo, "jaccard@5": jac, "mrr": 0.1})


def test_keys_follow_jaccard_k():
    assert report.stability_keys({"mrr", "jaccard@20", "rbo", "jaccard@5"}) == ("rbo", "jaccard@5", "jaccard@20")
    assert report.metric_keys({"jaccard@5"}) == ("rbo", "jaccard@5", "mrr", "recall@10", "ndcg@10")
    assert report.METRICS == ("rbo", "frbo@10", "jaccard@10", "mrr", "recall@10", "ndcg@10")
    assert report.stability_keys({"frbo@20", "jaccard@5", "frbo@5", "rbo"}) == ("rbo", "frbo@5", "frbo@20", "jaccard@5")
    assert report.label("frbo@10") == "FRBO@10"


def test_summary_user_groups_and_plots_with_jaccard_k_5(tmp_path):
    cells = [_cell("original", s, 0.7 + s / 100, 0.3) for s in (1, 2)]
    cells += [_cell("finest", s, 0.8 + s / 100, 0.4 + s / 10) for s in (1, 2)]
    out = report.summarize(cells, methods=["original", "finest"])
    fine = out["summary"][1]
    assert fine["jaccard@5_mean"] == pytest.approx(0.55) and "jaccard@10_mean" not in fine
    assert {t["metric"] for t in out["tests"]} == {"rbo", "jaccard@5", "mrr"}

    user = np.array([1, 2, 3, 4, 5])
    original = {"user": user, "rr_a": np.array([0.1, 0.9, 0.5, 0.05, 0.7]), "rbo": np.full(5, 0.5),
                "jaccard@5": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}
    finetuned = {**original, "jaccard@5": original["jaccard@5"] + 0.25}
    groups = report.user_group_stability(original, finetuned, fraction=0.2)
    assert groups["low"]["original"] == pytest.approx({"rbo": 0.5, "jaccard@5": 0.4})  # user 4
    assert groups["high"]["finetuned"]["jaccard@5"] == pytest.approx(0.45)  # user 2

    assert report.plot_methods(out["summary"], str(tmp_path / "methods.png")) == 1
    assert report.plot_user_groups([{"title": "M", "method": "finest", "seeds": [groups, groups]}],
                                   str(tmp_path / "groups.png")) == 1
