"""E1 nearest-mean: the measured few-shot error against T1, T1b and T1c (THEORY.md T1).

Galanti, György & Hutter (ICLR 2022, arXiv 2112.15121), Prop. 5 and the explicit forms of
THEORY.md: for k balanced classes with n shots each, the nearest-mean rule
h_S(x) = argmin_c ‖x − μ̂_c‖ has

    E_S Pr[h_S(x) ≠ y] ≤ 16 (k − 1)(1 + 2/n) · Avg_{c≠c'} V_f(P_c, P_c')      (T1, T1b)
    E_S Pr[h_S(x) ≠ y] ≤ 8 (λ_1 + λ_2)/d² + 16 (v_1 + v_2)/(n d²)           (T1c, k = 2)

for any class laws with finite second moments. Each cell builds one family whose population
CDNV is exactly ``cdnv``, measures its error and checks both bounds.

Families (``family``; class means at the vertices of a regular simplex with side d = 1, so
every pair has the same CDNV V = v / d² with v the total variance of each class):

- ``"gaussian"``: isotropic N(μ_c, (v/p) I). Two-way cells use the Rao–Blackwellised
  estimator (THEORY.md T5), five-way cells plain Monte Carlo.
- ``"gaussian_aniso"``: N(μ_c, Σ) with Σ diagonal, eigenvalues ∝ (i + 1)^(−``decay``)
  summing to v; the largest one lies along the first mean difference (the worst direction).
- ``"spherical_pareto"``: μ_c + R U, U uniform on the sphere and a heavy-tailed atomic radius
  law: R ∝ 2^j with probability ∝ 2^(−``tail`` · j), j = 0..9 (a truncated, discretised
  Pareto law of index ``tail``: most of the mass at small radii, most of the variance in
  the rare large ones).
- ``"finite_outlier"``: two atoms per class, a bulk atom μ_c − q t u_c (probability 1 − q)
  and a rare atom μ_c + R u_c (probability q) at R = ``reach`` · d from the mean towards the
  next class (u_c = unit vector from μ_c to μ_{c+1}; reach > 1/2 puts it past the midpoint),
  with t = R / (1 − q) and q = v / (R² + v) so that Var = q R² / (1 − q) = v; the error is
  exact (enumeration). This is the near-extremal structure for T1 that E5 finds on its own:
  for small CDNV the two-way error is about q/2 while T1 is about 16 q R² (1 + 2/n), so the
  measured / bound ratio stays near 0.1 however small the CDNV.

The grid (``configs(size)``) runs over ``dim``, ``shots`` (1, 5, 20), ``ways`` (2, 5) and
``cdnv`` (about 1e-3 to 1): T1 is informative (bound < 1) only for small CDNV
(V < 1/48 at n = 1, k = 2; V < 1/192 at k = 5) and the larger values show it vacuous.

Columns of each row (one row per bound checked in a cell): the configuration ``family``,
``dim``, ``shots``, ``ways``, ``cdnv`` (requested population CDNV), ``decay`` / ``tail`` /
``reach`` (family parameters, missing for the others), ``budget``, ``min_tasks``, ``max_tasks``
(Monte Carlo tasks: ``budget`` float64 draws per cell, raised towards 5 / (smallest bound),
so that an error-free measurement certifies the bound at 99%, but to at most 8 × the budget,
then clipped to [``min_tasks``, ``max_tasks``]; see ``_common.tasks_for``), ``seed``; then ``cdnv_exact`` (the family's
exact average CDNV), ``variance`` (v = Var(P_c)), ``lambda_max`` (largest eigenvalue of
Σ_c), ``distance`` (d), ``method`` ("rao_blackwell", "plain" or "exact"), ``tasks``; and the
verdict columns of :func:`simulations.experiments._common.verdict_row` (``bound`` is
"nearest_mean" with ``theory_item`` "T1" or "T1b", or "nearest_mean_anisotropic" with
"T1c" on two-way cells).

>>> rows = cell({"family": "finite_outlier", "dim": 4, "shots": 1, "ways": 2, "cdnv": 0.01,
...              "reach": 0.55, "budget": 10_000, "min_tasks": 100, "max_tasks": 1000}, 0)
>>> [(r["bound"], r["theory_item"], r["status"]) for r in rows]
[('nearest_mean', 'T1', 'holds'), ('nearest_mean_anisotropic', 'T1c', 'holds')]
>>> round(rows[0]["bound_value"], 6), rows[0]["method"]      # 16 * 0.01 * (1 + 2/1)
(0.48, 'exact')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ncbounds import bounds
from ncbounds._errors import NCBoundsError
from simulations.families import (
    ClassFamily,
    FiniteSupportClasses,
    GaussianClasses,
    SphericalClasses,
    mean_layout,
)
from simulations.montecarlo import nearest_mean_error
from simulations.sweep import grid

from ._common import check_size, tasks_for, verdict_row

__all__ = ["FAMILIES", "build_family", "cell", "configs", "summarize"]

FAMILIES = ("gaussian", "gaussian_aniso", "spherical_pareto", "finite_outlier")
_PARETO_ATOMS = 10
#: the family parameters of each family (fixed values used by the grids)
_FAMILY_BLOCKS = [
    {"family": "gaussian"},
    {"family": "gaussian_aniso", "decay": 1.0},
    {"family": "spherical_pareto", "tail": 2.5},
    {"family": "finite_outlier", "reach": 0.55},
]


def build_family(config: dict) -> ClassFamily:
    """The family of an E1 configuration: ``ways`` classes in R^``dim``, CDNV = ``cdnv``.

    >>> fam = build_family({"family": "spherical_pareto", "dim": 8, "ways": 5, "cdnv": 0.1,
    ...                     "tail": 2.5})
    >>> fam.n_classes, round(fam.cdnv(), 12)
    (5, 0.1)
    """
    kind = config["family"]
    p, k, v = int(config["dim"]), int(config["ways"]), float(config["cdnv"])
    means = mean_layout("simplex", k, p, scale=1.0)  # all pairwise distances 1, so V = v
    if kind == "gaussian":
        return GaussianClasses.isotropic(means, sigma=math.sqrt(v / p))
    if kind == "gaussian_aniso":
        spectrum = (np.arange(p) + 1.0) ** (-float(config["decay"]))
        return GaussianClasses(means, covariances=np.diag(spectrum * (v / spectrum.sum())))
    if kind == "spherical_pareto":
        j = np.arange(_PARETO_ATOMS)
        weights = 2.0 ** (-float(config["tail"]) * j)
        weights /= weights.sum()
        radii = 2.0**j
        radii *= math.sqrt(v / float(weights @ radii**2))
        return SphericalClasses(means, radii=radii, radius_weights=weights)
    if kind == "finite_outlier":
        reach = float(config["reach"])
        q = v / (reach * reach + v)
        t = reach / (1.0 - q)  # atoms mu - q t u and mu + (1 - q) t u: mean mu, Var = v
        atoms = []
        for c in range(k):
            u = means[(c + 1) % k] - means[c]
            u /= np.linalg.norm(u)
            atoms.append(np.stack([means[c] - q * t * u, means[c] + reach * u]))
        return FiniteSupportClasses(atoms, [np.array([1.0 - q, q])] * k)
    raise NCBoundsError(f"family: expected one of {', '.join(FAMILIES)}, got {kind!r}")


def cell(config: dict, seed: int) -> list[dict]:
    """One E1 cell: build the family, measure its few-shot error, check T1/T1b and T1c."""
    fam = build_family(config)
    p, n, k = fam.dim, int(config["shots"]), fam.n_classes
    cdnv = fam.cdnv()
    v, lam = fam.variances, np.minimum(fam.max_eigenvalues, fam.variances)
    d = float(np.linalg.norm(fam.means[0] - fam.means[1]))
    checks = [(bounds.nearest_mean, bounds.nearest_mean(cdnv=cdnv, shots=n, ways=k),
               "T1" if k == 2 else "T1b")]
    if k == 2:
        checks.append((bounds.nearest_mean_anisotropic, bounds.nearest_mean_anisotropic(
            lambda1=lam[0], lambda2=lam[1], var1=v[0], var2=v[1], distance=d, shots=n), "T1c"))
    if config["family"] == "finite_outlier":
        method, tasks = "exact", None
        measured = nearest_mean_error(fam, shots=n, method=method)
    else:
        method = "rao_blackwell" if config["family"] == "gaussian" and k == 2 else "plain"
        per_task = 2 * p if method == "rao_blackwell" else k * n * p + p
        tasks = tasks_for(config["budget"], per_task, minimum=config["min_tasks"],
                          maximum=config["max_tasks"],
                          smallest_bound=min(value for _, value, _ in checks))
        measured = nearest_mean_error(fam, shots=n, tasks=tasks, rng=seed, method=method)
    base = {"cdnv_exact": cdnv, "variance": float(v[0]), "lambda_max": float(lam[0]),
            "distance": d, "method": method, "tasks": tasks}
    return [{**base, **verdict_row(bound, value, measured, theory_item=item)}
            for bound, value, item in checks]


def configs(size: str) -> list[dict]:
    """The E1 grid at ``size`` ("tiny", "quick" or "default")."""
    size = check_size(size)
    if size == "tiny":
        axes = dict(dim=[4], shots=[1, 5], ways=[2, 5], cdnv=[1e-3, 1.0],
                    budget=20_000, min_tasks=200, max_tasks=2_000)
    elif size == "quick":
        axes = dict(dim=[4, 32], shots=[1, 5, 20], ways=[2, 5], cdnv=[1e-3, 1e-2, 0.1, 1.0],
                    budget=1_000_000, min_tasks=1_000, max_tasks=20_000)
    else:
        axes = dict(dim=[4, 32, 128], shots=[1, 5, 20], ways=[2, 5],
                    cdnv=[1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0],
                    budget=4_000_000, min_tasks=1_000, max_tasks=40_000)
    return grid(_FAMILY_BLOCKS, **axes)


def summarize(frame: Any) -> Any:
    """Per (bound, family, ways, shots): how many cells hold / are violated / inconclusive /
    vacuous, the largest CDNV at which the bound is informative (< 1) and the median
    measured/bound ratio over the informative cells.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"bound": ["nearest_mean"] * 2, "theory_item": ["T1"] * 2,
    ...     "family": ["gaussian"] * 2, "ways": [2, 2], "shots": [1, 1], "cdnv": [0.01, 1.0],
    ...     "status": ["holds", "holds"], "vacuous": [False, True], "ratio": [0.1, 0.02]})
    >>> s = summarize(f)
    >>> s[["cells", "holds", "vacuous", "max_informative_cdnv", "median_ratio"]].to_dict("records")
    [{'cells': 2, 'holds': 2, 'vacuous': 1, 'max_informative_cdnv': 0.01, 'median_ratio': 0.1}]
    """
    import pandas as pd

    keys = ["bound", "theory_item", "family", "ways", "shots"]
    out = []
    for key, g in frame.groupby(keys, sort=True):
        informative = g[~g["vacuous"].astype(bool)]
        empty = len(informative) == 0
        out.append({
            **dict(zip(keys, key)),
            "cells": len(g),
            **{s: int((g["status"] == s).sum()) for s in ("holds", "violated", "inconclusive")},
            "vacuous": int(g["vacuous"].astype(bool).sum()),
            "max_informative_cdnv": math.nan if empty else float(informative["cdnv"].max()),
            "median_ratio": math.nan if empty else float(informative["ratio"].median()),
        })
    return pd.DataFrame(out)
