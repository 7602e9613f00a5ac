"""Shared pieces of the experiments: sizes, task budgets and the bound-vs-measurement row.

Every experiment row that compares a bound with a measurement carries the same columns,
made here by :func:`verdict_row` from a :class:`ncbounds.bounds.Bound`, its uncapped value
and a :class:`ncbounds.verdict.Measurement` (THEORY.md, "What a check means"):

``bound``, ``theory_item``, ``bound_valid``, ``bound_value`` (uncapped), ``bound_capped``
(probability bounds capped at 1, others as is), ``measured`` (the estimate), ``ci_low`` and
``ci_high`` (the one-sided lower and upper confidence bounds at ``confidence`` that decide the
verdict; equal to ``measured`` for exact measurements), ``ci_method`` ("clopper-pearson",
"student-t" or "exact"), ``trials`` (tasks or episodes; missing for exact values),
``confidence``, ``status`` ("holds", "violated", "inconclusive"), ``slack`` (bound /
measured), ``ratio`` (measured / bound, 0 for an infinite bound) and ``vacuous``.

>>> from ncbounds import bounds
>>> from ncbounds.verdict import Measurement
>>> row = verdict_row(bounds.nearest_mean, 0.48, Measurement.error_rate(3, 1000))
>>> row["status"], row["bound_capped"], round(row["ratio"], 4)
('holds', 0.48, 0.0063)
"""

from __future__ import annotations

import math
from typing import Any

from ncbounds._errors import NCBoundsError
from ncbounds.bounds import Bound
from ncbounds.verdict import Measurement, check

__all__ = ["CONFIDENCE", "SIZES", "check_size", "tasks_for", "verdict_row"]

#: Confidence of every verdict and coverage test in the experiments.
CONFIDENCE = 0.99
#: Experiment sizes: "tiny" (seconds, for tests), "quick" (about a minute on 2 cores),
#: "default" (the full grids).
SIZES = ("tiny", "quick", "default")
#: :func:`tasks_for` raises a cell's tasks to at most this multiple of its budget.
RAISE_LIMIT = 8


def check_size(size: Any) -> str:
    """``size`` if it is one of :data:`SIZES`, else :class:`NCBoundsError`."""
    if size not in SIZES:
        raise NCBoundsError(f"size: expected one of {', '.join(map(repr, SIZES))}, got {size!r}")
    return size


def tasks_for(budget: int, per_task: int, *, minimum: int, maximum: int,
              smallest_bound: float | None = None) -> int:
    """Monte Carlo tasks for a cell: ``budget // per_task``, raised towards
    ⌈5 / smallest_bound⌉ when given (so that an error-free measurement certifies that bound
    at 99%: the one-sided Clopper–Pearson upper bound after T error-free trials is
    1 − 0.01^(1/T) ≈ 4.6 / T) but to at most 8 × the budget, then clipped to
    [minimum, maximum].

    ``per_task`` is the number of float64 values one task draws, so cells of very different
    cost (dimension, shots, ways) take comparable time.

    >>> tasks_for(1_000_000, 2 * 6 * 128, minimum=500, maximum=20_000)
    651
    >>> tasks_for(1_000_000, 2 * 6 * 128, minimum=500, maximum=20_000, smallest_bound=0.002)
    2500
    >>> tasks_for(1_000_000, 2 * 6 * 128, minimum=500, maximum=20_000, smallest_bound=1e-5)
    5208
    """
    tasks = budget // max(1, per_task)
    if smallest_bound is not None and smallest_bound > 0:
        raised = min(math.ceil(5.0 / smallest_bound), RAISE_LIMIT * budget // max(1, per_task))
        tasks = max(tasks, raised)
    return int(min(maximum, max(minimum, tasks)))


def verdict_row(
    bound: Bound,
    value: float,
    measurement: Measurement,
    *,
    confidence: float = CONFIDENCE,
    theory_item: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """The tidy columns comparing ``bound`` (uncapped ``value``) with ``measurement``.

    ``theory_item`` and ``label`` override the bound's item and name in the row (for
    example "T1b" for :data:`ncbounds.bounds.nearest_mean` with ways > 2, or a bound with a
    changed constant). See the module docstring for the columns.
    """
    value = float(value)
    kind = "probability" if bound.kind == "probability" else "cdnv"
    verdict = check(value, measurement, confidence=confidence, kind=kind)
    if math.isinf(value):
        ratio = 0.0
    elif value > 0:
        ratio = verdict.estimate / value
    else:
        ratio = math.inf if verdict.estimate > 0 else math.nan
    return {
        "bound": label or bound.name,
        "theory_item": theory_item or bound.theory_item,
        "bound_valid": bool(bound.valid),
        "bound_value": value,
        "bound_capped": min(value, 1.0) if kind == "probability" else value,
        "measured": verdict.estimate,
        "ci_low": verdict.low,
        "ci_high": verdict.high,
        "ci_method": verdict.method,
        "trials": measurement.trials,
        "confidence": confidence,
        "status": verdict.status,
        "slack": verdict.slack,
        "ratio": ratio,
        "vacuous": verdict.vacuous,
    }
