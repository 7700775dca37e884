"""``run_recbole_finest``: the plugin's counterpart of RecBole's ``run_recbole``."""

import contextlib
import os
import sys
from logging import getLogger

from recbole.data import data_preparation
from recbole.utils import ModelType, init_seed, set_color

from recbole_finest.config import check_dataset_limits, run_config
from recbole_finest.data.datasets import prepare_dataset
from recbole_finest.data.files import atomic_files, check_has_rows, data_digest, load_error
from recbole_finest.fileio import atomic_folder, check_writable, new_run_id, write_json, write_text
from recbole_finest.compat.registry import init_logger, create_dataset
from recbole_finest.run_folders import remove_unfinished, running
from recbole_finest.stability.run import format_table, run_stability
from recbole_finest.utils import get_model, get_trainer


def prepare_raw_data(config):
    """The dataset's atomic ``.inter`` file, converted from ``raw_data_file`` or downloaded if missing."""
    prepare_dataset(config["dataset"], os.path.dirname(os.path.normpath(config["data_path"])),
                    raw_data_file=config["raw_data_file"], download=config["download_datasets"], logger=getLogger())


def dataset_digest(config):
    """MD5 of the atomic files ``config`` loads (:func:`recbole_finest.data.files.data_digest`), which every
    cache is keyed by; the files are converted or downloaded first when missing."""
    prepare_raw_data(config)
    if data_digest(config) is None:  # a dataset RecBole downloads itself: its loader fetches the files
        _create_dataset(config)
    return data_digest(config)


def load_data(config):
    """Atomic files (converted or downloaded if missing), RecBole dataset and loaders.

    Sequential models get ``registry.create_dataset``'s prefix-free dataset (no stored
    ``[N, max_len]`` prefix lists; RecBole's rows and loaders otherwise unchanged)."""
    logger = getLogger()
    prepare_raw_data(config)
    dataset = _create_dataset(config)
    check_dataset(config, dataset)
    logger.info(f"data: {', '.join(atomic_files(config))} (MD5 {data_digest(config)})")
    logger.info(dataset)
    return dataset, data_preparation(config, dataset)


def _create_dataset(config):
    """RecBole's dataset of ``config``; None when RecBole found it empty; a column it cannot read names its file."""
    try:
        return create_dataset(config)
    except ValueError as exc:  # RecBole: "Some feat is empty, please check the filtering settings."
        if "is empty" in str(exc):
            return None
        named = load_error(config, exc)
        if named is None:
            raise
        raise named from None


#: fewest users a filtered dataset may keep: every reported number (RBO, Jaccard@k, MRR, Recall, NDCG)
#: is a mean over the test users, and fewer than this give a table of one user's luck (docs/config.md)
MIN_USERS = 10


def check_dataset(config, dataset):
    """``ValueError`` naming the filters when the filtered dataset (None: RecBole found it empty) has nothing left;
    then the limits that need its number of items; then at least :data:`MIN_USERS` users."""
    if dataset is None or dataset.inter_num == 0 or dataset.user_num <= 1 or dataset.item_num <= 1:
        check_has_rows(config)  # an empty file is not the filters' fault
        raise ValueError(
            f"dataset [{config['dataset']}] has no interactions left after RecBole's filters "
            f"(user_inter_num_interval: {config['user_inter_num_interval']}, item_inter_num_interval: "
            f"{config['item_inter_num_interval']}); loosen them, e.g. --user_inter_num_interval=\"[1,inf)\"")
    check_dataset_limits(config, dataset.item_num)
    n_users = dataset.user_num - 1  # id 0 is padding
    if n_users < MIN_USERS:
        raise ValueError(
            f"dataset [{config['dataset']}] has {n_users} user(s) left after RecBole's filters "
            f"(user_inter_num_interval: {config['user_inter_num_interval']}, item_inter_num_interval: "
            f"{config['item_inter_num_interval']}); results are means over users and need at least {MIN_USERS}: "
            f"loosen the filters or use more data")


def check_outputs(config, keys, saved=True):
    """Every output location of a run (``keys``) is created and writable, before any data is loaded."""
    for key in keys:
        if key == "checkpoint_dir" and not saved:
            continue
        value = config[key]
        if key == "finest_reference_file":
            value = os.path.dirname(os.path.abspath(value)) if value else None
        if value:
            check_writable(value, key)


def run_folder(config, run_id, saved=True):
    """The run's checkpoint folder ``<checkpoint_dir>/<model>-<run_id>`` marked unfinished while the block
    runs (:mod:`recbole_finest.run_folders`), after removing the folders of runs killed before they finished."""
    if not saved:
        return contextlib.nullcontext()
    remove_unfinished(config["checkpoint_dir"])
    return running(config["checkpoint_dir"], f"{config['model']}-{run_id}")


def write_results(config, results, run_id):
    """``results.json`` and ``results.md`` in the run's own folder under ``results_dir``; returns the folder.

    The folder is ``<model>-<dataset>-<run_id>``, unique per run (the id also names the run's
    checkpoint folder); the files themselves hold no id, so equal seeds give equal files.
    """
    folder = os.path.join(config["results_dir"], f"{config['model']}-{config['dataset']}-{run_id}")
    with atomic_folder(folder) as tmp:  # the three files, or none (a full disk leaves no partial set)
        write_json(os.path.join(tmp, "results.json"), results)
        text = f"# {config['model']} on {config['dataset']}\n\n{format_table(results['rows'])}\n"
        write_text(os.path.join(tmp, "results.md"), text)
        write_text(os.path.join(tmp, "config.yaml"), "".join(
            f"{k}: {v!r}\n" for k, v in sorted(config.final_config_dict.items()) if isinstance(v, (int, float, str, bool, type(None)))
        ))
    return folder


def run_recbole_finest(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Run the plugin's main job; mirrors ``recbole.quick_start.run_recbole``.

    With ``stability: True`` (default) this is the stability run: models A and B,
    Original vs ``finetune_method``, RBO / Jaccard@k / MRR / Recall@10 / NDCG@10.
    With ``stability: False`` one model is trained by ``FinestTrainer`` and tested.

    Returns:
        dict: ``results`` (rows per method for the stability run, RecBole's test result
        otherwise), ``best_valid_score``/``test_result`` when single-model, and
        ``results_dir`` where JSON/Markdown were written.
    """
    config = run_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if config["stability"] and config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise ValueError(f"the stability run (stability: True) needs a sequential model; '{config['model']}' is "
                         f"{config['MODEL_TYPE']}. Set stability: False to train and test it with RecBole's trainer")
    if config["pretrained_model_path"] and config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise ValueError(f"config key 'pretrained_model_path' is read by FinestTrainer (sequential models); "
                         f"'{config['model']}' is trained by RecBole's trainer, which would ignore it")
    check_outputs(config, ("results_dir", "checkpoint_dir", "finest_reference_file"), saved)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    dataset, (train_data, valid_data, test_data) = load_data(config)
    show_progress = config["show_progress"]

    if config["stability"]:
        run_id = new_run_id()
        with run_folder(config, run_id, saved):
            results = run_stability(config, train_data, valid_data, test_data, saved, show_progress, run_id=run_id)
            logger.info(set_color("stability results", "yellow") + f" (reference protocol: "
                        f"{config['reference_protocol']})\n" + format_table(results["rows"]))
            folder = write_results(config, results, run_id)
        logger.info(f"results written to {folder}")
        return {"results": results, "results_dir": folder}

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=show_progress)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=show_progress)
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
