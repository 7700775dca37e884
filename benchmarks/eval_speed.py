"""CPU time of the stability evaluation's rank lists: torch.sort (old) vs sorted int64 keys.

Setting: ``--batches`` seeded batches of ``--rows`` x ``--items`` float32 scores (plus the
padding column 0) of two correlated "models" (``b = a + --noise * randn``), one thread.
Per batch it times, with ``time.process_time``:

* rank lists of both models, full depth: the old path (``torch.sort(descending=True,
  stable=True)`` in row chunks, ``old_rank_lists``) vs
  ``recbole_finest.stability.metrics.rank_lists`` (one ``np.sort`` of distinct int64 keys);
* the whole ``metrics.stability_values`` (rank lists of 2 models + RBO at full depth +
  Jaccard@k), with the old rank lists (``old_stability_values``) vs the current one.

It prints one row per batch and the totals, with the ratio old / new, and exits non-zero
if any rank list or stability value differs (``torch.equal``).

    .venv/bin/python benchmarks/eval_speed.py [--batches 3] [--rows 2048] [--items 10000]
"""
import argparse
import os
import sys
import time
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recbole_finest.stability import metrics
from recbole_finest.stability.metrics import jaccard, rank_lists, rbo, stability_values  # noqa: E402


def old_rank_lists(scores, depth=None):
    """``rank_lists`` before the key path: every chunk through the stable descending
    ``torch.sort`` (the path other dtypes and CUDA scores still take)."""
    with mock.patch.object(metrics, "_rank_ids_by_keys", metrics._rank_ids_by_sort):
        return rank_lists(scores, depth)


def old_stability_values(scores_a, scores_b, p=1.0, k=10):
    """``stability_values`` at full depth with ``old_rank_lists``."""
    lists_a, lists_b = old_rank_lists(scores_a), old_rank_lists(scores_b)
    return {"rbo": rbo(lists_a, lists_b, p=p), f"jaccard@{int(k)}": jaccard(lists_a, lists_b, k=k)}


def _cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def _batch(gen, rows, items, noise):
    a = torch.randn(rows, items + 1, generator=gen)
    return a, a + noise * torch.randn(rows, items + 1, generator=gen)


def _same(x, y):
    return x.keys() == y.keys() and all(torch.equal(x[key], y[key]) for key in x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    warm = torch.randn(8, args.items + 1, generator=gen)
    old_rank_lists(warm), rank_lists(warm)

    print(f"{args.batches} batches of {args.rows} x {args.items} float32 scores (+ padding column), "
          f"b = a + {args.noise:g} * randn, full depth, jaccard@{args.k}, 1 thread, CPU seconds")
    print(f"{'batch':>5} | {'rank lists old':>14} {'new':>7} {'ratio':>6} | "
          f"{'stability_values old':>20} {'new':>7} {'ratio':>6} | same")
    totals, ok = [0.0] * 4, True
    for i in range(args.batches):
        a, b = _batch(gen, args.rows, args.items, args.noise)
        t_old, lists_old = _cpu(lambda: (old_rank_lists(a), old_rank_lists(b)))
        t_new, lists_new = _cpu(lambda: (rank_lists(a), rank_lists(b)))
        s_old, vals_old = _cpu(lambda: old_stability_values(a, b, k=args.k))
        s_new, vals_new = _cpu(lambda: stability_values(a, b, k=args.k))
        same = all(torch.equal(x, y) for x, y in zip(lists_old, lists_new)) and _same(vals_old, vals_new)
        ok &= same
        for j, t in enumerate((t_old, t_new, s_old, s_new)):
            totals[j] += t
        print(f"{i:>5} | {t_old:>14.3f} {t_new:>7.3f} {t_old / t_new:>5.2f}x | "
              f"{s_old:>20.3f} {s_new:>7.3f} {s_old / s_new:>5.2f}x | {'yes' if same else 'NO'}")
    t_old, t_new, s_old, s_new = totals
    print(f"{'total':>5} | {t_old:>14.3f} {t_new:>7.3f} {t_old / t_new:>5.2f}x | "
          f"{s_old:>20.3f} {s_new:>7.3f} {s_old / s_new:>5.2f}x | {'yes' if ok else 'NO'}")
    print("rank lists and stability values identical" if ok else "RESULTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
