"""Issue 16: no silently wrong number, no lost run, every bad input stopped before training.

One test (or more) per numbered case of the issue; each failed on the code before the fix.
:data:`CASES` is the table of bad inputs / faults and what each gets now; ``docs/reliability.md``
is generated from it (``python tests/test_reliability.py`` rewrites the page) and
:func:`test_docs_table_is_current` checks that the page is current and that every case has
a test here.
"""

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import run_recbole_finest as cli
from recbole_finest.config import KEYS, RUNTIME_KEYS, Config, ConfigError
from recbole_finest.fileio import current_umask, load_checkpoint, save_checkpoint, write_json
from recbole_finest.quick_start import load_data, run_recbole_finest
from recbole_finest.finest.trainer import FinestTrainer
from conftest import tiny, TINY_NARROW

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
TINY = tiny(TINY_NARROW, embedding_size=8)
_cwd = contextlib.chdir  # RecBole writes log/ and log_tensorboard/ into the working directory

#: (case, bad input or fault, before the fix, now) -> docs/reliability.md
CASES = [
    ("1", "two runs at once in one `checkpoint_dir`",
     "checkpoints `<model>-<second>-<phase>.pth` shared: a run reloads the other's model A (exit 0)",
     "every trainer writes into `<checkpoint_dir>/<model>-<run id>/`; result folders are `<model>-<dataset>-<run id>`"),
    ("2", "`finest_reference_file` with `reference_protocol: independent`",
     "one memmap for A and B: B's lists overwrite the A lists that the next method fine-tunes A toward "
     "(wrong numbers, exit 0)",
     "one file per run and model: `<stem>-<run id><tag>.npy`"),
    ("3", "`pretrained_model_path` in the stability run",
     "ignored: A trained from scratch (exit 0); a missing file was not noticed",
     "model A is loaded from it (B is pre-trained from the seed's initial parameters on the perturbed data, "
     "as logged); a missing file is a config error; a study and a general model (RecBole's trainer) refuse the key"),
    ("4", "`rbo_depth=-1`, `jaccard_k=100000`, `rbo_p=abc`",
     "RBO = Jaccard = 1.0; Jaccard 1.0 and its column dropped; raw TypeError",
     "config error naming the key and what is allowed (before data for `rbo_depth`/`rbo_p`, before training "
     "for `jaccard_k` > items); the table shows the `jaccard@k` column of any k"),
    ("5", "misspelled plugin key (`--finest_topkk`, yaml), `--finest_topk 100000`, `--tune --study`",
     "silently ignored (a warning line for the space), or `--tune` ignored",
     "`unknown config key 'finest_topkk' (did you mean 'finest_topk'?)`; an argument not `--key=value`, two "
     "modes, a mode's option without it and a key given twice with different values are command-line errors"),
    ("6", "new `raw_data_file` beside an old converted `.inter`",
     "the stale `.inter` wins silently",
     "converted again (warning) when the raw file's MD5 differs from the one recorded at conversion "
     "(`<dataset>.inter.source.json`) or, without a record, when the raw file is newer"),
    ("7", "truncated cell `.json` / `.npz` / state `.pth` in a study folder; truncated pre-trained pair in "
          "`tune_dir/pretrained`",
     "every rerun fails with JSONDecodeError / BadZipFile without the file name",
     "a warning names the file, the cell (or model, or the tune pair) is computed again; an unreadable "
     "study settings file (`configs/<model>.json`) is an error naming it"),
    ("8", "resume refused for changed settings", "`study.json` overwritten with the rejected argv first",
     "every model's settings are checked before anything is written"),
    ("9", "unwritable `results_dir` / `study_dir` / `checkpoint_dir`", "found after all training",
     "error naming the key and folder before data is loaded"),
    ("10", "umask 022", "every output file 0600", "files get 0666 less the umask (0644)"),
    ("11", "`--model=sasrec`, yaml syntax error, `epochs: \"1\"`, `MAX_ITEM_LIST_LENGTH=0`, `train_batch_size=0`, "
           "a tiny dataset (topk / jaccard_k > items), a checkpoint of another size or truncated, every user "
           "filtered out, a raw file without a plugin yaml, `--config_files` with two spaces",
     "raw tracebacks that do not name the key or file; `[timestamp] is not exist`; `config file not found: `",
     "one line naming the key / file and what is allowed; a dataset without a yaml gets the columns "
     "user_id, item_id, timestamp; repeated spaces are ignored"),
    ("12", "`--stability=False` with BPR", "`KeyError: 'neg_item_id'`",
     "general models keep RecBole's negative sampling: trained and tested"),
    ("13", "unknown model", "blames a missing lightgbm", "`unknown model 'SASRek' ...; did you mean SASRec, ...?`"),
    # issue 41 (caches know their data, concurrent studies, full disks, unclear endings)
    ("14", "another `raw_data_file` (or an edited `.inter`) under the same dataset name, with a study folder, "
           "`update_cache_dir` or `tune_dir` of the old data",
     "the study reports the old cells (\"all 2 cells finished earlier\"); `--update` reuses v1 / v2 of the old data; "
     "tune's pre-trained pairs and trial rows are found by name (exit 0)",
     "every cache is keyed by the content of the data: the MD5 of the atomic files RecBole loads "
     "(`data/files.py`, read once per load). A study resumed on other data and an `update_cache_dir` of other data "
     "are refused naming both MD5s; tune's pair and trial digests hold it, so other data gets its own entries"),
    ("15", "`update_distill_weight: [0.5, 0.5]` (or `update_finest_weight`)",
     "the same v2 trained twice, two identical rows",
     "config error naming the key and the repeated weight, before data is loaded"),
    ("16", "two `--study` runs on one `study_dir` at once", "every cell computed twice (no corruption)",
     "a lock per cell (`<study_dir>/locks/`, `filelock`): a run computes the groups no other run holds, then waits "
     "for the held ones and skips the cells finished meanwhile; each cell is computed once"),
    ("17", "full disk under `checkpoint_dir` / `study_dir` / `results_dir`",
     "raw `RuntimeError: [enforce fail at inline_container.cc:672]`; `[Errno 28]` without a path and "
     "`results.md` / `config.yaml` missing",
     "a disk full at the start: the writable check (a one-byte probe) names the key and folder before data is "
     "loaded; full later: one line `no space left on device: cannot write <path>`; a run's result folder (and "
     "`--update`'s report) is written as a temporary folder renamed when whole: all files or none"),
    ("18", "`--dataset=../../x`, `--dataset=../esc`",
     "a temp file written outside `data_path`; a failure on the log path",
     "config error: a dataset must be a plain name (letters, digits, `.`, `_`, `-`; not `..`), before anything "
     "is written"),
    ("19", "header-only `.inter` with the filters `[0,inf)`", "\"loosen the filters\"",
     "`<path> has no interactions (only a header line)`; the filter message stays for data the filters emptied"),
    ("20", "a gzip file named `.tsv` as `raw_data_file`", "quotes 200 bytes of binary as a bad row",
     "`<path> is gzip-compressed, not tab-separated text: decompress it (gunzip) ...` (also bzip2, xz, zip, zstd)"),
    ("21", "a `.inter` with non-numeric timestamps", "pandas' error names the column, not the file",
     "`<path>: column timestamp:float holds a value that is not a float number ...`"),
    ("22", "a run killed during fine-tuning", "its checkpoint folder stays behind (1.2 MB); a rerun starts from "
     "scratch beside it",
     "not resumed: removed at the next start. A run marks `<checkpoint_dir>/.<model>-<run id>.running` while it "
     "works, under an OS lock; the next stability or `--update` run in that `checkpoint_dir` removes the folders "
     "whose marker nobody holds (killed runs), never a working run's; a run that fails removes its folder "
     "itself, a finished run keeps it"),
    # issue 41 (no input runs code, silently wrong numbers): tests in tests/test_trust.py
    ("23", "a config value `\"__import__('os').system('touch x') or 'gelu'\"` in a config dict, `--hidden_act=`, "
           "`study_model_config` or a `--tune` search space's fixed value",
     "RecBole's `eval` runs it (the marker file is created, the value becomes `'gelu'`, exit 0)",
     "read by the literal parser (`compat/literal.py`, `ast.literal_eval`): kept as the plain string, never "
     "evaluated (the run then fails on the unknown activation name)"),
    ("24", "a config file with `!!python/name:os.system` or `!!python/object/apply:`",
     "`python/name` accepted (the value is the function)",
     "`config file <path>: line 2: YAML tag '!!python/name:os.system' is refused ...` (every YAML the plugin "
     "reads: RecBole's float rule on `yaml.SafeLoader`)"),
    ("25", "Unix-second timestamps in bursts of 1-60 s, rows shuffled",
     "RecBole's float32 keeps 128-s steps: per-user order wrong; shifting all timestamps by a constant changes "
     "the results",
     "the time field is float64 in the plugin's sequential dataset: per-user order, the time split and the "
     "update cuts are those of the raw int64 values; a shifted copy gives the same table"),
    ("26", "`nan`, `inf` or an empty timestamp in an atomic `.inter`",
     "NaN filled with the column mean, inf kept as latest (exit 0)",
     "`<path>: timestamp column 'timestamp' has 1 value(s) that are not finite numbers, the first inf in data "
     "row 5 ...` (as raw files are refused)"),
    ("27", "`pretrained_model_path` of a checkpoint trained on another dataset of the same size",
     "loaded (shape check only), exit 0",
     "`config key 'pretrained_model_path': '<path>' is a checkpoint of dataset 'first', but this run trains "
     "dataset 'second'`: one rule with `deployed_model_path` (`finest.checkpoints.check_origin`)"),
    ("28", "a dataset left with one user after the filters",
     "a table computed from that one user, exit 0",
     "`dataset [few] has 1 user(s) left after RecBole's filters (...); results are means over users and need "
     "at least 10`"),
]


