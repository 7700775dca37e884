"""``train_precision`` (issue 44 item 2): bf16 autocast for pre-training, fine-tuning and reference lists.

* a bad value is refused when the ``Config`` is built, naming the key and the value;
  ``enable_amp`` with bf16 and a GPU without bf16 are refused before any training; a CPU
  without native bf16 gets one warning;
* bf16 really runs the output layer in bf16 (the logits seen in training and in the
  reference pass are bf16) while the losses are fp32 and the parameters stay fp32;
* the default is fp32: no autocast, fp32 logits, and the same numbers as an explicit fp32 run;
* the reference lists' order under bf16 is the fp32 order of the candidates (no bf16 ties);
* a tiny stability run in bf16 differs from fp32 (it did run in bf16) by less than the
  documented tolerance (``precision.TOLERANCE``, docs/performance.md "bf16 against fp32").
"""

import contextlib
import logging

import pytest
import torch
from recbole.utils import init_seed

from conftest import TINY, load_splits
from recbole_finest.checks import ConfigError
from recbole_finest.config import Config
from recbole_finest.finest import precision
from recbole_finest.finest.scoring import SequenceScorer
from recbole_finest.finest.trainer import FinestTrainer


def test_a_bad_value_is_refused_when_the_config_is_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config key 'train_precision' must be one of fp32, bf16, got 'fp16'"):
        Config("SASRec", "ml-100k", config_dict={**TINY, "train_precision": "fp16"})
    assert Config("SASRec", "ml-100k", config_dict=TINY).settings.data.train_precision == "fp32"  # the default


