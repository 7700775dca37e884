"""The stability run scores each model's test set once per evaluation (issue 19).

Accuracy (RecBole's metrics), target ranks and RBO / Jaccard@k of a pair all come from the
one streamed pass of :func:`recbole_finest.stability.run.compare_models`; a second pass (e.g.
``Trainer.evaluate`` on the test loader next to the comparison) would double the
evaluation phase, the largest at scale.
"""
import contextlib

from recbole.data.dataloader import FullSortEvalDataLoader

from _cpu import on_cpu
from conftest import TINY_NARROW, load_splits
from recbole_finest.stability import run as stability
from recbole_finest.utils import get_model


class Counts:
    """Test-loader passes and ``full_sort_predict`` calls made while a pass is running."""

    def __init__(self):
        self.passes = self.calls = self.active = 0


def counting_loader(loader, counts):
    """``loader`` (same class, RecBole checks it) counting its passes in ``counts``."""
    cls = type(loader)

    def __iter__(self):
        counts.passes += 1
        counts.active += 1
        try:
            yield from cls.__iter__(self)
        finally:
            counts.active -= 1

    loader.__class__ = type(f"Counting{cls.__name__}", (cls,), {"__iter__": __iter__})
    return loader


def test_each_model_scores_the_test_set_once_per_evaluation(tmp_path, monkeypatch):
    import recbole_finest.compat.last_position as last_position

    config, train, valid, test = load_splits(tmp_path, {**TINY_NARROW, "finetune_method": "finest"})
    on_cpu(config)
    sizes = [len(positive_i) for _, _, _, positive_i in test]
    counts, fast = Counts(), Counts()
    test = counting_loader(test, counts)
    assert isinstance(test, FullSortEvalDataLoader) and len(test) >= 1
    model_cls = get_model("SASRec")
    predict, scores = model_cls.full_sort_predict, last_position._scores

    def counted(self, interaction):
        counts.calls += bool(counts.active)
        return predict(self, interaction)

    def counted_fast(model, *args):
        fast.calls += bool(counts.active)
        return scores(model, *args)

    monkeypatch.setattr(model_cls, "full_sort_predict", counted)
    monkeypatch.setattr(last_position, "_scores", counted_fast)
    with contextlib.chdir(tmp_path):
        run = stability.StabilityRun(config, train, valid, test, saved=False)
        rows = [run.pretrain(), run.finetune("finest")]
    # 2 rows (Original, FINEST) x 2 models (A, B): one pass over the test loader per row, in
    # which each model scores each batch once by SASRec's last-position path (in slices of
    # eval_score_rows from two slices' worth up: n // rows calls, the last taking the rest),
    # plus one plain full_sort_predict call per batch size that checks the bits (equal here,
    # else the fast path would have been dropped and the plain calls would count every batch)
    rows_per_call = config["eval_score_rows"]
    assert counts.passes == 2
    assert fast.calls == 2 * 2 * sum(n // rows_per_call if n >= 2 * rows_per_call else 1 for n in sizes)
    assert counts.calls == 2 * 2 * len(set(sizes))
    for row in rows:
        assert 0.0 < row["rbo"] <= 1.0 and row["recall@10"] >= 0.0 and "ndcg@10 (B)" in row
