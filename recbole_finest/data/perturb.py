"""Interaction-level perturbations of the training split (FINEST spec sections 4 and 5).

Used for the evaluation perturbations of the stability study (``perturb``) and for FINEST's
per-epoch perturbation simulation (``simulate``). Everything is vectorized over rows; the
input ``TrainingSequences`` is never mutated.

Size: ``ratio`` in (0, 1) gives ``n = max(1, floor(ratio * n_rows + 0.5))`` (nearest
integer, halves rounded up); ``count`` gives ``n`` directly. Exactly ``n`` distinct rows
are selected and each is perturbed once.

Selections (``SELECTIONS``):

* ``random``: ``n`` rows uniformly without replacement among all training rows.
* ``earliest`` / ``latest``: all training rows are ordered by ``(timestamp, row index)``;
  the pool is the first / last ``k = max(n, ceil(time_fraction * n_rows))`` rows of that
  order (so the pool always holds at least ``n`` rows), and ``n`` rows are drawn uniformly
  without replacement from the pool.
* ``casper``: the ``n`` rows with the highest CASPER cascading scores
  (``casper.casper_select``; deterministic, ties -> smaller row index, rows outside the
  last ``max_len`` of their user last; ``rng`` unused). ``casper_roots_only=True`` scores
  only in-degree-0 nodes as the reference implementation does (other nodes score 0).
  ``casper_method`` (``"auto"`` by default: exact up to ``casper_exact_max_nodes`` DAG
  nodes, the seeded sketch estimate above; see ``casper.cascading_scores``).

Kinds (``KINDS``):

* ``deletion``: the selected rows are removed.
* ``replacement``: the item of each selected row is replaced (``replace_with``), the row
  gets id -1, its timestamp is kept.
* ``insertion``: a new row (id -1, item per ``insert_with``) is inserted in the same user's
  sequence immediately before each selected row, with a timestamp *equal* to the selected
  row's timestamp (equal rather than "minus epsilon", so every sequence stays
  non-decreasing in time even when the previous row has the same timestamp; the row order
  puts the new row first). The selected row itself is untouched and keeps its id.
* ``mixed``: the selected rows are shuffled with ``rng`` and split as evenly as possible
  into deletion / replacement / insertion, in that order: kind ``i`` gets
  ``n // 3 + (1 if i < n % 3 else 0)`` rows.

Replacement / inserted items (``ITEM_RULES``):

* ``random``: uniform over the real items ``1 .. n_items - 1`` other than the selected
  row's item (reference implementation; needs ``n_items >= 3``).
* ``least_popular``: ``seqs.least_popular_item()`` of the input sequences (fewest rows,
  ties -> smallest id), the same item for every perturbed row, even when it equals the
  selected row's item (FINEST's simulation, spec section 5 step 2).

``n_rows`` changes by ``-n`` (deletion), ``+n`` (insertion), 0 (replacement) and
``n_ins - n_del`` (mixed). Rows not deleted and not replaced keep their ids.
"""

import math
from dataclasses import dataclass

import numpy as np

from recbole_finest.data.casper import EXACT_MAX_NODES, casper_select
from recbole_finest.data.sequences import TrainingSequences

SELECTIONS = ("random", "earliest", "latest", "casper")
KINDS = ("deletion", "replacement", "insertion", "mixed")
SIMULATION_KINDS = KINDS
ITEM_RULES = ("random", "least_popular")


@dataclass
class PerturbResult:
    """Result of one perturbation.

    Attributes:
        seqs: the perturbed ``TrainingSequences`` (a new object).
        selected_ids: int64 ``[n]`` ids (``seqs.ids`` of the input) of the selected rows,
            in increasing row order.
        kind: the requested kind.
        selected_rows: int64 ``[n]`` row indices (in the input) of the selected rows,
            increasing.
        selected_kinds: ``[n]`` str, the kind applied to each selected row (differs per row
            only for ``mixed``).
    """

    seqs: TrainingSequences
    selected_ids: np.ndarray
    kind: str
    selected_rows: np.ndarray = None
    selected_kinds: np.ndarray = None