def render_doc():
    lines = [
        "# Reliability: bad inputs and faults",
        "",
        "What each bad input or fault of issues 16 (cases 1-13) and 41 (14-28) got before and gets now. Generated from",
        "`tests/test_reliability.py` (`python tests/test_reliability.py`); every row has a test `test_case<id>_...`",
        "in `tests/test_reliability.py` or `tests/test_trust.py`.",
        "On the command line every error below ends in one line `recbole-finest: error: ...`",
        "(set `RECBOLE_FINEST_TRACEBACK=1` for the traceback).",
        "",
        "| case | bad input / fault | before | now |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c} | {what} | {before} | {now} |" for c, what, before, now in CASES]
    lines += [
        "",
        "Validation happens in one place, `recbole_finest/config.py`: the table `KEYS` (name, default,",
        "what is allowed, tags; from `settings.py`) checks every plugin key when the `Config` is built,",
        "before any data is loaded; keys with a plugin prefix that the table does not know are errors.",
        "Limits that need the dataset (`finest_topk`, `jaccard_k`, `rbo_depth`, `topk` against the",
        "number of items) are checked right after loading, before the first epoch.",
        "",
        "Every cache holds numbers computed from some data, and names that data by its content: the",
        "MD5 of the atomic files RecBole loads (`recbole_finest/data/files.py`: the `.inter` or",
        "benchmark files and the `.user` / `.item` files loaded), read once per load and logged with",
        "them. It is stored in a study's `configs/<model>.json` (`data_md5`), in `update_cache_dir`'s",
        "`fingerprint.json`, and hashed into tune's pre-trained pair and trial digests.",
        "",
    ]
    return "\n".join(lines)


