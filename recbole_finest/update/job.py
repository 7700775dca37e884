"""The ``--update`` job (``run_recbole_finest.py --update``): one update or a rolling chain, then the report folder.

Two cuts without a churn budget run ``update_model`` (v1 -> v2, ``update/report.py``); more cuts
or a budget (``update_max_changed`` / ``update_min_rbo``) run ``rolling_update``
(``update/chain.py``, ``update/chain_report.py``).
"""

import os
import sys
from logging import getLogger

from recbole.utils import init_seed, set_color

from recbole_finest.compat.registry import create_dataset, init_logger
from recbole_finest.config import run_config
from recbole_finest.fileio import atomic_folder, new_run_id
from recbole_finest.update import chain_report, report
from recbole_finest.update.budget import ChurnBudget
from recbole_finest.update.checks import check_update_keys


def is_chain(config):
    """Whether the job is a rolling chain (more than two cuts, or a churn budget)."""
    return len(config["update_cuts"]) > 2 or ChurnBudget.of(config) is not None


def run_update(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """The ``--update`` job on the configured dataset, then its report folder.

    Returns ``{"report": ..., "results_dir": folder, "models": ...}`` (folder None with ``saved=False``).
    """
    from recbole_finest.quick_start import check_outputs, prepare_raw_data, run_folder
    from recbole_finest.update.chain import rolling_update  # the trainers: loaded when a job runs
    from recbole_finest.update.run import update_model

    config = run_config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_update_keys(config)
    check_outputs(config, ("results_dir", "checkpoint_dir", "update_cache_dir"), saved)
    run_id = new_run_id()
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    prepare_raw_data(config)
    chain = is_chain(config)
    run, writer = (rolling_update, chain_report) if chain else (update_model, report)
    with run_folder(config, run_id, saved):  # a killed update's checkpoint folder is removed at the next start
        result = run(config, dataset=create_dataset(config), run_id=run_id)
    logger.info(set_color("update results", "yellow") + "\n" + writer.markdown(result.report))
    folder = None
    if saved:
        folder = os.path.join(config["results_dir"], f"update-{config['model']}-{config['dataset']}-{run_id}")
        with atomic_folder(folder) as tmp:  # the whole report or none of it (a full disk leaves no partial set)
            (chain_report.write_chain_report if chain else report.write_report)(
                tmp, result.report, result.per_user, config["study_plot_dpi"])
        logger.info(f"update report written to {folder}")
    return {"report": result.report, "results_dir": folder, "models": result.models}
