"""Plain RecBole beside the plugin (issue 40, items 2 and 5).

* A user's script that imports only ``recbole`` (``run_recbole``, ``Trainer.evaluate(load_best_model=True)``
  inside it, ``load_data_and_model``, ``full_sort_topk``) runs unchanged in the plugin's
  environment: the ``recbole_finest-stack.pth`` start-up hook applies
  :mod:`recbole_finest.compat.stack` when RecBole is imported. With the hook switched off
  (``RECBOLE_FINEST_NO_HOOK=1``) the same script needs one line, ``import recbole_finest``.
* A checkpoint the plugin writes for a RecBole model opens with RecBole's own
  ``load_data_and_model`` in a Python where ``recbole_finest`` cannot be imported: the
  config is stored as RecBole's ``Config`` and the pickle names no plugin module.
"""

import os
import pickletools
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

from conftest import TINY, load_splits

#: the user's script: RecBole only (the tiny SASRec of the plugin's tests)
USER_SCRIPT = textwrap.dedent('''
    import glob, sys
    if "--import-plugin" in sys.argv:
        import recbole_finest  # noqa: F401  the documented one line
    from recbole.quick_start import run_recbole, load_data_and_model
    from recbole.utils.case_study import full_sort_topk
    cfg = {"epochs": 1, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1,
           "MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 512, "eval_batch_size": 512, "show_progress": False,
           "train_neg_sample_args": None, "user_inter_num_interval": "[300,inf)", "checkpoint_dir": "saved"}
    result = run_recbole(model="SASRec", dataset="ml-100k", config_dict=cfg)  # evaluate(load_best_model=True)
    path = sorted(glob.glob("saved/SASRec-*.pth"))[-1]
    config, model, dataset, train, valid, test = load_data_and_model(path)
    uid = dataset.token2id(dataset.uid_field, [dataset.field2id_token[dataset.uid_field][1]])
    scores, items = full_sort_topk(uid, model, test, k=5, device=config["device"])
    print("RESULT", sorted(result["test_result"]), tuple(items.shape))
''')


def _run(args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_startup_hook_is_installed():
    """The documented install (``pip install -e .``, scripts/run.sh) puts the hook into site-packages."""
    hook = os.path.join(sysconfig.get_paths()["purelib"], "recbole_finest-stack.pth")
    assert os.path.isfile(hook), f"{hook} missing: reinstall with pip install -e . (scripts/run.sh does)"
    out = _run(["-c", "import sys; print(any(type(f).__name__ == '_RecBoleFinestBootstrap' or "
                      "getattr(f, '__name__', '') == '_RecBoleFinestBootstrap' for f in sys.meta_path), "
                      "'recbole_finest' in sys.modules)"], cwd=os.getcwd())
    assert out.stdout.split() == ["True", "False"], out.stderr  # hooked, and nothing imported at start-up


@pytest.mark.parametrize("mode", ["unchanged", "one-line"])
def test_plain_recbole_script_runs(tmp_path, mode):
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    if mode == "unchanged":
        out = _run([str(script)], cwd=tmp_path)
    else:  # without the start-up hook: the one documented line
        out = _run([str(script), "--import-plugin"], cwd=tmp_path, env={"RECBOLE_FINEST_NO_HOOK": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT ['hit@10', 'mrr@10', 'ndcg@10', 'precision@10', 'recall@10'] (1, 5)" in out.stdout


def test_without_hook_or_import_recbole_fails_on_numpy_2(tmp_path):
    """What the hook fixes: RecBole 1.2.1 alone on NumPy 2 (guards that the test above tests something)."""
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    out = _run([str(script)], cwd=tmp_path, env={"RECBOLE_FINEST_NO_HOOK": "1"})
    assert out.returncode != 0 and "np.float_" in out.stderr


#: opens a checkpoint with RecBole only: recbole_finest cannot be imported, the start-up hook is off
WITHOUT_PLUGIN = textwrap.dedent('''
    import sys

    class NoPlugin:
        """recbole_finest is not installed here."""
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] == "recbole_finest":
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, NoPlugin)
    # RecBole 1.2.1 on NumPy 2 needs its aliases whatever it opens (what compat.stack sets, nothing else)
    import numpy as np
    for alias, target in {"float": "float64", "int": "int_", "bool": "bool_", "object": "object_",
                          "str": "str_", "complex": "complex128", "long": "int_", "unicode": "str_"}.items():
        if not hasattr(np, alias):
            setattr(np, alias, getattr(np, target))
    # torch >= 2.6 loads weights only: a plain RecBole user allows RecBole's own classes (no plugin class)
    import collections, torch, yaml
    from recbole.config import Config
    from recbole.model.sequential_recommender.sasrec import SASRec
    from recbole.utils.enum_type import EvaluatorType, InputType, ModelType
    torch.serialization.add_safe_globals([Config, SASRec, EvaluatorType, InputType, ModelType, yaml.FullLoader,
                                          collections.OrderedDict, np._core.multiarray.scalar, np.dtype,
                                          type(np.dtype("float64"))])
    from recbole.quick_start import load_data_and_model
    config, model, dataset, train, valid, test = load_data_and_model(sys.argv[1])
    assert type(config) is Config and type(model) is SASRec
    assert not [m for m in sys.modules if m.startswith("recbole_finest")]
    print("LOADED", config["model"], config["dataset"], float(model.item_embedding.weight.sum()))
''')


def test_plugin_checkpoint_opens_without_the_plugin(tmp_path):
    from recbole.model.sequential_recommender.sasrec import SASRec

    from recbole_finest.compat.checkpoints import safe_load
    from recbole_finest.finest.trainer import FinestTrainer

    config, train, valid, test = load_splits(tmp_path, {**TINY, "train_neg_sample_args": None})
    trainer = FinestTrainer(config, SASRec(config, train.dataset))
    trainer._save_checkpoint(0, verbose=False)
    path = trainer.saved_model_file

    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    named = [arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]
    assert not [n for n in named if n.startswith("recbole_finest")], named
    assert "recbole.config.configurator Config" in named

    script = tmp_path / "open_without_plugin.py"
    script.write_text(WITHOUT_PLUGIN)
    out = _run([str(script), path], cwd=tmp_path, env={"RECBOLE_FINEST_NO_HOOK": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    expected = float(safe_load(path)["state_dict"]["item_embedding.weight"].sum())
    words = next(line for line in out.stdout.splitlines() if line.startswith("LOADED")).split()
    assert words[1:3] == ["SASRec", "ml-100k"]
    assert float(words[3]) == pytest.approx(expected)