#: the test files whose ``test_case<id>_...`` functions back the rows of :data:`CASES`
CASE_FILES = ("test_reliability.py", "test_trust.py")


def tested_cases():
    """The case ids that have a test ``test_case<id>_...`` in one of :data:`CASE_FILES` (present ones)."""
    import re

    files = (Path(__file__).with_name(name) for name in CASE_FILES)
    return {m for f in files if f.is_file() for m in re.findall(r"^def test_case(\w+?)_", f.read_text(), re.M)}


def test_docs_table_is_current():
    assert DOC.read_text(encoding="utf-8") == render_doc(), "run: python tests/test_reliability.py"
    assert tested_cases() == {c for c, *_ in CASES}


@pytest.fixture
def dirs(tmp_path):
    out = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results"), "finest_protocol": True}
    with _cwd(tmp_path):
        yield out


def _no_training(monkeypatch):
    monkeypatch.setattr(FinestTrainer, "pretrain", lambda *a, **k: pytest.fail("trained despite bad input"))


# ---------------------------------------------------------------------------------- 1
def test_case1_trainers_of_one_second_never_share_a_checkpoint(dirs):
    from recbole.model.sequential_recommender import SASRec

    config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs})
    _, (train, _, _) = load_data(config)
    names = set()
    for _ in range(2):
        trainer = FinestTrainer(config, SASRec(config, train.dataset))
        trainer._start_phase("pretrain", 0.001, 1)
        names.add(trainer.saved_model_file)
    assert len(names) == 2


def _cli(tmp, name, *extra):
    """A stability run as its own process; returns its results.json."""
    argv = [sys.executable, str(ROOT / "run_recbole_finest.py"), "--model=SASRec", "--dataset=ml-100k",
            *(f"--{k}={v}" for k, v in TINY.items()), f"--checkpoint_dir={tmp / 'saved'}",
            f"--results_dir={tmp / name}", "--finetune_method=original", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _result(tmp, name):
    (folder,) = (tmp / name).iterdir()
    return json.loads((folder / "results.json").read_text())["rows"]


def test_case1_two_concurrent_runs_get_their_own_results(tmp_path):
    """Two processes in one checkpoint_dir, started together, report what each reports alone."""
    runs = {"slow": ("--learning_rate=0.001",), "fast": ("--learning_rate=0.01",)}
    together = {name: _cli(tmp_path, name, *args) for name, args in runs.items()}
    for name, proc in together.items():
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    alone = _cli(tmp_path, "alone", *runs["fast"])
    assert alone.wait(timeout=600) == 0, alone.stderr.read()[-2000:]
    assert _result(tmp_path, "fast") == _result(tmp_path, "alone")
    assert _result(tmp_path, "slow") != _result(tmp_path, "fast")
    assert len(list((tmp_path / "saved").iterdir())) == 3  # one folder per run


# ---------------------------------------------------------------------------------- 2
def test_case2_independent_references_on_disk_match_references_in_ram(dirs, tmp_path):
    from recbole_finest.stability.run import StabilityRun

    rows = {}
    for where in ("ram", "disk"):
        ref = {"finest_reference_file": str(tmp_path / "ref.npy")} if where == "disk" else {}
        config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, **ref, "reference_protocol": "independent",
                                                          "perturb_ratio": 0.05})
        _, (train, valid, test) = load_data(config)
        run = StabilityRun(config, train, valid, test)
        run.finetune("finest")  # builds A's lists, then B's: B's must not overwrite A's
        rows[where] = run.finetune("finest_order_only")  # fine-tunes A again from A's kept lists
    assert rows["disk"] == rows["ram"]
    assert len(list(tmp_path.glob("ref-*.npy"))) == 2  # A's and B's lists, each in its own file


# ---------------------------------------------------------------------------------- 3
def test_case3_pretrained_model_path_is_model_a(dirs, tmp_path, monkeypatch):
    from recbole.model.sequential_recommender import SASRec

    from recbole_finest.stability.run import StabilityRun

    config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs})
    _, (train, valid, test) = load_data(config)
    torch.manual_seed(7)
    state = SASRec(config, train.dataset).state_dict()
    path = tmp_path / "a.pth"
    save_checkpoint({"state_dict": state}, path)
    config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "pretrained_model_path": str(path)})
    calls = []
    original_pretrain = FinestTrainer.pretrain
    def pretrain(self, *args, **kwargs):
        calls.append(self.tag)
        return original_pretrain(self, *args, **kwargs)

    monkeypatch.setattr(FinestTrainer, "pretrain", pretrain)
    run = StabilityRun(config, train, valid, test)
    run.pretrain()
    assert calls == ["-B"]  # only B was trained
    assert all(torch.equal(run.pretrained["A"][k], state[k]) for k in state)
    with pytest.raises(ConfigError, match=r"pretrained_model_path.*nope\.pth"):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "pretrained_model_path": "nope.pth"})
    with pytest.raises(ValueError, match=r"'pretrained_model_path' is read by FinestTrainer.*'BPR'"):
        run_recbole_finest("BPR", "ml-100k", config_dict={**TINY, **dirs, "stability": False,
                                                         "pretrained_model_path": str(path)})


# ---------------------------------------------------------------------------------- 4
@pytest.mark.parametrize("key, value, allowed", [
    ("rbo_depth", -1, "a positive integer or ~"), ("rbo_depth", 0, "a positive integer or ~"),
    ("rbo_p", "abc", r"a number in \(0, 1\]"), ("jaccard_k", 0, "a positive integer"),
])
def test_case4_bad_rank_list_keys_fail_in_config(dirs, key, value, allowed):
    with pytest.raises(ConfigError, match=rf"config key '{key}' must be {allowed}, got {value!r}"):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, key: value})


