"""The import hook that applies :mod:`~recbole_finest.compat.stack` when RecBole's modules are imported.

Installed at interpreter start by ``recbole_finest-stack.pth`` (setup.py puts it into
site-packages, editable installs included) and again by ``import recbole_finest``, so a
plain RecBole script runs unchanged in the plugin's environment. Starting it costs one
entry in ``sys.meta_path``: this module imports only ``sys`` (about 1 ms at start-up), and
NumPy, pandas, torch and the patches are touched only when a module of
:data:`TARGETS` is imported. A failing patch warns; it never fails the import.
"""
from __future__ import annotations

import sys

#: RecBole's modules that :mod:`recbole_finest.compat.stack` patches (``stack.PATCHES`` has the same keys).
TARGETS = frozenset({
    "recbole",
    "recbole.config.configurator",
    "recbole.data.dataset.dataset",
    "recbole.data.dataset.kg_dataset",
    "recbole.data.dataset.sequential_dataset",
    "recbole.trainer.trainer",
    "recbole.quick_start.quick_start",
})


class _PatchingLoader:
    """The module's own loader, then the stack's patch of that module."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        from recbole_finest.compat import stack

        stack.before_import(self._name)
        self._loader.exec_module(module)
        stack.after_import(self._name, module)

    def __getattr__(self, name):  # get_source, get_filename, is_package ... of the real loader
        return getattr(self._loader, name)


class RecBoleStackFinder:
    """Finds :data:`TARGETS` with the other finders and wraps their loader in :class:`_PatchingLoader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, fullname)
                return spec
        return None


def installed() -> bool:
    """Whether the finder is in ``sys.meta_path``."""
    return any(isinstance(f, RecBoleStackFinder) for f in sys.meta_path)


def install() -> None:
    """Put the finder first in ``sys.meta_path`` (once) and patch the targets imported before. Never raises."""
    try:
        if not installed():
            sys.meta_path.insert(0, RecBoleStackFinder())
        if any(name in sys.modules for name in TARGETS):
            from recbole_finest.compat import stack

            stack.patch_imported()
    except Exception as exc:  # a broken environment must not break interpreter start-up or the import
        import warnings

        warnings.warn(f"recbole-finest could not install its RecBole compatibility hook: {exc!r}", RuntimeWarning)
