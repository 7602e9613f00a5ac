"""E5 tightness search: the family with the largest measured / bound ratio, found by scipy.

For a chosen bound (``target``), a global optimiser (:func:`scipy.optimize.differential_evolution`
or :func:`scipy.optimize.dual_annealing`, seeded) maximises ratio = measured error / bound over
a parametrised set of class laws, without being told where to look. The best family found
answers "how far from tight is the constant?" (for T1, ``constant`` × ratio is the smallest
constant that family still satisfies) and a ratio above 1 is a violation, re-checked on the
final family by an independent measurement (:func:`ncbounds.verdict.check`). Galanti, György
& Hutter (ICLR 2022, arXiv 2112.15121); THEORY.md T1, T1c, T1d, T2.

Searches (chosen by the target):

- finite supports (targets "nearest_mean" = T1 / T1b with ``ways`` > 2, its constant 16
  replaceable by ``constant``; "nearest_mean_anisotropic" = T1c; "known_means" = T1d): each of
  the ``ways`` classes has ``atoms`` atoms in [−1, 1]^``dim`` with softmax weights of logits in
  [−7, 7]; the error is exact (enumeration, :func:`simulations.montecarlo.nearest_mean_error`
  or, for T1d, :func:`simulations.montecarlo.known_means_error` of class 0 against class 1),
  so the objective has no noise.
- spherical families (targets "spherical_as_stated", the slides' T2 form, and "spherical",
  the valid one): two classes μ_c + R_c U in R^``dim`` with means 0 and e_1, each radius law
  with ``atoms`` atoms in [0, ``r_max``] and softmax weights. The error is estimated with
  common random numbers (:class:`SphericalErrorCRN`): the support directions are drawn once
  (``tasks`` tasks), the support radius patterns are enumerated with their multinomial
  probabilities and the query direction is integrated exactly (a spherical cap), so the
  objective is deterministic, polynomial in the weights and smooth in the radii. The best
  family is then re-measured by plain Monte Carlo on fresh draws (``verify_tasks`` tasks).

Columns (one row per search): the configuration ``target``, ``dim``, ``atoms``, ``shots``,
``ways`` (finite), ``constant`` (T1 only), ``optimizer``, ``maxiter``, ``popsize``,
``tasks``, ``r_max``, ``verify_tasks`` (spherical), ``seed``; then ``search``
("finite" / "spherical"), ``evaluations`` (objective calls), ``search_ratio`` (the best
objective value), ``cdnv_exact`` (population CDNV of the best family, average over pairs),
``implied_constant`` (T1 targets: ``constant`` × ratio), ``violates`` (the verdict is
"violated"), ``family_json`` (the best family: means, atoms or radii, weights, as JSON), and
the verdict columns of :func:`simulations.experiments._common.verdict_row` for the final,
independent measurement (``ratio`` = measured / bound; ``bound`` is the target, or
"nearest_mean[C=c]" for a changed constant).

>>> cfg = {"target": "nearest_mean", "constant": 1.0, "dim": 1, "atoms": 2, "shots": 1,
...        "ways": 2, "optimizer": "differential_evolution", "maxiter": 15, "popsize": 8}
>>> row, = cell(cfg, 0)
>>> row["status"], row["ratio"] > 1, row["violates"]
('violated', True, True)
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from typing import Any, Callable

import numpy as np
from scipy import optimize, special

from ncbounds import bounds
from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator, check_positive_int
from ncbounds.verdict import Measurement
from simulations.families import FiniteSupportClasses, SphericalClasses
from simulations.montecarlo import known_means_error, nearest_mean_error
from simulations.sweep import grid

from ._common import check_size, verdict_row

__all__ = [
    "FINITE_TARGETS",
    "SPHERICAL_TARGETS",
    "OPTIMIZERS",
    "SphericalErrorCRN",
    "cap_probability",
    "cell",
    "configs",
    "summarize",
]

FINITE_TARGETS = ("nearest_mean", "nearest_mean_anisotropic", "known_means")
SPHERICAL_TARGETS = ("spherical_as_stated", "spherical")
OPTIMIZERS = ("differential_evolution", "dual_annealing")
_LOGIT = 7.0
#: the constant of T1 as written in its sympy expression (16)
T1_CONSTANT = float(bounds.nearest_mean.expr.as_coeff_Mul()[0])


# --------------------------------------------------------------------------------------
# the optimiser
# --------------------------------------------------------------------------------------


def _maximise(ratio: Callable[[np.ndarray], float], box: list[tuple[float, float]],
              config: dict, seed: int) -> tuple[np.ndarray, float, int]:
    """(argmax, max, evaluations) of ``ratio`` over ``box`` with the configured optimiser."""
    maxiter, popsize = int(config["maxiter"]), int(config["popsize"])

    def objective(theta: np.ndarray) -> float:
        return -ratio(theta)

    if config["optimizer"] == "differential_evolution":
        res = optimize.differential_evolution(
            objective, box, seed=seed, maxiter=maxiter, popsize=popsize, tol=0.0,
            polish=False, init="latinhypercube",
        )
    elif config["optimizer"] == "dual_annealing":
        res = optimize.dual_annealing(
            objective, box, seed=seed, maxfun=maxiter * popsize * len(box),
            no_local_search=True,
        )
    else:
        raise NCBoundsError(
            f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {config['optimizer']!r}"
        )
    return np.asarray(res.x, dtype=float), -float(res.fun), int(res.nfev)


def _softmax(logits: np.ndarray) -> np.ndarray:
    w = np.exp(logits - logits.max())
    return w / w.sum()


# --------------------------------------------------------------------------------------
# finite supports (T1, T1b, T1c, T1d)
# --------------------------------------------------------------------------------------


def _decode_finite(theta: np.ndarray, ways: int, atoms: int, dim: int):
    per = atoms * dim + atoms
    laws = []
    for c in range(ways):
        chunk = theta[c * per : (c + 1) * per]
        laws.append((chunk[: atoms * dim].reshape(atoms, dim), _softmax(chunk[atoms * dim :])))
    return laws


def _distinct_means(laws) -> bool:
    means = np.stack([w @ a for a, w in laws])
    diff = means[:, None, :] - means[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    return bool(np.all(d2[~np.eye(len(laws), dtype=bool)] > 1e-12))


def _finite_bound(config: dict, fam: FiniteSupportClasses) -> tuple[Any, float, float, str]:
    """(Bound, its value, the exact measured error, row label) for a finite-support family."""
    target, n = config["target"], int(config["shots"])
    if target == "known_means":  # T1d: class 0 against class 1, population means
        value = bounds.known_means(cdnv_directional=fam.directional_cdnv_matrix()[0, 1])
        measured = known_means_error(fam, query_class=0, method="exact").estimate
        return bounds.known_means, value, measured, target
    measured = nearest_mean_error(fam, shots=n, method="exact").estimate
    if target == "nearest_mean_anisotropic":
        v = fam.variances
        lam = np.minimum(fam.max_eigenvalues, v)
        d = float(np.linalg.norm(fam.means[0] - fam.means[1]))
        value = bounds.nearest_mean_anisotropic(lambda1=lam[0], lambda2=lam[1], var1=v[0],
                                                var2=v[1], distance=d, shots=n)
        return bounds.nearest_mean_anisotropic, value, measured, target
    constant = float(config.get("constant", T1_CONSTANT))
    value = bounds.nearest_mean(cdnv=fam.cdnv(), shots=n, ways=fam.n_classes)
    label = "nearest_mean" if constant == T1_CONSTANT else f"nearest_mean[C={constant:g}]"
    return bounds.nearest_mean, value * constant / T1_CONSTANT, measured, label


def _finite_search(config: dict, seed: int) -> dict:
    k = int(config.get("ways", 2))
    if config["target"] != "nearest_mean" and k != 2:
        raise NCBoundsError(f"ways: {config['target']} is a two-class bound, got ways={k}")
    a, p = int(config["atoms"]), int(config["dim"])
    box = [(-1.0, 1.0)] * (a * p) + [(-_LOGIT, _LOGIT)] * a
    box = box * k

    def family(theta: np.ndarray) -> FiniteSupportClasses | None:
        laws = _decode_finite(theta, k, a, p)
        if not _distinct_means(laws):
            return None
        return FiniteSupportClasses([x for x, _ in laws], [w for _, w in laws])

    def ratio(theta: np.ndarray) -> float:
        fam = family(theta)
        if fam is None:
            return 0.0
        _, value, measured, _ = _finite_bound(config, fam)
        return measured / value if value > 0 else 0.0

    best, best_ratio, evaluations = _maximise(ratio, box, config, seed)
    fam = family(best)
    if fam is None:  # pragma: no cover - the optimum cannot have coinciding means
        raise NCBoundsError("the search ended on a family with coinciding means")
    bound, value, measured, label = _finite_bound(config, fam)
    row = verdict_row(bound, value, Measurement.exact(measured), label=label)
    description = {"means": fam.means.tolist(), "atoms": [x.tolist() for x in fam.atoms],
                   "weights": [w.tolist() for w in fam.weights]}
    return {"search": "finite", "evaluations": evaluations, "search_ratio": best_ratio,
            "cdnv_exact": fam.cdnv(), "family_json": json.dumps(description), **row}


# --------------------------------------------------------------------------------------
# spherical families (T2): common random numbers
# --------------------------------------------------------------------------------------


def cap_probability(tau: Any, dim: int) -> np.ndarray:
    """Pr[⟨U, e⟩ ≥ τ] for U uniform on the unit sphere of R^dim (dim ≥ 2), e a unit vector.

    ⟨U, e⟩ has density ∝ (1 − t²)^((p−3)/2) on [−1, 1], so for τ ∈ [0, 1] the probability is
    ½ I_{1−τ²}((p − 1)/2, 1/2) (regularised incomplete beta), and 1 minus that at −τ for
    τ < 0; 0 above 1 and 1 below −1.

    >>> cap_probability([-2.0, 0.0, 0.5, 1.0], 3).tolist()     # uniform on [-1, 1] for p = 3
    [1.0, 0.5, 0.25, 0.0]
    """
    p = check_positive_int(dim, "dim", minimum=2)
    tau = np.asarray(tau, dtype=float)
    t = np.clip(np.abs(tau), 0.0, 1.0)
    half = 0.5 * special.betainc(0.5 * (p - 1), 0.5, 1.0 - t * t)
    return np.where(tau >= 0, half, 1.0 - half)


class _CapTable:
    """:func:`cap_probability` for one dimension, tabulated on a uniform grid of the angle
    θ = arccos τ and interpolated linearly: the cap probability is a smooth function of θ
    (its derivative is ∝ sin^(p−2) θ), so 2^16 intervals give an error below 1e-6 for
    p ≤ 10⁴ (exact for p = 2, where it is linear in θ), at a fraction of the cost of the
    incomplete beta function."""

    def __init__(self, dim: int, intervals: int = 1 << 16):
        self.step = math.pi / intervals
        theta = np.linspace(0.0, math.pi, intervals + 1)
        self.values = cap_probability(np.cos(theta), dim)
        self.values[0], self.values[-1] = 0.0, 1.0

    def __call__(self, tau: np.ndarray) -> np.ndarray:
        u = np.arccos(np.clip(tau, -1.0, 1.0)) / self.step
        i = np.minimum(u.astype(np.int64), self.values.size - 2)
        u -= i
        return self.values[i] * (1.0 - u) + self.values[i + 1] * u


@functools.lru_cache(maxsize=64)
def _patterns(shots: int, atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Every multiset of ``shots`` atom indices: slot -> atom (S, n) and log multinomial
    coefficients (S,)."""
    slots = np.array(list(itertools.combinations_with_replacement(range(atoms), shots)),
                     dtype=np.int64)
    counts = np.stack([(slots == j).sum(axis=1) for j in range(atoms)], axis=1)
    logcoef = special.gammaln(shots + 1) - special.gammaln(counts + 1).sum(axis=1)
    return slots, logcoef


