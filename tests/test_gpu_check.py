"""benchmarks/gpu_check.sh without a GPU: its plan, its refusal, and the table it builds from its records.

The check itself needs an H100; what can go wrong without one is checked here: the
``--dry-run`` plan (steps, limits, bf16 by ``train_precision: bf16`` unless ``GPU_CHECK_BF16`` is set empty),
the fast failure with a clear message and no folder written on a machine without a GPU, and
``gpu_check.py table`` on hand-made records (Ray trial records, nvidia-smi samples, step
windows): trials per minute and each step's utilization are the numbers those records give.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "gpu_check.sh")


def _sh(*args, **env):
    return subprocess.run(["bash", SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_dry_run_prints_the_plan_within_eight_minutes(tmp_path):
    out = _sh("--dry-run", GPU_CHECK_WORK=str(tmp_path / "w"), GPU_CHECK_BF16="")
    assert out.returncode == 0, out.stderr
    caps = [int(line.split("[")[1].split(" s]")[0]) for line in out.stdout.splitlines() if "s] " in line]
    assert len(caps) == 4 and "budget 470 s" in out.stdout  # tests, 1M fp32, tune, study; one budget < 8 min
    for piece in ("tests/test_cuda.py", "--device cuda --workdir", "gpu_check.py tune", "gpu_check.py study",
                  "[skip] 1M bf16"):
        assert piece in out.stdout
    assert not (tmp_path / "w").exists()
    default = subprocess.run(["bash", SCRIPT, "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "GPU_CHECK_BF16"})
    assert "--label gpu-bf16 --config-json '{\"train_precision\": \"bf16\"}'" in default.stdout  # the plugin's key
    bf16 = _sh("--dry-run", GPU_CHECK_BF16='{"some_bf16_key": true}')
    assert "--label gpu-bf16 --config-json '{\"some_bf16_key\": true}'" in bf16.stdout
    assert "[skip]" not in bf16.stdout


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_without_a_gpu_it_fails_at_once_and_writes_nothing(tmp_path):
    out = _sh(GPU_CHECK_WORK=str(tmp_path / "w"))
    assert out.returncode == 2
    assert "needs an NVIDIA GPU" in out.stderr
    assert not (tmp_path / "w").exists()
    assert _sh("--bogus").returncode == 64


def _trial(folder, name, end, total):
    os.makedirs(folder / name)
    with open(folder / name / "result.json", "w") as fh:
        fh.write(json.dumps({"timestamp": end - 5, "time_total_s": total - 5}) + "\n")
        fh.write(json.dumps({"timestamp": end, "time_total_s": total}) + "\n")


def test_table_gives_the_records_numbers(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import gpu_check

    work, report = tmp_path / "work", tmp_path / "report"
    report.mkdir()
    # 4 trials at once: 1000..1060 (span 60 s -> 4 trials/min); one after another: 0..240 s -> 1 trial/min
    for i in range(4):
        _trial(work / "tune" / "at-once", f"trial_{i}", 1060 - i, 60 - i)
        _trial(work / "tune" / "one-after-another", f"trial_{i}", 2060 + 60 * i, 60)
    assert gpu_check.trial_span(str(work / "tune" / "at-once")) == (4, 1000.0, 1060.0)
    gpu_check.write_json(str(report / "tune.json"), {
        "at once": {"wall_s": 90, "trials": 4, "ok": 4, "span_s": 60, "trials_per_min": 4.0, "start": 990, "end": 1080},
        "one after another": {"wall_s": 260, "trials": 4, "ok": 4, "span_s": 240, "trials_per_min": 1.0,
                              "start": 1990, "end": 2310}})
    (report / "steps.tsv").write_text("cuda tests\t10\t20\t0\ntune\t990\t2310\t0\nstudy ray\t3000\t3001\t124\n")
    (report / "smi.csv").write_text("12.0,40,1000\n15.0,60,3000\n1000.0,90,5000\n2000.0,30,2000\nbad line\n")
    (report / "cuda_tests.xml").write_text('<testsuites><testsuite tests="9" failures="1" errors="0" skipped="2" '
                                           'time="61.2"/></testsuites>')
    subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "gpu_check.py"), "table", "--work", str(work),
                    "--report", str(report)], check=True, capture_output=True, timeout=60)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in (report / "table.md").read_text().splitlines()
            if line.startswith("| ")}
    assert "6 passed, 1 failed, 0 errors, 2 skipped in 61 s" in rows["tests/test_cuda.py"]
    assert "50 / 60 % (2 samples)" in rows["tests/test_cuda.py"] and "3,000 MiB" in rows["tests/test_cuda.py"]
    assert "4.0 trials/min" in rows["Ray Tune, 4 trials x 0.25 GPU at once"]
    assert "90 / 90 %" in rows["Ray Tune, 4 trials x 0.25 GPU at once"]
    assert "1.0 trials/min" in rows["Ray Tune, 4 trials x 0.25 GPU one after another"]
    assert "4.00x trials per minute" in rows["Ray Tune: at once / one after another"]
    assert "timed out" in rows["study_backend: ray, 4 groups x 0.25 GPU"]
    assert "fp32 only" in rows["1M, bf16"]
