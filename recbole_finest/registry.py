"""Registration of the plugin's components with RecBole 1.2.1.

This file is the ONLY place in recbole_finest that touches RecBole internals
(module-level registries such as ``recbole.evaluator.register.metrics_dict``).
Everything else uses RecBole's public classes only.

Call :func:`register` once (idempotent) before building a ``recbole.config.Config``
that names plugin metrics (``metrics: [RBO, Jaccard, MRR, Recall]``).
"""
from __future__ import annotations


def register_metrics() -> None:
    """Add the plugin metric classes (``RBO``, ``Jaccard``) to RecBole's metric registry.

    RecBole 1.2.1 builds its registry once at import time from
    ``recbole.evaluator.metrics`` (``recbole.evaluator.register.cluster_info``) into
    ``metrics_dict`` (name -> class, used by ``Evaluator``), ``metric_information``
    (name -> ``metric_need``, used by ``Register``/``Collector``), ``metric_types``
    (name -> ``EvaluatorType``, checked by ``Config``) and ``smaller_metrics`` (used for
    ``valid_metric_bigger``). Those objects are shared by reference with
    ``recbole.evaluator`` / ``recbole.config``, so they are updated in place.
    Idempotent; raises if a different class already owns one of the names.
    """
    from recbole.evaluator import register as rb_register

    from recbole_finest.metrics import RBO, Jaccard

    for cls in (RBO, Jaccard):
        name = cls.__name__.lower()
        existing = rb_register.metrics_dict.get(name)
        if existing is not None and existing is not cls and (
            existing.__module__ != cls.__module__ or existing.__qualname__ != cls.__qualname__
        ):
            raise RuntimeError(
                f"RecBole already has a metric named '{name}' ({existing!r}); "
                f"refusing to overwrite it with {cls!r}"
            )
        rb_register.metrics_dict[name] = cls
        rb_register.metric_information[name] = cls.metric_need
        rb_register.metric_types[name] = cls.metric_type
        if cls.smaller:
            if name not in rb_register.smaller_metrics:
                rb_register.smaller_metrics.append(name)
        elif name in rb_register.smaller_metrics:
            rb_register.smaller_metrics.remove(name)


def register() -> None:
    """Register every plugin component with RecBole (currently: metrics). Idempotent."""
    register_metrics()
