"""Rolling updates: a chain of versions v1 -> v2 -> ... -> vn per strategy, with an optional churn budget.

``update_cuts: [q1, ..., qn]`` cut the data by global time (``update/periods.py``). v1 trains on
``t <= T1`` (or is the deployed model); version ``v_c`` (``c = 2..n``) of a strategy trains on
``t <= T_c`` from ``v_{c-1}`` of the *same* strategy (``retrain``: from the seed's initial
parameters), with the same epochs and learning rate at every step and the RNG seed
``seed + c - 1`` (so the first step is the single update's v2). Per step and strategy:

* **churn** of ``v_c`` against ``v_{c-1}`` on every user's history at ``T_c`` (RBO, FRBO@k,
  Jaccard@k, share of users with more than half of the top-k replaced), as ``--update`` does;
* **drift** of ``v_c`` against ``v1`` on the same contexts (equal to the churn at ``c = 2``);
* **accuracy** on the next period: each user's first item after ``T_c`` (in the test period
  ``t > T_n`` for the last version), given the history at ``T_c``.

With a churn budget (``update_max_changed`` / ``update_min_rbo``, ``update/budget.py``) the
strength of ``distill``, ``finest`` and ``interpolate`` is chosen per step: the weakest in
``[0, max of the strategy's strength list]`` whose churn on the step's contexts meets the budget,
by bisection with ``update_budget_trials`` candidates per step and strategy; the report gives the
strength used, and the churn and whether the budget held on the *test* contexts (each user's
history at the end of the next period).
"""

from dataclasses import dataclass
from logging import getLogger

import torch

from recbole_finest.update.budget import ChurnBudget, weakest_meeting
from recbole_finest.update.churn import ACCURACY, accuracy, churn, score_contexts
from recbole_finest.update.periods import ContextSet
from recbole_finest.update.report import V1, add_relative
from recbole_finest.update.strategies import WEIGHTED, as_list, strategies_of
from recbole_finest.update.versions import (UpdateSetup, churn_row, lists_and_ranks, model_state, new_model,
                                            train_version, users_with)


@dataclass
class ChainResult:
    """What ``rolling_update`` returns.

    Attributes:
        report: ``{"rows": [one per version and strategy, v1's rows included], "steps": [...], ...}``
            (``docs/update.md``, "Rolling updates").
        per_user: ``{"v<c>/<label>/<measure>": array}``: per user ``rbo``, ``changed`` and ``drift_rbo``
            on the step's contexts, ``rr_next`` (reciprocal rank of the next item) of the step's test users.
        models: ``{strategy label: the last version}``.
    """

    report: dict
    per_user: dict
    models: dict


@dataclass
class _Chain:
    """One strategy's chain: its strategy (the template when the budget chooses the strength) and last version."""

    strategy: object
    label: str
    slug: str
    state: dict = None
    lists: torch.Tensor = None  # the last version's lists on the current step's contexts


def chains_of(config, strategies, budget):
    """The chains of a run: one per strategy and strength, or one per strategy under a budget."""
    if budget is None:
        return [_Chain(s, s.label, s.slug) for s in strategies]
    out, seen = [], set()
    for s in strategies:
        if s.name in WEIGHTED:
            if s.name in seen:
                continue
            seen.add(s.name)
            high = max(float(w) for w in as_list(config[WEIGHTED[s.name]]))
            strategy = s.with_weight(high)
            out.append(_Chain(strategy, f"{s.name} (budget)",
                              f"{s.name}-budget-{budget.slug}-t{config['update_budget_trials']}-max{high:g}"))
        else:
            out.append(_Chain(s, s.label, s.slug))
    return out


