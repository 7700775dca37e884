"""Speed of the vectorized stability metrics vs the `rbo` package called per instance.

Setting: N eval instances x n_items items, full rankings (reddit-sized catalogue by
default), two correlated "models". Times `rbo` (p=1.0, full ranking, what the paper's
reference code computes) + `jaccard@10` vectorized, against the `rbo` package's
`RankingSimilarity(a, b).rbo()` + Python-set Jaccard per instance. The package is timed on
a subset of instances and scaled linearly to N (stated in the output). Values are checked
to agree on that subset.

    .venv/bin/python benchmarks/metrics_speed.py [--n 2000] [--items 1000] [--subset 100]
"""
import argparse
import os
import sys
import time

from _memory import peak_rss_mib, status_kib  # noqa: E402 (benchmarks/ is on sys.path)
import tracemalloc

import numpy as np
import torch
from rbo import RankingSimilarity

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recbole_finest.stability.metrics import jaccard, rank_lists, rbo




def _reset_hwm():
    """Reset this process's RSS high-water mark (Linux); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return status_kib("VmHWM") is not None
    except OSError:
        return False


def _timed(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=100)
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)

    gen = torch.Generator().manual_seed(0)
    sa = torch.randn(args.n, args.items + 1, generator=gen)
    sb = sa + 0.5 * torch.randn(args.n, args.items + 1, generator=gen)
    sa, sb = sa.to(dev), sb.to(dev)

    # warm-up (allocator, kernels)
    ra, rb = rank_lists(sa[:8]), rank_lists(sb[:8])
    rbo(ra, rb, p=args.p), jaccard(ra, rb, k=args.k)

    t0 = time.perf_counter()
    ra, rb = rank_lists(sa), rank_lists(sb)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_rank = time.perf_counter() - t0

    def vectorized():
        r = rbo(ra, rb, p=args.p)
        j = jaccard(ra, rb, k=args.k)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return r, j

    # peak memory of one call: device allocator on CUDA, RSS high-water-mark growth on CPU
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        vectorized()
        mem_vec = f"{(torch.cuda.max_memory_allocated() - base) / 2**20:.1f} MiB device"
    elif _reset_hwm():
        base = status_kib("VmRSS")
        vectorized()
        mem_vec = f"{(status_kib('VmHWM') - base) / 1024:.1f} MiB RSS"
    else:
        mem_vec = "n/a"
    t_vec, (v_rbo, v_jac) = _timed(vectorized, repeat=3)

    # package, per instance, on a subset
    m = min(args.subset, args.n)
    la, lb = ra[:m].cpu().tolist(), rb[:m].cpu().tolist()
    tracemalloc.start()
    t0 = time.perf_counter()
    p_rbo, p_jac = [], []
    for x, y in zip(la, lb):
        p_rbo.append(RankingSimilarity(x, y).rbo(p=args.p))
        sx, sy = set(x[: args.k]), set(y[: args.k])
        p_jac.append(len(sx & sy) / len(sx | sy))
    t_pkg_subset = time.perf_counter() - t0
    _, pkg_py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t_pkg = t_pkg_subset * args.n / m

    err_rbo = float(np.max(np.abs(v_rbo[:m].cpu().numpy() - np.array(p_rbo))))
    err_jac = float(np.max(np.abs(v_jac[:m].cpu().numpy() - np.array(p_jac))))

    print(f"N={args.n} instances x {args.items} items, full rankings (depth {ra.shape[1]}), "
          f"rbo p={args.p}, jaccard@{args.k}, device={dev}")
    print(f"package timed on {m} instances ({t_pkg_subset:.3f} s) and scaled x{args.n / m:g} to N={args.n}")
    print()
    print(f"{'method':<34}{'time [s]':>12}{'peak mem':>28}")
    print("-" * 74)
    print(f"{'rank_lists (2 models, not counted)':<34}{t_rank:>12.4f}{'':>28}")
    print(f"{'vectorized rbo + jaccard (best/3)':<34}{t_vec:>12.4f}{mem_vec:>28}")
    print(f"{'rbo package per instance (scaled)':<34}{t_pkg:>12.2f}{pkg_py_peak / 2**20:>19.1f} MiB traced")
    print("-" * 74)
    print(f"speed-up: {t_pkg / t_vec:,.0f}x   process peak RSS: {peak_rss_mib():.0f} MiB")
    print(f"max |diff| on subset: rbo {err_rbo:.2e}, jaccard {err_jac:.2e}")
    print("vectorized peak mem = extra memory of one call (RSS high-water growth on CPU, "
          "allocator peak on CUDA); package peak = Python allocations (tracemalloc)")
    ok = err_rbo < 1e-9 and err_jac < 1e-12
    print("values agree" if ok else "VALUES DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
