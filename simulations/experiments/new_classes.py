"""E4 new classes (T4): coverage of the U-statistic bound, the gap against l, and the margin.

THEORY.md T4 (Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121). A set 𝒞 of N classes
has means i.i.d. uniform in the cube [0, s]^p and equal total variance v = 1 (any law: only
the means and variances enter the CDNV), so V_ij = (v + v) / (2 ‖μ_i − μ_j‖²) (T0), the
margin is Δ = min_{i≠j} ‖μ_i − μ_j‖ and M = v / Δ² bounds every V_ij. Two parts
(``part``):

``"coverage"``: for l source classes drawn without replacement from 𝒞, the source average
Ĝ = Avg_{i≠j} V_ij estimates G = the average over all pairs of 𝒞, and

    G ≤ Ĝ + M sqrt(ln(1/δ) / (2 ⌊l/2⌋))   with probability ≥ 1 − δ
    (:data:`ncbounds.bounds.new_classes`, Hoeffding 1963; drawn without replacement from a
    finite 𝒞 this use is checked empirically, not proven).

Each cell draws one 𝒞 (from its seed) and ``draws`` source sets for every l (powers of two
from ``sources_min`` to ``sources_max``): coverage at δ ∈ {0.05, 0.1}
(:func:`ncbounds.verdict.check_coverage`) and the gap G − Ĝ (mean ≈ 0; its root mean square
shrinks like l^(−1/2) for large l when V_ij has a finite variance, i.e. for p > 4;
:func:`summarize` fits the log-log slope).

``"margin"``: ``draws`` independent sets of N means; Δ against the rigorous lower bound
Δ ≥ s (2δ / (N (N − 1) V_p))^(1/p) (:data:`ncbounds.bounds.cube_margin`, coverage at each
δ) and the small-distance asymptotics M V_p Δ^p / s^p → Exp(1) (M = N (N − 1)/2), whose
median gives Δ ≈ s (ln 2 / (M V_p))^(1/p) = ``cube_margin`` at δ = ln 2.

Columns, both parts: ``part``, ``classes`` (N), ``dim`` (p), ``side`` (s), ``draws``,
``seed``, ``delta``, ``bound`` ("new_classes" or "cube_margin"), ``theory_item`` ("T4"),
``violations``, ``violation_rate``, ``ci_low``, ``ci_high`` (one-sided Clopper–Pearson bounds
on the rate), ``p_value``, ``status`` (coverage verdict), ``confidence``.

Coverage rows (one per l and δ) add ``sources_min``, ``sources_max`` (configuration),
``sources`` (l), ``cdnv_population`` (G), ``cdnv_max`` (M), ``margin`` (Δ of this 𝒞),
``gap_mean``, ``gap_rms``, ``gap_quantile`` (the 1 − δ quantile of G − Ĝ), ``bound_median``
(median over draws of the bound) and ``bound_ratio_median`` (median bound / G: near 1 is
informative). Margin rows (one per δ) add ``margin_median``, ``margin_q05``, ``margin_q95``
(quantiles of Δ over draws), ``margin_bound`` (the rigorous lower bound at δ; a violation is
Δ below it), ``asymptotic_median``, ``median_ratio`` (empirical / asymptotic median),
``exp_mean`` (mean of M V_p Δ^p / s^p, 1 for Exp(1)), ``ks_statistic`` and ``ks_p_value``
(Kolmogorov–Smirnov test of that statistic against Exp(1)).

>>> rows = cell({"part": "margin", "classes": 50, "dim": 2, "side": 1.0, "draws": 40}, 0)
>>> [(r["delta"], r["status"]) for r in rows]
[(0.05, 'inconclusive'), (0.1, 'inconclusive')]
>>> 0.7 < rows[0]["median_ratio"] < 1.3
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import spatial, stats

from ncbounds import bounds
from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator
from ncbounds.verdict import check_coverage
from simulations.families import mean_layout
from simulations.sweep import grid

from ._common import CONFIDENCE, check_size

__all__ = ["DELTAS", "cdnv_matrix", "cell", "configs", "fit_slope", "summarize"]

#: The failure probabilities checked in every cell.
DELTAS = (0.05, 0.1)
#: Total variance of every class (it scales all CDNVs alike; the checks are invariant to it).
CLASS_VARIANCE = 1.0
_GATHER = 1 << 21  # (draws x l x l) values gathered at once


def cdnv_matrix(means: np.ndarray, variance: float = CLASS_VARIANCE) -> np.ndarray:
    """V_ij = (v + v) / (2 ‖μ_i − μ_j‖²) for classes of equal total variance v (THEORY.md T0),
    an (N, N) float64 array with zero diagonal; distances by :func:`scipy.spatial.distance.pdist`
    (difference form).

    >>> cdnv_matrix(np.array([[0.0, 0.0], [2.0, 0.0]])).tolist()
    [[0.0, 0.25], [0.25, 0.0]]
    """
    d2 = spatial.distance.pdist(means, "sqeuclidean")
    return spatial.distance.squareform((variance + variance) / (2.0 * d2))


def _shape(config: dict) -> tuple[int, int, float, int]:
    """(N, p, s, draws) of a configuration."""
    return (int(config["classes"]), int(config["dim"]), float(config["side"]),
            int(config["draws"]))


def _coverage_rows(config: dict, gen: np.random.Generator) -> list[dict]:
    n, p, s, draws = _shape(config)
    cdnv = cdnv_matrix(mean_layout("cube", n, p, scale=s, rng=gen))
    truth = float(cdnv.sum() / (n * (n - 1)))
    cdnv_max = float(cdnv.max())
    margin = math.sqrt((CLASS_VARIANCE + CLASS_VARIANCE) / (2.0 * cdnv_max))
    rows = []
    l = int(config["sources_min"])
    while l <= min(int(config["sources_max"]), n):
        picks = np.stack([gen.choice(n, size=l, replace=False) for _ in range(draws)])
        source = np.empty(draws)
        step = max(1, _GATHER // (l * l))
        for start in range(0, draws, step):
            idx = picks[start : start + step]
            source[start : start + step] = cdnv[idx[:, :, None], idx[:, None, :]].sum(axis=(1, 2))
        source /= l * (l - 1)
        gap = truth - source
        for delta in DELTAS:
            value = bounds.new_classes(cdnv_source=source, cdnv_max=cdnv_max, sources=l,
                                       delta=delta)
            violations = int(np.count_nonzero(truth > value))
            rows.append({
                "sources": l, "delta": delta, "bound": "new_classes", "theory_item": "T4",
                "cdnv_population": truth, "cdnv_max": cdnv_max, "margin": margin,
                "gap_mean": float(gap.mean()), "gap_rms": float(np.sqrt(np.mean(gap**2))),
                "gap_quantile": float(np.quantile(gap, 1.0 - delta)),
                "bound_median": float(np.median(value)),
                "bound_ratio_median": float(np.median(value)) / truth,
                **_coverage_columns(violations, draws, delta),
            })
        l *= 2
    return rows


def _coverage_columns(violations: int, draws: int, delta: float) -> dict[str, Any]:
    cov = check_coverage(violations, draws, delta, confidence=CONFIDENCE)
    return {"violations": violations, "violation_rate": cov.rate, "ci_low": cov.low,
            "ci_high": cov.high, "p_value": cov.p_value, "status": cov.status,
            "confidence": CONFIDENCE}


def _min_distance(points: np.ndarray) -> float:
    """min_{i≠j} ‖x_i − x_j‖ by a k-d tree (each point's nearest other point)."""
    dist, _ = spatial.cKDTree(points).query(points, k=2)
    return float(dist[:, 1].min())


def _margin_rows(config: dict, gen: np.random.Generator) -> list[dict]:
    n, p, s, draws = _shape(config)
    margins = np.array([_min_distance(mean_layout("cube", n, p, scale=s, rng=gen))
                        for _ in range(draws)])
    shape = {"side": s, "classes": n, "dim": p}
    # M V_p (Δ/s)^p = δ (Δ / cube_margin(δ))^p for any δ (here 1/2): the Exp(1) statistic
    exp_stat = 0.5 * (margins / bounds.cube_margin(**shape, delta=0.5)) ** p
    ks = stats.kstest(exp_stat, "expon")
    asymptotic = bounds.cube_margin(**shape, delta=math.log(2.0))
    median = float(np.median(margins))
    rows = []
    for delta in DELTAS:
        lower = bounds.cube_margin(**shape, delta=delta)
        violations = int(np.count_nonzero(margins < lower))
        rows.append({
            "delta": delta, "bound": "cube_margin", "theory_item": "T4",
            "margin_median": median, "margin_q05": float(np.quantile(margins, 0.05)),
            "margin_q95": float(np.quantile(margins, 0.95)), "margin_bound": lower,
            "asymptotic_median": asymptotic, "median_ratio": median / asymptotic,
            "exp_mean": float(exp_stat.mean()), "ks_statistic": float(ks.statistic),
            "ks_p_value": float(ks.pvalue), **_coverage_columns(violations, draws, delta),
        })
    return rows


def cell(config: dict, seed: int) -> list[dict]:
    """One E4 cell (``part`` "coverage" or "margin"; see the module docstring)."""
    gen = as_generator(seed, name="seed")
    if config["part"] == "coverage":
        return _coverage_rows(config, gen)
    if config["part"] == "margin":
        return _margin_rows(config, gen)
    raise NCBoundsError(f"part: expected 'coverage' or 'margin', got {config['part']!r}")


def configs(size: str) -> list[dict]:
    """The E4 grid at ``size`` ("tiny", "quick" or "default")."""
    size = check_size(size)
    if size == "tiny":
        cov = grid(classes=[400], dim=[16], sources_max=32, draws=50)
        mar = grid(classes=[10, 100], dim=[2], draws=50)
    elif size == "quick":
        cov = grid(classes=[2000], dim=[2, 16], sources_max=128, draws=200)
        mar = grid(classes=[10, 100, 1000], dim=[2, 5], draws=400)
    else:
        cov = grid(classes=[4000], dim=[2, 5, 16], sources_max=256, draws=400)
        # the asymptotics are accurate for p <= 5; p = 10 shows the departure (k-d trees in
        # p = 10 are slow, hence its shorter range of N)
        mar = (grid(classes=[10, 30, 100, 300, 1000, 3000, 10000], dim=[2, 3, 5], draws=500)
               + grid(classes=[10, 100, 1000], dim=[10], draws=500))
    return (grid(cov, part="coverage", side=1.0, sources_min=4)
            + grid(mar, part="margin", side=1.0))


def fit_slope(x: Any, y: Any, *, level: float = 0.95) -> dict[str, float]:
    """Least-squares slope of log y against log x with its ``level`` t confidence interval.

    >>> fit = fit_slope([4, 16, 64], [1.0, 0.5, 0.25])
    >>> round(fit["slope"], 12), fit["points"]
    (-0.5, 3)
    """
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    res = stats.linregress(lx, ly)
    half = math.nan
    if len(lx) > 2:
        half = float(stats.t.ppf(0.5 + level / 2, len(lx) - 2)) * float(res.stderr)
    return {"slope": float(res.slope), "slope_low": float(res.slope) - half,
            "slope_high": float(res.slope) + half, "intercept": float(res.intercept),
            "points": int(len(lx))}


def summarize(frame: Any, *, min_sources: int = 16) -> Any:
    """The log-log slope of the gap's root mean square against l, per (dim, classes), from
    the coverage rows (one point per seed and l), with its 95% confidence interval, against
    the predicted −1/2 (``consistent``: the interval contains it).

    −1/2 is the large-l rate: the variance of a U-statistic of order 2 is
    (4 (l − 2) ζ_1 + 2 ζ_2) / (l (l − 1)), whose second term steepens the slope at small l,
    so the fit uses l ≥ ``min_sources`` (all l when fewer than three values are that large).
    For p ≤ 4 the CDNV of two uniform points has no finite variance and the slope is flatter.

    >>> import pandas as pd
    >>> l = np.array([16, 32, 64, 128] * 2)
    >>> f = pd.DataFrame({"part": "coverage", "dim": 16, "classes": 1000, "delta": 0.05,
    ...     "sources": l, "seed": [0] * 4 + [1] * 4,
    ...     "gap_rms": l ** -0.5 * np.r_[[1.0] * 4, [1.1] * 4]})
    >>> s = summarize(f)
    >>> round(float(s["slope"].iloc[0]), 6), bool(s["consistent"].iloc[0])
    (-0.5, True)
    """
    import pandas as pd

    cov = frame[frame["part"] == "coverage"]
    cov = cov[cov["delta"] == cov["delta"].min()]  # gap_rms does not depend on δ
    out = []
    for (p, n), g in cov.groupby(["dim", "classes"], sort=True):
        large = g[g["sources"] >= min_sources]
        if large["sources"].nunique() >= 3:
            g = large
        fit = fit_slope(g["sources"], g["gap_rms"])
        out.append({"dim": p, "classes": n, "sources_from": int(g["sources"].min()),
                    "sources_to": int(g["sources"].max()), **fit, "predicted": -0.5,
                    "consistent": bool(fit["slope_low"] <= -0.5 <= fit["slope_high"])})
    return pd.DataFrame(out)