def _check_choice(key, value, allowed):
    if value not in allowed:
        raise ValueError(f"perturbation {key}={value!r} is not valid; allowed values: {allowed}")


def perturbation_size(n_rows, ratio=None, count=None):
    """Number of rows to perturb; ``ValueError`` naming ``ratio`` / ``count`` when invalid."""
    if (ratio is None) == (count is None):
        raise ValueError(f"give exactly one of ratio or count (got ratio={ratio!r}, count={count!r})")
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer, np.floating)) \
                or not 0.0 < float(ratio) < 1.0:
            raise ValueError(f"perturbation ratio={ratio!r} is not valid; allowed values: a number in (0, 1)")
        n = max(1, int(math.floor(float(ratio) * n_rows + 0.5)))
    else:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"perturbation count={count!r} is not valid; allowed values: an integer >= 1")
        n = int(count)
    if n > n_rows:
        key, value = ("ratio", ratio) if ratio is not None else ("count", count)
        raise ValueError(f"perturbation {key}={value!r} asks for {n} perturbations but the training "
                         f"data has only {n_rows} rows; allowed values: at most {n_rows} perturbations")
    return n


def select_rows(seqs, selection, n, rng, time_fraction=0.1, max_len=50, casper_roots_only=False,
                casper_method="auto", casper_exact_max_nodes=EXACT_MAX_NODES):
    """int64 ``[n]`` distinct row indices, increasing (see module doc for the rules)."""
    _check_choice("selection", selection, SELECTIONS)
    n_rows = seqs.n_rows
    if selection == "random":
        rows = rng.choice(n_rows, size=n, replace=False)
    elif selection in ("earliest", "latest"):
        if not 0.0 < float(time_fraction) <= 1.0:
            raise ValueError(f"perturbation time_fraction={time_fraction!r} is not valid; "
                             "allowed values: a number in (0, 1]")
        k = min(n_rows, max(n, int(math.ceil(float(time_fraction) * n_rows))))
        order = np.lexsort((np.arange(n_rows), seqs.timestamps))
        pool = order[:k] if selection == "earliest" else order[n_rows - k:]
        rows = pool[rng.choice(k, size=n, replace=False)]
    else:
        rows = casper_select(seqs, n, max_len, roots_only=casper_roots_only, method=casper_method,
                             exact_max_nodes=casper_exact_max_nodes)
    return np.sort(np.asarray(rows, dtype=np.int64))


def _new_items(seqs, originals, rule, rng, key):
    _check_choice(key, rule, ITEM_RULES)
    if rule == "least_popular":
        return np.full(len(originals), seqs.least_popular_item(), dtype=np.int64)
    if seqs.n_items < 3:
        raise ValueError(f"perturbation {key}='random' needs at least 2 real items (n_items={seqs.n_items})")
    # uniform over 1..n_items-1 without the original item: draw from n_items-2 values, skip it
    draw = rng.integers(1, seqs.n_items - 1, size=len(originals))
    return np.where(draw >= originals, draw + 1, draw).astype(np.int64)


def apply(seqs, delete_rows=(), replace_rows=(), insert_rows=(), replace_items=(), insert_items=()):
    """Apply deletions, item replacements and insertions (before the given rows) at once.

    Row arguments are indices into ``seqs`` (disjoint sets); ``replace_items`` /
    ``insert_items`` are aligned with ``replace_rows`` / ``insert_rows``. Returns a new
    ``TrainingSequences``; replaced and inserted rows get id -1.
    """
    delete_rows = np.asarray(delete_rows, dtype=np.int64)
    replace_rows = np.asarray(replace_rows, dtype=np.int64)
    insert_rows = np.asarray(insert_rows, dtype=np.int64)
    seq = seqs.seq_of_row()
    items = seqs.items.copy()
    ids = seqs.ids.copy()
    items[replace_rows] = np.asarray(replace_items, dtype=np.int64)
    ids[replace_rows] = -1
    keep = np.ones(seqs.n_rows, dtype=bool)
    keep[delete_rows] = False
    times = seqs.timestamps
    if len(insert_rows):
        seq = np.insert(seq, insert_rows, seq[insert_rows])
        items = np.insert(items, insert_rows, np.asarray(insert_items, dtype=np.int64))
        times = np.insert(times, insert_rows, times[insert_rows])
        ids = np.insert(ids, insert_rows, -1)
        keep = np.insert(keep, insert_rows, True)
    else:
        times = times.copy()
    return TrainingSequences.from_rows(seq[keep], items[keep], times[keep], ids[keep],
                                       seqs.user_ids.copy(), seqs.n_items)


