"""Tests for the Ray Tune search (recbole_finest.tune): search space, objective, end to end."""

import csv
import hashlib
import json
import math
import os
import re
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from recbole_finest.config import run_config  # noqa: E402  (the Config of the plugin's tune runs)
from recbole_finest.report import pareto_front  # noqa: E402
from recbole_finest.tune import (  # noqa: E402
    INFEASIBLE, budgets_of, load_search_space, pretrain_digest, score, to_param_space,
)

N_USERS, N_ITEMS = 60, 40
MIGRATION_WARNINGS = "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS"


def write_tiny_dataset(root):
    """60 users x 12-20 interactions over 40 items, with a learnable next-item pattern."""
    rng = np.random.default_rng(0)
    folder = os.path.join(root, "dataset", "tiny")
    os.makedirs(folder)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(N_USERS):
        item = int(rng.integers(N_ITEMS))
        for t in range(int(rng.integers(12, 21))):
            lines.append(f"u{user}\ti{item}\t{1000 * user + t}")
            item = (item + int(rng.integers(1, 4))) % N_ITEMS
    with open(os.path.join(folder, "tiny.inter"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_tiny_config(root):
    config = {
        "data_path": os.path.join(root, "dataset"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[5,inf)",
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["MRR", "Recall", "NDCG"], "topk": [10], "valid_metric": "MRR@10",
        "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 10,
        "epochs": 2, "finest_epochs": 1, "finest_topk": 5, "perturb_count": 5,
        "train_batch_size": 256, "eval_batch_size": 256, "show_progress": False,
        "checkpoint_dir": os.path.join(root, "saved"), "results_dir": os.path.join(root, "results"),
        "tune_dir": os.path.join(root, "tune"), "tune_name": "search", "tune_num_cpus": 2,
        "tune_num_samples": 1, "tune_verbose": 0, "log_wandb": False,
        "tune_resources_per_trial": {"cpu": 1},
    }
    path = os.path.join(root, "tiny.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


# ------------------------------------------------------------------------------ search space
def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture(scope="module")
def base_config():
    """The ``Config`` of a plugin run (its protocol on ml-100k; no data is read)."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return run_config("SASRec", "ml-100k", config_dict={"show_progress": False})
    finally:
        sys.argv = argv


def test_search_space_vocabulary(tmp_path, base_config):
    path = write(tmp_path / "s.yaml", "\n".join([
        "finest_lambda: {loguniform: [1e-1, 10]}",
        "finest_topk: {choice: [50, 100]}",
        "finest_beta1: {grid: [0.05, 0.1]}",
        "finest_sim_ratio: {uniform: [0.005, 0.02]}",
        "finest_epochs: {qrandint: [2, 10, 2]}",
        "finest_beta2: 0.2",
    ]))
    space = to_param_space(load_search_space(path, base_config))
    assert isinstance(space["finest_lambda"], tune.search.sample.Float)
    assert (space["finest_lambda"].lower, space["finest_lambda"].upper) == (0.1, 10)  # 1e-1 read as a float
    assert isinstance(space["finest_lambda"].get_sampler(), tune.search.sample.LogUniform)
    assert space["finest_topk"].categories == [50, 100]
    assert space["finest_beta1"] == {"grid_search": [0.05, 0.1]}
    assert isinstance(space["finest_epochs"].get_sampler(), tune.search.sample.Quantized)
    assert space["finest_beta2"] == 0.2
    samples = [space["finest_lambda"].sample() for _ in range(200)]
    assert 0.1 <= min(samples) and max(samples) <= 10


@pytest.mark.parametrize("text, message", [
    ("finest_lamda: {choice: [1, 2]}", "'finest_lamda': not a config key"),
    ("finest_lambda: {gaussian: [1, 2]}", "unknown sampler 'gaussian'"),
    ("finest_lambda: {loguniform: [0, 2]}", "positive lower bound"),
    ("finest_lambda: {uniform: [3, 2]}", "low < high"),
    ("finest_lambda: {uniform: [1]}", "uniform needs 2 numbers"),
    ("seed: {choice: [1, 2]}", "tune_seeds"),
])
def test_search_space_errors_name_file_and_key(tmp_path, base_config, text, message):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ValueError, match="bad.yaml") as info:
        load_search_space(path, base_config)
    assert message in str(info.value)


# ------------------------------------------------------------------------------ objective
def test_score_constraint_and_ranking():
    base = {"ndcg@10": 0.5, "rbo": 0.6}
    ok = score({"rbo": 0.7, "ndcg@10": 0.495}, base)                # 1% drop: feasible
    edge = score({"rbo": 0.9, "ndcg@10": 0.49}, base)               # exactly 2%: feasible
    bad = score({"rbo": 0.95, "ndcg@10": 0.45}, base)               # 10% drop
    worse = score({"rbo": 0.99, "ndcg@10": 0.40}, base)             # 20% drop
    assert ok == {"accuracy_drop": pytest.approx(0.01), "feasible": True, "objective": 0.7}
    assert edge["feasible"] and edge["objective"] == 0.9
    assert not bad["feasible"] and bad["objective"] == pytest.approx(INFEASIBLE - 0.1)
    assert sorted([ok, edge, bad, worse], key=lambda s: -s["objective"]) == [edge, ok, bad, worse]
    assert score({"rbo": 0.95, "ndcg@10": 0.45}, base, max_drop=None)["objective"] == 0.95
    assert score({"mrr": 0.3, "ndcg@10": 0.6}, base, metric="mrr", mode="min")["objective"] == -0.3
    with pytest.raises(ValueError, match="rbo"):
        score({"rbo": math.nan, "ndcg@10": 0.5}, base)


def test_pareto_front_and_budgets():
    pts = [(0.30, 0.70), (0.32, 0.65), (0.29, 0.80), (0.31, 0.60), (0.25, 0.79)]
    # (0.31, 0.60) is dominated by (0.32, 0.65); (0.25, 0.79) by (0.29, 0.80)
    assert pareto_front(pts) == [2, 0, 1]
    assert budgets_of(5, "fifo", 1, 2) == [5]
    assert budgets_of(5, "asha", 1, 2) == [1, 2, 4, 5]
    assert budgets_of(10, "asha", 2, 3) == [2, 6, 10]


def test_search_report_tables_read_back(tmp_path):
    """The search's CSV reads back to its rows; the Markdown keeps column order, escapes ``|``, shows drops."""
    from recbole_finest.report import search_columns, write_search_report

    rows = [
        {"rank": 1, "trial": "t1", "status": "ok", "finest_lambda": 2.0, "rbo": 0.81234, "ndcg@10": 0.3,
         "base_ndcg@10": 0.31, "accuracy_drop": 0.0322, "feasible": False, "objective": INFEASIBLE - 0.0322,
         "finest_epochs": 4, "error": ""},
        {"rank": 2, "trial": "t2", "status": "failed", "finest_lambda": -1.0, "error": "ValueError: a | b"},
    ]
    columns = search_columns(rows, ["finest_lambda"], "rbo", "ndcg@10", ("rbo", "jaccard@10", "ndcg@10", "mrr"))
    assert columns == ["rank", "trial", "status", "finest_lambda", "rbo", "ndcg@10", "base_ndcg@10",
                       "accuracy_drop", "feasible", "objective", "finest_epochs", "error"]  # no row has jaccard / mrr
    out = write_search_report(str(tmp_path), rows, columns, "T", ["para one.", "para two."])
    assert out["plot"] is None and not (tmp_path / "frontier.png").exists()
    with open(out["table_csv"]) as f:
        table = list(csv.DictReader(f))
    assert [list(r) for r in table] == [columns, columns]
    assert table[0]["objective"] == repr(INFEASIBLE - 0.0322) and table[1]["rbo"] == ""
    text = (tmp_path / "results.md").read_text()
    head, para1, para2, header, rule, first, second = text.rstrip("\n").split("\n\n")[:3] + text.rstrip(
        "\n").split("\n\n")[3].split("\n")
    assert (head, para1, para2) == ("# T", "para one.", "para two.")
    assert header == "| " + " | ".join(columns) + " |" and rule == "|" + "---|" * len(columns)
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in (first, second)]
    assert cells[0][4:6] == ["0.8123", "0.3000"] and cells[0][9] == "-1000.0322" and cells[0][8] == "False"
    assert cells[1][3:] == ["-1.0000"] + [""] * 7 + ["ValueError: a \\| b"]


class FakeResult:
    """What ``collect_rows`` reads from a Ray ``Result``."""

    def __init__(self, trial, lam, metrics=None, error=None):
        self.path, self.config, self.metrics, self.error = f"/x/{trial}", {"finest_lambda": lam}, metrics, error


def test_collect_rows_orders_statuses_and_reasons():
    from recbole_finest.tune import collect_rows

    def metrics(objective, epochs):
        return {"rbo": 0.8, "ndcg@10": 0.3, "objective": objective, "feasible": objective > INFEASIBLE,
                "finest_epochs": epochs, "trial_id": "ignored", "time_total_s": 1.0}

    traceback = ("ray::trial() (pid=1, ip=1.2.3.4)\n  File \"x.py\", line 3, in f\n"
                 "    raise ValueError(msg)\nValueError: Training loss is nan\n")
    rows = collect_rows([
        FakeResult("t_fail", 5.0, {}, RuntimeError(traceback)),
        FakeResult("t_low", 1.0, metrics(0.70, 4)),
        FakeResult("t_infeasible", 2.0, metrics(INFEASIBLE - 0.05, 4)),
        FakeResult("t_stopped", 3.0, metrics(0.75, 1)),
        FakeResult("t_high", 4.0, metrics(0.90, 4)),
    ], ["finest_lambda"], full_epochs=4)
    assert [r["trial"] for r in rows] == ["t_high", "t_stopped", "t_low", "t_infeasible", "t_fail"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["status"] for r in rows] == ["ok", "stopped", "ok", "ok", "failed"]
    assert rows[-1]["error"] == "ValueError: Training loss is nan" and rows[-1]["finest_lambda"] == 5.0
    assert "time_total_s" not in rows[0] and rows[0]["finest_lambda"] == 4.0


def test_pretrain_digest_ignores_finetuning_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    write_tiny_dataset(tmp_path)
    files = [write_tiny_config(str(tmp_path))]

    def digest(**overrides):
        return pretrain_digest(run_config("SASRec", "tiny", files, overrides))

    base = digest()
    assert digest(finest_lambda=3.0, finest_topk=7, finetune_method="finest_no_sim", tune_num_samples=9) == base
    assert digest(seed=7, checkpoint_dir="elsewhere", wandb_project="another", gpu_id="1") == base
    assert digest(hidden_size=16) != base
    assert digest(perturb_count=6) != base
    assert digest(train_precision="fp32") == base and digest(train_precision="bf16") != base  # pre-training reads it


def test_environment_keys_never_block_resuming_a_study(tmp_path, monkeypatch):
    """Study and tune cut cache identity in one place: a key of where a run happens (e.g.
    ``wandb_project``) leaves the study fingerprint as it is, as it leaves tune's digest."""
    from recbole_finest.config import ENVIRONMENT_KEYS
    from recbole_finest.study.driver import fingerprint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    write_tiny_dataset(tmp_path)
    files = [write_tiny_config(str(tmp_path))]

    def build(**overrides):
        return run_config("SASRec", "tiny", files, overrides)

    base, moved = build(), build(wandb_project="another", gpu_id="1", checkpoint_dir="elsewhere", seed=7)
    assert fingerprint(moved) == fingerprint(base)
    assert pretrain_digest(moved) == pretrain_digest(base)
    assert not set(fingerprint(base)) & ENVIRONMENT_KEYS
    assert fingerprint(build(hidden_size=16)) != fingerprint(base)  # a key that changes numbers still counts


#: the keys the digest of every earlier version left out (besides finest_* / tune_* and FINETUNE)
EARLIER_IGNORED = {
    "seed", "device", "gpu_id", "use_gpu", "checkpoint_dir", "results_dir", "show_progress", "state",
    "log_wandb", "wandb_project", "worker", "single_spec", "local_rank", "nproc", "world_size", "offset",
    "ip", "port", "raw_data_file", "download_datasets", "verbose", "search_space", "ray_address", "tune",
}


def test_pretrain_digest_keeps_the_cache_entries_of_earlier_versions(tmp_path, monkeypatch):
    """The digest, recomputed from its definition: SHA-1 of the sorted ``key=repr(value)`` lines kept."""
    from types import SimpleNamespace

    fake = SimpleNamespace(final_config_dict={
        "seed": 1, "hidden_size": 8, "finest_lambda": 2.0, "gpu_id": "0", "perturb_ratio": 0.001,
        "wandb_project": "x", "tune_metric": "rbo", "finetune_method": "vat", "reference_protocol": "shared",
        "finest": True, "MAX_ITEM_LIST_LENGTH": 50})
    lines = b"MAX_ITEM_LIST_LENGTH=50\nhidden_size=8\nperturb_ratio=0.001"
    assert pretrain_digest(fake) == hashlib.sha1(lines).hexdigest()[:12]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    write_tiny_dataset(tmp_path)
    config = run_config("SASRec", "tiny", [write_tiny_config(str(tmp_path))], {"perturb_kind": "replacement"})
    kept = [f"{k}={v!r}" for k, v in sorted(config.final_config_dict.items())
            if not k.startswith(("finest_", "tune_")) and k not in EARLIER_IGNORED | {"eval_score_rows"}  # environment, added later
            and k not in ("finest", "finetune_method", "reference_protocol")
            and (k, v) != ("train_precision", "fp32")]  # added later: left out at its default
    assert "perturb_kind='replacement'" in kept and len(kept) > 50
    assert pretrain_digest(config) == hashlib.sha1("\n".join(kept).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A 2-trial grid search over finest_lambda: 2.0 runs, -1.0 fails the plugin's config check."""
    from recbole_finest.tune import run_tune

    root = str(tmp_path_factory.mktemp("tune"))
    write_tiny_dataset(root)
    config_file = write_tiny_config(root)
    space = write(os.path.join(root, "space.yaml"), "finest_lambda: {grid: [2.0, -1.0]}\n")
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = argv[:1]
    migration = os.environ.get(MIGRATION_WARNINGS)
    os.environ[MIGRATION_WARNINGS] = "1"  # Ray's warnings on the old API stay on, whatever the environment says
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = run_tune("SASRec", "tiny", [config_file], search_space=space)
    finally:
        os.chdir(cwd)
        sys.argv = argv
        if migration is None:
            os.environ.pop(MIGRATION_WARNINGS)
        else:
            os.environ[MIGRATION_WARNINGS] = migration
        ray.shutdown()
    assert not ray.is_initialized()
    return {"root": root, "config_file": config_file, "out": out, "ray_warnings": ray_warnings(caught)}


def ray_warnings(caught):
    """The recorded warnings raised from Ray's code or naming a Ray API (deprecations, ...)."""
    return [f"{w.category.__name__}: {w.message}" for w in caught
            if f"{os.sep}ray{os.sep}" in w.filename or re.search(r"\bray\.(air|train|tune)\b", str(w.message))]


def test_search_uses_todays_ray_api(search):
    """The driver's Tuner / RunConfig / FailureConfig calls raise no Ray warning.

    Ray 2.60 warns (``RayDeprecationWarning``) when the Tuner gets Ray 2.6's
    ``ray.air.RunConfig``, for example (this test fails with that import).
    """
    assert search["ray_warnings"] == []


def test_trial_reports_through_ray_tune_without_warnings(search, tmp_path):
    """The real trial function under a Tuner: one report per ASHA budget, no Ray warning inside the trial.

    The trial reads its CPUs from ``ray.tune.get_context()`` and reports with ``ray.tune.report``;
    a warning raised from Ray's code (or naming a ``ray.`` API) in the trial's process fails it.
    """
    from recbole_finest.tune import TuneSetup, trial

    setup = TuneSetup(model="SASRec", dataset="tiny", config_files=[search["config_file"]], overrides={},
                      seeds=[2020], cache_dir=os.path.join(search["root"], "tune", "pretrained"), budgets=[1, 2])

    def checked_trial(params):  # pickled by value for the Ray worker: no function of this module inside
        import re as r
        import warnings as w

        with w.catch_warnings(record=True) as caught:
            w.simplefilter("always")
            trial(params, setup=setup, shared={})
        found = [str(x.message) for x in caught
                 if "ray" in x.filename.split(os.sep) or r.search(r"\bray\.", str(x.message))]
        if found:
            raise RuntimeError(f"Ray warnings in the trial: {found}")

    ray.init(num_cpus=1, include_dashboard=False)
    try:
        grid = tune.Tuner(
            tune.with_resources(checked_trial, {"cpu": 1}), param_space={"finest_lambda": 2.0},
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="api", verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    result = grid[0]
    assert result.error is None
    history = result.metrics_dataframe
    assert history["finest_epochs"].tolist() == [1, 2]
    assert set(history["trial_id"]) == {result.metrics["trial_id"]}
    assert os.path.isdir(result.path) and result.path.startswith(str(tmp_path))


def test_search_records_every_trial(search):
    out = search["out"]
    rows = out["rows"]
    assert len(rows) == 2
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["finest_lambda"] == -1.0
    assert "finest_lambda" in failed[0]["error"] and "non-negative" in failed[0]["error"]
    assert rows[-1] is failed[0]  # failed trials rank last
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["finest_lambda"] for r in ok] == [2.0]
    for r in ok:  # objective recomputed from the table's own columns
        expected = score(r, {"ndcg@10": r["base_ndcg@10"]})
        assert r["objective"] == pytest.approx(expected["objective"])
        assert r["feasible"] == expected["feasible"]
        assert 0 <= r["rbo"] <= 1 and 0 <= r["jaccard@10"] <= 1
    assert out["best"] is ok[0]

    with open(out["table_csv"]) as f:
        table = list(csv.DictReader(f))
    assert [row["trial"] for row in table] == [r["trial"] for r in rows]
    assert table[-1]["status"] == "failed" and "finest_lambda" in table[-1]["error"]
    assert float(table[0]["rbo"]) == pytest.approx(ok[0]["rbo"])
    with open(out["table_md"]) as f:
        assert f.read().count("| failed |") == 1
    with open(out["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_trials_share_one_pretrained_pair(search):
    cache = os.path.join(search["root"], "tune", "pretrained")
    models = sorted(f for f in os.listdir(cache) if f.endswith(".pth"))
    assert len(models) == 2 and models[0].endswith("-A.pth") and models[1].endswith("-B.pth")
    with open(os.path.join(cache, models[0].replace("-A.pth", "-original.json"))) as f:
        original = json.load(f)
    for r in search["out"]["rows"][:1]:  # trials are compared against this un-fine-tuned pair
        assert r["base_ndcg@10"] == pytest.approx(original["ndcg@10"])
        assert r["base_rbo"] == pytest.approx(original["rbo"])


def test_trial_metrics_match_an_in_process_run(search, monkeypatch):
    """The best trial's numbers, recomputed here from the cached pair without Ray."""
    from recbole_finest.tune import TuneSetup, load_splits, pretrained_paths, stability_run

    monkeypatch.chdir(search["root"])
    best = search["out"]["best"]
    setup = TuneSetup(model="SASRec", dataset="tiny", config_files=[search["config_file"]], overrides={},
                      seeds=[2020], cache_dir=os.path.join(search["root"], "tune", "pretrained"), budgets=[1])
    config = setup.config({"finest_lambda": best["finest_lambda"]}, seed=2020)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = stability_run(config, load_splits(config), pretrained_paths(setup.cache_dir, config)).finetune("finest")
    finally:
        torch.set_num_threads(threads)
    assert row["rbo"] == pytest.approx(best["rbo"], abs=1e-6)
    assert row["ndcg@10"] == pytest.approx(best["ndcg@10"], abs=1e-6)


def test_best_config_loads_back_into_the_cli(search, monkeypatch):
    import run_recbole_finest

    best_file = search["out"]["best_config"]
    with open(best_file) as f:
        text = f.read()
    assert "run_recbole_finest.py --config_files" in text
    loaded = yaml.safe_load(text)
    assert loaded["finest_lambda"] == search["out"]["best"]["finest_lambda"]
    assert loaded["model"] == "SASRec" and loaded["dataset"] == "tiny"

    monkeypatch.chdir(search["root"])
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    result = run_recbole_finest.main(["--config_files", f"{search['config_file']} {best_file}"])
    with open(os.path.join(result["results_dir"], "config.yaml")) as f:
        used = yaml.safe_load(f)
    assert used["finest_lambda"] == loaded["finest_lambda"]
    assert [r["method"] for r in result["results"]["rows"]] == ["original", "finest"]


def test_trial_rows_are_kept_per_config_and_budget(tmp_path, monkeypatch):
    """An interrupted search reads its finished trials back: same config and budget -> the kept row.

    The key changes with a sampled value, the seed, the method and the budget; it does not
    change with the search's name, the trial's checkpoint folder or the GPU.
    """
    from recbole_finest.tune.trial_cache import cached_row, trial_digest

    write_tiny_dataset(str(tmp_path))
    config_file = write_tiny_config(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])

    def config(**extra):
        return run_config("SASRec", "tiny", [config_file], {"finest_lambda": 2.0, "show_progress": False, **extra})

    base = config()
    same = [config(tune_name="other", checkpoint_dir=str(tmp_path / "elsewhere"), gpu_id="1")]
    different = [config(finest_lambda=2.5), config(seed=7), config(finetune_method="acae")]
    assert all(trial_digest(c, 3) == trial_digest(base, 3) for c in same)
    assert len({trial_digest(c, 3) for c in [base] + different} | {trial_digest(base, 4)}) == 5

    calls = []

    def compute():
        calls.append(1)
        return {"rbo": 0.5 + len(calls), "method": "finest"}

    folder = str(tmp_path / "trials")
    first, cached = cached_row(folder, base, 3, compute)
    assert not cached and first == {"rbo": 1.5, "method": "finest"}
    again, cached = cached_row(folder, same[0], 3, compute)
    assert cached and again == first and len(calls) == 1
    other, cached = cached_row(folder, base, 4, compute)
    assert not cached and other["rbo"] == 2.5
    assert cached_row(None, base, 3, compute) == ({"rbo": 3.5, "method": "finest"}, False)
    assert len(os.listdir(folder)) == 2  # atomic writes: no temporary file left


def test_search_keeps_every_finished_trial_row(search):
    """The search's trial rows are on disk under ``<tune_dir>/trials``, equal to what the trials reported."""
    folder = os.path.join(search["root"], "tune", "trials")
    kept = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            kept.append(json.load(f))
    ok = [r for r in search["out"]["rows"] if r["status"] == "ok"]
    assert len(kept) == len(ok) == 1
    assert kept[0]["row"]["rbo"] == pytest.approx(ok[0]["rbo"]) and kept[0]["method"] == "finest"
