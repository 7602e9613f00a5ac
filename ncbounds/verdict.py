"""Verdicts: does a measurement respect a bound, at a stated confidence?

The rule is THEORY.md, "What a check means": a bound *holds* when a one-sided upper
confidence bound of the measured quantity is <= the bound, is *violated* when a one-sided
lower confidence bound exceeds it, and the check is *inconclusive* otherwise. Error rates use
the exact Clopper–Pearson interval, per-episode values a Student t interval, and exact
measurements (finite supports, closed forms) are compared directly. Probability-delta
statements (T3, T4) are checked by coverage over repetitions with a one-sided exact binomial
test (:func:`check_coverage`).

>>> from ncbounds.verdict import Measurement, check
>>> v = check(0.25, Measurement.error_rate(errors=30, trials=1000))
>>> v.status, v.method, round(v.slack, 2)
('holds', 'clopper-pearson', 8.33)
>>> check(0.01, 0.02).status     # a plain float is an exact measurement
'violated'
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from ._errors import NCBoundsError
from ._validation import check_probability, describe, to_numpy

__all__ = [
    "ConfidenceInterval",
    "Measurement",
    "Verdict",
    "CoverageResult",
    "check",
    "check_coverage",
    "clopper_pearson",
]

_ALTERNATIVES = ("two-sided", "less", "greater")
_CHECK_KINDS = ("probability", "cdnv", "rate")


class ConfidenceInterval(NamedTuple):
    """A confidence interval (low, high); one-sided intervals have an infinite or 0/1 end."""

    low: float
    high: float


def _level(value: Any, name: str) -> float:
    return check_probability(value, name)


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise NCBoundsError(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    if int(value) < minimum:
        raise NCBoundsError(f"{name}: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


def _check_alternative(alternative: Any) -> None:
    if alternative not in _ALTERNATIVES:
        raise NCBoundsError(
            f"alternative: expected one of {', '.join(_ALTERNATIVES)}, got {alternative!r}"
        )


def clopper_pearson(
    errors: int, trials: int, level: float = 0.95, alternative: str = "two-sided"
) -> ConfidenceInterval:
    """Exact (Clopper–Pearson) interval for a binomial proportion, by beta quantiles.

    Two-sided at ``level``: [B(a/2; k, n-k+1), B(1-a/2; k+1, n-k)] with a = 1 - level,
    the ends 0 when k = 0 and 1 when k = n. ``alternative="less"`` gives [0, upper] and
    ``"greater"`` gives [lower, 1], each one-sided at ``level``.

    >>> abs(clopper_pearson(0, 10, 0.95, "less").high - (1 - 0.05 ** (1 / 10))) < 1e-12
    True
    """
    n = _count(trials, "trials", 1)
    k = _count(errors, "errors", 0)
    if k > n:
        raise NCBoundsError(f"errors: expected at most trials = {n}, got {k}")
    level = _level(level, "level")
    _check_alternative(alternative)
    alpha = 1.0 - level
    tail = alpha / 2 if alternative == "two-sided" else alpha
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1.0 - tail, k + 1, n - k))
    if alternative == "less":
        low = 0.0
    elif alternative == "greater":
        high = 1.0
    return ConfidenceInterval(low, high)


@dataclass(frozen=True)
class Measurement:
    """A measured quantity with what is needed for its confidence interval.

    ``kind`` is "error_rate" (``errors`` out of ``trials``, Clopper–Pearson), "exact" (no
    sampling error) or "mean" (per-episode ``values``, Student t). Build one with
    :meth:`error_rate`, :meth:`exact` or :meth:`from_values`.

    >>> Measurement.error_rate(5, 100).confidence_interval(0.95)
    ConfidenceInterval(low=0.0164..., high=0.1128...)
    >>> Measurement.exact(0.5).confidence_interval()
    ConfidenceInterval(low=0.5, high=0.5)
    """

    estimate: float
    kind: str
    errors: int | None = None
    trials: int | None = None
    values: np.ndarray | None = field(default=None, repr=False, compare=False)
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("error_rate", "exact", "mean"):
            raise NCBoundsError(
                f"kind: expected 'error_rate', 'exact' or 'mean', got {self.kind!r}"
            )
        if self.kind == "error_rate" and (self.errors is None or self.trials is None):
            raise NCBoundsError("errors, trials: an error_rate measurement needs both; "
                                "build it with Measurement.error_rate(errors, trials)")
        if self.kind == "mean" and (self.values is None or np.size(self.values) < 2):
            raise NCBoundsError("values: a mean measurement needs at least 2 values; "
                                "build it with Measurement.from_values(values)")

    @classmethod
    def error_rate(cls, errors: int, trials: int, *, label: str = "") -> Measurement:
        """``errors`` failures out of ``trials`` independent Bernoulli trials."""
        trials = _count(trials, "trials", 1)
        errors = _count(errors, "errors", 0)
        if errors > trials:
            raise NCBoundsError(f"errors: expected at most trials = {trials}, got {errors}")
        return cls(errors / trials, "error_rate", errors=errors, trials=trials, label=label)

    @classmethod
    def exact(cls, value: float, *, label: str = "") -> Measurement:
        """A value without sampling error (enumeration, closed form)."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise NCBoundsError(f"value: expected a finite number, got {describe(value)}") from None
        if not math.isfinite(v):
            raise NCBoundsError(f"value: expected a finite number, got {v!r}")
        return cls(v, "exact", label=label)

    @classmethod
    def from_values(cls, values: Any, *, label: str = "") -> Measurement:
        """The mean of per-episode values (Student t interval; at least two values)."""
        arr = np.asarray(to_numpy(values))
        if arr.dtype.kind not in "biuf" or arr.ndim != 1 or arr.size < 2:
            raise NCBoundsError(
                f"values: expected a 1-D array of at least 2 numbers, got {describe(values)}"
            )
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise NCBoundsError(
                f"values: expected finite numbers, got {int((~np.isfinite(arr)).sum())} "
                "NaN or inf"
            )
        arr.setflags(write=False)
        return cls(float(arr.mean()), "mean", trials=int(arr.size), values=arr, label=label)

    @property
    def method(self) -> str:
        """The interval method: "clopper-pearson", "exact" or "student-t"."""
        return {"error_rate": "clopper-pearson", "exact": "exact", "mean": "student-t"}[self.kind]

    def confidence_interval(
        self, level: float = 0.95, alternative: str = "two-sided"
    ) -> ConfidenceInterval:
        """The interval at ``level``; "less" bounds from above, "greater" from below."""
        level = _level(level, "level")
        _check_alternative(alternative)
        if self.kind == "exact":
            return ConfidenceInterval(self.estimate, self.estimate)
        if self.kind == "error_rate":
            return clopper_pearson(self.errors, self.trials, level, alternative)
        values = np.asarray(self.values, dtype=np.float64)
        n = values.size
        sem = float(np.std(values, ddof=1)) / math.sqrt(n)
        alpha = 1.0 - level
        tail = alpha / 2 if alternative == "two-sided" else alpha
        half = float(stats.t.ppf(1.0 - tail, n - 1)) * sem
        low = -math.inf if alternative == "less" else self.estimate - half
        high = math.inf if alternative == "greater" else self.estimate + half
        return ConfidenceInterval(low, high)


