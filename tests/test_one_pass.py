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
    import recbole_finest.stability.evaluate as evaluate

    config, train, valid, test = load_splits(tmp_path, {**TINY_NARROW, "finetune_method": "finest"})
    on_cpu(config)
    # plain full_sort_predict calls, one per batch: no slices, no SASRec last-position path
    # (their calls and checks are counted in tests/test_eval_fast.py; whether their bits pass
    # the check depends on the machine's BLAS)
    monkeypatch.setitem(config.final_config_dict, "eval_score_rows", None)
    monkeypatch.setattr(evaluate, "last_position_predict", lambda model: None)
    counts = Counts()
    test = counting_loader(test, counts)
    assert isinstance(test, FullSortEvalDataLoader) and len(test) >= 1
    model_cls = get_model("SASRec")
    predict = model_cls.full_sort_predict

    def counted(self, interaction):
        counts.calls += bool(counts.active)
        return predict(self, interaction)

    monkeypatch.setattr(model_cls, "full_sort_predict", counted)
    with contextlib.chdir(tmp_path):
        run = stability.StabilityRun(config, train, valid, test, saved=False)
        rows = [run.pretrain(), run.finetune("finest")]
    # 2 rows (Original, FINEST) x 2 models (A, B): one pass over the test loader per row,
    # in which each model scores each batch once
    assert counts.passes == 2
    assert counts.calls == 2 * 2 * len(test)
    for row in rows:
        assert 0.0 < row["rbo"] <= 1.0 and row["recall@10"] >= 0.0 and "ndcg@10 (B)" in row
