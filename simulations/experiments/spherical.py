"""E2 spherical symmetry: the slides' T2 form, the valid form and the measured error.

THEORY.md T2 (Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121): for two spherically
symmetric classes the slides state E_S err ≤ 16 V (1 + 2/n) / p, which is false in general;
the valid form is E_S err ≤ 16 V (1/p + 2/n). Each cell measures the two-way n-shot
nearest-mean error of one family and checks the slides' form
(:data:`ncbounds.bounds.spherical_as_stated`), the valid form
(:data:`ncbounds.bounds.spherical`) and T1 (:data:`ncbounds.bounds.nearest_mean`), across
the dimension p.

Families (``family``; means 0 and e_1, so d = 1):

- ``"gaussian"``: isotropic N(μ_c, (V/p) I) with V = ``kappa`` · p^``cdnv_power``
  (Rao–Blackwellised error, THEORY.md T5). With ``cdnv_power`` = 0 the CDNV is fixed and the
  slides' form holds empirically; with ``cdnv_power`` = 0.5 the error stays roughly constant
  in p while the slides' form decays like 1/√p, so it fails even for Gaussians once p is
  large enough (at n = 1, κ = 1/4 near p = 10⁴).
- ``"two_point"``: the counterexample of THEORY.md T2, μ_c + R U with R = 2d with
  probability ``q`` and 0 otherwise (:meth:`SphericalClasses.two_point_radius`), V = 4q. At
  n = 1 its error is at least q (1 − q)² whatever p (column ``error_lower_bound``), while the
  slides' form gives 192 q / p: it fails for p ≳ 200. Plain Monte Carlo.

Columns: the configuration (``family``, ``dim``, ``shots``, ``kappa`` and ``cdnv_power``
(gaussian) or ``q`` (two_point), ``budget``, ``min_tasks``, ``max_tasks`` (tasks as in E1,
see ``_common.tasks_for``), ``seed``), then
``cdnv_exact`` (population CDNV), ``method``, ``tasks``, ``error_lower_bound`` (q (1 − q)²
for the two-point law at n = 1, else missing) and the verdict columns of
:func:`simulations.experiments._common.verdict_row`, one row per bound ("spherical_as_stated",
"spherical", "nearest_mean").

>>> rows = cell({"family": "two_point", "dim": 2048, "shots": 1, "q": 0.05,
...              "budget": 10**6, "min_tasks": 2000, "max_tasks": 2000}, 0)
>>> [(r["bound"], r["status"]) for r in rows]
[('spherical_as_stated', 'violated'), ('spherical', 'holds'), ('nearest_mean', 'holds')]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ncbounds import bounds
from ncbounds._errors import NCBoundsError
from simulations.families import ClassFamily, GaussianClasses, SphericalClasses
from simulations.montecarlo import nearest_mean_error
from simulations.sweep import grid

from ._common import check_size, tasks_for, verdict_row

__all__ = ["FAMILIES", "build_family", "cell", "configs", "summarize"]

FAMILIES = ("gaussian", "two_point")
_BOUNDS = (bounds.spherical_as_stated, bounds.spherical, bounds.nearest_mean)


def build_family(config: dict) -> ClassFamily:
    """The two-class family of an E2 configuration (means 0 and e_1).

    >>> fam = build_family({"family": "gaussian", "dim": 16, "kappa": 0.25, "cdnv_power": 0.5})
    >>> round(fam.cdnv(), 12)                                   # 0.25 * sqrt(16)
    1.0
    """
    kind, p = config["family"], int(config["dim"])
    if kind == "gaussian":
        cdnv = float(config["kappa"]) * p ** float(config["cdnv_power"])
        means = np.zeros((2, p))
        means[1, 0] = 1.0
        return GaussianClasses.isotropic(means, sigma=math.sqrt(cdnv / p))
    if kind == "two_point":
        return SphericalClasses.two_point_radius(p, float(config["q"]), distance=1.0)
    raise NCBoundsError(f"family: expected one of {', '.join(FAMILIES)}, got {kind!r}")


def cell(config: dict, seed: int) -> list[dict]:
    """One E2 cell: the measured error of the family against the T2 forms and T1."""
    fam = build_family(config)
    p, n = fam.dim, int(config["shots"])
    cdnv = fam.cdnv()
    values = [bound(cdnv=cdnv, shots=n, **({"dim": p} if "dim" in bound.keywords else {}))
              for bound in _BOUNDS]
    method = "rao_blackwell" if config["family"] == "gaussian" else "plain"
    per_task = 2 * p if method == "rao_blackwell" else 2 * n * p + p
    tasks = tasks_for(config["budget"], per_task, minimum=config["min_tasks"],
                      maximum=config["max_tasks"], smallest_bound=min(values))
    measured = nearest_mean_error(fam, shots=n, tasks=tasks, rng=seed, method=method)
    lower = math.nan
    if config["family"] == "two_point" and n == 1:
        q = float(config["q"])
        lower = q * (1.0 - q) ** 2
    base = {"cdnv_exact": cdnv, "method": method, "tasks": tasks, "error_lower_bound": lower}
    return [{**base, **verdict_row(bound, value, measured)}
            for bound, value in zip(_BOUNDS, values)]


def configs(size: str) -> list[dict]:
    """The E2 grid at ``size`` ("tiny", "quick" or "default")."""
    size = check_size(size)
    gauss = [{"family": "gaussian", "kappa": k, "cdnv_power": 0.5} for k in (0.25, 1.0)]
    two_point = [{"family": "two_point", "q": q} for q in (0.01, 0.05, 0.2)]
    if size == "tiny":
        budget = dict(budget=200_000, min_tasks=500, max_tasks=2_000)
        return grid(gauss[:1] + two_point[1:2], dim=[8, 512], shots=[1], **budget)
    if size == "quick":
        budget = dict(budget=4_000_000, min_tasks=1_000, max_tasks=20_000)
        return grid(gauss + two_point, dim=[8, 64, 512, 2048], shots=[1, 5], **budget)
    gauss = gauss + [{"family": "gaussian", "kappa": k, "cdnv_power": 0.0} for k in (0.01, 0.1)]
    budget = dict(budget=20_000_000, min_tasks=2_000, max_tasks=50_000)
    return (grid(gauss, dim=[8, 64, 512, 4096, 32768], shots=[1, 5], **budget)
            + grid(two_point, dim=[8, 64, 512, 4096], shots=[1, 5], **budget))


def summarize(frame: Any) -> Any:
    """Per (bound, family, shots): the smallest dimension at which the bound is violated
    (NaN if never), and the counts of holds / violated / inconclusive cells.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"bound": ["spherical_as_stated"] * 2, "family": ["two_point"] * 2,
    ...     "shots": [1, 1], "dim": [8, 512], "status": ["holds", "violated"]})
    >>> summarize(f)[["first_violated_dim", "holds", "violated"]].to_dict("records")
    [{'first_violated_dim': 512.0, 'holds': 1, 'violated': 1}]
    """
    import pandas as pd

    keys = ["bound", "family", "shots"]
    out = []
    for key, g in frame.groupby(keys, sort=True):
        violated = g.loc[g["status"] == "violated", "dim"]
        out.append({
            **dict(zip(keys, key)),
            "first_violated_dim": float(violated.min()) if len(violated) else math.nan,
            **{s: int((g["status"] == s).sum()) for s in ("holds", "violated", "inconclusive")},
        })
    return pd.DataFrame(out)
