"""Trust (issue 41): no config value runs code, and the silently wrong numbers are right or refused.

Code execution: every route a config value takes into RecBole's ``Config`` (a config file, a
config dict, the command line, a study's ``study_model_config``, a search space's fixed value)
is tried with a payload that would create a marker file if it were ever evaluated; the marker
must never appear. A value that is a Python expression with a call is refused with a one-line
``ConfigError`` naming the key (it is never a plain name); a config file with a ``!!python/...``
YAML tag is refused naming the file.

Silently wrong numbers: Unix-second timestamps keep their exact order (RecBole holds them as
float32), NaN / inf timestamps in an atomic ``.inter`` are refused, a ``pretrained_model_path``
of another dataset is refused as ``deployed_model_path`` is, and a dataset filtered down to
fewer than ``MIN_USERS`` users is refused.
"""

import os
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import TINY
from recbole_finest.checks import ConfigError
from recbole_finest.compat.registry import create_dataset
from recbole_finest.config import Config
from recbole_finest.fileio import load_checkpoint, save_checkpoint
from recbole_finest.quick_start import load_data, run_recbole_finest
from recbole_finest.trainer import FinestTrainer

try:  # the plugin's entry-point Config (its protocol: LS split in time order, CE without negatives)
    from recbole_finest.config import run_config as make_config
except ImportError:  # older layout: Config applied the protocol itself
    make_config = Config

MARKER = "PWNED_MARKER"


def payload(folder):
    """A config value that creates ``folder/MARKER`` if anything ever evaluates it."""
    return f"__import__('os').system('touch {folder / MARKER}') or 'gelu'"


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole's log/ folders
    monkeypatch.setattr(sys, "argv", ["pytest"])
    return {"checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results")}


def _no_training(monkeypatch):
    monkeypatch.setattr(FinestTrainer, "pretrain", lambda *a, **k: pytest.fail("trained despite bad input"))


# ------------------------------------------------------------------------------ code execution
def test_case23_config_dict_value_is_never_evaluated(dirs, tmp_path):
    config = make_config("SASRec", "ml-100k", config_dict={**TINY, **dirs, "hidden_act": payload(tmp_path)})
    assert config["hidden_act"] == payload(tmp_path)  # the plain string as written
    assert not (tmp_path / MARKER).exists()
    # what RecBole users write is read as RecBole reads it
    config = make_config("SASRec", "ml-100k", config_dict={
        **TINY, **dirs, "topk": "[5,10]", "learning_rate": "1e-3", "hidden_act": "gelu", "n_layers": "1",
        "user_inter_num_interval": "[300,inf)", "metrics": "['MRR','NDCG']", "show_progress": "false"})
    assert (config["topk"], config["learning_rate"], config["hidden_act"], config["n_layers"]) == \
        ([5, 10], 0.001, "gelu", 1)
    assert (config["user_inter_num_interval"], config["metrics"], config["show_progress"]) == \
        ("[300,inf)", ["MRR", "NDCG"], False)


def test_case23_command_line_value_is_never_evaluated(dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", "--model=SASRec", "--dataset=ml-100k",
                                      f"--hidden_act={payload(tmp_path)}", "--topk=[5,10]", "--n_layers=1"])
    config = make_config("SASRec", "ml-100k", config_dict={**TINY, **dirs})
    assert (config["hidden_act"], config["topk"], config["n_layers"]) == (payload(tmp_path), [5, 10], 1)
    assert not (tmp_path / MARKER).exists()


def test_case24_config_file_value_and_python_tags(dirs, tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"hidden_act": payload(tmp_path)}))
    config = make_config("SASRec", "ml-100k", config_file_list=[str(plain)], config_dict={**TINY, **dirs})
    assert config["hidden_act"] == payload(tmp_path)
    for tag in ("!!python/name:os.system", f"!!python/object/apply:os.system ['touch {tmp_path / MARKER}']"):
        tagged = tmp_path / "tagged.yaml"
        tagged.write_text(f"epochs: 1\nhidden_act: {tag}\n")
        with pytest.raises(ConfigError, match=rf"^config file {tagged}: line 2: YAML tag '!!python/\S+' is refused"):
            make_config("SASRec", "ml-100k", config_file_list=[str(tagged)], config_dict={**TINY, **dirs})
    assert not (tmp_path / MARKER).exists()


