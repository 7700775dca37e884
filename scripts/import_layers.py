"""Floors, arrows and circles of the package's import graph, measured from its import statements.

    python scripts/import_layers.py [package_dir]

An arrow is a module-to-module import inside the package (``import x.y``, ``from x import y``,
``from . import y``; lazy imports inside functions included, a subpackage's ``__init__`` counts as
the package). A circle is a strongly connected component of more than one module. A module's
floor is 1 + the highest floor of what it imports (computed on the graph with each circle
collapsed into one node); "floors" is the highest floor, counted on the module-level imports
(what Python runs when a module is imported) and, in brackets, with the lazy imports too. An
arrow "runs back up" when it is imported lazily (inside a function, or a package facade's
``__getattr__``) and points to a module of the same or a higher module-level floor.
"""

import ast
import os
import sys


def module_name(root, path):
    rel = os.path.relpath(path, os.path.dirname(root))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports(root):
    """{module: {imported module: lazy?}} for the package at ``root``."""
    pkg = os.path.basename(root)
    mods = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".py"):
                mods[module_name(root, os.path.join(d, f))] = os.path.join(d, f)
    graph = {}
    for mod, path in mods.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        is_pkg = path.endswith("__init__.py")
        out = {}

        def add(name, lazy):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod:
                out[name] = out.get(name, True) and lazy

        def visit(node, lazy):
            for child in ast.iter_child_nodes(node):
                inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                if isinstance(child, ast.Import):
                    for a in child.names:
                        if a.name.split(".")[0] == pkg:
                            add(a.name, lazy)
                elif isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                        base = base[:len(base) - (child.level - 1)]
                        src = ".".join(base + ([child.module] if child.module else []))
                    else:
                        src = child.module or ""
                    if src.split(".")[0] != pkg:
                        continue
                    for a in child.names:
                        full = src + "." + a.name
                        add(full if full in mods else src, lazy)
                visit(child, inner)

        visit(tree, False)
        graph[mod] = out
    return graph


def circles(graph):
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in graph:
        if v not in index:
            strong(v)
    return comps


def floors(graph, eager_only=False):
    comps = circles({m: {t for t, lazy in e.items() if not (eager_only and lazy)} for m, e in graph.items()})
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    memo = {}

    def floor(i):
        if i not in memo:
            memo[i] = 0
            below = {comp_of[t] for m in comps[i] for t, lazy in graph[m].items()
                     if comp_of[t] != i and not (eager_only and lazy)}
            memo[i] = 1 + max((floor(j) for j in below), default=0)
        return memo[i]

    return {m: floor(comp_of[m]) for m in graph}


def main(root):
    graph = imports(root)
    arrows = sum(len(e) for e in graph.values())
    loops = [sorted(c) for c in circles({m: set(e) for m, e in graph.items()}) if len(c) > 1]
    level = floors(graph)
    eager = floors(graph, eager_only=True)
    back = [(m, t) for m, e in graph.items() for t, lazy in e.items() if lazy and eager[t] >= eager[m]]
    print(f"modules {len(graph)}  arrows {arrows}  floors {max(eager.values())} (module-level imports; "
          f"{max(level.values())} with the lazy ones)  circles {len(loops)}  lazy arrows up {len(back)}")
    for c in loops:
        print("  circle:", " <-> ".join(c))
    for m, t in sorted(back):
        print(f"  lazy up: {m} -> {t}")
    for f in range(1, max(eager.values()) + 1):
        print(f"  floor {f}: " + " ".join(sorted(m for m in graph if eager[m] == f)))


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "recbole_finest")))