def test_case4_jaccard_k_beyond_the_items_fails_before_training(dirs, monkeypatch):
    _no_training(monkeypatch)
    with pytest.raises(ConfigError, match=r"'jaccard_k' is 100000 but the dataset has only \d+ items"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs, "jaccard_k": 100000})
    with pytest.raises(ConfigError, match=r"'jaccard_k' \(20\) must not exceed 'rbo_depth' \(5\)"):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "jaccard_k": 20, "rbo_depth": 5})


def test_case4_table_shows_the_jaccard_column_of_any_k():
    from recbole_finest.stability.run import format_table

    table = format_table([{"method": "original", "rbo": 0.5, "jaccard@5": 0.25, "mrr": 0.1}])
    assert table.splitlines()[0] == "| method | rbo | jaccard@5 | mrr |" and "0.2500" in table


# ---------------------------------------------------------------------------------- 5
def test_case5_misspelled_plugin_key_is_an_error(dirs, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'finest_topkk' \(did you mean 'finest_topk'\?\)"):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "finest_topkk": 10})
    file = tmp_path / "typo.yaml"
    file.write_text("perturb_ration: 0.1\n")
    with pytest.raises(ConfigError, match=r"'perturb_ration' \(did you mean 'perturb_ratio'\?\)"):
        Config("SASRec", "ml-100k", config_file_list=[str(file)], config_dict={"finest_protocol": True, **TINY, **dirs})
    assert Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "my_own_key": 1})["my_own_key"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--finest_topk", "100000"], "'--finest_topk' is not of the form --key=value: write --finest_topk=100000"),
    (["finest_topk=3"], "'finest_topk=3' is not of the form --key=value"),
    (["--tune", "--study"], "--study and --tune are different modes"),
    (["--search_space=s.yaml"], "--search_space belongs to --tune"),
    (["--model=BPR"], "--model is given twice with different values ('SASRec' and 'BPR')"),
])
def test_case5_command_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--model=SASRec", "--dataset=ml-100k", *argv])
    assert message in capsys.readouterr().err


def test_case5_every_plugin_key_is_in_the_table():
    defaults = yaml.safe_load((ROOT / "properties" / "overall" / "finest.yaml").read_text())
    # RecBole's own key the plugin sets only under its protocol (issue 40)
    defaults.update(yaml.safe_load((ROOT / "properties" / "overall" / "protocol.yaml").read_text()))
    assert set(defaults) == set(KEYS)
    assert {k: v for k, v in defaults.items() if v != KEYS[k].default} == {}
    assert all(KEYS[k].check(v) for k, v in defaults.items() if v is not None or KEYS[k].check(None))
    from recbole_finest.study.driver import VOLATILE_KEYS

    assert RUNTIME_KEYS <= VOLATILE_KEYS  # per-run keys never block resuming a study


def test_case5_study_and_tune_share_one_identity_of_environment_keys(tmp_path):
    """Changing wandb_project (an environment key) resumes a study; changing a result key does not."""
    from recbole_finest.study.driver import StudyFolder, _check_fingerprint, _store_fingerprint
    from recbole_finest.tune.identity import pretrain_digest

    def config(**extra):
        return Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, "state": "ERROR", "wandb_project": "a", **extra})

    folder = StudyFolder(str(tmp_path))
    _store_fingerprint(_check_fingerprint(folder, "SASRec", config()))
    assert _check_fingerprint(folder, "SASRec", config(wandb_project="b", verbose=False)) is None  # resumes
    assert pretrain_digest(config(wandb_project="b")) == pretrain_digest(config())
    with pytest.raises(ValueError, match="finest_lambda"):
        _check_fingerprint(folder, "SASRec", config(finest_lambda=3.0))


# ---------------------------------------------------------------------------------- 6
def test_case6_stale_inter_is_converted_again(tmp_path):
    from recbole_finest.data.datasets import prepare_dataset

    raw = tmp_path / "raw.tsv"
    raw.write_text("0\t0\t0\n1\t1\t6\n")
    target = Path(prepare_dataset("mine", tmp_path / "data", raw_data_file=raw))
    assert target.read_text().count("\n") == 3
    raw.write_text("0\t0\t0\n1\t1\t6\n2\t2\t7\n")
    os.utime(raw, ns=(target.stat().st_mtime_ns - 10**9,) * 2)  # older, but its checksum differs
    prepare_dataset("mine", tmp_path / "data", raw_data_file=raw)
    assert target.read_text().count("\n") == 4
    target.with_name("mine.inter.source.json").unlink()  # no record: a newer raw file is converted again
    raw.write_text("0\t0\t0\n")
    prepare_dataset("mine", tmp_path / "data", raw_data_file=raw)
    assert target.read_text().count("\n") == 2


