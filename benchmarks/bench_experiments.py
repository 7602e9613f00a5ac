"""E1 at its default size (issue 4 §3): wall time on ``--n-jobs`` workers against 180 s.

Runs :func:`simulations.experiments.run_experiment` ("e1", size "default", the process pool
of ``--n-jobs`` workers) into a fresh temporary store and prints a table: the wall time, the
target, their ratio, the sum of the cell times recorded in the store and the ideal time
(that sum divided by the workers). The cell times are measured inside the workers, so the
table also shows how much of the wall time is sweep overhead. On a machine shared with other
jobs the times are inflated; the load average before the run is printed for that reason.
Exits 0 either way (benchmarks report; they do not assert).

    python benchmarks/bench_experiments.py [--n-jobs 2] [--size default] [--name e1]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from simulations.experiments import EXPERIMENTS, get_experiment, run_experiment
from simulations.sweep import load_results

TARGET_SECONDS = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--size", default="default", choices=["tiny", "quick", "default"])
    parser.add_argument("--name", default="e1", help=f"experiment ({', '.join(EXPERIMENTS)})")
    args = parser.parse_args()
    spec = get_experiment(args.name)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = run_experiment(spec.key, out=Path(tmp), size=args.size, n_jobs=args.n_jobs,
                              progress=False)
        wall = time.perf_counter() - start
        rows = len(load_results(path, name=spec.key))
        with sqlite3.connect(path) as conn:
            cells, cell_time = conn.execute(
                "SELECT COUNT(*), SUM(wall_time) FROM cells WHERE status = 'done'"
            ).fetchone()
            (failed,) = conn.execute(
                "SELECT COUNT(*) FROM cells WHERE status = 'failed'"
            ).fetchone()
    ideal = cell_time / args.n_jobs
    print(f"{spec.key} ({spec.alias}), size {args.size}, {args.n_jobs} workers; "
          f"load average before the run {load:.2f}")
    print(f"{'cells':>8} {'failed':>7} {'rows':>7} {'wall s':>9} {'target s':>9} "
          f"{'wall/target':>12} {'cells s':>9} {'ideal s':>9} {'wall/ideal':>11}")
    print(f"{cells:>8} {failed:>7} {rows:>7} {wall:>9.1f} {TARGET_SECONDS:>9.0f} "
          f"{wall / TARGET_SECONDS:>12.2f} {cell_time:>9.1f} {ideal:>9.1f} {wall / ideal:>11.2f}")
    verdict = "within" if wall <= TARGET_SECONDS else "OVER"
    print(f"{verdict} the {TARGET_SECONDS:.0f} s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
