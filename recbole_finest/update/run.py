"""The update job: v1 (trained on the old period or deployed) -> v2 by each strategy, and the churn report.

``update_model`` is the library entry point (a Config, a deployed model or checkpoint and
a RecBole dataset); the command-line job is ``update.job.run_update``.
"""

from dataclasses import dataclass
from logging import getLogger

import torch

from recbole_finest.update.churn import ACCURACY, accuracy, churn
from recbole_finest.update.periods import NEW, TEST, ContextSet
from recbole_finest.update.report import V1, add_relative, lowest_churn
from recbole_finest.update.strategies import strategies_of
from recbole_finest.update.versions import UpdateSetup, churn_row, lists_and_ranks, train_version, users_with


@dataclass
class UpdateResult:
    """What ``update_model`` returns.

    Attributes:
        models: ``{strategy label: v2 model}`` (in ``update_methods`` order).
        v1: the deployed model (loaded or trained on the old period).
        report: the churn report (``rows``, cuts, counts, budget); see ``docs/update.md``.
        per_user: ``{"user": [U], "has_new": [U], "strategies": {label: {"rbo", "jaccard@k",
            "changed", "rr_v2"}}}`` numpy arrays, one entry per user compared.
    """

    models: dict
    v1: torch.nn.Module
    report: dict
    per_user: dict


def update_model(config, deployed=None, dataset=None, strategies=None, show_progress=None, run_id=None):
    """Update a deployed sequential model on new data by each strategy and measure the churn.

    Args:
        config: a recbole-finest ``Config`` (``update_*`` keys, docs/config.md).
        deployed: v1 as a model, a checkpoint path (RecBole's ``run_recbole`` checkpoints
            work) or None: ``deployed_model_path``, else v1 is trained on the old period with
            early stopping on the first new item of each user.
        dataset: the RecBole dataset (``registry.create_dataset(config)``: no stored prefix lists; made when None).
        strategies: ``Strategy`` list (default: from ``update_methods`` and the weights).
        run_id: names this run's checkpoint folder (default: a new ``fileio.new_run_id()``).

    Returns ``UpdateResult``. Every input is checked before any training.
    """
    setup = UpdateSetup.prepare(config, deployed, dataset, show_progress, run_id, single=True)
    dataset, periods, cache, initial = setup.dataset, setup.periods, setup.cache, setup.initial
    run_id, show_progress = setup.run_id, setup.show_progress
    strategies = strategies_of(config) if strategies is None else list(strategies)
    history, sets = _period_sets(periods, config)
    getLogger().info(f"update: periods {periods.counts()} (T1 = {periods.bounds[0]:g}, T2 = {periods.bounds[1]:g}); "
                     f"strategies {[s.label for s in strategies]}")
    v1 = setup.train_v1()
    deployed_state_, origin, epochs, lr = setup.v1_state, setup.origin, setup.epochs, setup.learning_rate
    k = config["jaccard_k"]
    lists_v1, ranks_v1 = lists_and_ranks(v1, sets, config, show_progress, "v1")
    has_new = users_with(periods, NEW)[sets["contexts"].seq]
    v1_row = {"strategy": V1, "rbo": 1.0, f"frbo@{config['frbo_k']}": 1.0, f"jaccard@{k}": 1.0, "changed": 0.0,
              "rbo (no new data)": 1.0,
              **accuracy(ranks_v1, ACCURACY)}
    rows, models, per_user = [v1_row], {}, {}
    for strategy in strategies:
        model = train_version(config, dataset, strategy, cache, deployed_state_ if strategy.warm else initial,
                          deployed_state_, history, epochs, lr, run_id, show_progress)
        lists, ranks = lists_and_ranks(model, sets, config, show_progress, strategy.slug)
        values = churn(lists_v1, lists, k=k, p=config["rbo_p"], frbo_k=config["frbo_k"], frbo_p=config["frbo_p"])
        rows.append(churn_row(strategy.label, values, ranks, has_new, k))
        per_user[strategy.label] = {**{key: v.numpy() for key, v in values.items()},
                                    "rr_test": (1.0 / (ranks.double() + 1)).numpy()}
        models[strategy.label] = model
        getLogger().info(f"{strategy.label}: " + ", ".join(f"{key} {v:.4f}" for key, v in rows[-1].items()
                                                       if isinstance(v, float)))
    uid = config["USER_ID_FIELD"]
    users = {"user": sets["contexts"].inter[uid].numpy(), "has_new": has_new,
             "test_user": sets["test"].inter[uid].numpy(), "strategies": per_user}
    return UpdateResult(models, v1, _report(config, periods, origin, epochs, lr, sets, rows), users)


def _period_sets(periods, config):
    """``(history, sets)``: old + new history (``TrainingSequences``, v2's training data) and the ``ContextSet`` s
    ``test`` (each user's first test item) and ``contexts`` (every user's whole history: the rank lists compared)."""
    history = periods.upto(NEW)
    test = ContextSet(history, config, periods.first_of(TEST))
    return history, {"test": test, "contexts": ContextSet(history, config)}


def _report(config, periods, origin, epochs, lr, sets, rows):
    """The churn report (``docs/update.md``) of the rows of v1 and every strategy."""
    report = {
        "model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
        "cuts": list(config["update_cuts"]), "bounds": list(periods.bounds), "counts": periods.counts(),
        "deployed": origin, "epochs": int(epochs), "learning_rate": float(lr), "jaccard_k": config["jaccard_k"],
        "frbo_k": config["frbo_k"],
        "n_churn_users": len(sets["contexts"]), "n_test_users": len(sets["test"]),
        "rows": add_relative(rows),
    }
    best = lowest_churn(report["rows"])
    report["lowest_churn_within_1pct"] = None if best is None else best["strategy"]
    return report