class SphericalErrorCRN:
    """Two-way n-shot nearest-mean error of two spherical classes, by common random numbers.

    Classes μ_0 = 0 and μ_1 = e_1 in R^p, class c = μ_c + R_c U with an atomic radius law
    (radii r_c, weights w_c). For each of ``tasks`` tasks the support directions U_{c,i}
    (i = 1..n) are drawn once; only their Gram matrix with e_1 is kept, so an evaluation
    costs O(tasks · patterns²) whatever p. Given the directions, every assignment of atoms to
    the n support slots (a multiset, with its multinomial probability) fixes the centres
    μ̂_c = μ_c + (1/n) Σ_i r_{c,a_i} U_{c,i}; a query x = μ_y + r U is misclassified iff
    ⟨U, e⟩ ≥ τ = (‖μ_y − μ̂_o‖² − ‖μ_y − μ̂_y‖²) / (2 r ‖μ̂_o − μ̂_y‖) with e the unit vector
    from μ̂_y to μ̂_o, which has probability :func:`cap_probability` (r = 0: the indicator of
    τ's numerator ≤ 0; coinciding centres: a tie, an error), evaluated from a fine table
    (interpolation error below 1e-6). :meth:`values` returns the per-task conditional
    errors, whose mean estimates E_S Pr[h_S(x) ≠ y] (THEORY.md T1, T2) without bias (up to
    that interpolation error) and is deterministic in the laws.

    >>> crn = SphericalErrorCRN(dim=500, shots=1, tasks=2000, rng=0)
    >>> q = 0.05                                   # THEORY.md T2 counterexample: err >= q(1-q)^2
    >>> law = (np.array([0.0, 2.0]), np.array([1 - q, q]))
    >>> bool(crn.error(law, law) >= q * (1 - q) ** 2)
    True
    """

    def __init__(self, *, dim: int, shots: int, tasks: int, rng: Any):
        self.dim = check_positive_int(dim, "dim", minimum=2)
        self.shots = check_positive_int(shots, "shots")
        self.tasks = check_positive_int(tasks, "tasks")
        gen = as_generator(rng)
        n, p, t = self.shots, self.dim, self.tasks
        gram = np.empty((t, 2 * n, 2 * n))
        first = np.empty((t, 2 * n))
        chunk = max(1, (1 << 21) // (2 * n * p))
        for start in range(0, t, chunk):
            m = min(chunk, t - start)
            u = gen.standard_normal((m, 2 * n, p))
            u /= np.sqrt(np.einsum("tip,tip->ti", u, u))[..., None]
            gram[start : start + m] = np.einsum("tip,tjp->tij", u, u)
            first[start : start + m] = u[..., 0]
        self._g00, self._g11 = gram[:, :n, :n], gram[:, n:, n:]
        self._g10 = gram[:, n:, :n]
        self._e0, self._e1 = first[:, :n], first[:, n:]
        self._cap = _CapTable(p)

    def values(self, law0: tuple[Any, Any], law1: tuple[Any, Any]) -> np.ndarray:
        """Per-task conditional errors (tasks,) for radius laws ``(radii, weights)``."""
        n = self.shots
        coef, prob = [], []
        for radii, weights in (law0, law1):
            r, w = np.asarray(radii, dtype=float), np.asarray(weights, dtype=float)
            slots, logcoef = _patterns(n, r.size)
            coef.append(r[slots] / n)  # (S, n): the centre is mu + sum_i coef_i U_i
            with np.errstate(divide="ignore"):
                prob.append(np.exp(logcoef + np.log(w)[slots].sum(axis=1)))
        c0, c1 = coef
        # Norms from the Gram matrices (expanded form): every vector here is O(1) (means at
        # distance 1, radii <= r_max, unit directions) with no common offset, so float64
        # loses nothing that matters. Squared norms of the centre offsets, (T, S0), (T, S1):
        a00 = np.einsum("si,tij,sj->ts", c0, self._g00, c0)
        a11 = np.einsum("si,tij,sj->ts", c1, self._g11, c1)
        a10 = 1.0 - 2.0 * self._e0 @ c0.T + a00   # ||mu_1 - c0hat||^2
        a01 = 1.0 + 2.0 * self._e1 @ c1.T + a11   # ||mu_0 - c1hat||^2
        cross = np.einsum("ui,tiv,sv->tsu", c1, self._g10, c0)  # <sum c1 U1, sum c0 U0>
        g2 = (a01[:, None, :] + a00[:, :, None]
              - 2.0 * (self._e0 @ c0.T)[:, :, None] - 2.0 * cross)  # ||c1hat - c0hat||^2
        g = np.sqrt(np.clip(g2, 0.0, None))  # (T, S0, S1)
        total = np.zeros(g.shape)
        for (radii, weights), num in (
            (law0, a01[:, None, :] - a00[:, :, None]),   # query from class 0
            (law1, a10[:, :, None] - a11[:, None, :]),   # query from class 1
        ):
            for r, w in zip(np.asarray(radii, float), np.asarray(weights, float)):
                if r > 0:
                    tau = np.divide(num, 2.0 * r * g, out=np.full(g.shape, np.inf), where=g > 0)
                    err = self._cap(tau)
                else:
                    err = (num <= 0).astype(float)
                total += w * np.where(g > 0, err, 1.0)
        return 0.5 * np.einsum("tab,a,b->t", total, prob[0], prob[1])

    def error(self, law0: tuple[Any, Any], law1: tuple[Any, Any]) -> float:
        """The CRN estimate of the error: the mean of :meth:`values`."""
        return float(self.values(law0, law1).mean())


def _spherical_bound(target: str, cdnv: float, shots: int, dim: int):
    bound = bounds.spherical_as_stated if target == "spherical_as_stated" else bounds.spherical
    return bound, bound(cdnv=cdnv, shots=shots, dim=dim)


def _spherical_search(config: dict, seed: int) -> dict:
    a, p, n = int(config["atoms"]), int(config["dim"]), int(config["shots"])
    crn_seed, verify_seed = np.random.SeedSequence(seed).spawn(2)
    crn = SphericalErrorCRN(dim=p, shots=n, tasks=int(config["tasks"]),
                            rng=np.random.default_rng(crn_seed))
    box = ([(0.0, float(config["r_max"]))] * a + [(-_LOGIT, _LOGIT)] * a) * 2

    def laws(theta: np.ndarray):  # per class: a radii, then a logits
        chunks = theta.reshape(2, 2 * a)
        return [(chunk[:a], _softmax(chunk[a:])) for chunk in chunks]

    def cdnv_of(pair) -> float:  # (E R_0^2 + E R_1^2) / (2 d^2), d = 1
        return 0.5 * sum(float(w @ (r * r)) for r, w in pair)

    def ratio(theta: np.ndarray) -> float:
        pair = laws(theta)
        cdnv = cdnv_of(pair)
        if cdnv <= 0:
            return 0.0
        _, value = _spherical_bound(config["target"], cdnv, n, p)
        return crn.error(*pair) / value

    best, best_ratio, evaluations = _maximise(ratio, box, config, seed)
    pair = laws(best)
    means = np.zeros((2, p))
    means[1, 0] = 1.0
    fam = SphericalClasses(means, [r for r, _ in pair], [w for _, w in pair])
    bound, value = _spherical_bound(config["target"], fam.cdnv(), n, p)
    measured = nearest_mean_error(fam, shots=n, tasks=int(config["verify_tasks"]),
                                  rng=np.random.default_rng(verify_seed), method="plain")
    description = {"means": [[0.0], [1.0]], "dim": p, "radii": [r.tolist() for r, _ in pair],
                   "weights": [w.tolist() for _, w in pair]}
    return {"search": "spherical", "evaluations": evaluations, "search_ratio": best_ratio,
            "cdnv_exact": fam.cdnv(), "family_json": json.dumps(description),
            **verdict_row(bound, value, measured)}


# --------------------------------------------------------------------------------------
# cells, grids, summary
# --------------------------------------------------------------------------------------


def cell(config: dict, seed: int) -> list[dict]:
    """One E5 search (see the module docstring); one row."""
    target = config["target"]
    if target in FINITE_TARGETS:
        row = _finite_search(config, seed)
    elif target in SPHERICAL_TARGETS:
        row = _spherical_search(config, seed)
    else:
        raise NCBoundsError(
            f"target: expected one of {', '.join(FINITE_TARGETS + SPHERICAL_TARGETS)}, "
            f"got {target!r}"
        )
    constant = config.get("constant", T1_CONSTANT) if target == "nearest_mean" else math.nan
    row["implied_constant"] = float(constant) * row["ratio"]
    row["violates"] = row["status"] == "violated"
    return [row]


def configs(size: str) -> list[dict]:
    """The E5 grid at ``size`` ("tiny", "quick" or "default")."""
    size = check_size(size)
    de = {"optimizer": "differential_evolution"}
    fin = {**de, **{"tiny": dict(maxiter=15, popsize=8), "quick": dict(maxiter=30, popsize=10),
                    "default": dict(maxiter=60, popsize=12)}[size]}
    sph = {**de, "r_max": 4.0, **{
        "tiny": dict(maxiter=15, popsize=8, tasks=300, verify_tasks=4_000),
        "quick": dict(maxiter=25, popsize=10, tasks=600, verify_tasks=20_000),
        "default": dict(maxiter=40, popsize=12, tasks=1_000, verify_tasks=50_000)}[size]}
    wrong_t1 = grid({"target": "nearest_mean", "constant": 1.0, "ways": 2}, dim=1, atoms=2,
                    shots=1, **fin)
    slides = grid(target="spherical_as_stated", dim=512, atoms=2, shots=1, **sph)
    if size == "tiny":
        return wrong_t1 + slides
    finite = grid(
        [{"target": "nearest_mean", "constant": T1_CONSTANT, "ways": 2},
         {"target": "nearest_mean_anisotropic", "ways": 2}],
        dim=[1, 2], atoms=[2, 3], shots=[1, 5] if size == "default" else [1], **fin,
    ) + grid(target="known_means", ways=2, dim=[1, 2], atoms=[2, 3], shots=1, **fin)
    # (T1d has known means: shots play no part)
    three_way = grid({"target": "nearest_mean", "constant": T1_CONSTANT, "ways": 3}, dim=1,
                     atoms=2, shots=1, **fin)
    spherical = grid(target=list(SPHERICAL_TARGETS), dim=[64, 512],
                     atoms=[2, 3] if size == "default" else [2], shots=[1], **sph)
    spherical = [c for c in spherical if c != slides[0]]
    annealing = grid({"target": "nearest_mean", "constant": 1.0, "ways": 2}, dim=1, atoms=2,
                     shots=1, **{**fin, "optimizer": "dual_annealing"})
    return wrong_t1 + finite + three_way + slides + spherical + annealing


def summarize(frame: Any) -> Any:
    """The best search per (target, bound, dim, atoms, shots, ways): its ratio, the implied
    constant (T1), whether it violates, and the family found.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"target": ["known_means"] * 2, "bound": ["known_means"] * 2,
    ...     "dim": [1, 1], "atoms": [2, 2], "shots": [1, 1], "ways": [2, 2], "seed": [0, 1],
    ...     "ratio": [0.9, 0.99], "implied_constant": [math.nan] * 2,
    ...     "violates": [False, False], "family_json": ["{}", "{}"]})
    >>> summarize(f)[["ratio", "seed", "searches"]].to_dict("records")
    [{'ratio': 0.99, 'seed': 1, 'searches': 2}]
    """
    import pandas as pd

    keys = [k for k in ("target", "bound", "dim", "atoms", "shots", "ways") if k in frame]
    out = []
    for key, g in frame.groupby(keys, sort=True, dropna=False):
        best = g.loc[g["ratio"].idxmax()]
        out.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                    "ratio": float(best["ratio"]),
                    "implied_constant": float(best["implied_constant"]),
                    "violates": bool(g["violates"].any()), "seed": int(best["seed"]),
                    "searches": len(g), "family_json": best["family_json"]})
    return pd.DataFrame(out)
