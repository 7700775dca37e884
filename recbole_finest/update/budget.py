"""The churn budget of a rolling update and the search for the weakest strength that meets it.

A team sets a budget per release rather than a loss weight: ``update_max_changed`` (at most this
share of users get a top-k with more than half of it replaced) and / or ``update_min_rbo``
(the mean RBO of the new version against the previous one is at least this). For the
strategies with a strength (``distill``, ``finest``: the weight of their extra term;
``interpolate``: ``alpha``) a step's strength is the weakest one that meets the budget on the
*validation* contexts (every user's history at the step's cut), found by :func:`weakest_meeting`
with the same number of trials per strategy; the report then checks the budget on the *test*
contexts (the histories at the end of the next period, inputs the version was never trained on).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ChurnBudget:
    """``max_changed``: the highest share of users with a mostly replaced top-k; ``min_rbo``: the lowest
    mean RBO against the previous version (None: that bound is not set)."""

    max_changed: float = None
    min_rbo: float = None

    @classmethod
    def of(cls, config):
        """The budget of ``config`` (None when neither key is set)."""
        if config["update_max_changed"] is None and config["update_min_rbo"] is None:
            return None
        return cls(config["update_max_changed"], config["update_min_rbo"])

    def met(self, row):
        """Whether a churn row (``{"changed": share, "rbo": mean}``) is within the budget."""
        return ((self.max_changed is None or row["changed"] <= self.max_changed)
                and (self.min_rbo is None or row["rbo"] >= self.min_rbo))

    @property
    def slug(self):
        """File-name form (``changed0.02``, ``rbo0.9``, both joined by ``-``)."""
        parts = ([f"changed{self.max_changed:g}"] if self.max_changed is not None else []) + \
                ([f"rbo{self.min_rbo:g}"] if self.min_rbo is not None else [])
        return "-".join(parts)

    def __str__(self):
        parts = ([f"at most {100 * self.max_changed:g}% of users with a mostly replaced top-k"]
                 if self.max_changed is not None else []) + \
                ([f"mean RBO at least {self.min_rbo:g}"] if self.min_rbo is not None else [])
        return " and ".join(parts)


def weakest_meeting(meets, low, high, trials):
    """The weakest strength in ``[low, high]`` for which ``meets(strength)`` holds, by bisection.

    ``meets`` is assumed monotone: once a strength meets the budget, every stronger one does.
    Tries ``low`` first (an update as weak as that may already meet the budget), then ``high``,
    then halves the interval between the strongest failing and the weakest meeting strength
    for the remaining trials; ``trials`` calls in all (fewer when ``low`` meets or ``high`` fails).

    Args:
        meets: ``strength -> bool`` (one trained and measured candidate per call).
        low, high: the search interval, ``low <= high``.
        trials: the most calls, >= 2.

    Returns ``(strength, met, tried)``: the weakest strength that met the budget (``high`` with
    ``met = False`` when even ``high`` missed it) and ``tried``, ``[(strength, bool)]`` in call order.
    """
    if not low <= high or trials < 2:
        raise ValueError(f"weakest_meeting needs low <= high and trials >= 2; got [{low}, {high}], {trials}")
    tried = []

    def check(strength):
        tried.append((strength, bool(meets(strength))))
        return tried[-1][1]

    if check(low):
        return low, True, tried
    if not check(high):
        return high, False, tried
    failing, meeting = low, high
    for _ in range(trials - 2):
        middle = (failing + meeting) / 2
        if check(middle):
            meeting = middle
        else:
            failing = middle
    return meeting, True, tried
