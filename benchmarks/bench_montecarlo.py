"""Benchmark: Monte Carlo few-shot nearest-mean error (issue §7; THEORY.md T1, T5).

Two isotropic Gaussian classes in R^64, 5 shots. Times the vectorised estimator of
``simulations.montecarlo.nearest_mean_error`` (method "plain": real support sets and one
query per task, vectorised over tasks in chunks) and the Rao–Blackwellised one, beside a
plain per-task Python loop measured in the same run on a few thousand tasks, and prints
tasks per minute and the ratio to the loop. The target is >= 1 000 000 tasks per minute on
2 CPU cores (the vectorised code runs on one core: numpy's random generator is
single-threaded).

    python benchmarks/bench_montecarlo.py [--tasks 1000000] [--loop-tasks 3000] [--dim 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulations.families import GaussianClasses
from simulations.montecarlo import nearest_mean_error


def per_task_loop(family: GaussianClasses, shots: int, tasks: int, seed: int) -> int:
    """The baseline: one task at a time, the obvious way (ties count as errors)."""
    gen = np.random.default_rng(seed)
    errors = 0
    for _ in range(tasks):
        centres = [family.draw_class(c, shots, gen).mean(axis=0) for c in range(2)]
        y = int(gen.integers(2))
        x = family.draw_class(y, 1, gen)[0]
        d = [float(np.sum((x - m) ** 2)) for m in centres]
        errors += d[1 - y] <= d[y]
    return errors


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--loop-tasks", type=int, default=3_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    means = np.zeros((2, args.dim))
    means[1, 0] = 3.0
    fam = GaussianClasses.isotropic(means, sigma=0.5)

    loop_errors, t_loop = _timed(lambda: per_task_loop(fam, args.shots, args.loop_tasks, args.seed))
    plain, t_plain = _timed(lambda: nearest_mean_error(
        fam, shots=args.shots, tasks=args.tasks, rng=args.seed, method="plain"))
    rb, t_rb = _timed(lambda: nearest_mean_error(
        fam, shots=args.shots, tasks=args.tasks, rng=args.seed, method="rao_blackwell"))

    loop_rate = args.loop_tasks / t_loop * 60
    rows = [
        ("per-task Python loop (baseline)", args.loop_tasks, t_loop, loop_rate,
         loop_errors / args.loop_tasks),
        ("vectorised plain (nearest_mean_error)", args.tasks, t_plain, args.tasks / t_plain * 60,
         plain.estimate),
        ("Rao-Blackwell (isotropic Gaussian)", args.tasks, t_rb, args.tasks / t_rb * 60,
         rb.estimate),
    ]
    print(f"nearest-mean few-shot error, 2 isotropic Gaussian classes, p = {args.dim}, "
          f"{args.shots} shots, d/sigma = 6")
    print(f"{'method':40s} {'tasks':>10s} {'seconds':>9s} {'tasks/min':>13s} {'x loop':>8s} "
          f"{'error':>9s}")
    for name, n, t, rate, est in rows:
        print(f"{name:40s} {n:10d} {t:9.2f} {rate:13,.0f} {rate / loop_rate:8.1f} {est:9.5f}")
    low, high = plain.confidence_interval(0.99)
    print(f"plain 99% CI [{low:.5f}, {high:.5f}]; target >= 1,000,000 tasks/min: "
          f"{'met' if args.tasks / t_plain * 60 >= 1e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