def perturb(seqs, selection, kind, rng, ratio=None, count=None, replace_with="random",
            insert_with="random", time_fraction=0.1, max_len=50, casper_roots_only=False,
            casper_method="auto", casper_exact_max_nodes=EXACT_MAX_NODES):
    """Perturb exactly ``n`` training rows (see the module doc for every rule).

    Args:
        seqs: ``TrainingSequences`` (not modified).
        selection: one of ``SELECTIONS``.
        kind: one of ``KINDS``.
        rng: ``numpy.random.Generator``; the same seed gives the same result.
        ratio / count: exactly one; ``ratio`` in (0, 1) or ``count >= 1``, ``n <= n_rows``.
        replace_with / insert_with: one of ``ITEM_RULES``.
        time_fraction: pool fraction of ``earliest`` / ``latest``.
        max_len: ``casper`` graph window.
        casper_roots_only: ``casper`` scores only in-degree-0 nodes (reference
            implementation); other nodes score 0 and are picked only after every root.
        casper_method, casper_exact_max_nodes: ``casper`` scoring method (``exact`` /
            ``sketch`` / ``auto``) and the node count above which ``auto`` uses the sketch.

    Returns:
        ``PerturbResult``.
    """
    _check_choice("selection", selection, SELECTIONS)
    _check_choice("kind", kind, KINDS)
    _check_choice("replace_with", replace_with, ITEM_RULES)
    _check_choice("insert_with", insert_with, ITEM_RULES)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"perturbation rng={rng!r} is not valid; allowed values: a numpy.random.Generator")
    n = perturbation_size(seqs.n_rows, ratio, count)
    rows = select_rows(seqs, selection, n, rng, time_fraction=time_fraction, max_len=max_len,
                       casper_roots_only=casper_roots_only, casper_method=casper_method,
                       casper_exact_max_nodes=casper_exact_max_nodes)

    if kind == "mixed":
        shuffled = rng.permutation(rows)
        sizes = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
        cut = np.cumsum(sizes)
        parts = [np.sort(shuffled[:cut[0]]), np.sort(shuffled[cut[0]:cut[1]]), np.sort(shuffled[cut[1]:])]
    else:
        empty = np.zeros(0, dtype=np.int64)
        parts = [rows if kind == k else empty for k in KINDS[:3]]
    delete_rows, replace_rows, insert_rows = parts
    replace_items = _new_items(seqs, seqs.items[replace_rows], replace_with, rng, "replace_with")
    insert_items = _new_items(seqs, seqs.items[insert_rows], insert_with, rng, "insert_with")
    new = apply(seqs, delete_rows, replace_rows, insert_rows, replace_items, insert_items)

    selected_kinds = np.empty(n, dtype="<U11")
    for name, part in zip(KINDS[:3], parts):
        selected_kinds[np.searchsorted(rows, part)] = name
    return PerturbResult(seqs=new, selected_ids=seqs.ids[rows].copy(), kind=kind,
                         selected_rows=rows, selected_kinds=selected_kinds)


def simulate(seqs, ratio, kind, rng):
    """FINEST's training-time perturbation simulation (spec section 5, step 2).

    Random selection of ``ratio`` of the training rows; replacement and insertion both use
    the least popular item. ``kind`` is one of ``SIMULATION_KINDS`` (the reference
    implementation draws one of deletion / replacement / insertion per epoch; the caller
    does that draw, e.g. ``rng.choice(KINDS[:3])``).
    """
    _check_choice("kind", kind, SIMULATION_KINDS)
    return perturb(seqs, "random", kind, rng, ratio=ratio, replace_with="least_popular",
                   insert_with="least_popular")
