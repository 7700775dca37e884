"""conftest.py put into a temporary COPY of RecBole 1.2.1's tests (tests/test_recbole_suite.py does it).

RecBole's files are never edited: tests/test_recbole_suite.py copies ``../shared/peer/recbole-1.2.1/tests``
into a temporary folder, writes this file there as ``tests/conftest.py`` and runs pytest on
the selection (:data:`SELECTED`) in a subprocess. ``RECBOLE_SUITE_MODE`` picks the mode:

* ``plain``: RecBole as installed beside the plugin; the only change is
  :mod:`recbole_finest.compat.stack` (RecBole 1.2.1 on NumPy 2, pandas 3, torch >= 2.6,
  Ray >= 2.41), applied here explicitly (the start-up hook would apply it too).
* ``swapped``: the plugin swapped into RecBole's ``objective_function`` as docs/library.md
  tells a RecBole user: ``recbole_finest.config.Config`` for RecBole's ``Config`` and
  ``FinestTrainer`` for the trainer of sequential models (pre-training with RecBole's
  ``epochs`` then FINEST fine-tuning, ``finest_epochs: 1`` to keep the suite short).

Tests left out are deselected here, each with its reason (:data:`EXCLUDED`; docs/install.md,
"RecBole's own test suite"), so pytest reports them as deselected, never silently skipped.
"""
import os

#: what tests/test_recbole_suite.py runs, per mode (paths relative to the copy's ``tests``)
SELECTED = {
    "plain": ["config/test_config.py", "config/test_overall.py", "data/test_dataset.py", "data/test_dataloader.py",
              "data/test_transform.py", "metrics", "evaluation_setting",
              "model/test_model_auto.py::TestSequentialRecommender"],
    "swapped": ["model/test_model_auto.py::TestSequentialRecommender"],
}

#: the reason of exclusions made for CI time only; ``RECBOLE_SUITE_FULL=1`` runs those tests too
CI_TIME = "CI time: "

#: ``{(mode or "*", node id suffix): reason}``: deselected, reported with the reason
EXCLUDED = {
    ("*", "config/test_command_line.py"): "not a pytest test: a __main__ script RecBole's run.sh calls with arguments",
    ("*", "hyper_tuning/test_hyper_tuning.py"): "hyperopt / Ray Tune search over many full trainings (minutes each); "
                                                 "not the plugin's stack beyond tune.report, which the model tests call",
    # config/test_overall.py: every test is 1 to 3 full BPR trainings + evaluations on ml-100k (10 to 30 s
    # each on a CI core); kept: the ones the stack fixes touch (checkpoint save + best-model reload under
    # torch >= 2.6, amp / grad scaler); metrics under NumPy 2 are covered by metrics/ and evaluation_setting/
    ("*", "TestOverallConfig::test_train_batch_size"): "train_batch_size 1 on ml-100k: ~80,000 optimizer steps",
    ("*", "TestOverallConfig::test_data_path"): "downloads ml-100k into ./dataset (no network in CI)",
    ("*", "TestOverallConfig::test_eval_batch_size"): "eval_batch_size 1: ~900 one-user evaluation batches",
    **{("*", f"TestOverallConfig::test_{name}"): CI_TIME + "a RecBole Config key no stack fix touches (2-3 "
                                                            "ml-100k trainings)"
       for name in ("epochs", "gpu_id", "use_gpu", "reproducibility", "seed", "learner", "learning_rate",
                    "training_neg_sampling", "transform", "eval_step", "stopping_step", "split_ratio",
                    "group_by_user", "topk", "loss", "metric")},
    ("*", "model/test_model_manual.py"): "manual tests (pretrained files, GPU) RecBole itself does not run in CI",
    ("*", "test_model_auto.py::TestGeneralRecommender"): "non-sequential models: not what the plugin fine-tunes; ~90 trainings would "
                                     "double CI time (the sequential class covers RecBole's trainer and quick start)",
    ("*", "test_model_auto.py::TestContextRecommender"): "context-aware models: as TestGeneralRecommender",
    ("*", "test_model_auto.py::TestKnowledgeRecommender"): "knowledge-aware models: as TestGeneralRecommender",
}