# ---------------------------------------------------------------------------------- 7, 8
STUDY = dict(study_models=["SASRec"], study_methods=["original"], study_selections=["random"],
             study_kinds=["deletion"], study_ratios=[0.01], study_seeds=1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from recbole_finest.study.driver import run_study

    tmp = tmp_path_factory.mktemp("study")
    cfg = {**TINY, **STUDY, "study_dir": str(tmp / "study"), "checkpoint_dir": str(tmp / "saved"),
           "results_dir": str(tmp / "results")}
    with _cwd(tmp):
        first = run_study(dataset="ml-100k", config_dict=cfg)
    return tmp, cfg, first


def _rerun(study_fixture, **overrides):
    from recbole_finest.study.driver import run_study

    tmp, cfg, _ = study_fixture
    with _cwd(tmp):
        return run_study(dataset="ml-100k", config_dict={**cfg, **overrides})


def _cell(tmp, ext):
    (path,) = (tmp / "study" / "cells").rglob(f"original.{ext}")
    return path


@pytest.mark.parametrize("ext", ["json", "npz"])
def test_case7_truncated_cell_is_computed_again(study, ext, caplog):
    tmp, _, first = study
    path = _cell(tmp, ext)
    path.write_bytes(path.read_bytes()[:20])
    out = _rerun(study)
    assert out["computed"] == 1 and str(path) in caplog.text
    assert out["summary"] == first["summary"]  # recomputed from the cached models: the same numbers


def test_case7_truncated_state_is_trained_again(study, caplog):
    tmp, _, first = study
    (state,) = (tmp / "study" / "states").rglob("A-pretrained.pth")
    state.write_bytes(state.read_bytes()[:100])
    _cell(tmp, "json").unlink()
    out = _rerun(study)
    assert out["computed"] == 1 and str(state) in caplog.text
    assert out["summary"] == first["summary"]
    load_checkpoint(str(state))  # written again, whole


def test_case7_unreadable_tune_cache_entry_is_trained_again(tmp_path, caplog):
    from types import SimpleNamespace

    from recbole_finest.tune.pretrain import usable

    paths = {side: str(tmp_path / f"SASRec-x-seed1-{side}.pth") for side in ("A", "B")}
    paths["original"] = str(tmp_path / "SASRec-x-seed1-original.json")
    for side in ("A", "B"):
        save_checkpoint({"w": torch.ones(3)}, paths[side])
    write_json(paths["original"], {"rbo": 0.5})
    setup = SimpleNamespace(reuse_pretrained=True, started=0.0)
    assert usable(setup, paths)
    for key, cut in (("original", 5), ("B", 50)):
        good = Path(paths[key]).read_bytes()
        Path(paths[key]).write_bytes(good[:cut])
        assert not usable(setup, paths) and "SASRec-x-seed1-* cannot be read" in caplog.text
        Path(paths[key]).write_bytes(good)


def test_case8_refused_resume_leaves_study_json_alone(study):
    tmp, _, _ = study
    before = (tmp / "study" / "study.json").read_bytes()
    with pytest.raises(ValueError, match="different settings.*hidden_size"):
        _rerun(study, hidden_size=16, study_seeds=2)  # another grid: study.json would change
    assert (tmp / "study" / "study.json").read_bytes() == before


# ---------------------------------------------------------------------------------- 9
@pytest.mark.parametrize("key", ["results_dir", "checkpoint_dir"])
def test_case9_unwritable_output_fails_before_data(dirs, tmp_path, key, monkeypatch):
    import recbole_finest.quick_start as quick_start

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setattr(quick_start, "load_data", lambda *a: pytest.fail("data loaded despite bad output"))
    with pytest.raises(ValueError, match=rf"config key '{key}': cannot write to .*a_file"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs, key: str(blocker / "sub")})


def test_case9_unwritable_study_dir_fails_before_data(dirs, tmp_path, monkeypatch):
    import recbole_finest.quick_start as quick_start
    from recbole_finest.study.driver import run_study

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setattr(quick_start, "load_data", lambda *a: pytest.fail("data loaded despite bad output"))
    with pytest.raises(ValueError, match=r"config key 'study_dir': cannot write to .*a_file"):
        run_study(dataset="ml-100k", config_dict={**TINY, **dirs, **STUDY, "study_dir": str(blocker / "s")})


# ---------------------------------------------------------------------------------- 10
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_case10_files_keep_the_umask_mode(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "r.json", {"a": 1})
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "c.pth")
    finally:
        os.umask(previous)
    for name in ("r.json", "c.pth"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------------------------- 11
@pytest.mark.parametrize("overrides, message", [
    ({"MAX_ITEM_LIST_LENGTH": 0}, "config key 'MAX_ITEM_LIST_LENGTH' must be a positive integer, got 0"),
    ({"train_batch_size": 0}, "config key 'train_batch_size' must be a positive integer, got 0"),
    ({"epochs": 1.5}, "config key 'epochs' must be a positive integer, got 1.5"),
])
def test_case11_bad_recbole_values_name_the_key(dirs, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, **overrides})


def test_case11_bad_files_are_named(dirs, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match=r"config file .*broken\.yaml: line 2.*YAML syntax error"):
        Config("SASRec", "ml-100k", config_file_list=[str(broken)], config_dict=dirs)
    quoted = tmp_path / "quoted.yaml"
    quoted.write_text('epochs: "1"\n')
    with pytest.raises(ConfigError, match=r"'epochs' must be a positive integer, got '1'"):
        Config("SASRec", "ml-100k", config_file_list=[str(quoted)], config_dict=dirs)


def test_case11_model_name_case(dirs):
    with pytest.raises(ValueError, match=r"unknown model 'sasrec'.*did you mean SASRec\b"):
        Config("sasrec", "ml-100k", config_dict=dirs)


def test_case11_checkpoints_that_do_not_fit_are_named(dirs, tmp_path):
    from recbole.model.sequential_recommender import SASRec

    config = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs})
    _, (train, _, _) = load_data(config)
    trainer = FinestTrainer(config, SASRec(config, train.dataset))
    bigger = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "hidden_size": 16, "inner_size": 32})
    other = tmp_path / "other_size.pth"
    save_checkpoint({"state_dict": SASRec(bigger, train.dataset).state_dict()}, other)
    with pytest.raises(ValueError, match=r"checkpoint .*other_size\.pth does not fit SASRec"):
        trainer.load_model(str(other))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(other.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"checkpoint file .*truncated\.pth cannot be read"):
        trainer.load_model(str(truncated))


