"""Few-shot nearest-mean error of a family, measured (THEORY.md T1, T5).

The quantity is the expected error of the nearest-mean rule trained on a random support set,

    err = E_S Pr_{(x, y)}[h_S(x) ≠ y],   h_S(x) = argmin_c ‖x − μ̂_c‖,  μ̂_c = mean of S_c,

with S_c ~ P_c^{n_c} independent, y uniform over the task's classes and x ~ P_y (Galanti,
György & Hutter, ICLR 2022, Prop. 5; THEORY.md T1). Ties count as errors. Distances are in the
difference form, scaled so that integer atoms give exact decisions:
‖L x − (L/n_c) Σ S_c‖² with L = lcm(n_c) (the ordering equals that of ‖x − μ̂_c‖²).

Methods of :func:`nearest_mean_error`:

- ``"plain"``: per task one support set per class and one query; the errors are Bernoulli
  trials, reported with an exact (Clopper–Pearson) interval. Vectorised over tasks in chunks.
- ``"rao_blackwell"``: two isotropic Gaussian classes; per task the exact conditional error
  given the support noise (THEORY.md T5, last item), averaged over tasks.
- ``"exact"``: finitely supported classes; every support multiset and every query is
  enumerated with its probability (float64), no sampling error.
- ``"auto"``: exact when the enumeration is small, else plain.

:func:`known_means_error` measures the error of the rule with the population means as centres
(n → ∞, THEORY.md T1d).
"""

from __future__ import annotations

import itertools
import math
import numbers
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from scipy.special import gammaln, ndtr

from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator, check_positive_int, describe
from ncbounds.verdict import Measurement

from .families import ClassFamily, FiniteSupportClasses, GaussianClasses

__all__ = [
    "nearest_mean_error",
    "known_means_error",
    "exact_enumeration_size",
    "EXACT_AUTO_LIMIT",
]

#: "auto" uses exact enumeration when :func:`exact_enumeration_size` is at most this.
EXACT_AUTO_LIMIT = 2_000_000
#: "exact" refuses enumerations larger than this (they would take minutes).
EXACT_HARD_LIMIT = 200_000_000
#: float64 elements per chunk of support draws (about 16 MiB).
_CHUNK_ELEMENTS = 1 << 21
_METHODS = ("auto", "plain", "rao_blackwell", "exact")


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _check_family(family: Any) -> ClassFamily:
    if not isinstance(family, ClassFamily):
        raise NCBoundsError(
            f"family: expected a simulations.families family (e.g. GaussianClasses), got {describe(family)}"
        )
    if family.n_classes < 2:
        raise NCBoundsError(f"family: expected at least two classes, got {family.n_classes}")
    return family


def _check_ways(ways: Any, family: ClassFamily) -> int:
    if ways is None:
        return family.n_classes
    w = check_positive_int(ways, "ways", minimum=2)
    if w > family.n_classes:
        raise NCBoundsError(
            f"ways: expected at most the family's {family.n_classes} classes, got {w}"
        )
    return w


def _check_shots(shots: Any, family: ClassFamily) -> np.ndarray:
    """(C,) int64 shots per family class from an int or one int per class."""
    c = family.n_classes
    if isinstance(shots, (numbers.Integral, np.integer)) and not isinstance(shots, bool):
        return np.full(c, check_positive_int(shots, "shots"), dtype=np.int64)
    try:
        seq = list(shots)
    except TypeError:
        raise NCBoundsError(
            f"shots: expected a positive int or one positive int per class, got {describe(shots)}"
        ) from None
    if len(seq) != c:
        raise NCBoundsError(f"shots: expected {c} values (one per class), got {len(seq)}")
    return np.array([check_positive_int(s, "shots") for s in seq], dtype=np.int64)


