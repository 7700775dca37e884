"""Lazy package facades: a package re-exports the public names of one of its modules on first use.

``recbole_finest.study``, ``recbole_finest.stability`` and ``recbole_finest.finest`` keep the
names users imported before the layout change (``from recbole_finest.study import run_study``)
without importing that module, and all it imports, when only a leaf such as
``recbole_finest.stability.metrics`` is wanted.
"""

import importlib
import importlib.util


def lazy_names(package, module, names=None):
    """A module ``__getattr__`` for ``package``: its submodules, then ``names`` (default: any) of ``module``
    (or, with ``module`` a dict ``{name: module}``, each name from its own module).

    A submodule asked for by name (``from recbole_finest.study import epochs``) is imported
    as such, so importing a leaf first (a Ray worker unpickling a task's objects) never goes
    through ``module`` and its imports.
    """

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        if isinstance(module, dict):  # {public name: the module that defines it}
            if name in module:
                return getattr(importlib.import_module(module[name]), name)
        elif names is None or name in names:
            try:
                return getattr(importlib.import_module(module), name)
            except AttributeError:
                pass
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