def rolling_update(config, deployed=None, dataset=None, strategies=None, show_progress=None, run_id=None):
    """Train and measure a chain of versions per strategy (see the module docstring).

    Args:
        config: a recbole-finest ``Config`` (``update_*`` keys; ``update_cuts`` of length >= 2).
        deployed: v1 as a model or checkpoint path (None: ``deployed_model_path``, else trained on
            ``t <= T1`` with early stopping on each user's first item after ``T1``).
        dataset, strategies, show_progress, run_id: as ``update_model``.

    Returns ``ChainResult``. Every input is checked before any training.
    """
    setup = UpdateSetup.prepare(config, deployed, dataset, show_progress, run_id)
    dataset, periods, show_progress = setup.dataset, setup.periods, setup.show_progress
    n = len(periods.bounds)
    budget = ChurnBudget.of(config)
    chains = chains_of(config, strategies_of(config) if strategies is None else list(strategies), budget)
    getLogger().info(f"rolling update: periods {periods.counts()}; versions v1..v{n}; chains "
                     f"{[c.label for c in chains]}" + (f"; budget: {budget}" if budget else ""))
    v1 = setup.train_v1()
    deployed_state_, epochs, lr = setup.v1_state, setup.epochs, setup.learning_rate
    step = _Step(config, dataset, setup.cache, setup.initial, epochs, lr, setup.run_id, show_progress, budget)
    for chain in chains:
        chain.state = deployed_state_
    rows, steps, per_user = [], [], {}
    for c in range(2, n + 1):
        sets = {"contexts": ContextSet(periods.upto(c - 1), config),
                "test": ContextSet(periods.upto(c - 1), config, periods.first_of(c))}
        later = ContextSet(periods.upto(c), config) if budget else None  # histories at the end of the next period
        has_new = users_with(periods, c - 1)[sets["contexts"].seq]
        lists_v1, ranks_v1 = lists_and_ranks(v1, sets, config, show_progress, f"v1 at v{c}")
        later_v1 = _lists(v1, later, config) if budget else None
        steps.append({"version": c, "cut": float(config["update_cuts"][c - 1]), "bound": periods.bounds[c - 1],
                      "n_churn_users": len(sets["contexts"]), "n_test_users": len(sets["test"])})
        step_rows = [{"version": c, "strategy": V1, "strength": None, "rbo": 1.0,
                      f"frbo@{config['frbo_k']}": 1.0, f"jaccard@{config['jaccard_k']}": 1.0, "changed": 0.0,
                      "rbo (no new data)": 1.0, **_drift_of(None, config), **accuracy(ranks_v1, ACCURACY)}]
        for chain in chains:
            row, users = step.advance(chain, c, periods.upto(c - 1), sets, lists_v1, has_new, later, later_v1)
            step_rows.append(row)
            per_user.update(users)
        rows += add_relative(step_rows)
    report = {
        "model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
        "cuts": list(config["update_cuts"]), "bounds": list(periods.bounds), "counts": periods.counts(),
        "deployed": setup.origin, "epochs": int(epochs), "learning_rate": float(lr), "jaccard_k": config["jaccard_k"],
        "frbo_k": config["frbo_k"], "budget": None if budget is None else str(budget),
        "budget_trials": config["update_budget_trials"] if budget else None, "steps": steps, "rows": rows,
    }
    models = {chain.label: new_model(config, dataset, chain.state) for chain in chains}
    return ChainResult(report, per_user, models)


def _lists(model, contexts, config):
    """Rank lists ``[U', rbo_depth]`` of ``model`` on ``contexts``."""
    return score_contexts(model, contexts, config["eval_batch_size"], config["rbo_depth"])[0]


def _churn(lists_a, lists_b, config):
    return churn(lists_a, lists_b, k=config["jaccard_k"], p=config["rbo_p"], frbo_k=config["frbo_k"],
                 frbo_p=config["frbo_p"])


def _drift_of(values, config):
    """``{"drift rbo": mean, "drift frbo@k", "drift jaccard@k", "drift changed"}`` against v1 (v1 itself: no drift)."""
    keys = ("rbo", f"frbo@{config['frbo_k']}", f"jaccard@{config['jaccard_k']}", "changed")
    if values is None:
        return {f"drift {key}": (0.0 if key == "changed" else 1.0) for key in keys}
    return {f"drift {key}": float(values[key].double().mean()) for key in keys}