#: models FinestTrainer refuses by design (recbole_finest.compat.model_kind.REFUSED_MODELS, docs/models.md):
#: in ``swapped`` mode their tests are deselected with that reason
SWAPPED_REFUSED_TESTS = ("test_din", "test_dien", "test_fdsa", "test_sasrecf", "test_gru4recf", "test_shan",
                         "test_fea_rec")

#: the tests of ``TestSequentialRecommender`` run in both modes: one per model family docs/models.md lists
#: (sequence and prefix training units; CE, and BPR with the plugin's own negatives). The others cost
#: 3 s to 4 min each on a CI core (DIEN, BERT4Rec and the graph models most); RECBOLE_SUITE_FULL=1 runs them
SEQUENTIAL_SELECTED = ("test_gru4rec", "test_narm", "test_stamp", "test_caser", "test_nextitnet", "test_sasrec",
                       "test_sasrec_with_BPR_loss_and_relu", "test_bert4rec")

MODE = os.environ.get("RECBOLE_SUITE_MODE", "plain")
FULL = os.environ.get("RECBOLE_SUITE_FULL") == "1"


def _reason(nodeid):
    found = None
    for (mode, suffix), reason in EXCLUDED.items():
        if mode in ("*", MODE) and suffix in nodeid:
            found = reason
            break
    test = nodeid.rsplit("::", 1)[-1]
    sequential = "test_model_auto.py::TestSequentialRecommender" in nodeid
    if found is None and sequential and MODE == "swapped" and any(
            test == name or test.startswith(name + "_with") for name in SWAPPED_REFUSED_TESTS):
        found = "FinestTrainer refuses this model by design (compat.model_kind.REFUSED_MODELS)"
    if found is None and sequential and test not in SEQUENTIAL_SELECTED:
        found = CI_TIME + "one test per model family runs (SEQUENTIAL_SELECTED)"
    if found is not None and FULL and found.startswith(CI_TIME):
        return None
    return found


def pytest_configure(config):
    try:
        from recbole_finest.compat import stack
    except ImportError:  # a checkout from before compat.stack (counting the old code): RecBole as installed,
        stack = None     # or with that checkout's NumPy shim where RECBOLE_SUITE_OLD_SHIM=1
        if os.environ.get("RECBOLE_SUITE_OLD_SHIM") == "1":
            from recbole_finest.compat.registry import register

            register()
    if stack is not None:
        stack.apply()
    if MODE == "swapped":
        _swap_plugin_in()


def _swap_plugin_in():
    """RecBole's objective_function with the plugin's Config and, for sequential models, FinestTrainer."""
    import recbole.quick_start.quick_start as quick_start
    from recbole.utils import ModelType

    from recbole_finest.config import Config
    from recbole_finest.finest.trainer import FinestTrainer

    recbole_get_trainer = quick_start.get_trainer

    def plugin_config(model=None, dataset=None, config_file_list=None, config_dict=None):
        return Config(model, dataset, config_file_list, {"finest_epochs": 1, **(config_dict or {})})

    def get_trainer(model_type, model_name):
        return FinestTrainer if model_type == ModelType.SEQUENTIAL else recbole_get_trainer(model_type, model_name)

    quick_start.Config = plugin_config
    quick_start.get_trainer = get_trainer


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        reason = _reason(item.nodeid)
        (dropped if reason else kept).append((item, reason))
    if dropped:
        config.hook.pytest_deselected(items=[item for item, _ in dropped])
        items[:] = [item for item, _ in kept]
        with open(os.environ.get("RECBOLE_SUITE_EXCLUDED", os.devnull), "w", encoding="utf-8") as f:
            for item, reason in dropped:
                f.write(f"{item.nodeid}\t{reason}\n")
