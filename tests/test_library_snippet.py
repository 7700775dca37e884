"""docs/library.md: the "FINEST in an existing RecBole script" snippet runs as written.

The two ``python`` blocks after ``<!-- snippet: recbole -->`` and ``<!-- snippet: finest -->``
are extracted from the document; the FINEST one must differ from the plain RecBole one in
at most 5 lines, and it is executed (with a tiny ``my.yaml``) to check that the fine-tuned
model's rank-preserving regularizer was active.
"""

import difflib
import re
from pathlib import Path

import torch
import yaml

import recbole_finest.finest.trainer as trainer_module
from conftest import tiny

DOC = Path(__file__).resolve().parents[1] / "docs" / "library.md"
#: a user's own yaml: RecBole's split and metrics for ml-100k (no plugin protocol), CE without negatives
TINY = tiny(drop=("finest_protocol",), finest_epochs=2, train_neg_sample_args=None)


def _snippet(name):
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, flags=re.S)
    assert match, f"docs/library.md has no python block after <!-- snippet: {name} -->"
    return match.group(1)


def test_snippet_changes_at_most_five_lines():
    plain, finest = _snippet("recbole").splitlines(), _snippet("finest").splitlines()
    diff = [line for line in difflib.unified_diff(plain, finest, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    added = [line for line in diff if line.startswith("+")]
    removed = [line for line in diff if line.startswith("-")]
    assert 1 <= len(added) <= 5 and len(removed) == len(added), diff
    assert any("FinestTrainer(config, model)" in line for line in added)


def test_snippet_runs_and_the_regularizer_is_active(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # my.yaml, RecBole's log/ and log_tensorboard/
    Path("my.yaml").write_text(yaml.safe_dump({
        **TINY, "checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}))
    calls = []
    original = trainer_module.rank_preserving_loss

    def recording(scores, reference, *args, **kwargs):
        loss = original(scores, reference, *args, **kwargs)
        calls.append((scores.shape[0], loss.detach().item(), loss.requires_grad))
        return loss

    monkeypatch.setattr(trainer_module, "rank_preserving_loss", recording)
    namespace = {}
    exec(compile(_snippet("finest"), str(DOC), "exec"), namespace)

    trainer = namespace["trainer"]
    assert isinstance(trainer, trainer_module.FinestTrainer)
    assert trainer.phase == "finetune" and trainer.reference is not None
    assert trainer.reference.k == TINY["finest_topk"]
    # the regularizer ran on every fine-tuning batch, with instances, a positive value and a graph
    assert len(calls) > 0
    assert sum(n for n, _, _ in calls) > 0
    assert all(grad for _, _, grad in calls)
    assert sum(value for _, value, _ in calls) > 0
    # RecBole's fit ran every fine-tuning epoch and the test evaluation
    assert len(trainer.train_loss_dict) == TINY["finest_epochs"]
    assert "mrr@10" in namespace["test_result"]
    assert torch.isfinite(torch.tensor(namespace["test_result"]["mrr@10"]))
