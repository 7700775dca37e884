"""The A/B stability protocol and its metrics.

* :mod:`~recbole_finest.stability.run`: :class:`StabilityRun` (models A and B from one seeded
  initialisation, pre-training, fine-tuning, evaluation), ``run_stability``, ``format_table``;
* :mod:`~recbole_finest.stability.evaluate`: A vs B over RecBole's test loader in one pass;
* :mod:`~recbole_finest.stability.states`: the saved model states of a run;
* :mod:`~recbole_finest.stability.metrics`: RBO, Jaccard@k, rank lists, the streaming pass;
* :mod:`~recbole_finest.stability.embedding`: adversarial embedding-level stability.

``recbole_finest.stability.StabilityRun`` (and every public name of ``stability.run``) keeps
working as before the layout change; the names are resolved lazily, so importing
``recbole_finest.stability.metrics`` does not load the trainer.
"""

from recbole_finest.facade import lazy_names

__getattr__ = lazy_names(__name__, "recbole_finest.stability.run")
