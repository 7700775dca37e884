"""benchmarks/scale.py resumes a size stopped part-way: same rows, finished steps' times counted.

The 10M run of issue 19 takes longer than a session, so the benchmark keeps its finished
steps (:class:`Progress`); a resumed run must give the rows an uninterrupted run gives (A
and B loaded instead of pre-trained) and count the loaded step's recorded time.
Each run is a child process on the 100K synthetic size cut to 2 batches per loop
(``--max-batches 2``), as the benchmark runs it.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = os.path.join(REPO, "benchmarks", "scale.py")


def _scale(workdir, label, *extra):
    argv = [sys.executable, SCALE, "--one", "100K", "--workdir", str(workdir), "--label", label,
            "--max-batches", "2", "--casper", "auto", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _result(workdir, label):
    with open(os.path.join(workdir, "results", f"{label}-100K.json")) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(workdir, uninterrupted record, resumed record, stopped run's progress)``."""
    workdir = tmp_path_factory.mktemp("scale")
    full = _scale(workdir, "full")
    assert full.returncode == 0, full.stderr[-3000:]
    stopped = _scale(workdir, "resumed", "--stop-after", "pre-training")
    assert stopped.returncode != 0 and "stopped after pre-training" in stopped.stderr, stopped.stderr[-3000:]
    with open(os.path.join(workdir, "progress", "resumed-100K", "steps.json")) as fh:
        progress = json.load(fh)
    assert not os.path.exists(os.path.join(workdir, "results", "resumed-100K.json"))
    resumed = _scale(workdir, "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after pre-training" in resumed.stdout
    return workdir, _result(workdir, "full"), _result(workdir, "resumed"), progress


def test_a_resumed_run_gives_the_uninterrupted_rows(runs):
    _, full, resumed, _ = runs
    assert full["resumed_steps"] == [] and resumed["resumed_steps"] == ["pre-training"]
    # original row: recorded before the stop; FINEST row: fine-tuned from the loaded A and B
    assert resumed["rows"] == full["rows"]
    assert resumed["casper"]["nodes"] == full["casper"]["nodes"]


def test_the_finished_step_is_counted_and_the_progress_removed(runs):
    workdir, _, resumed, progress = runs
    step = progress["steps"]["pre-training"]
    assert set(progress["steps"]) == {"pre-training"}
    # the resumed process pre-trained nothing: its pre-training phase is the recorded one
    assert resumed["phase_cpu_s"]["pre-train epoch"] == pytest.approx(step["phase_cpu_s"]["pre-train epoch"])
    assert step["phase_cpu_s"]["pre-train epoch"] > 0 and step["phase_cpu_s"]["evaluation"] > 0
    # the totals hold every phase: the loaded step's time is inside them
    assert resumed["cpu_s"] >= sum(v for p, v in resumed["phase_cpu_s"].items() if p != "other") - 1e-6
    assert resumed["cpu_s"] > step["cpu_s"]
    assert not os.path.exists(os.path.join(workdir, "progress", "resumed-100K"))


def test_progress_written_with_other_options_is_refused(runs):
    workdir = runs[0]
    folder = os.path.join(workdir, "progress", "other-100K")
    os.makedirs(folder)
    with open(os.path.join(folder, "steps.json"), "w") as fh:
        json.dump({"settings": {"max_batches": 2, "threads": 7}, "steps": {}}, fh)
    refused = _scale(workdir, "other")
    assert refused.returncode != 0
    assert "written with other options" in refused.stderr and folder in refused.stderr
    assert not os.path.exists(os.path.join(workdir, "results", "other-100K.json"))
