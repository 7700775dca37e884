"""Stability studies: a grid of (model, seed, perturbation, method) cells, resumable.

* :mod:`~recbole_finest.study.driver`: ``run_study`` (the one entry point);
* :mod:`~recbole_finest.study.grid`: the ``study_*`` keys and the union of the cells;
* :mod:`~recbole_finest.study.cells`: perturbation families and one cell group's computation;
* :mod:`~recbole_finest.study.epochs`: cells of intermediate fine-tuning epochs;
* :mod:`~recbole_finest.study.folder`: the study folder (cells, states, zip of rank lists);
* :mod:`~recbole_finest.study.resume`: the fingerprint that guards resuming;
* :mod:`~recbole_finest.study.report`: tables, statistics and plots of a study;
* :mod:`~recbole_finest.study.backend`: cell groups as Ray tasks (``study_backend: ray``).

``from recbole_finest.study import run_study`` keeps working (every public name of
``study.driver`` is resolved lazily here).
"""

from recbole_finest.facade import lazy_names

__getattr__ = lazy_names(__name__, "recbole_finest.study.driver")
