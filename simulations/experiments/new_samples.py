"""E3 new samples (T3): coverage of the CDNV bound over repeated draws of the source sample.

THEORY.md T3 (Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121): for a fixed f with
‖f(x) − c_0‖ ≤ B and m samples per class, with probability ≥ 1 − δ over the sample S,

    V_f(P_i, P_j) ≤ (Var_f(S_i) + Var_f(S_j) + e_i + e_j) / (2 (b − η)²)   (+inf if b ≤ η),

with the McDiarmid ε1 and Hoeffding ε2 at δ/4 each
(:func:`ncbounds.bounds.new_samples_from_samples`). A cell draws ``draws`` independent
samples S from a bounded family, evaluates the bound on each at δ ∈ {0.05, 0.1} and counts
the draws in which the exact population CDNV exceeds it; the violation rate is tested
against δ with :func:`ncbounds.verdict.check_coverage` (one-sided exact binomial test and
Clopper–Pearson bounds). Draws with b ≤ η give +inf (vacuous): the bound is vacuous for small
m and informative only for large m.

Family (``family`` = "ball"): two classes uniform in balls of radius r around −e_1/2 and
+e_1/2 (:class:`simulations.families.BallUniformClasses`, d = 1), r chosen so that the
population CDNV p r² / ((p + 2) d²) equals ``cdnv``; c_0 = 0 (fixed before sampling) and
B = 1/2 + r.

Columns (one row per cell and δ): the configuration ``family``, ``dim``, ``samples`` (m per
class), ``cdnv``, ``draws``, ``seed``; then ``cdnv_exact``, ``ball_radius`` (r), ``radius``
(B), ``distance`` (d), ``bound`` ("new_samples"), ``theory_item`` ("T3"), ``delta``,
``violations`` (draws with population CDNV > bound), ``violation_rate``, ``ci_low``,
``ci_high`` (one-sided Clopper–Pearson bounds on the rate at ``confidence``), ``p_value``
(exact binomial test of rate ≤ δ), ``status`` (coverage verdict: "holds", "violated",
"inconclusive"), ``vacuous_draws``, ``vacuous_fraction``, ``bound_median``, ``bound_min``
(over the draws; +inf when vacuous), ``ratio_median`` (median bound / population CDNV:
1 would be a tight bound), ``cdnv_empirical_mean`` (mean empirical CDNV of the draws),
``confidence``.

>>> rows = cell({"family": "ball", "dim": 2, "samples": 20_000, "cdnv": 0.05, "draws": 3}, 0)
>>> [(r["delta"], r["violations"], r["vacuous_draws"]) for r in rows]
[(0.05, 0, 0), (0.1, 0, 0)]
>>> 1 < rows[0]["ratio_median"] < 2
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator
from ncbounds.bounds import new_samples_from_samples
from ncbounds.verdict import check_coverage
from simulations.families import BallUniformClasses
from simulations.sweep import grid

from ._common import CONFIDENCE, check_size

__all__ = ["DELTAS", "build_family", "cell", "configs", "summarize"]

#: The failure probabilities checked in every cell.
DELTAS = (0.05, 0.1)


def build_family(config: dict) -> BallUniformClasses:
    """Two balls around ∓e_1/2 whose population CDNV is ``cdnv``.

    >>> fam = build_family({"family": "ball", "dim": 3, "cdnv": 0.3})
    >>> round(fam.cdnv(), 12), fam.radius == 0.5 + float(fam.ball_radius[0])
    (0.3, True)
    """
    if config["family"] != "ball":
        raise NCBoundsError(f"family: expected 'ball', got {config['family']!r}")
    p, cdnv = int(config["dim"]), float(config["cdnv"])
    means = np.zeros((2, p))
    means[:, 0] = (-0.5, 0.5)
    return BallUniformClasses(means, ball_radius=math.sqrt(cdnv * (p + 2) / p))


def cell(config: dict, seed: int) -> list[dict]:
    """One E3 cell: ``draws`` samples of m points per class, T3 coverage at each δ."""
    fam = build_family(config)
    gen = as_generator(seed, name="seed")
    m, draws = int(config["samples"]), int(config["draws"])
    truth, radius, centre = fam.cdnv(), fam.radius, np.zeros(fam.dim)
    values = np.empty((len(DELTAS), draws))
    empirical = np.empty(draws)
    for r in range(draws):
        x_i, x_j = fam.draw_class(0, m, gen), fam.draw_class(1, m, gen)
        for k, delta in enumerate(DELTAS):
            res = new_samples_from_samples(x_i, x_j, radius=radius, delta=delta, center=centre)
            values[k, r] = res.bound
        empirical[r] = res.cdnv_empirical
    rows = []
    for delta, bound in zip(DELTAS, values):
        violations = int(np.count_nonzero(truth > bound))
        coverage = check_coverage(violations, draws, delta, confidence=CONFIDENCE)
        vacuous = int(np.count_nonzero(np.isinf(bound)))
        median = float(np.median(bound))
        rows.append({
            "cdnv_exact": truth, "ball_radius": float(fam.ball_radius[0]), "radius": radius,
            "distance": 1.0, "bound": "new_samples", "theory_item": "T3", "delta": delta,
            "violations": violations, "violation_rate": coverage.rate,
            "ci_low": coverage.low, "ci_high": coverage.high, "p_value": coverage.p_value,
            "status": coverage.status, "vacuous_draws": vacuous,
            "vacuous_fraction": vacuous / draws, "bound_median": median,
            "bound_min": float(bound.min()), "ratio_median": median / truth,
            "cdnv_empirical_mean": float(empirical.mean()), "confidence": CONFIDENCE,
        })
    return rows


def configs(size: str) -> list[dict]:
    """The E3 grid at ``size`` ("tiny", "quick" or "default")."""
    size = check_size(size)
    if size == "tiny":
        return grid(family="ball", dim=[2], samples=[100, 20_000], cdnv=[0.5], draws=10)
    if size == "quick":
        return grid(family="ball", dim=[2, 16], samples=[100, 1_000, 10_000],
                    cdnv=[0.05, 0.5, 2.0], draws=100)
    return grid(family="ball", dim=[2, 16], samples=[100, 300, 1_000, 3_000, 10_000, 50_000],
                cdnv=[0.05, 0.5, 2.0], draws=100)


def summarize(frame: Any) -> Any:
    """Coverage pooled over seeds per (dim, cdnv, samples, delta): total violations and
    draws, the pooled coverage verdict, the vacuous fraction and the median bound ratio.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"dim": [2, 2], "cdnv": [0.5, 0.5], "samples": [100, 100],
    ...     "delta": [0.05, 0.05], "violations": [0, 0], "draws": [100, 100],
    ...     "vacuous_draws": [100, 40], "ratio_median": [math.inf, 3.0]})
    >>> summarize(f)[["draws", "status", "vacuous_fraction"]].to_dict("records")
    [{'draws': 200, 'status': 'holds', 'vacuous_fraction': 0.7}]
    """
    import pandas as pd

    keys = ["dim", "cdnv", "samples", "delta"]
    out = []
    for key, g in frame.groupby(keys, sort=True):
        draws, violations = int(g["draws"].sum()), int(g["violations"].sum())
        coverage = check_coverage(violations, draws, float(key[-1]), confidence=CONFIDENCE)
        out.append({
            **dict(zip(keys, key)), "draws": draws, "violations": violations,
            "violation_rate": coverage.rate, "ci_high": coverage.high,
            "p_value": coverage.p_value, "status": coverage.status,
            "vacuous_fraction": float(g["vacuous_draws"].sum()) / draws,
            "ratio_median": float(g["ratio_median"].median()),
        })
    return pd.DataFrame(out)
