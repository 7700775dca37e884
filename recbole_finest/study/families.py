"""The perturbation families of a study: ``perturb_family`` -> its cell runner and grid check.

Kept apart from :mod:`recbole_finest.study.cells` (which registers the ``interaction``
family) so that the grid can be validated without importing the protocol.
"""

_FAMILIES = {}


def register_family(name, runner, check=None):
    """Register the cell runner of a perturbation family (``perturb_family: <name>``).

    ``check(grid)`` (optional) validates a grid's ``selections`` / ``kinds`` / ``ratios``
    for this family and raises ``ValueError`` naming the ``study_*`` key.

    ``runner(context, seed, perturbation, methods)`` computes the given methods of one
    (seed, perturbation) cell group and returns ``{method: (row, instances)}``, or yields
    ``(method, (row, instances))`` pairs as each one is computed, so that a study stopped
    part-way keeps the cells finished before the stop: ``row`` the
    metrics dict (``rbo``, ``jaccard@10``, ``mrr``, ...), ``instances`` a dict of
    per-instance numpy arrays (``user``, ``rr_a`` and the metrics) or None. ``context`` is
    a :class:`ModelContext` (the runner may put ``n_perturbed`` into ``context.info``);
    ``perturbation`` a dict ``selection`` / ``kind`` / ``ratio``.
    """
    _FAMILIES[name] = (runner, check)


def get_family(name):
    """``(runner, check)`` of the family called ``name``."""
    if name not in _FAMILIES:
        raise ValueError(f"config key 'perturb_family' must be one of {', '.join(_FAMILIES)}; got {name!r} "
                         f"(a new family registers its cell runner with recbole_finest.study.driver.register_family)")
    return _FAMILIES[name]