def _chunk_for(per_task_elements: int) -> int:
    return max(256, _CHUNK_ELEMENTS // max(1, per_task_elements))


def _errors_from_distances(dist: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Error indicators per row: another centre is at least as close as the true one."""
    own = dist[np.arange(dist.shape[0]), y]
    return np.count_nonzero(dist <= own[:, None], axis=1) > 1


def _squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """‖x_t − c_{t,w}‖² (difference form), x (T, p), centres (T, W, p) → (T, W)."""
    diff = centres - x[:, None, :]
    return np.einsum("twp,twp->tw", diff, diff)


# --------------------------------------------------------------------------------------
# plain Monte Carlo
# --------------------------------------------------------------------------------------


def _task_classes(gen: np.random.Generator, m: int, n_classes: int, ways: int) -> np.ndarray | None:
    """(m, ways) family classes per task: a uniform random subset, or None for all classes."""
    if ways == n_classes:
        return None
    return np.argsort(gen.random((m, n_classes)), axis=1)[:, :ways]


def _draw_queries(
    family: ClassFamily, qcls: np.ndarray, gen: np.random.Generator
) -> np.ndarray:
    x = np.empty((qcls.shape[0], family.dim))
    for c in range(family.n_classes):
        sel = qcls == c
        k = int(np.count_nonzero(sel))
        if k:
            x[sel] = family._draw(c, (k,), gen)
    return x


def _plain_errors(
    family: ClassFamily, shots: np.ndarray, ways: int, tasks: int, gen: np.random.Generator
) -> int:
    """Number of misclassified queries over ``tasks`` independent tasks."""
    c_all, p = family.n_classes, family.dim
    lcm = math.lcm(*shots.tolist())
    scale = (lcm // shots).astype(np.float64)
    chunk = _chunk_for(ways * int(shots.max()) * p)
    errors = 0
    for start in range(0, tasks, chunk):
        m = min(chunk, tasks - start)
        cls = _task_classes(gen, m, c_all, ways)
        centres = np.empty((m, ways, p))
        for c in range(c_all):
            if cls is None:
                sums = family._draw(c, (m, int(shots[c])), gen).sum(axis=1)
                sums *= scale[c]
                centres[:, c] = sums
                continue
            sel = cls == c
            k = int(np.count_nonzero(sel))
            if k:
                sums = family._draw(c, (k, int(shots[c])), gen).sum(axis=1)
                centres[sel] = sums * scale[c]
        y = gen.integers(ways, size=m)
        qcls = y if cls is None else cls[np.arange(m), y]
        x = _draw_queries(family, qcls, gen)
        x *= lcm
        errors += int(np.count_nonzero(_errors_from_distances(_squared_distances(x, centres), y)))
    return errors


# --------------------------------------------------------------------------------------
# Rao–Blackwellised estimator (isotropic Gaussian, two classes)
# --------------------------------------------------------------------------------------


def _phi_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Φ(−num/den) with den ≥ 0; den = 0 means a deterministic comparison (ties are errors)."""
    out = np.where(num > 0, 0.0, 1.0)
    pos = den > 0
    out[pos] = ndtr(-num[pos] / den[pos])
    return out


def _rao_blackwell_values(
    family: GaussianClasses, shots: np.ndarray, tasks: int, gen: np.random.Generator
) -> np.ndarray:
    """Per-task conditional error ½[err_1 + err_2] given the support noise (THEORY.md T5).

    With δ = μ_2 − μ_1, centre noises B ~ N(0, σ_1²/n_1 I), C ~ N(0, σ_2²/n_2 I) and
    w = δ + C − B: a class-1 query μ_1 + A errs iff 2⟨A, w⟩ ≥ ‖δ + C‖² − ‖B‖² = ⟨w, δ + C + B⟩,
    so err_1 = Φ(−⟨w, δ + B + C⟩ / (2 σ_1 ‖w‖)); symmetrically
    err_2 = Φ(−⟨w, δ − B − C⟩ / (2 σ_2 ‖w‖)).
    """
    s1, s2 = (float(s) for s in family.sigmas)
    delta = family.means[1] - family.means[0]
    p = family.dim
    sd_b, sd_c = s1 / math.sqrt(shots[0]), s2 / math.sqrt(shots[1])
    chunk = _chunk_for(2 * p)
    values = np.empty(tasks)
    for start in range(0, tasks, chunk):
        m = min(chunk, tasks - start)
        b = gen.standard_normal((m, p))
        b *= sd_b
        cn = gen.standard_normal((m, p))
        cn *= sd_c
        w = delta + cn - b
        wnorm = np.sqrt(np.einsum("tp,tp->t", w, w))
        bc = b + cn
        t1 = np.einsum("tp,tp->t", w, delta + bc)
        t2 = np.einsum("tp,tp->t", w, delta - bc)
        # ‖w‖ = 0: both centres coincide, every query is a tie, hence an error
        e1 = np.where(wnorm > 0, _phi_ratio(t1, 2.0 * s1 * wnorm), 1.0)
        e2 = np.where(wnorm > 0, _phi_ratio(t2, 2.0 * s2 * wnorm), 1.0)
        values[start : start + m] = 0.5 * (e1 + e2)
    return values


# --------------------------------------------------------------------------------------
# exact enumeration (finite supports)
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _compositions(n: int, k: int) -> np.ndarray:
    """All (count_1, …, count_k) ≥ 0 with sum n, shape (C(n+k−1, k−1), k) int64."""
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    blocks = []
    for first in range(n, -1, -1):
        rest = _compositions(n - first, k - 1)
        blocks.append(np.column_stack([np.full(rest.shape[0], first, dtype=np.int64), rest]))
    out = np.vstack(blocks)
    out.setflags(write=False)
    return out


def _multiset_count(n: int, k: int) -> int:
    return math.comb(n + k - 1, k - 1)


def exact_enumeration_size(family: ClassFamily, *, shots: Any, ways: int | None = None) -> int:
    """Work of the exact method: Σ over class subsets, query classes and query atoms of the
    number of support multisets compared against (0 when the family is not finite)."""
    if not isinstance(family, FiniteSupportClasses):
        return 0
    _check_family(family)
    w = _check_ways(ways, family)
    n = _check_shots(shots, family)
    k = [a.shape[0] for a in family.atoms]
    m = [_multiset_count(int(n[c]), k[c]) for c in range(family.n_classes)]
    total = 0
    for subset in itertools.combinations(range(family.n_classes), w):
        support = sum(m[c] for c in subset)
        total += sum(k[y] for y in subset) * support
    return total


def _support_law(atoms: np.ndarray, weights: np.ndarray, n: int, scale: int):
    """Scaled support sums (M, p) and their probabilities (M,) for n i.i.d. draws."""
    counts = _compositions(n, atoms.shape[0])
    logp = (
        gammaln(n + 1)
        - gammaln(counts + 1).sum(axis=1)
        + counts @ np.log(weights)
    )
    return (counts @ atoms) * float(scale), np.exp(logp)


def _exact_error(family: FiniteSupportClasses, shots: np.ndarray, ways: int) -> float:
    """E_S Pr[h_S(x) ≠ y] by enumeration.

    For a query atom a of class y, the supports of the classes are independent, so
    Pr[correct | a] = Σ_{s_y} P(s_y) Π_{c ≠ y} Pr[D_c > D_y(s_y)] with D_c the scaled squared
    distance from L·a to class c's scaled support sum.
    """
    lcm = math.lcm(*shots.tolist())
    laws = [
        _support_law(family.atoms[c], family.weights[c], int(shots[c]), lcm // int(shots[c]))
        for c in range(family.n_classes)
    ]
    subsets = list(itertools.combinations(range(family.n_classes), ways))
    total = 0.0
    for subset in subsets:
        for y in subset:
            sums_y, prob_y = laws[y]
            for atom, w_atom in zip(family.atoms[y], family.weights[y]):
                x = atom * float(lcm)
                dy = np.einsum("mp,mp->m", sums_y - x, sums_y - x)
                correct = prob_y.copy()
                for c in subset:
                    if c == y:
                        continue
                    sums_c, prob_c = laws[c]
                    dc = np.einsum("mp,mp->m", sums_c - x, sums_c - x)
                    order = np.argsort(dc, kind="stable")
                    sorted_d = dc[order]
                    cdf = np.concatenate([[0.0], np.cumsum(prob_c[order])])
                    # Pr[D_c ≤ t]: ties count against the true class
                    at_most = cdf[np.searchsorted(sorted_d, dy, side="right")]
                    correct *= np.clip(1.0 - at_most, 0.0, 1.0)
                total += float(w_atom) * (1.0 - float(correct.sum())) / ways
    return float(min(max(total / len(subsets), 0.0), 1.0))


# --------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------


def _resolve_rng(rng: Any, method: str) -> np.random.Generator:
    if rng is None:
        raise NCBoundsError(
            f"rng: the {method!r} method draws random tasks; pass a numpy Generator or an int seed"
        )
    return as_generator(rng)


def nearest_mean_error(
    family: ClassFamily,
    *,
    shots: int | Sequence[int],
    tasks: int = 100_000,
    rng: Any = None,
    ways: int | None = None,
    method: str = "auto",
) -> Measurement:
    """Few-shot nearest-mean error E_S Pr[h_S(x) ≠ y] of ``family`` (THEORY.md T1, T5).

    Parameters
    ----------
    family : a ``simulations.families`` family with C ≥ 2 classes.
    shots : n, support points per class: an int, or one int per family class (T1a).
    tasks : number of independent tasks (plain, rao_blackwell); each draws fresh supports
        and one query.
    rng : numpy Generator or int seed (required unless the method is exact).
    ways : classes per task; None means all C classes. With ways < C each task uses a
        uniformly random subset of ``ways`` classes, so the error averages over subsets
        (T1b with the family's average CDNV).
    method : "auto" | "plain" | "rao_blackwell" | "exact" (see the module docstring).

    Returns
    -------
    ncbounds.verdict.Measurement: an error rate with its Clopper–Pearson interval (plain),
    per-task conditional errors (rao_blackwell) or an exact value (exact).

    Ties count as errors. Reference: Galanti, György & Hutter (ICLR 2022), Prop. 5.

    >>> from simulations.families import FiniteSupportClasses
    >>> fam = FiniteSupportClasses([[[0.0], [2.0]], [[4.0]]], [[0.5, 0.5], [1.0]])
    >>> # a class-0 query at 2 ties with the class-1 centre 4 when class 0's centre is 0
    >>> float(nearest_mean_error(fam, shots=1).estimate)
    0.125
    """
    family = _check_family(family)
    if method not in _METHODS:
        raise NCBoundsError(f"method: expected one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    n = _check_shots(shots, family)
    w = _check_ways(ways, family)
    if method == "auto":
        size = exact_enumeration_size(family, shots=n, ways=w)
        method = "exact" if 0 < size <= EXACT_AUTO_LIMIT else "plain"
    if method == "exact":
        if not isinstance(family, FiniteSupportClasses):
            raise NCBoundsError(
                f"method: 'exact' needs FiniteSupportClasses, got {type(family).__name__}"
            )
        size = exact_enumeration_size(family, shots=n, ways=w)
        if size > EXACT_HARD_LIMIT:
            raise NCBoundsError(
                f"method: the exact enumeration needs {size} comparisons (limit "
                f"{EXACT_HARD_LIMIT}); use method='plain' or fewer atoms/shots"
            )
        return Measurement.exact(_exact_error(family, n, w))
    t = check_positive_int(tasks, "tasks")
    gen = _resolve_rng(rng, method)
    if method == "rao_blackwell":
        if not (isinstance(family, GaussianClasses) and family.sigmas is not None):
            raise NCBoundsError(
                f"method: 'rao_blackwell' needs isotropic GaussianClasses, got {family!r}"
            )
        if family.n_classes != 2 or w != 2:
            raise NCBoundsError(
                f"method: 'rao_blackwell' needs exactly two classes, got {family.n_classes}"
            )
        return Measurement.from_values(_rao_blackwell_values(family, n, t, gen))
    return Measurement.error_rate(_plain_errors(family, n, w, t, gen), t)


def known_means_error(
    family: ClassFamily,
    *,
    tasks: int = 100_000,
    rng: Any = None,
    query_class: int | None = None,
    method: str = "auto",
) -> Measurement:
    """Error of the nearest-population-mean rule h(x) = argmin_c ‖x − μ_c‖ (THEORY.md T1d).

    The query class is uniform over the family's classes, or fixed to ``query_class`` (then
    the measurement is Pr_{x~P_c}[h(x) ≠ c]; on a two-class ``family.subset([i, j])`` with
    ``query_class=0`` this is the pairwise error Pr_{i→j} of T1d). Ties count as errors.
    Methods: "plain" (``tasks`` queries, Clopper–Pearson), "exact" (finite supports:
    Σ_atoms weight × error indicator, ties decided in float64), "auto" (exact when finite).

    >>> from simulations.families import FiniteSupportClasses
    >>> fam = FiniteSupportClasses([[[0.0], [2.0]], [[3.0]]], [[0.5, 0.5], [1.0]])
    >>> float(known_means_error(fam, query_class=0).estimate)  # atom 2 ties: |2-1| = |2-3|
    0.5
    """
    family = _check_family(family)
    if method not in ("auto", "plain", "exact"):
        raise NCBoundsError(f"method: expected 'auto', 'plain' or 'exact', got {method!r}")
    qc = None if query_class is None else family._check_class(query_class, "query_class")
    finite = isinstance(family, FiniteSupportClasses)
    if method == "auto":
        method = "exact" if finite else "plain"
    means = family.means
    c_all = family.n_classes
    if method == "exact":
        if not finite:
            raise NCBoundsError(
                f"method: 'exact' needs FiniteSupportClasses, got {type(family).__name__}"
            )
        classes = range(c_all) if qc is None else [qc]
        err = 0.0
        for y in classes:
            atoms = family.atoms[y]
            dist = _squared_distances(atoms, np.broadcast_to(means, (atoms.shape[0],) + means.shape))
            wrong = _errors_from_distances(dist, np.full(atoms.shape[0], y))
            err += float(np.dot(family.weights[y], wrong))
        return Measurement.exact(err / len(classes))
    t = check_positive_int(tasks, "tasks")
    gen = _resolve_rng(rng, method)
    chunk = _chunk_for(c_all * family.dim)
    errors = 0
    for start in range(0, t, chunk):
        m = min(chunk, t - start)
        y = gen.integers(c_all, size=m) if qc is None else np.full(m, qc)
        x = _draw_queries(family, y, gen)
        dist = _squared_distances(x, np.broadcast_to(means, (m,) + means.shape))
        errors += int(np.count_nonzero(_errors_from_distances(dist, y)))
    return Measurement.error_rate(errors, t)