def test_amp_with_bf16_and_a_gpu_without_bf16_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="'train_precision' \\(bf16\\) and 'enable_amp'"):
        precision.check_precision("bf16", torch.device("cpu"), enable_amp=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(ValueError, match="'train_precision' is bf16, but this GPU has no bf16 \\(Old GPU\\)"):
        precision.check_precision("bf16", torch.device("cuda"))
    assert precision.check_precision("fp32", torch.device("cuda"), enable_amp=True) == "fp32"  # RecBole's amp as before


def test_a_cpu_without_native_bf16_is_warned_about_once(monkeypatch, caplog):
    monkeypatch.setattr(precision, "_WARNED", set())
    monkeypatch.setattr(precision, "bf16_support", lambda device: (False, "no avx512_bf16"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert precision.check_precision("bf16", torch.device("cpu")) == "bf16"
    warned = [r for r in caplog.records if "train_precision: bf16" in r.getMessage()]
    assert len(warned) == 1 and "emulates bf16" in warned[0].getMessage()
    monkeypatch.setattr(precision, "bf16_support", lambda device: (True, ""))
    monkeypatch.setattr(precision, "_WARNED", set())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        precision.check_precision("bf16", torch.device("cpu"))
    assert not caplog.records


def _spy(monkeypatch):
    """Record the dtype of every item-logits tensor and every loss term, and whether autocast was on."""
    seen = {"logits": [], "losses": [], "autocast": []}
    item_logits, batch_losses = SequenceScorer.item_logits, FinestTrainer.batch_losses

    def logits(self, hidden):
        out = item_logits(self, hidden)
        seen["logits"].append(out.dtype)
        return out

    def losses(self, batch):
        seen["autocast"].append(torch.is_autocast_enabled("cpu"))
        out = batch_losses(self, batch)
        seen["losses"] += [t.dtype for t in out]
        return out

    monkeypatch.setattr(SequenceScorer, "item_logits", logits)
    monkeypatch.setattr(FinestTrainer, "batch_losses", losses)
    return seen


def _stability_run(tmp_path, prec):
    """Rows of a tiny SASRec stability run (Original, FINEST), what the spy saw, the run."""
    from recbole_finest.stability.run import StabilityRun

    overrides = TINY if prec is None else {**TINY, "train_precision": prec}
    folder = tmp_path / (prec or "default")
    folder.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        seen = _spy(patch)
        config, train, valid, test = load_splits(folder, overrides)
        init_seed(config["seed"], True)
        with contextlib.chdir(folder):
            run = StabilityRun(config, train, valid, test, saved=False)
            rows = [run.pretrain(), run.finetune("finest")]
    return rows, seen, run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run three times: the default, explicit fp32, bf16 (same seed)."""
    tmp = tmp_path_factory.mktemp("precision")
    return {name: _stability_run(tmp, prec) for name, prec in (("default", None), ("fp32", "fp32"), ("bf16", "bf16"))}


def test_bf16_runs_the_products_in_bf16_and_the_losses_in_fp32(runs):
    _, seen, run = runs["bf16"]
    assert seen["autocast"] and all(seen["autocast"])  # every training batch under autocast
    assert set(seen["logits"]) == {torch.bfloat16}  # training and reference scores (evaluation: full_sort_predict)
    assert set(seen["losses"]) == {torch.float32}  # next-item and rank-preserving loss in fp32
    assert set(run.pretrained) == {"A", "B"}
    for state in run.pretrained.values():  # parameters stay fp32
        assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}


def test_fp32_is_the_default_and_runs_no_autocast(runs):
    default, seen, _ = runs["default"]
    assert seen["autocast"] and not any(seen["autocast"])
    assert set(seen["logits"]) == {torch.float32} and set(seen["losses"]) == {torch.float32}
    assert default == runs["fp32"][0]  # exact float equality of every metric


def test_bf16_reference_order_is_the_fp32_order_of_its_candidates():
    """bf16 scores keep 8 significant bits: their top-2K ties and misorders; the re-ranked lists do not."""
    gen = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(256, 16, generator=gen), torch.randn(500, 16, generator=gen)
    exact = hidden @ weight.T
    exact[:, 0] = -torch.inf
    coarse = (hidden.bfloat16() @ weight.bfloat16().T).float()
    coarse[:, 0] = -torch.inf
    n = 20
    want = torch.topk(exact, n, dim=1).indices
    plain = torch.topk(coarse, n, dim=1).indices
    assert (plain != want).any(dim=1).float().mean() > 0.3  # bf16's own order is wrong in many rows
    got = precision.rerank_top(coarse, hidden, lambda h, items: torch.einsum("mh,mch->mc", h, weight[items]), n,
                               rows=100)  # three chunks
    assert torch.equal(got, want)


def test_bf16_stays_within_the_documented_tolerance_of_fp32(runs):
    fp32, bf16 = runs["fp32"][0], runs["bf16"][0]
    assert fp32 != bf16  # bf16 changed the arithmetic
    for a, b in zip(fp32, bf16):
        for metric, tolerance in precision.TOLERANCE.items():
            assert abs(a[metric] - b[metric]) <= tolerance, (a["method"], metric, a[metric], b[metric])


def test_a_study_of_cells_from_before_the_key_resumes_in_fp32_only(tmp_path, monkeypatch):
    """A stored study fingerprint without ``train_precision`` (written before the key) holds fp32 cells."""
    import json
    from types import SimpleNamespace

    from recbole_finest.study.resume import _check_fingerprint, fingerprint

    monkeypatch.chdir(tmp_path)
    fp32 = Config("SASRec", "ml-100k", config_dict=TINY)
    bf16 = Config("SASRec", "ml-100k", config_dict={**TINY, "train_precision": "bf16"})
    old = {k: v for k, v in fingerprint(fp32).items() if k != "train_precision"}
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "SASRec.json").write_text(json.dumps(old))
    folder = SimpleNamespace(root=str(tmp_path))
    assert _check_fingerprint(folder, "SASRec", fp32) is None  # resumes
    with pytest.raises(ValueError, match="different settings \\(keys train_precision\\)"):
        _check_fingerprint(folder, "SASRec", bf16)
