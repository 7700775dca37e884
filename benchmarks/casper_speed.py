"""Speed of CASPER cascading scores and of the vectorized perturbations on LastFM-sized data.

Synthetic data: 1,000 users x 1,300 interactions (1.3M rows), 1,000 items drawn uniformly,
timestamps increasing within every user and interleaved across users; max_len 50.

Run from anywhere: ``python benchmarks/casper_speed.py [--users 1000 --per-user 1300 --items 1000]``.
"""

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole_finest.data.casper import cascading_scores, rank_by_score
from recbole_finest.data.perturb import perturb, simulate
from recbole_finest.data.sequences import TrainingSequences


def make_data(n_users, per_user, n_items, seed=0):
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    seq = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(1, n_items + 1, size=n)
    # increasing per user, users interleaved: cumulative random gaps from a random start
    gaps = rng.exponential(1.0, size=(n_users, per_user))
    times = (rng.uniform(0, 10, size=(n_users, 1)) + np.cumsum(gaps, axis=1)).ravel()
    return TrainingSequences.from_rows(seq, items, times, np.arange(n), np.arange(1, n_users + 1),
                                       n_items + 1)


def timed(label, fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<48s} {dt:8.3f} s   peak traced memory {peak / 2**20:8.1f} MiB")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=1300)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--memory-mb", type=float, default=128)
    args = parser.parse_args()

    seqs = make_data(args.users, args.per_user, args.items)
    print(f"rows {seqs.n_rows:,}  users {seqs.n_sequences:,}  items {seqs.n_items - 1:,}  "
          f"max_len {args.max_len}")
    scores = timed("cascading_scores (exact)",
                   lambda: cascading_scores(seqs, args.max_len, memory_mb=args.memory_mb))
    n = max(1, round(0.001 * seqs.n_rows))
    top = timed(f"select top 0.1% ({n} rows) from the scores", lambda: rank_by_score(scores)[:n])
    nodes = scores[scores >= 0]
    print(f"nodes {len(nodes):,}  score min/median/max {nodes.min()}/{int(np.median(nodes))}/{nodes.max()}"
          f"  top-{n} min score {scores[top].min()}")
    timed("cascading_scores (sketch, k=64)",
          lambda: cascading_scores(seqs, args.max_len, method="sketch", rng=np.random.default_rng(0)))
    rng = np.random.default_rng(0)
    res = timed("perturb(random, deletion, ratio=0.01)",
                lambda: perturb(seqs, "random", "deletion", rng, ratio=0.01))
    print(f"  rows after deletion {res.seqs.n_rows:,}")
    timed("perturb(random, mixed, ratio=0.01)", lambda: perturb(seqs, "random", "mixed", rng, ratio=0.01))
    timed("simulate(ratio=0.01, insertion)", lambda: simulate(seqs, 0.01, "insertion", rng))
    timed("perturb(casper, deletion, ratio=0.001)",
          lambda: perturb(seqs, "casper", "deletion", rng, ratio=0.001, max_len=args.max_len))
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
