"""Time the exact float64 kernels against ``numpy.sum`` and ``math.fsum`` on one core.

Usage: ``python benchmarks/bench_exact_sum.py [--n 10000000] [--repeat 7]``. Prints the best
wall-clock and thread CPU time of each (CPU time is the fairer figure on a busy machine; the
first call, which loads or compiles the numba kernels, is not timed) and checks that the
exact sum equals ``math.fsum``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from analytics.numerics import add_dot, add_pair, add_sum, add_sum_sumsq, exact_sum, new_acc


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock and best thread CPU seconds over ``repeat`` calls."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return min(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(args.n)
    y = rng.standard_normal(args.n)
    valid = rng.random(args.n) < 0.9
    assert exact_sum(x) == math.fsum(x)

    base = best(lambda: np.sum(x), args.repeat)
    rows = [
        ("numpy.sum", base),
        ("math.fsum", best(lambda: math.fsum(x), min(args.repeat, 2))),
        ("exact_sum (correctly rounded)", best(lambda: exact_sum(x), args.repeat)),
        ("add_sum, 10% masked", best(lambda: add_sum(new_acc(), x, valid), args.repeat)),
        ("numpy.sum + numpy.dot(x, x)", best(lambda: (np.sum(x), np.dot(x, x)), args.repeat)),
        (
            "add_sum_sumsq (sum + sum of squares)",
            best(lambda: add_sum_sumsq(new_acc(), new_acc(), x), args.repeat),
        ),
        ("add_dot (sum of x*y)", best(lambda: add_dot(new_acc(), x, y), args.repeat)),
        ("add_pair (5 sums of a pair)", best(lambda: add_pair(new_acc(5), x, y), args.repeat)),
    ]
    print(f"{args.n:.0e} float64 values, best of {args.repeat}, one thread")
    print(f"  {'':40s} {'wall ms':>9s} {'cpu ms':>9s}  cpu vs numpy.sum")
    for name, (wall, cpu) in rows:
        print(f"  {name:40s} {wall * 1e3:9.1f} {cpu * 1e3:9.1f}  {cpu / base[1]:6.1f}x")


if __name__ == "__main__":
    main()