def test_case23_study_model_config_value_is_never_evaluated(dirs, tmp_path, monkeypatch):
    from recbole_finest.study import driver

    study = tmp_path / "study.yaml"
    overrides = {"SASRec": {"hidden_act": payload(tmp_path)}}
    study.write_text(yaml.safe_dump({
        **TINY, **dirs, "study_dir": str(tmp_path / "study"), "study_models": ["SASRec"],
        "study_methods": ["finest"], "study_seeds": [0], "study_selections": ["random"],
        "study_kinds": ["deletion"], "study_ratios": [0.01], "study_model_config": overrides}))
    monkeypatch.setattr(driver, "_run", lambda *a, **k: "stopped before training")
    # every model's Config of the study is built (and its settings checked) before _run
    assert driver.run_study(dataset="ml-100k", config_file_list=[str(study)]) == "stopped before training"
    assert not (tmp_path / MARKER).exists()
    config = driver._model_config("SASRec", "ml-100k", [str(study)], None, overrides)
    assert config["hidden_act"] == payload(tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_case23_tune_fixed_value_is_never_evaluated(dirs, tmp_path):
    from recbole_finest.tune.driver import search_space_of
    from recbole_finest.tune.setup import setup_of

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hidden_act": payload(tmp_path), "finest_lambda": {"choice": [0.1, 0.5]}}))
    base = make_config("SASRec", "ml-100k", config_dict={**TINY, **dirs, "tune_dir": str(tmp_path / "tune")})
    _, loaded = search_space_of(base, str(space))
    constants = {k: v for k, v in loaded.items() if not isinstance(v, dict)}
    # a trial's Config, as Ray's workers build it from the search's fixed values
    setup = setup_of(base, None, {**TINY, **dirs}, str(tmp_path / "tune"))
    assert setup.config(params=constants, seed=0)["hidden_act"] == payload(tmp_path)
    assert not (tmp_path / MARKER).exists()


# ------------------------------------------------------------------------------ data integrity
BASE = 1_700_000_000  # Unix seconds of 2023: float32 keeps 128-second steps there


def _bursty_inter(folder, name, shift=BASE, users=24, seed=0, long_users=0):
    """``<folder>/<name>/<name>.inter`` of Unix-second bursts (1-60 s apart), rows shuffled; the rows as a DataFrame.

    Users have 14 to 29 interactions, the first ``long_users`` of them 40.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        n = 40 if u < long_users else int(rng.integers(14, 30))
        times = shift + int(rng.integers(0, 10**6)) + np.cumsum(rng.integers(1, 61, n))
        items = rng.integers(0, 40, n)
        rows += [(f"u{u}", f"i{i}", int(t)) for i, t in zip(items, times)]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts"]).sample(frac=1.0, random_state=seed)
    os.makedirs(folder / name, exist_ok=True)
    with open(folder / name / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{t}\n" for u, i, t in frame.itertuples(index=False))
    return frame


def _data_config(dirs, folder, name, **extra):
    return {**TINY, **dirs, "data_path": str(folder), "user_inter_num_interval": "[0,inf)", "jaccard_k": 10,
            "finest_topk": 5, "MAX_ITEM_LIST_LENGTH": 50, "download_datasets": False, **extra}


def test_case25_unix_second_order_is_exact(dirs, tmp_path):
    """Per-user training sequences and test targets equal a sort by the raw int64 timestamps."""
    frame = _bursty_inter(tmp_path / "data", "bursts")
    config = make_config("SASRec", "bursts", config_dict=_data_config(dirs, tmp_path / "data", "bursts"))
    dataset, (train, _, test) = load_data(config)
    from recbole_finest.data.sequences import TrainingSequences

    seqs = TrainingSequences.from_dataset(train.dataset)
    expected = {u: g.sort_values("ts", kind="stable") for u, g in frame.groupby("user")}
    uid, iid = dataset.uid_field, dataset.iid_field
    tokens = dataset.field2id_token
    for s in range(seqs.n_sequences):
        user = tokens[uid][seqs.user_ids[s]]
        rows = slice(seqs.offsets[s], seqs.offsets[s + 1])
        want = expected[user]
        assert [tokens[iid][i] for i in seqs.items[rows]] == list(want["item"])[:-2]  # LS: last two held out
        assert np.array_equal(seqs.timestamps[rows], want["ts"].to_numpy(np.int64)[:-2])
    targets = test.dataset.inter_feat
    for u, i in zip(targets[uid].numpy(), targets[iid].numpy()):
        assert tokens[iid][i] == expected[tokens[uid][u]]["item"].iloc[-1]


def test_case25_update_time_cuts_are_exact(dirs, tmp_path):
    from recbole_finest.update.periods import cut_periods, dataset_sequences

    frame = _bursty_inter(tmp_path / "data", "bursts")
    config = make_config("SASRec", "bursts", config_dict=_data_config(dirs, tmp_path / "data", "bursts"))
    dataset = create_dataset(config)
    periods = cut_periods(dataset_sequences(dataset), (0.8, 0.9))
    ts = frame["ts"].to_numpy(np.int64)
    t1, t2 = (np.quantile(ts.astype(np.float64), q) for q in (0.8, 0.9))
    assert periods.bounds == (t1, t2)
    seqs = periods.sequences
    tokens = dataset.field2id_token
    got = sorted((tokens["user_id"][seqs.user_ids[s]], int(t), int(p)) for s in range(seqs.n_sequences)
                 for t, p in zip(seqs.timestamps[seqs.offsets[s]:seqs.offsets[s + 1]],
                                 periods.period[seqs.offsets[s]:seqs.offsets[s + 1]]))
    want = sorted(zip(frame["user"], ts.tolist(), ((ts > t1).astype(int) + (ts > t2).astype(int)).tolist()))
    assert got == want


def test_case25_shifting_timestamps_keeps_results(dirs, tmp_path):
    """The same interactions at 0.. and at 1.7e9.. seconds give the same stability table."""
    rows = []
    for name, shift in (("early", 0), ("late", BASE)):
        _bursty_inter(tmp_path / "data", name, shift=shift)
        out = run_recbole_finest("SASRec", name, config_dict=_data_config(
            dirs, tmp_path / "data", name, hidden_size=8, inner_size=16, finetune_method="finest_no_sim"))
        rows.append(out["results"]["rows"])
    assert rows[0] == rows[1]


@pytest.mark.parametrize("bad", ["nan", "inf", ""])
def test_case26_non_finite_timestamps_in_an_atomic_file_are_refused(dirs, tmp_path, bad):
    _bursty_inter(tmp_path / "data", "holes")
    path = tmp_path / "data" / "holes" / "holes.inter"
    lines = path.read_text().splitlines(keepends=True)
    user, item, _ = lines[5].rstrip("\n").split("\t")
    lines[5] = f"{user}\t{item}\t{bad}\n"
    path.write_text("".join(lines))
    config = make_config("SASRec", "holes", config_dict=_data_config(dirs, tmp_path / "data", "holes"))
    with pytest.raises(ValueError, match=rf"^{path}: timestamp column 'timestamp' has 1 value\(s\) that are not "
                                         rf"finite numbers, the first (NaN \(or empty\)|inf) in data row 5 "):
        create_dataset(config)


def test_case27_pretrained_model_of_another_dataset_is_refused(dirs, tmp_path, monkeypatch):
    """Same users, items and sizes, another dataset name: refused as deployed_model_path is."""
    from recbole.model.sequential_recommender import SASRec

    for name in ("first", "second"):
        _bursty_inter(tmp_path / "data", name, seed=0 if name == "first" else 1)
    first = make_config("SASRec", "first", config_dict=_data_config(dirs, tmp_path / "data", "first"))
    _, (train, _, _) = load_data(first)
    path = tmp_path / "first.pth"
    save_checkpoint({"config": first, "state_dict": SASRec(first, train.dataset).state_dict()}, path)
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=r"config key 'pretrained_model_path': '.*first\.pth' is a checkpoint of "
                                         r"dataset 'first', but this run trains dataset 'second'"):
        run_recbole_finest("SASRec", "second", config_dict=_data_config(
            dirs, tmp_path / "data", "second", pretrained_model_path=str(path)))
    # the same checkpoint on its own dataset is loaded
    trainer = FinestTrainer(first, SASRec(first, train.dataset))
    trainer.load_model(str(path))  # as RecBole's Trainer does
    assert torch.equal(trainer.model.item_embedding.weight, load_checkpoint(str(path))["state_dict"]
                       ["item_embedding.weight"])


def test_case28_a_dataset_of_too_few_users_is_refused(dirs, tmp_path, monkeypatch):
    _bursty_inter(tmp_path / "data", "few", users=12, long_users=1)
    cfg = _data_config(dirs, tmp_path / "data", "few")
    _no_training(monkeypatch)
    # one user with >= 35 interactions is left (as 1 of ml-100k's 944 users with [10,inf) in issue 41)
    with pytest.raises(ValueError, match=r"has 1 user\(s\) left after RecBole's filters \(user_inter_num_interval: "
                                         r"\[35,inf\).*at least \d+"):
        run_recbole_finest("SASRec", "few", config_dict={**cfg, "user_inter_num_interval": "[35,inf)"})
    from recbole_finest.quick_start import MIN_USERS, check_dataset

    # MIN_USERS users pass
    config = make_config("SASRec", "few", config_dict=cfg)
    dataset = create_dataset(config)
    assert dataset.user_num - 1 == 12 >= MIN_USERS
    check_dataset(config, dataset)
