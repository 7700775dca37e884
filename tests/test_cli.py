"""The command line: two config files and a ``--key=value`` override, results written.

RecBole reads ``--key=value`` overrides from ``sys.argv`` itself, so the test sets
``sys.argv`` to the command line and passes the same arguments to ``main``.
"""

import json
import os
import sys

import yaml

import run_recbole_finest
from conftest import TINY



def test_two_config_files_and_an_override(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole's log/ and log_tensorboard/
    first = tmp_path / "first.yaml"
    second = tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump({
        **TINY, "finest_topk": 5, "finest_beta1": 0.3, "finetune_method": "finest_no_sim",
        "checkpoint_dir": str(tmp_path / "saved"), "results_dir": str(tmp_path / "results"),
    }))
    second.write_text(yaml.safe_dump({"finest_topk": 6, "finest_beta1": 0.2, "finest_lambda": 0.5,
                                      "jaccard_k": 5}))
    argv = ["--model=SASRec", "--dataset=ml-100k", f"--config_files={first} {second}",
            "--finest_topk=7", "--finetune_method=finest_order_only"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])

    out = run_recbole_finest.main(argv)

    folder = out["results_dir"]
    assert os.path.dirname(folder) == str(tmp_path / "results")
    assert sorted(os.listdir(folder)) == ["config.yaml", "results.json", "results.md"]
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    assert results == json.loads(json.dumps(out["results"]))  # the file is what the run returned
    # the command line beats both files; the second file beats the first
    assert [row["method"] for row in results["rows"]] == ["original", "finest_order_only"]
    written = yaml.safe_load(open(os.path.join(folder, "config.yaml"), encoding="utf-8").read())
    assert written["finest_topk"] == 7
    assert written["finest_beta1"] == 0.2
    assert written["finest_lambda"] == 0.5
    assert written["hidden_size"] == 16  # from the first file
    assert written["jaccard_k"] == 5
    # the Jaccard column is named from the config's jaccard_k, and fine-tuning changed the models
    assert [sorted(k for k in row if k.startswith("jaccard@")) for row in results["rows"]] == [["jaccard@5"]] * 2
    original, tuned = results["rows"]
    assert (original["rbo"], original["jaccard@5"]) != (tuned["rbo"], tuned["jaccard@5"])
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_missing_config_file_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "nope.yaml")
    argv = ["--model=SASRec", "--dataset=ml-100k", f"--config_files={missing}"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_finest.py", *argv])
    try:
        run_recbole_finest.main(argv)
    except SystemExit as exc:
        assert "nope.yaml" in str(exc)
    else:
        raise AssertionError("a missing config file must stop the command")
    assert os.listdir(tmp_path) == []
