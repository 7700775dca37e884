"""The package layout (issue 39): no import circles, at most 10 floors, old public paths still work.

The floors and circles are measured from the import statements by
``scripts/import_layers.py`` (an independent reading of the source, not of ``sys.modules``).
"""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import import_layers  # noqa: E402

GRAPH = import_layers.imports(str(ROOT / "recbole_finest"))


def test_no_import_circles():
    loops = [sorted(c) for c in import_layers.circles({m: set(e) for m, e in GRAPH.items()}) if len(c) > 1]
    assert loops == []


def test_at_most_ten_floors_and_the_lowest_layers_import_nothing_above_them():
    floors = import_layers.floors(GRAPH, eager_only=True)
    assert max(floors.values()) <= 10
    low = ("recbole_finest.settings", "recbole_finest.checks", "recbole_finest.stability.metrics",
           "recbole_finest.finest.loss")
    above = ("recbole_finest.finest.trainer", "recbole_finest.stability.run", "recbole_finest.study",
             "recbole_finest.tune", "recbole_finest.update", "recbole_finest.quick_start")
    for module in [m for m in GRAPH if m.startswith(low) or m.startswith("recbole_finest.data")]:
        eager = [t for t, lazy in GRAPH[module].items() if not lazy]
        assert not [t for t in eager if t.startswith(above)], module


@pytest.mark.parametrize("old, new, name", [
    ("recbole_finest.trainer", "recbole_finest.finest.trainer", "FinestTrainer"),
    ("recbole_finest.finest", "recbole_finest.finest.trainer", "FinestTrainer"),
    ("recbole_finest.metrics", "recbole_finest.stability.metrics", "rbo"),
    ("recbole_finest.registry", "recbole_finest.compat.registry", "create_dataset"),
    ("recbole_finest.stability", "recbole_finest.stability.run", "StabilityRun"),
    ("recbole_finest.study", "recbole_finest.study.driver", "run_study"),
    ("recbole_finest.study", "recbole_finest.study.folder", "StudyFolder"),
    ("recbole_finest.utils", "recbole_finest.compat.models", "get_model"),
])
def test_old_public_paths_are_the_moved_objects(old, new, name):
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize("first", ["recbole_finest.study.cells", "recbole_finest.study.epochs",
                                   "recbole_finest.stability.metrics", "recbole_finest.finest.scoring"])
def test_a_leaf_imported_first_in_a_fresh_interpreter(first):
    """A Ray worker unpickles a task's objects by importing their module first (a study cell's
    ``ModelContext``): the lazy package facades must not turn that into a circular import."""
    done = subprocess.run([sys.executable, "-c", f"import {first}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
