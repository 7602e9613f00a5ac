"""Hypothesis strategies for class-conditional families, and a bound assertion for tests.

The strategies generate the families of :mod:`simulations.families` with their exact
population quantities, so a property test can evaluate a bound on the truth and compare it
with a measured few-shot error:

>>> from hypothesis import given, settings
>>> from ncbounds import bounds
>>> @settings(max_examples=3, database=None, deadline=None, derandomize=True)
... @given(fam=gaussian_families(dim=2, n_classes=2))
... def test_t1(fam):
...     assert_bound_holds(bounds.nearest_mean, fam, shots=2, tasks=2000)
>>> test_t1()

Every strategy parameter takes a fixed value or a hypothesis strategy. ``cdnv`` rescales the
covariances (Gaussian) or the radii (spherical) so that the family's average CDNV equals the
drawn value exactly, which keeps generated families in the regime where the bounds say
something; ``None`` leaves the drawn scale alone.

:func:`assert_bound_holds` computes a bound's inputs from the family's exact population
quantities (by the bound's keyword names, see :func:`bound_inputs`), measures the error with
:mod:`simulations.montecarlo`, and raises ``AssertionError`` with a readable message when the
verdict (:func:`ncbounds.verdict.check`) is "violated". THEORY.md T1–T2, T5.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator, describe
from ncbounds.verdict import Verdict, check

from .families import (
    BallUniformClasses,
    ClassFamily,
    FiniteSupportClasses,
    GaussianClasses,
    SphericalClasses,
    mean_layout,
)
from .montecarlo import known_means_error, nearest_mean_error

__all__ = [
    "SHAPES",
    "LAYOUTS",
    "means_arrays",
    "gaussian_families",
    "spherical_families",
    "finite_support_families",
    "ball_uniform_families",
    "families",
    "bound_inputs",
    "assert_bound_holds",
]

#: covariance shapes of :func:`gaussian_families`
SHAPES = ("isotropic", "diagonal", "full", "spiked")
#: mean layouts of the strategies ("integer": small distinct integer vectors)
LAYOUTS = ("integer", "simplex", "gaussian", "cube")
_SEEDS = st.integers(0, 2**16 - 1)
#: atom weights before normalisation: powers of two 1..256, so rare atoms (weight down to
#: about 1/257) are drawn as often as balanced ones; Markov-type bounds are tight there
_WEIGHTS = st.integers(0, 8).map(lambda j: 2**j)


def _strategy(value: Any) -> SearchStrategy:
    return value if isinstance(value, SearchStrategy) else st.just(value)


def _default_cdnv() -> SearchStrategy:
    """Log-uniform on [0.001, 0.5]: half the draws fall where T1 is informative (V < 1/48)."""
    return st.floats(math.log(1e-3), math.log(0.5)).map(math.exp)


# --------------------------------------------------------------------------------------
# means
# --------------------------------------------------------------------------------------


@st.composite
def means_arrays(
    draw: Callable,
    *,
    dim: Any = st.integers(1, 8),
    n_classes: Any = st.integers(2, 4),
    layout: Any = st.sampled_from(LAYOUTS),
) -> np.ndarray:
    """Distinct class means, a (C, p) float64 array.

    "integer": distinct integer vectors in [−3, 3] on the first min(p, C) coordinates (zeros
    elsewhere; they shrink well); "simplex": a regular simplex with unit side (falls back to
    "integer" when p < C − 1); "gaussian" / "cube": :func:`mean_layout` with a drawn seed.
    """
    p = draw(_strategy(dim))
    c = draw(_strategy(n_classes))
    kind = draw(_strategy(layout))
    if kind not in LAYOUTS:
        raise NCBoundsError(f"layout: expected one of {', '.join(LAYOUTS)}, got {kind!r}")
    if kind == "simplex" and p >= c - 1:
        return mean_layout("simplex", c, p)
    if kind in ("gaussian", "cube"):
        means = mean_layout(kind, c, p, rng=draw(_SEEDS))
        assume(len({tuple(r) for r in means.tolist()}) == c)
        return means
    k = min(p, c)
    if 7**k < c:  # p = 1 with more than 7 classes: widen the range
        coords = st.integers(-c, c)
    else:
        coords = st.integers(-3, 3)
    rows = draw(
        st.lists(st.tuples(*[coords] * k), min_size=c, max_size=c, unique=True)
    )
    means = np.zeros((c, p))
    means[:, :k] = np.array(rows, dtype=np.float64)
    return means


def _min_distance(means: np.ndarray) -> float:
    diff = means[:, None, :] - means[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    return float(np.sqrt(d2[~np.eye(means.shape[0], dtype=bool)].min()))


# --------------------------------------------------------------------------------------
# Gaussian families
# --------------------------------------------------------------------------------------


def _spectrum(p: int, decay: float, gen: np.random.Generator) -> np.ndarray:
    """Eigenvalues (k + 1)^(−decay), k = 0..p−1, in a random order."""
    return gen.permutation((np.arange(p) + 1.0) ** (-decay))


def _covariance(shape: str, p: int, means: np.ndarray, decay: float, spike: float,
                gen: np.random.Generator) -> np.ndarray:
    if shape == "isotropic":
        return np.eye(p)
    if shape == "diagonal":
        return np.diag(_spectrum(p, decay, gen))
    if shape == "full":
        q, r = np.linalg.qr(gen.standard_normal((p, p)))
        q *= np.sign(np.diag(r))  # Haar-distributed rotation
        return (q * _spectrum(p, decay, gen)) @ q.T
    # spiked: isotropic plus a spike along the direction between the first two means,
    # the worst direction for the known-means error (THEORY.md T1c, T1d)
    u = means[1] - means[0]
    u = u / np.linalg.norm(u)
    return np.eye(p) + spike * np.outer(u, u)


@st.composite
def gaussian_families(
    draw: Callable,
    *,
    dim: Any = st.integers(1, 8),
    n_classes: Any = st.integers(2, 4),
    shape: Any = st.sampled_from(SHAPES),
    layout: Any = st.sampled_from(LAYOUTS),
    cdnv: Any = None,
) -> GaussianClasses:
    """:class:`GaussianClasses` with isotropic, diagonal, full or spiked covariances.

    Each class gets its own scale factor in [0.2, 1]; "diagonal" and "full" use the
    power-law spectrum (k + 1)^(−a), a ∈ [0, 3] (a random rotation for "full"); "spiked" is
    I + s u uᵀ, s ∈ [0, 50], u along μ_2 − μ_1. All covariances are then rescaled so that
    the average CDNV equals the drawn ``cdnv`` (default: log-uniform on [0.001, 0.5]).
    """
    means = draw(means_arrays(dim=dim, n_classes=n_classes, layout=layout))
    c, p = means.shape
    kind = draw(_strategy(shape))
    if kind not in SHAPES:
        raise NCBoundsError(f"shape: expected one of {', '.join(SHAPES)}, got {kind!r}")
    target = draw(_default_cdnv() if cdnv is None else _strategy(cdnv))
    factors = draw(st.lists(st.floats(0.2, 1.0), min_size=c, max_size=c))
    decay = draw(st.floats(0.0, 3.0)) if kind in ("diagonal", "full") else 0.0
    spike = draw(st.floats(0.0, 50.0)) if kind == "spiked" else 0.0
    gen = np.random.default_rng(draw(_SEEDS)) if kind in ("diagonal", "full") else None
    if kind == "isotropic":
        fam = GaussianClasses(means, sigma=np.sqrt(factors))
        sigma = np.sqrt(np.asarray(factors) * target / fam.cdnv())
        return GaussianClasses(means, sigma=sigma)
    base = _covariance(kind, p, means, decay, spike, gen)
    cov = np.asarray(factors)[:, None, None] * base[None]
    scale = target / GaussianClasses(means, covariances=cov).cdnv()
    return GaussianClasses(means, covariances=cov * scale)


# --------------------------------------------------------------------------------------
# spherical families
# --------------------------------------------------------------------------------------

#: radius atoms of :func:`spherical_families`, in units of the smallest mean distance
_RADIUS_ATOMS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0)


@st.composite
def _radius_law(draw: Callable, n_atoms: Any) -> tuple[list[float], list[float]]:
    k = draw(_strategy(n_atoms))
    radii = draw(st.lists(st.sampled_from(_RADIUS_ATOMS), min_size=1, max_size=k, unique=True))
    weights = draw(st.lists(_WEIGHTS, min_size=len(radii), max_size=len(radii)))
    total = float(sum(weights))
    return radii, [w / total for w in weights]


@st.composite
def spherical_families(
    draw: Callable,
    *,
    dim: Any = st.integers(1, 8),
    n_classes: Any = st.integers(2, 4),
    layout: Any = st.sampled_from(LAYOUTS),
    n_atoms: Any = st.integers(1, 3),
    shared_law: Any = st.booleans(),
    cdnv: Any = None,
) -> SphericalClasses:
    """:class:`SphericalClasses` μ_c + R·U with atomic radius laws (THEORY.md T2).

    Radius atoms are drawn from {0, ¼, ½, 1, 2, 3} × (smallest distance between means), with
    weights 2^j (j = 0..8) normalised; one law for all classes when ``shared_law``. With a
    ``cdnv`` value the radii are rescaled so the average CDNV equals it; ``cdnv=None`` (the
    default) keeps the drawn radii, which reach the regime of THEORY.md's counterexample.
    """
    means = draw(means_arrays(dim=dim, n_classes=n_classes, layout=layout))
    c = means.shape[0]
    unit = _min_distance(means)
    if draw(_strategy(shared_law)):
        r, w = draw(_radius_law(n_atoms))
        radii, weights = np.asarray(r) * unit, w
    else:
        laws = [draw(_radius_law(n_atoms)) for _ in range(c)]
        radii = [np.asarray(r) * unit for r, _ in laws]
        weights = [w for _, w in laws]
    fam = SphericalClasses(means, radii, weights)
    target = None if cdnv is None else draw(_strategy(cdnv))
    if target is None or fam.cdnv() == 0:
        return fam
    s = math.sqrt(target / fam.cdnv())
    scaled = radii * s if isinstance(radii, np.ndarray) else [r * s for r in radii]
    return SphericalClasses(means, scaled, weights)


# --------------------------------------------------------------------------------------
# finite supports and balls
# --------------------------------------------------------------------------------------


@st.composite
def finite_support_families(
    draw: Callable,
    *,
    dim: Any = st.integers(1, 3),
    n_classes: Any = st.integers(2, 3),
    n_atoms: Any = st.integers(1, 3),
    coordinates: Any = st.integers(-3, 3),
) -> FiniteSupportClasses:
    """:class:`FiniteSupportClasses` with small integer atoms (exact ties, exact errors).

    Each class has 1..``n_atoms`` distinct atoms with integer coordinates and weights 2^j
    (j = 0..8) normalised; families whose class means coincide are rejected.
    """
    p = draw(_strategy(dim))
    c = draw(_strategy(n_classes))
    coords = _strategy(coordinates)
    atoms, weights = [], []
    for _ in range(c):
        k = draw(_strategy(n_atoms))
        rows = draw(st.lists(st.tuples(*[coords] * p), min_size=1, max_size=k, unique=True))
        w = draw(st.lists(_WEIGHTS, min_size=len(rows), max_size=len(rows)))
        atoms.append(np.array(rows, dtype=np.float64))
        weights.append(np.asarray(w, dtype=np.float64) / float(sum(w)))
    fam = FiniteSupportClasses(atoms, weights)
    assume(_min_distance(fam.means) > 0)
    return fam


@st.composite
def ball_uniform_families(
    draw: Callable,
    *,
    dim: Any = st.integers(1, 8),
    n_classes: Any = st.integers(2, 4),
    layout: Any = st.sampled_from(LAYOUTS),
    cdnv: Any = None,
) -> BallUniformClasses:
    """:class:`BallUniformClasses` with per-class radii rescaled to the drawn ``cdnv``."""
    means = draw(means_arrays(dim=dim, n_classes=n_classes, layout=layout))
    c = means.shape[0]
    target = draw(_default_cdnv() if cdnv is None else _strategy(cdnv))
    factors = np.asarray(draw(st.lists(st.floats(0.2, 1.0), min_size=c, max_size=c)))
    fam = BallUniformClasses(means, factors)
    return BallUniformClasses(means, factors * math.sqrt(target / fam.cdnv()))


def families(
    *,
    dim: Any = st.integers(1, 6),
    n_classes: Any = st.integers(2, 3),
    kinds: Sequence[str] = ("finite", "spherical", "gaussian", "ball"),
) -> SearchStrategy:
    """Any of the families above (``kinds`` picks which, in shrinking order).

    Finite-support families take their dimension capped at 3 (their exact errors enumerate
    every atom).
    """
    makers = {
        "finite": lambda: finite_support_families(
            dim=_strategy(dim).map(lambda p: min(p, 3)), n_classes=n_classes
        ),
        "spherical": lambda: spherical_families(dim=dim, n_classes=n_classes),
        "gaussian": lambda: gaussian_families(dim=dim, n_classes=n_classes),
        "ball": lambda: ball_uniform_families(dim=dim, n_classes=n_classes),
    }
    unknown = [k for k in kinds if k not in makers]
    if unknown or not kinds:
        raise NCBoundsError(
            f"kinds: expected a non-empty subset of {', '.join(makers)}, got {list(kinds)}"
        )
    return st.one_of(*[makers[k]() for k in kinds])


# --------------------------------------------------------------------------------------
# bounds against families
# --------------------------------------------------------------------------------------

_TWO_CLASS = ("var1", "var2", "distance", "shots1", "shots2", "lambda1", "lambda2")
_SUPPORTED = ("cdnv", "shots", "ways", "dim", "cdnv_directional") + _TWO_CLASS


def _keywords(bound: Any) -> list[str]:
    try:
        params = inspect.signature(bound).parameters.values()
    except (TypeError, ValueError):
        raise NCBoundsError(
            f"bound: expected a Bound or a callable with keyword parameters, got {describe(bound)}"
        ) from None
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds]
    unknown = [n for n in names if n not in _SUPPORTED]
    if unknown:
        raise NCBoundsError(
            f"bound: keyword(s) {', '.join(unknown)} cannot be computed from a family; "
            f"supported: {', '.join(_SUPPORTED)}"
        )
    return names


def _bound_name(bound: Any) -> str:
    name = getattr(bound, "name", None) or getattr(bound, "__name__", None) or repr(bound)
    item = getattr(bound, "theory_item", None)
    return f"{name} ({item})" if item else str(name)


def bound_inputs(
    bound: Any,
    family: ClassFamily,
    *,
    shots: Any = None,
    ways: int | None = None,
    pair: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``bound`` computed from ``family``'s population truth.

    cdnv = family.cdnv() (average over all pairs; V_ij with ``pair``), shots, ways (default:
    all classes),
    dim = p; the two-class keywords var1, var2 (tr Σ_c), distance ‖μ_1 − μ_2‖, shots1, shots2
    (from a per-class ``shots``), lambda1, lambda2 (largest eigenvalues, capped at the trace)
    need a two-class family, or the classes ``pair`` = (i, j) of a larger one; then
    cdnv_directional = Ṽ_ij (THEORY.md T1d).

    >>> from ncbounds import bounds
    >>> fam = GaussianClasses([[0.0, 0.0], [4.0, 0.0]], sigma=1.0)
    >>> bound_inputs(bounds.nearest_mean_anisotropic, fam, shots=5)
    {'lambda1': 1.0, 'lambda2': 1.0, 'var1': 2.0, 'var2': 2.0, 'distance': 4.0, 'shots': 5}
    """
    names = _keywords(bound)
    c = family.n_classes
    if pair is None:
        i, j = 0, 1
        if c != 2 and any(n in _TWO_CLASS or n == "cdnv_directional" for n in names):
            raise NCBoundsError(
                f"family: {_bound_name(bound)} is a two-class statement; expected a family with "
                f"two classes (use family.subset([i, j])) or pair=(i, j), got {c} classes"
            )
    else:
        i, j = (family._check_class(k, "pair") for k in pair)
    out: dict[str, Any] = {}
    needs_shots = [n for n in names if n in ("shots", "shots1", "shots2")]
    if needs_shots and shots is None:
        raise NCBoundsError(f"shots: {_bound_name(bound)} takes {needs_shots[0]}; pass shots")
    for name in names:
        if name == "cdnv":
            out[name] = family.cdnv() if pair is None else float(family.cdnv_matrix()[i, j])
        elif name == "shots":
            if not isinstance(shots, (int, np.integer)):
                values = set(int(s) for s in shots)
                if len(values) != 1:
                    raise NCBoundsError(
                        f"shots: {_bound_name(bound)} takes one shots value, got per-class {list(shots)}"
                    )
                out[name] = values.pop()
            else:
                out[name] = int(shots)
        elif name == "ways":
            out[name] = c if ways is None else int(ways)
        elif name == "dim":
            out[name] = family.dim
        elif name in ("var1", "var2"):
            out[name] = float(family.variances[i if name == "var1" else j])
        elif name in ("lambda1", "lambda2"):
            k = i if name == "lambda1" else j
            out[name] = float(min(family.max_eigenvalues[k], family.variances[k]))
        elif name == "distance":
            out[name] = float(np.linalg.norm(family.means[i] - family.means[j]))
        elif name in ("shots1", "shots2"):
            per = [shots] * c if isinstance(shots, (int, np.integer)) else list(shots)
            if len(per) != c:
                raise NCBoundsError(f"shots: expected an int or {c} values, got {list(shots)}")
            out[name] = int(per[i] if name == "shots1" else per[j])
        else:  # cdnv_directional
            out[name] = float(family.directional_cdnv_matrix()[i, j])
    return out