def _raw(tmp_path, users, per_user, items):
    rng = np.random.default_rng(0)
    rows = [f"{u}\t{rng.integers(items)}\t{u * 1000 + t}" for u in range(users) for t in range(per_user)]
    path = tmp_path / "raw.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_case11_dataset_without_yaml_and_tiny_catalogue(dirs, tmp_path, monkeypatch):
    """A raw file under a new name gets user/item/timestamp columns; limits beyond its items are named."""
    raw = _raw(tmp_path, users=3, per_user=12, items=7)
    cfg = {**TINY, **dirs, "data_path": str(tmp_path / "data"), "raw_data_file": str(raw),
           "user_inter_num_interval": "[0,inf)", "finest_topk": 2}
    config = Config("SASRec", "threeusers", config_dict=cfg)
    fields = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"])
    assert fields == ("user_id", "item_id", "timestamp")
    _no_training(monkeypatch)
    with pytest.raises(ConfigError, match=r"'jaccard_k' is 10 but the dataset has only \d items"):
        run_recbole_finest("SASRec", "threeusers", config_dict=cfg)
    with pytest.raises(ConfigError, match=r"'topk' is 10 but the dataset has only \d items"):
        run_recbole_finest("SASRec", "threeusers", config_dict={**cfg, "jaccard_k": 3})


def test_case11_every_user_filtered_out(dirs, tmp_path, monkeypatch):
    raw = _raw(tmp_path, users=20, per_user=5, items=30)
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=r"no interactions left.*user_inter_num_interval: \[10,inf\)"):
        run_recbole_finest("SASRec", "shortusers", config_dict={
            **TINY, **dirs, "data_path": str(tmp_path / "data"), "raw_data_file": str(raw),
            "user_inter_num_interval": "[10,inf)"})


def test_case11_command_line_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--model=SASRec", "--dataset=ml-100k", "--rbo_depth=-1"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert str(info.value) == "recbole-finest: error: config key 'rbo_depth' must be a positive integer or ~, got -1"


def test_case11_config_files_with_repeated_spaces(tmp_path, monkeypatch):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("finest_topk: 5\n")
    second.write_text("finest_topk: 6\n")
    seen = {}
    monkeypatch.setattr(cli, "run_recbole_finest", lambda **kw: seen.update(kw))
    cli.main(["--model=SASRec", "--dataset=ml-100k", f"--config_files= {first}  {second} "])
    assert seen["config_file_list"] == [str(first), str(second)]


# ---------------------------------------------------------------------------------- 12, 13
def test_case12_plain_mode_trains_a_general_model(dirs):
    out = run_recbole_finest("BPR", "ml-100k", config_dict={**TINY, **dirs, "stability": False})
    result = out["test_result"]
    config = Config("BPR", "ml-100k", config_dict={"finest_protocol": True, **TINY, **dirs, "stability": False})
    # RecBole evaluated the config's metrics at its cut-offs, and the trained model finds test items
    assert sorted(result) == sorted(f"{m.lower()}@{k}" for m in config["metrics"] for k in config["topk"])
    assert result["recall@10"] > 0 and result["ndcg@10"] > 0
    assert Config("SASRec", "ml-100k", config_dict=dirs)["train_neg_sample_args"]["distribution"] == "none"


def test_case13_unknown_model_lists_close_names(dirs):
    with pytest.raises(ValueError, match=r"unknown model 'SASRek'.*did you mean SASRec") as info:
        Config("SASRek", "ml-100k", config_dict=dirs)
    assert "lightgbm" not in str(info.value).lower()
    with pytest.raises(ValueError, match=r"unknown model 'NoSuchRec'") as info:
        Config("NoSuchRec", "ml-100k", config_dict=dirs)


