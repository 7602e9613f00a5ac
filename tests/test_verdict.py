"""Verdicts and coverage checks (THEORY.md, "What a check means").

Reference intervals are computed independently: Clopper–Pearson by bisection on exact
binomial tail sums in mpmath (not via the beta-quantile identity the module uses), Student t
through scipy.stats.ttest_1samp, the coverage p-value as an mpmath binomial tail sum.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import ncbounds
from ncbounds import NCBoundsError
from ncbounds.verdict import (
    CoverageResult,
    Measurement,
    Verdict,
    check,
    check_coverage,
    clopper_pearson,
)


@pytest.fixture(autouse=True)
def _mpmath_precision():
    """30 significant digits for the mpmath references, restored afterwards."""
    with mpmath.workdps(30):
        yield


def _binom_sum(lo, hi, n, p):
    """sum_{i=lo}^{hi} C(n, i) p^i (1-p)^(n-i), term by term in mpmath."""
    return mpmath.fsum(mpmath.binomial(n, i) * p**i * (1 - p) ** (n - i) for i in range(lo, hi + 1))


def _binom_cdf(k, n, p):
    """P(X <= k) for X ~ Bin(n, p), summing the shorter of the two tails."""
    p = mpmath.mpf(p)
    return _binom_sum(0, k, n, p) if k <= n - k else 1 - _binom_sum(k + 1, n, n, p)


def _bisect(f, target, increasing):
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    for _ in range(75):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return float((lo + hi) / 2)


def cp_reference(k, n, level, alternative):
    """Clopper–Pearson by inverting the exact binomial tails: the upper end solves
    P(X <= k | p) = a, the lower end solves P(X >= k | p) = a (a = tail probability)."""
    a = (1 - mpmath.mpf(level)) / (2 if alternative == "two-sided" else 1)
    low = 0.0 if k == 0 else _bisect(lambda p: 1 - _binom_cdf(k - 1, n, p), a, increasing=True)
    high = 1.0 if k == n else _bisect(lambda p: _binom_cdf(k, n, p), a, increasing=False)
    if alternative == "less":
        low = 0.0
    if alternative == "greater":
        high = 1.0
    return low, high


CASES = [(0, 1), (1, 1), (0, 10), (1, 10), (5, 10), (10, 10), (3, 250), (17, 40), (249, 250)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize("level", [0.9, 0.99])
def test_clopper_pearson_against_mpmath(k, n, alternative, level):
    low, high = Measurement.error_rate(k, n).confidence_interval(level, alternative)
    ref_low, ref_high = cp_reference(k, n, level, alternative)
    assert low == pytest.approx(ref_low, rel=1e-9, abs=1e-15)
    assert high == pytest.approx(ref_high, rel=1e-9, abs=1e-15)
    assert (low, high) == tuple(clopper_pearson(k, n, level, alternative))


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_student_t_interval_against_scipy_ttest(alternative):
    rng = np.random.default_rng(0)
    values = rng.exponential(0.1, size=37)
    ci = Measurement.from_values(values).confidence_interval(0.95, alternative)
    ref = stats.ttest_1samp(values, 0.0, alternative=alternative).confidence_interval(0.95)
    assert ci.low == pytest.approx(ref.low, rel=1e-12)
    assert ci.high == pytest.approx(ref.high, rel=1e-12)


def test_measurements_basic_properties():
    m = Measurement.error_rate(3, 12, label="mc")
    assert (m.estimate, m.kind, m.errors, m.trials, m.label, m.method) == (
        0.25, "error_rate", 3, 12, "mc", "clopper-pearson")
    e = Measurement.exact(0.125)
    assert e.confidence_interval(0.99, "less") == (0.125, 0.125) and e.method == "exact"
    same = Measurement.from_values([0.2, 0.2, 0.2])
    assert same.estimate == pytest.approx(0.2) and same.method == "student-t"
    assert same.confidence_interval() == pytest.approx((0.2, 0.2))
    assert same.values is not None and not same.values.flags.writeable


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: Measurement.error_rate(5, 4), r"errors: expected at most trials = 4, got 5"),
        (lambda: Measurement.error_rate(-1, 4), r"errors: expected an integer >= 0"),
        (lambda: Measurement.error_rate(1, 0), r"trials: expected an integer >= 1"),
        (lambda: Measurement.error_rate(1.0, 4), r"errors: expected an integer"),
        (lambda: Measurement.exact(float("nan")), r"value: expected a finite number"),
        (lambda: Measurement.exact("a"), r"value: expected a finite number"),
        (lambda: Measurement.from_values([1.0]), r"values: expected a 1-D array of at least 2"),
        (lambda: Measurement.from_values([1.0, np.inf]), r"values: expected finite numbers"),
        (lambda: Measurement(0.1, "guess"), r"kind: expected"),
        (lambda: Measurement(0.1, "error_rate"), r"errors, trials: .* needs both"),
        (lambda: Measurement(0.1, "mean"), r"values: a mean measurement needs"),
        (lambda: Measurement.exact(0.1).confidence_interval(1.0), r"level: expected"),
        (lambda: Measurement.exact(0.1).confidence_interval(0.9, "upper"), r"alternative:"),
        (lambda: check(float("nan"), 0.1), r"bound_value: expected a number >= 0"),
        (lambda: check(-0.5, 0.1), r"bound_value: expected a number >= 0"),
        (lambda: check("high", 0.1), r"bound_value: expected a number"),
        (lambda: check(0.5, 0.1, confidence=1.0), r"confidence: expected a number in \(0, 1\)"),
        (lambda: check(0.5, 0.1, kind="distance"), r"kind: expected one of"),
        (lambda: check(0.5, "0.1"), r"measurement: expected a Measurement or a number"),
        (lambda: check(0.5, True), r"measurement: expected a Measurement or a number"),
        (lambda: check_coverage(5, 4, 0.1), r"violations: expected at most trials = 4"),
        (lambda: check_coverage(1, 0, 0.1), r"trials: expected an integer >= 1"),
        (lambda: check_coverage(1, 10, 0.0), r"delta: expected a number in \(0, 1\)"),
        (lambda: check_coverage(1, 10, 0.1, confidence=0), r"confidence: expected"),
    ],
)
def test_bad_inputs_name_the_argument(call, pattern):
    with pytest.raises(NCBoundsError, match=pattern):
        call()


def test_check_rule_at_the_clopper_pearson_ends():
    m = Measurement.error_rate(9, 300)
    low, _ = cp_reference(9, 300, 0.99, "greater")
    _, high = cp_reference(9, 300, 0.99, "less")
    assert check(high * (1 + 1e-9), m).status == "holds"
    assert check(high * (1 - 1e-9), m).status == "inconclusive"
    assert check(low * (1 + 1e-9), m).status == "inconclusive"
    assert check(low * (1 - 1e-9), m).status == "violated"
    v = check(0.2, m, confidence=0.99)
    assert v.low == pytest.approx(low, rel=1e-9) and v.high == pytest.approx(high, rel=1e-9)
    assert (v.method, v.confidence, v.estimate) == ("clopper-pearson", 0.99, 9 / 300)


_ORDER = {"violated": 0, "inconclusive": 1, "holds": 2}


@settings(max_examples=60)
@given(
    n=st.integers(1, 400),
    frac=st.floats(0, 1),
    b1=st.floats(0, 1.2),
    b2=st.floats(0, 1.2),
    confidence=st.sampled_from([0.9, 0.99, 0.999]),
)
def test_check_is_monotone_in_the_bound_and_matches_its_interval(n, frac, b1, b2, confidence):
    m = Measurement.error_rate(int(round(frac * n)), n)
    lo_b, hi_b = sorted((b1, b2))
    v_lo, v_hi = check(lo_b, m, confidence=confidence), check(hi_b, m, confidence=confidence)
    assert _ORDER[v_lo.status] <= _ORDER[v_hi.status]
    for v, b in ((v_lo, lo_b), (v_hi, hi_b)):
        assert v.low <= v.estimate <= v.high
        assert (v.status == "holds") == (v.high <= b)
        assert (v.status == "violated") == (v.low > b)
    # higher confidence never turns an inconclusive check conclusive
    wider = check(lo_b, m, confidence=0.9999)
    if v_lo.status == "inconclusive":
        assert wider.status == "inconclusive"


def test_exact_measurements_compare_directly():
    b = 0.0192
    for meas in (b, np.float64(b), Measurement.exact(b)):
        v = check(b, meas)
        assert v.status == "holds" and v.method == "exact" and v.low == v.high == b
    assert check(b, math.nextafter(b, 1.0)).status == "violated"
    assert check(b, 0.045).status == "violated"  # the T2 counterexample, exactly measured
    assert check(1, 0).status == "holds"


def test_student_t_verdicts():
    values = np.array([0.10, 0.12, 0.11, 0.13, 0.09, 0.10])
    m = Measurement.from_values(values)
    ref = stats.ttest_1samp(values, 0.0, alternative="less").confidence_interval(0.99)
    v = check(ref.high * (1 + 1e-9), m, kind="cdnv")
    assert v.status == "holds" and v.method == "student-t"
    assert check(ref.high * (1 - 1e-9), m, kind="cdnv").status == "inconclusive"
    assert check(0.01, m, kind="cdnv").status == "violated"


def test_slack_and_vacuity():
    assert check(0.3, 0.1).slack == pytest.approx(3.0)
    assert check(0.3, Measurement.error_rate(0, 100)).slack == math.inf
    assert math.isnan(check(0.0, 0.0).slack)
    assert check(1.0, 0.2).vacuous and check(7.5, 0.2).vacuous
    assert not check(0.999, 0.2).vacuous
    assert check(math.inf, 0.2, kind="cdnv").vacuous
    assert not check(1e6, 0.2, kind="cdnv").vacuous
    assert check(math.inf, 0.2, kind="rate").vacuous
    v = check(math.inf, Measurement.error_rate(5, 5), kind="cdnv")
    assert v.status == "holds" and v.slack == math.inf


def test_verdict_frame_and_text():
    v = check(0.25, Measurement.error_rate(30, 1000, label="T1 p=64"))
    assert isinstance(v, Verdict)
    frame = v.to_frame()
    assert frame.shape[0] == 1
    for col in ("status", "bound", "estimate", "low", "high", "confidence", "slack",
                "vacuous", "method", "label"):
        assert col in frame.columns
    assert frame.loc[0, "status"] == "holds" and frame.loc[0, "bound"] == 0.25
    text = str(v)
    assert text.startswith("T1 p=64: holds") and "0.25" in text and "clopper-pearson" in text
    assert "(exact)" in str(check(0.1, 0.05)) and "vacuous" in str(check(2.0, 0.05))
    assert ncbounds.check is check and ncbounds.Verdict is Verdict


# ---------------------------------------------------------------------------------------
# Coverage of probability-delta statements
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("violations,trials,delta", [(0, 50, 0.05), (7, 50, 0.05),
                                                     (12, 100, 0.05), (30, 30, 0.2)])
def test_coverage_p_value_is_the_binomial_tail(violations, trials, delta):
    # p-value of H0: rate <= delta against "greater": P(X >= violations | delta).
    ref = 1 - _binom_cdf(violations - 1, trials, delta) if violations else mpmath.mpf(1)
    res = check_coverage(violations, trials, delta)
    assert isinstance(res, CoverageResult)
    assert res.p_value == pytest.approx(float(ref), rel=1e-9)
    assert res.rate == violations / trials
    ref_low, _ = cp_reference(violations, trials, 0.99, "greater")
    _, ref_high = cp_reference(violations, trials, 0.99, "less")
    assert res.low == pytest.approx(ref_low, rel=1e-9, abs=1e-15)
    assert res.high == pytest.approx(ref_high, rel=1e-9, abs=1e-15)


def test_coverage_violated_boundary():
    trials, delta, alpha = 200, 0.05, 0.01
    # smallest count whose exact upper tail under delta falls below alpha (mpmath)
    first = next(v for v in range(trials + 1)
                 if 1 - _binom_cdf(v - 1, trials, delta) < alpha)
    assert check_coverage(first, trials, delta).status == "violated"
    assert check_coverage(first - 1, trials, delta).status != "violated"


def test_coverage_holds_boundary_with_no_violations():
    # With 0 violations the one-sided upper bound is 1 - (1 - c)^(1/t): it is <= delta from
    # t >= ln(1 - c) / ln(1 - delta) on (= 89.78 at c = 0.99, delta = 0.05).
    delta, c = 0.05, 0.99
    t_star = math.ceil(math.log(1 - c) / math.log(1 - delta))
    assert t_star == 90
    assert check_coverage(0, t_star, delta, confidence=c).status == "holds"
    assert check_coverage(0, t_star - 1, delta, confidence=c).status == "inconclusive"


@pytest.mark.parametrize("trials,delta", [(60, 0.1), (500, 0.01)])
def test_coverage_test_and_interval_agree(trials, delta):
    # The exact test and the Clopper–Pearson interval are duals: rejecting rate <= delta at
    # level a is the same as the one-sided lower bound exceeding delta.
    for v in range(trials + 1):
        res = check_coverage(v, trials, delta)
        assert (res.status == "violated") == (res.low > delta)
        assert res.status != "holds" or res.high <= delta


def test_coverage_extremes_frame_and_text():
    full = check_coverage(40, 40, 0.5)
    assert full.status == "violated" and full.rate == 1.0 and full.high == 1.0
    none = check_coverage(0, 1000, 0.05)
    assert none.status == "holds" and none.low == 0.0 and none.p_value == 1.0
    frame = none.to_frame()
    assert frame.shape[0] == 1 and set(("violations", "trials", "delta", "rate", "low", "high",
                                        "p_value", "status")) <= set(frame.columns)
    assert "holds" in str(none) and "0/1000" in str(none)
    assert ncbounds.check_coverage is check_coverage