def _as_measurement(measurement: Any) -> Measurement:
    if isinstance(measurement, Measurement):
        return measurement
    if isinstance(measurement, (numbers.Real, np.floating, np.integer)) and not isinstance(
        measurement, bool
    ):
        return Measurement.exact(float(measurement))
    if isinstance(measurement, np.ndarray) and measurement.ndim == 0:
        return Measurement.exact(float(measurement))
    raise NCBoundsError(
        f"measurement: expected a Measurement or a number, got {describe(measurement)}"
    )


def _frame(row: dict[str, Any]) -> Any:
    import pandas as pd  # lazily: pandas is only needed for tidy output

    return pd.DataFrame([row])


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`.

    ``status`` is "holds", "violated" or "inconclusive"; ``low`` and ``high`` are the
    one-sided lower and upper confidence bounds used (each at ``confidence``; equal to the
    estimate for exact measurements); ``slack`` = bound / estimate (+inf when the estimate is
    0); ``vacuous`` is True for a probability bound >= 1 or an infinite bound.
    """

    status: str
    bound: float
    estimate: float
    low: float
    high: float
    confidence: float
    slack: float
    vacuous: bool
    method: str
    kind: str = "probability"
    label: str = ""

    def to_frame(self) -> Any:
        """One tidy row as a pandas DataFrame."""
        return _frame(asdict(self))

    def __str__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        if self.method == "exact":
            measured = f"measured {self.estimate:.6g} (exact)"
        else:
            measured = (
                f"measured {self.estimate:.6g}, {self.confidence:.0%} one-sided bounds "
                f"[{self.low:.6g}, {self.high:.6g}] ({self.method})"
            )
        vacuous = ", vacuous" if self.vacuous else ""
        return (
            f"{name}{self.status}: bound {self.bound:.6g}{vacuous}; {measured}; "
            f"slack {self.slack:.3g}"
        )


def check(
    bound_value: float,
    measurement: Measurement | float,
    *,
    confidence: float = 0.99,
    kind: str = "probability",
) -> Verdict:
    """Compare an upper bound with a measurement (THEORY.md, "What a check means").

    holds: the one-sided upper confidence bound (at ``confidence``) is <= ``bound_value``;
    violated: the one-sided lower confidence bound is > ``bound_value``; inconclusive
    otherwise. A plain number is an exact measurement, compared directly. ``kind`` is the
    bound's kind ("probability", "cdnv" or "rate"): it decides vacuity (probability: bound
    >= 1; cdnv and rate: bound = +inf).

    >>> v = check(0.05, Measurement.error_rate(50, 1000))
    >>> v.status, v.low < 0.05 < v.high
    ('inconclusive', True)
    >>> check(float("inf"), 3.0, kind="cdnv").vacuous
    True
    """
    try:
        bound = float(bound_value)
    except (TypeError, ValueError):
        raise NCBoundsError(f"bound_value: expected a number, got {describe(bound_value)}") from None
    if math.isnan(bound) or bound < 0:
        raise NCBoundsError(f"bound_value: expected a number >= 0 (or +inf), got {bound!r}")
    confidence = _level(confidence, "confidence")
    if kind not in _CHECK_KINDS:
        raise NCBoundsError(f"kind: expected one of {', '.join(_CHECK_KINDS)}, got {kind!r}")
    m = _as_measurement(measurement)
    low = m.confidence_interval(confidence, "greater").low
    high = m.confidence_interval(confidence, "less").high
    if high <= bound:
        status = "holds"
    elif low > bound:
        status = "violated"
    else:
        status = "inconclusive"
    if m.estimate != 0:
        slack = bound / m.estimate
    else:
        slack = math.inf if bound > 0 else math.nan
    vacuous = bound >= 1.0 if kind == "probability" else math.isinf(bound)
    return Verdict(status, bound, m.estimate, low, high, confidence, slack, bool(vacuous),
                   m.method, kind, m.label)


@dataclass(frozen=True)
class CoverageResult:
    """The outcome of :func:`check_coverage` for a probability-delta statement.

    ``rate`` = violations / trials; ``low``, ``high`` the one-sided Clopper–Pearson bounds at
    ``confidence``; ``p_value`` of the exact one-sided binomial test of rate <= delta.
    """

    violations: int
    trials: int
    delta: float
    rate: float
    low: float
    high: float
    p_value: float
    status: str
    confidence: float

    def to_frame(self) -> Any:
        """One tidy row as a pandas DataFrame."""
        return _frame(asdict(self))

    def __str__(self) -> str:
        return (
            f"coverage {self.status}: {self.violations}/{self.trials} violations "
            f"(rate {self.rate:.4g}, {self.confidence:.0%} one-sided bounds "
            f"[{self.low:.4g}, {self.high:.4g}]) against delta = {self.delta:.4g}; "
            f"p = {self.p_value:.3g}"
        )


def check_coverage(
    violations: int, trials: int, delta: float, *, confidence: float = 0.99
) -> CoverageResult:
    """Check a statement "with probability >= 1 - delta" by its violation rate (T3, T4).

    Over ``trials`` independent repetitions the statement failed ``violations`` times.
    violated: the exact one-sided binomial test (scipy.stats.binomtest, alternative
    "greater") rejects rate <= delta at level 1 - confidence; holds: the one-sided
    Clopper–Pearson upper bound at ``confidence`` is <= delta; inconclusive otherwise.

    >>> check_coverage(0, 1000, 0.05).status
    'holds'
    >>> check_coverage(90, 1000, 0.05).status
    'violated'
    >>> check_coverage(0, 10, 0.05).status       # too few trials to tell
    'inconclusive'
    """
    trials = _count(trials, "trials", 1)
    violations = _count(violations, "violations", 0)
    if violations > trials:
        raise NCBoundsError(f"violations: expected at most trials = {trials}, got {violations}")
    delta = check_probability(delta, "delta")
    confidence = _level(confidence, "confidence")
    p_value = float(stats.binomtest(violations, trials, delta, alternative="greater").pvalue)
    low = clopper_pearson(violations, trials, confidence, "greater").low
    high = clopper_pearson(violations, trials, confidence, "less").high
    if p_value < 1.0 - confidence:
        status = "violated"
    elif high <= delta:
        status = "holds"
    else:
        status = "inconclusive"
    return CoverageResult(violations, trials, delta, violations / trials, low, high, p_value,
                          status, confidence)