# ---------------------------------------------------------------------------------- 14
def _interleaved(path, users=20, per_user=15, items=40, seed=0):
    """A raw file whose users interleave in time (every period of an update has every user)."""
    rng = np.random.default_rng(seed)
    rows = [f"{u}\t{rng.integers(items)}\t{t * 100 + u}" for t in range(per_user) for u in range(users)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _other_data(raw):
    """The same dataset name, one interaction less."""
    raw.write_text("".join(raw.read_text().splitlines(keepends=True)[:-1]))


def _mine(tmp_path, dirs, raw, **extra):
    return {**TINY, **dirs, "data_path": str(tmp_path / "data"), "raw_data_file": str(raw),
            "user_inter_num_interval": "[0,inf)", **extra}


def test_case14_study_resumed_on_other_data_is_refused(dirs, tmp_path):
    from recbole_finest.study.driver import run_study

    raw = _interleaved(tmp_path / "raw.tsv")
    cfg = _mine(tmp_path, dirs, raw, **STUDY, study_dir=str(tmp_path / "study"))
    assert run_study(dataset="mine", config_dict=cfg)["computed"] == 1
    assert run_study(dataset="mine", config_dict=cfg)["computed"] == 0  # the same data: resumed
    _other_data(raw)
    with pytest.raises(ValueError, match=r"holds a SASRec study computed on other data: .*MD5 [0-9a-f]{32}"):
        run_study(dataset="mine", config_dict=cfg)


def test_case14_update_cache_of_other_data_is_refused(dirs, tmp_path, monkeypatch):
    import recbole_finest.update.job as update_job
    from recbole_finest.update.strategies import UpdateTrainer

    raw = _interleaved(tmp_path / "raw.tsv")
    cfg = _mine(tmp_path, dirs, raw, update_methods=["retrain"], update_cache_dir=str(tmp_path / "cache"))
    update_job.run_update("SASRec", "mine", config_dict=cfg)
    assert {"v1.pth", "fingerprint.json"} <= {p.name for p in (tmp_path / "cache").iterdir()}
    _other_data(raw)
    for phase in ("pretrain", "update"):  # the v1 / v2 of the old data are not reused, nor is anything trained
        monkeypatch.setattr(UpdateTrainer, phase, lambda *a, **k: pytest.fail("trained despite the cache"))
    with pytest.raises(ValueError, match=r"'update_cache_dir': .* holds states trained on other data \(MD5 "):
        update_job.run_update("SASRec", "mine", config_dict=cfg)


def test_case14_tune_caches_are_keyed_by_the_data(dirs, tmp_path):
    from recbole_finest.quick_start import prepare_raw_data
    from recbole_finest.tune.identity import pretrained_paths
    from recbole_finest.tune.trial_cache import trial_path

    raw = _interleaved(tmp_path / "raw.tsv")
    config = Config("SASRec", "mine", config_dict=_mine(tmp_path, dirs, raw))

    def keys():
        prepare_raw_data(config)
        return pretrained_paths(str(tmp_path / "pretrained"), config)["A"], trial_path(str(tmp_path), config, 1)

    first = keys()
    assert keys() == first
    _other_data(raw)
    second = keys()
    assert second[0] != first[0] and second[1] != first[1]


# ---------------------------------------------------------------------------------- 15
@pytest.mark.parametrize("weights", [[0.5, 0.5], [1, 1.0, 2]])
def test_case15_duplicate_distill_weights_are_refused(dirs, monkeypatch, weights):
    import recbole_finest.update.job as update_job

    monkeypatch.setattr(update_job, "create_dataset", lambda *a: pytest.fail("data loaded despite the bad key"))
    with pytest.raises(ValueError, match=r"'update_distill_weight' lists the weight [0-9.]+ more than once"):
        update_job.run_update("SASRec", "ml-100k", config_dict={
            **TINY, **dirs, "update_methods": ["distill"], "update_distill_weight": weights})


# ---------------------------------------------------------------------------------- 16
STUDY_RUN = """
import json, sys, time
from pathlib import Path

from recbole_finest.study.driver import run_study
from recbole_finest.study.folder import StudyFolder

log, me, other, cfg = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
dataset = cfg.pop("dataset")
write = StudyFolder.write_cell


def logged(self, key, record, instances):  # every cell computed, in one log shared by both runs
    with open(log, "a") as f:
        f.write(json.dumps([str(k) for k in key]) + "\\n")
    write(self, key, record, instances)


StudyFolder.write_cell = logged
me.touch()
while not other.exists():  # both runs start the study together
    time.sleep(0.05)
run_study(dataset=dataset, config_dict=cfg)
"""


def _child_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _converted(tmp_path, dirs):
    """A config of the small interleaved dataset ``mine``, converted once beforehand."""
    from recbole_finest.data.datasets import prepare_dataset

    raw = _interleaved(tmp_path / "raw.tsv")
    prepare_dataset("mine", tmp_path / "data", raw_data_file=raw)
    return {**_mine(tmp_path, dirs, raw), "dataset": "mine"}


def test_case16_two_studies_on_one_folder_compute_each_cell_once(tmp_path):
    dirs = {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}
    cfg = {**_converted(tmp_path, dirs), **STUDY, "study_ratios": [0.01, 0.02], "study_dir": str(tmp_path / "study")}
    env, runs = _child_env(), []
    for me, other in (("a", "b"), ("b", "a")):
        (tmp_path / me).mkdir()
        runs.append(subprocess.Popen(
            [sys.executable, "-c", STUDY_RUN, str(tmp_path / "cells.log"), str(tmp_path / f"ready-{me}"),
             str(tmp_path / f"ready-{other}"), json.dumps(cfg)],
            cwd=tmp_path / me, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read()[-2000:]
    computed = (tmp_path / "cells.log").read_text().splitlines()
    assert len(computed) == 2 and len(set(computed)) == 2  # 2 cells, each computed by one of the runs


# ---------------------------------------------------------------------------------- 17
@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(folder, ending="", probes=False)``: files (ending in ``ending``) written through temporary
    files under ``folder`` go to ``/dev/full``, whose writes fail with the kernel's ENOSPC (a full disk, without
    filling one); ``probes``: the writable check's probe file too (the disk is full before the run starts)."""
    import tempfile

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    real, folders = tempfile.mkstemp, []

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        fd, path = real(suffix, prefix, dir, text)
        probe = (prefix or "").startswith(".write-test-")  # the writable check's probe
        if dir is not None and any(os.path.abspath(dir).startswith(f) and (probes if probe else (prefix or "").endswith(
                ending + ".")) for f, ending, probes in folders):
            os.close(fd)
            os.remove(path)
            os.symlink("/dev/full", path)
            fd = os.open(path, os.O_WRONLY)
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return lambda folder, ending="", probes=False: folders.append((os.path.abspath(folder), ending, probes))


def test_case17_full_results_dir_leaves_no_partial_result_set(dirs, full_disk, monkeypatch):
    import recbole_finest.quick_start as quick_start

    full_disk(dirs["results_dir"])
    monkeypatch.setattr(quick_start, "run_stability", lambda *a, **k: {"rows": [{"method": "original", "rbo": 1.0}]})
    with pytest.raises(OSError, match=r"^no space left on device: cannot write .*results.SASRec-ml-100k-[^/]+.results\.json") as info:
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs})
    assert "\n" not in str(info.value)
    assert os.listdir(dirs["results_dir"]) == []  # neither results.json nor results.md nor config.yaml


@pytest.mark.parametrize("key", ["results_dir", "checkpoint_dir"])
def test_case17_disk_full_at_the_start_fails_before_data(dirs, full_disk, monkeypatch, key):
    import recbole_finest.quick_start as quick_start

    full_disk(dirs[key], probes=True)
    monkeypatch.setattr(quick_start, "load_data", lambda *a: pytest.fail("data loaded on a full disk"))
    with pytest.raises(ValueError, match=rf"^config key '{key}': cannot write to .*: No space left on device$"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs})


