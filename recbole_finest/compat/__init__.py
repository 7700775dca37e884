"""Everything that touches RecBole 1.2.1's internals, in one place.

* :mod:`~recbole_finest.compat.registry`: NumPy aliases, the prefix-free sequential dataset,
  the Trainer attributes a phase resets, checkpoint content and the resume guard, the logger.
* :mod:`~recbole_finest.compat.model_kind`: how a RecBole sequential model is trained and scored
  (causal / masked / prefix-only), ``gather_indexes``.
* :mod:`~recbole_finest.compat.models`: model lookup, the plugin's models first, RecBole's next.
* :mod:`~recbole_finest.compat.literal`: config values read as literals (never RecBole's ``eval``),
  RecBole's YAML loader without Python tags.
* :mod:`~recbole_finest.compat.timestamps`: the time field finite and float64 (RecBole: float32).
"""