class _Step:
    """Trains one chain's next version: at its fixed strength, or at the weakest strength meeting the budget."""

    def __init__(self, config, dataset, cache, initial, epochs, lr, run_id, show_progress, budget):
        self.config, self.dataset, self.cache, self.initial = config, dataset, cache, initial
        self.epochs, self.lr, self.run_id, self.show_progress, self.budget = epochs, lr, run_id, show_progress, budget

    def advance(self, chain, c, history, sets, lists_v1, has_new, later=None, later_v1=None):
        """Trains ``v_c`` of ``chain`` on ``history`` from its last version and measures it.

        ``sets``: the step's ``contexts`` (every user's history at ``T_c``) and ``test`` (first item of
        the next period); ``lists_v1``: v1's lists on the contexts; ``later`` / ``later_v1``: the test
        contexts of a budget and v1's lists there. Returns ``(report row, per-user arrays)`` and moves
        ``chain.state`` on to ``v_c``.
        """
        config, dataset, budget = self.config, self.dataset, self.budget
        if c == 2:  # every chain starts from v1, whose lists the caller has
            lists_prev, later_prev = lists_v1, later_v1
        else:
            prev = new_model(config, dataset, chain.state)
            lists_prev = _lists(prev, sets["contexts"], config)
            later_prev = _lists(prev, later, config) if budget else None
        model, strength, tried = self.version(chain, c, history, sets, lists_prev)
        lists, ranks = lists_and_ranks(model, sets, config, self.show_progress, f"{chain.slug} v{c}")
        values = _churn(lists_prev, lists, config)
        drift = _churn(lists_v1, lists, config)
        row = {"version": c, **churn_row(chain.label, values, ranks, has_new, config["jaccard_k"]),
               **_drift_of(drift, config), "strength": strength}
        if budget:
            test_values = _churn(later_prev, _lists(model, later, config), config)
            test_row = {"rbo": float(test_values["rbo"].mean()),
                        "changed": float(test_values["changed"].double().mean())}
            row.update({"test rbo": test_row["rbo"], "test changed": test_row["changed"],
                        "budget held (valid)": budget.met(row), "budget held (test)": budget.met(test_row),
                        "tried": tried})
        users = {f"v{c}/{chain.label}/rbo": values["rbo"].numpy(),
                 f"v{c}/{chain.label}/changed": values["changed"].numpy(),
                 f"v{c}/{chain.label}/drift_rbo": drift["rbo"].numpy(),
                 f"v{c}/{chain.label}/rr_next": (1.0 / (ranks.double() + 1)).numpy()}
        chain.state = model_state(model)
        getLogger().info(f"v{c} {chain.label}: " + ", ".join(f"{key} {v:.4f}" for key, v in row.items()
                                                              if isinstance(v, float)))
        return row, users

    def train(self, chain, strategy, c, history):
        """``v_c`` of ``chain`` by ``strategy`` from ``chain.state`` (retrain: the initial parameters)."""
        prefix = f"v{c}-" if c == 2 else f"v{c}-{chain.slug}-"  # every chain starts from v1 at c = 2
        start = chain.state if strategy.warm else self.initial
        return train_version(self.config, self.dataset, strategy, self.cache, start, chain.state, history, self.epochs,
                         self.lr, self.run_id, self.show_progress, prefix=prefix, seed_offset=c - 1)

    def version(self, chain, c, history, sets, lists_prev):
        """``(model, strength or None, tried)``; ``tried`` = ``"strength:yes/no ..."`` of the budget search."""
        strategy = chain.strategy
        if self.budget is None or strategy.name not in WEIGHTED:
            return self.train(chain, strategy, c, history), (strategy.weight if strategy.name in WEIGHTED else None), \
                None
        candidates = {}

        def meets(strength):
            model = self.train(chain, strategy.with_weight(strength), c, history)
            values = _churn(lists_prev, _lists(model, sets["contexts"], self.config), self.config)
            candidates[strength] = model
            return self.budget.met({"rbo": float(values["rbo"].mean()),
                                    "changed": float(values["changed"].double().mean())})

        strength, _, tried = weakest_meeting(meets, 0.0, strategy.weight, self.config["update_budget_trials"])
        getLogger().info(f"v{c} {chain.label}: strength {strength:g} "
                         f"(tried {', '.join(f'{s:g} {ok}' for s, ok in tried)})")
        return candidates[strength], strength, " ".join(f"{s:g}:{'yes' if ok else 'no'}" for s, ok in tried)