def test_case17_full_checkpoint_dir_names_the_checkpoint(dirs, full_disk):
    full_disk(dirs["checkpoint_dir"], ending=".pth")  # the disk fills while training (the run's marker was written)
    with pytest.raises(OSError, match=r"^no space left on device: cannot write .*saved.SASRec-[^/]+.pretrain[^/]*\.pth"):
        run_recbole_finest("SASRec", "ml-100k", config_dict={**TINY, **dirs})
    assert not list(Path(dirs["checkpoint_dir"]).rglob("*.pth"))


def test_case17_full_study_dir_names_the_file(dirs, tmp_path, full_disk):
    from recbole_finest.study.driver import run_study

    full_disk(tmp_path / "study")
    with pytest.raises(OSError, match=r"^no space left on device: cannot write .*study.configs.SASRec\.json"):
        run_study(dataset="ml-100k", config_dict={**TINY, **dirs, **STUDY, "study_dir": str(tmp_path / "study")})


# ---------------------------------------------------------------------------------- 18
@pytest.mark.parametrize("name", ["../../x", "../esc"])
def test_case18_dataset_name_must_be_a_plain_name(tmp_path, monkeypatch, name):
    raw = _raw(tmp_path, users=3, per_user=12, items=7)
    data = tmp_path / "d1" / "d2" / "data"
    argv = ["--model=SASRec", f"--dataset={name}", f"--data_path={data}", f"--raw_data_file={raw}"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert str(info.value) == ("recbole-finest: error: dataset must be a plain name of letters, digits, '.', '_' "
                               f"and '-' (no '/', not '..'), got {name!r}")
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, inside data_path or outside


# ---------------------------------------------------------------------------------- 19, 20, 21
def _atomic(tmp_path, name, rows):
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + rows)
    return {**TINY, "data_path": str(tmp_path / "data"), "user_inter_num_interval": "[0,inf)"}


def test_case19_header_only_inter_is_named_not_the_filters(dirs, tmp_path, monkeypatch):
    cfg = _atomic(tmp_path, "hdr", "")
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=r"hdr\.inter has no interactions \(only a header line\)") as info:
        run_recbole_finest("SASRec", "hdr", config_dict={**dirs, **cfg})
    assert "filter" not in str(info.value)


def test_case20_compressed_raw_file_is_named_as_such(tmp_path):
    import gzip

    from recbole_finest.data.datasets import MalformedDatasetError, prepare_dataset

    raw = tmp_path / "raw.tsv"
    with gzip.open(raw, "wt") as f:
        f.write("".join(f"{u}\t{i}\t{u * 100 + i}\n" for u in range(5) for i in range(12)))
    with pytest.raises(MalformedDatasetError) as info:
        prepare_dataset("gz", tmp_path / "data", raw_data_file=raw)
    assert str(info.value) == (f"{raw} is gzip-compressed, not tab-separated text: decompress it (gunzip) and set "
                               f"raw_data_file to the text file")
    assert not (tmp_path / "data" / "gz").exists()


def test_case21_non_numeric_timestamps_name_the_file(dirs, tmp_path, monkeypatch):
    cfg = _atomic(tmp_path, "sts", "".join(f"{u}\t{i}\t2024-01-0{1 + i % 9}\n" for u in range(5) for i in range(12)))
    _no_training(monkeypatch)
    inter = tmp_path / "data" / "sts" / "sts.inter"
    with pytest.raises(ValueError, match=rf"^{inter}: column timestamp:float holds a value that is not a float number"):
        run_recbole_finest("SASRec", "sts", config_dict={**dirs, **cfg})


# ---------------------------------------------------------------------------------- 22
KILLED_RUN = """
import json, sys
from recbole_finest.quick_start import run_recbole_finest
cfg = json.loads(sys.argv[1])
run_recbole_finest("SASRec", cfg.pop("dataset"), config_dict=cfg)
"""


class _Stop(Exception):
    pass


def test_case22_folder_of_a_killed_run_is_removed_at_the_next_start(dirs, tmp_path, monkeypatch):
    import recbole_finest.quick_start as quick_start

    saved = Path(dirs["checkpoint_dir"])
    cfg = {**_converted(tmp_path, dirs), "finest_epochs": 500, "finetune_method": "finest"}
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(cfg)], cwd=tmp_path, env=_child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not list(saved.glob("SASRec-*/finetune*.pth")):  # killed during fine-tuning
            assert child.poll() is None, child.stderr.read()[-2000:]
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    (killed,) = [p for p in saved.iterdir() if p.is_dir()]
    monkeypatch.setattr(quick_start, "run_stability", lambda *a, **k: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):  # the next run in that checkpoint_dir starts
        run_recbole_finest("SASRec", cfg.pop("dataset"), config_dict=cfg)
    assert not killed.exists()
    assert [p for p in saved.iterdir() if p.is_dir()] == []  # the failed run's own folder was never made


def test_case22_working_finished_and_failed_runs(tmp_path):
    from recbole_finest.run_folders import remove_unfinished, running

    with running(str(tmp_path), "SASRec-working"):
        (tmp_path / "SASRec-working").mkdir()
        assert remove_unfinished(str(tmp_path)) == []  # another run starting now leaves it alone
    assert os.listdir(tmp_path) == ["SASRec-working"]  # finished: kept, no marker or lock file left
    with pytest.raises(_Stop), running(str(tmp_path), "SASRec-failed"):
        (tmp_path / "SASRec-failed").mkdir()
        raise _Stop
    assert os.listdir(tmp_path) == ["SASRec-working"]  # failed: its folder removed at once


if __name__ == "__main__":
    DOC.write_text(render_doc(), encoding="utf-8")
    print(f"wrote {DOC}")