def _format_inputs(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in inputs.items())


def assert_bound_holds(
    bound: Any,
    family: ClassFamily,
    *,
    shots: Any = None,
    tasks: int = 20_000,
    confidence: float = 0.999,
    rng: Any = 0,
    ways: int | None = None,
    method: str = "auto",
) -> Verdict:
    """Assert that ``bound``, evaluated on ``family``'s population truth, is not violated.

    ``bound`` is a :class:`ncbounds.bounds.Bound` or any callable taking the same keywords
    (see :func:`bound_inputs`). Few-shot bounds are compared with
    :func:`simulations.montecarlo.nearest_mean_error` (``shots``, ``ways``, ``tasks``,
    ``method``); a bound taking ``cdnv_directional`` (T1d) is checked for every ordered pair
    (i, j) against the known-means error Pr_{x~P_i}[‖x − μ_j‖ ≤ ‖x − μ_i‖]. Bounds without a
    ``ways`` keyword are two-class statements and need a two-class family.

    Raises ``AssertionError`` (bound, inputs, measurement and family in the message) when the
    verdict of :func:`ncbounds.verdict.check` at ``confidence`` is "violated"; returns the
    verdict otherwise (for the T1d per-pair check, the one with the smallest slack).
    """
    names = _keywords(bound)
    gen = as_generator(rng)
    name = _bound_name(bound)
    if "cdnv_directional" in names:
        checks = []
        for i in range(family.n_classes):
            for j in range(family.n_classes):
                if i == j:
                    continue
                inputs = bound_inputs(bound, family, shots=shots, pair=(i, j))
                measured = known_means_error(
                    family.subset([i, j]), tasks=tasks, rng=gen, query_class=0,
                    method="auto" if method in ("auto", "exact") else "plain",
                )
                checks.append((inputs, measured, f"known means, pair {i}->{j}"))
    else:
        if "ways" not in names and (family.n_classes != 2 or ways not in (None, 2)):
            raise NCBoundsError(
                f"family: {name} takes no 'ways': it is a two-class statement; expected a "
                f"two-class family (family.subset([i, j])), got {family.n_classes} classes"
            )
        if shots is None:
            raise NCBoundsError(f"shots: the few-shot error needs shots, got None ({name})")
        inputs = bound_inputs(bound, family, shots=shots, ways=ways)
        measured = nearest_mean_error(
            family, shots=shots, tasks=tasks, rng=gen, ways=ways, method=method
        )
        checks = [(inputs, measured, f"{ways or family.n_classes}-way, shots={shots}")]
    verdicts = []
    for inputs, measured, setting in checks:
        value = float(bound(**inputs))
        verdict = check(value, measured, confidence=confidence)
        if verdict.status == "violated":
            raise AssertionError(
                f"{name} violated at confidence {confidence}: bound {value:.6g} < measured "
                f"{verdict.estimate:.6g} (one-sided lower bound {verdict.low:.6g}, "
                f"{verdict.method})\n  setting: {setting}, tasks={tasks}\n"
                f"  inputs: {_format_inputs(inputs)}\n  family: {family!r}"
            )
        verdicts.append(verdict)
    return min(verdicts, key=lambda v: (v.slack if not math.isnan(v.slack) else math.inf))
