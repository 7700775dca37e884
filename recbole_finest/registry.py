"""Re-export of :mod:`recbole_finest.compat.registry` (``create_dataset``, ``register``), named in docs/library.md.

Canonical: ``from recbole_finest.compat.registry import create_dataset``.
"""

from recbole_finest.compat.registry import create_dataset, register  # noqa: F401

__all__ = ["create_dataset", "register"]
