"""Class-conditional families whose population quantities are known exactly (THEORY.md T5).

Each family is a list of C class-conditional laws P_1, …, P_C on R^p. Besides sampling, every
family knows its population truth with no sampling error: the class means μ_c, the variances
Var(P_c) = tr Σ_c, the covariances Σ_c, their largest eigenvalues λ_c, the CDNV
V_ij = (Var(P_i) + Var(P_j)) / (2 ‖μ_i − μ_j‖²) (THEORY.md T0) and the directional CDNV
Ṽ_ij = u_ijᵀ Σ_i u_ij / ‖μ_i − μ_j‖², u_ij the unit vector from μ_i to μ_j (T1d). These are
the inputs of the bounds of Galanti, György & Hutter (ICLR 2022, arXiv 2112.15121, Prop. 5
and its variants T1–T2), so a bound can be evaluated on the truth and compared with a
measured error (``simulations.montecarlo``).

Families:

- :class:`GaussianClasses`: N(μ_c, Σ_c), isotropic (σ_c² I), diagonal or full covariance.
- :class:`SphericalClasses`: μ_c + R·U, U uniform on the unit sphere, R ≥ 0 with a finite
  atomic law (shared or per class). Spherically symmetric around μ_c (THEORY.md T2); the T2
  counterexample is :meth:`SphericalClasses.two_point_radius`.
- :class:`FiniteSupportClasses`: atoms with weights per class; exact few-shot errors by
  enumeration (``simulations.montecarlo``).
- :class:`BallUniformClasses`: uniform in a ball around each mean; bounded, for T3.

:func:`mean_layout` places class means: Gaussian, uniform in a cube, or a regular simplex.

>>> import numpy as np
>>> fam = GaussianClasses.isotropic(mean_layout("simplex", 3, 2, scale=2.0), sigma=0.5)
>>> fam.n_classes, fam.dim
(3, 2)
>>> round(fam.cdnv(), 6)                      # p σ² / d² = 2 * 0.25 / 4
0.125
>>> x, y = fam.sample(4, rng=0)
>>> x.shape, y.tolist()
((12, 2), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
"""

from __future__ import annotations

import abc

import math
import numbers
import warnings
from typing import Any, Sequence

import numpy as np

from ncbounds._errors import NCBoundsError, NCBoundsWarning
from ncbounds._validation import as_generator, check_positive_int, describe

__all__ = [
    "ClassFamily",
    "GaussianClasses",
    "SphericalClasses",
    "FiniteSupportClasses",
    "BallUniformClasses",
    "mean_layout",
]


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NCBoundsError(f"{name}: expected an array of numbers, got {describe(value)}") from None
    if not np.all(np.isfinite(arr)):
        raise NCBoundsError(f"{name}: expected finite values, got NaN or inf in {describe(value)}")
    return arr


def _positive_float(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NCBoundsError(f"{name}: expected a positive number, got {describe(value)}") from None
    if not (math.isfinite(v) and v > 0):
        raise NCBoundsError(f"{name}: expected a positive finite number, got {v!r}")
    return v


def _check_means(means: Any) -> np.ndarray:
    arr = _as_float_array(means, "means")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise NCBoundsError(
            f"means: expected a 2-D (n_classes, dim) array with at least one class and one "
            f"dimension, got {describe(arr)}"
        )
    return arr


def _per_class(value: Any, n_classes: int, name: str, *, allow_zero: bool = True) -> np.ndarray:
    """A scalar or (C,) array of non-negative (or positive) numbers as a (C,) float array."""
    arr = _as_float_array(value, name)
    if arr.ndim == 0:
        arr = np.full(n_classes, float(arr))
    if arr.shape != (n_classes,):
        raise NCBoundsError(
            f"{name}: expected a number or one number per class ({n_classes}), got {describe(value)}"
        )
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad):
        what = "non-negative" if allow_zero else "positive"
        raise NCBoundsError(f"{name}: expected {what} values, got {arr.tolist()}")
    return arr


def _check_law(values: Any, weights: Any, name: str, weights_name: str, *, ndim: int):
    """Atoms (1-D radii or 2-D atoms) and positive weights summing to 1 (then renormalised)."""
    vals = _as_float_array(values, name)
    if vals.ndim != ndim or vals.shape[0] < 1:
        shape = "(n_atoms,)" if ndim == 1 else "(n_atoms, dim)"
        raise NCBoundsError(f"{name}: expected a non-empty {shape} array, got {describe(values)}")
    k = vals.shape[0]
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = _as_float_array(weights, weights_name)
        if w.shape != (k,):
            raise NCBoundsError(
                f"{weights_name}: expected one weight per atom ({k}), got {describe(weights)}"
            )
        if np.any(w <= 0):
            raise NCBoundsError(f"{weights_name}: expected positive weights, got {w.tolist()}")
        total = float(w.sum())
        if abs(total - 1.0) > 1e-9:
            raise NCBoundsError(f"{weights_name}: expected weights summing to 1, got sum {total!r}")
        w = w / total
    return vals, w


def _is_sequence_of_arrays(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        np.ndim(v) >= 1 for v in value
    )


def _warn_coinciding(pairs: list[tuple[int, int]], what: str) -> None:
    shown = ", ".join(f"({i}, {j})" for i, j in pairs[:5])
    more = "" if len(pairs) <= 5 else f" and {len(pairs) - 5} more"
    warnings.warn(
        f"{what}: class means coincide for pair(s) {shown}{more}; reported as +inf",
        NCBoundsWarning,
        stacklevel=3,
    )


def _unit_sphere(shape: tuple[int, ...], dim: int, gen: np.random.Generator) -> np.ndarray:
    """Uniform directions on the unit sphere of R^dim, shape ``shape + (dim,)``."""
    z = gen.standard_normal(shape + (dim,))
    norm = np.sqrt(np.einsum("...i,...i->...", z, z))
    # a zero Gaussian vector has probability 0; guard anyway so no division warning escapes
    norm[norm == 0] = 1.0
    z /= norm[..., None]
    return z


# --------------------------------------------------------------------------------------
# the common interface
# --------------------------------------------------------------------------------------


class ClassFamily(abc.ABC):
    """Base class: C class-conditional laws on R^p with exact population quantities.

    Subclasses provide ``variances``, ``radius``, ``_draw`` and ``_subset``; covariances come
    either from ``_isotropic_variances`` (Σ_c = s_c I) or from ``_full_covariances``.
    """

    def __init__(self, means: Any):
        self._means = _readonly(_check_means(means))

    # ---- shape -------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return int(self._means.shape[0])

    @property
    def dim(self) -> int:
        """Feature dimension p."""
        return int(self._means.shape[1])

    @property
    def means(self) -> np.ndarray:
        """Class means μ_c, a read-only (C, p) float64 array."""
        return self._means

    # ---- second moments ------------------------------------------------------------
    @property
    @abc.abstractmethod
    def variances(self) -> np.ndarray:
        """Var(P_c) = E‖x − μ_c‖² = tr Σ_c, shape (C,)."""
        raise NotImplementedError

    def _isotropic_variances(self) -> np.ndarray | None:
        """(C,) per-coordinate variances s_c when Σ_c = s_c I for every class, else None."""
        return None

    def _full_covariances(self) -> np.ndarray | None:  # pragma: no cover - overridden
        return None

    @property
    def covariances(self) -> np.ndarray | None:
        """Σ_c, shape (C, p, p) float64 (None where not finite)."""
        iso = self._isotropic_variances()
        if iso is not None:
            return iso[:, None, None] * np.eye(self.dim)[None]
        return self._full_covariances()

    @property
    def max_eigenvalues(self) -> np.ndarray:
        """λ_c, the largest eigenvalue of Σ_c, shape (C,) (THEORY.md T1c)."""
        iso = self._isotropic_variances()
        if iso is not None:
            return iso.copy()
        cov = self._require_covariances("max_eigenvalues")
        return np.linalg.eigvalsh(cov)[:, -1].clip(min=0.0)

    @property
    @abc.abstractmethod
    def radius(self) -> float:
        """sup ‖f(x)‖ over the supports of all classes (+inf when unbounded)."""
        raise NotImplementedError

    def _require_covariances(self, what: str) -> np.ndarray:
        cov = self.covariances
        if cov is None:
            raise NCBoundsError(f"{what}: {type(self).__name__} has no finite covariances")
        return cov

    def _directional_variances(self, i: int, u: np.ndarray) -> float:
        """uᵀ Σ_i u for a unit vector u."""
        iso = self._isotropic_variances()
        if iso is not None:
            return float(iso[i])
        cov = self._require_covariances("directional_cdnv_matrix")
        return float(u @ cov[i] @ u)

    # ---- CDNV ------------------------------------------------------------------------
    def _squared_distances(self) -> np.ndarray:
        diff = self._means[:, None, :] - self._means[None, :, :]
        return np.einsum("ijk,ijk->ij", diff, diff)

    def cdnv_matrix(self) -> np.ndarray:
        """V_ij = (Var_i + Var_j) / (2 ‖μ_i − μ_j‖²), shape (C, C), diagonal NaN.

        Coinciding means give +inf for that pair and an :class:`NCBoundsWarning`
        (THEORY.md T0).
        """
        d2 = self._squared_distances()
        v = self.variances
        num = v[:, None] + v[None, :]
        out = np.full_like(d2, np.inf)
        off = ~np.eye(self.n_classes, dtype=bool)
        pos = off & (d2 > 0)
        out[pos] = num[pos] / (2.0 * d2[pos])
        zero = off & (d2 == 0)
        if np.any(zero):
            _warn_coinciding([(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(zero)))], "cdnv")
        np.fill_diagonal(out, np.nan)
        return out

    def cdnv(self) -> float:
        """Average CDNV over the C(C−1)/2 unordered pairs of distinct classes (THEORY.md T0)."""
        if self.n_classes < 2:
            raise NCBoundsError(
                f"cdnv: expected a family with at least two classes, got {self.n_classes}"
            )
        m = self.cdnv_matrix()
        iu = np.triu_indices(self.n_classes, 1)
        return float(np.mean(m[iu]))

    def directional_cdnv_matrix(self) -> np.ndarray:
        """Ṽ_ij = u_ijᵀ Σ_i u_ij / ‖μ_i − μ_j‖², u_ij = (μ_j − μ_i)/‖μ_j − μ_i‖ (THEORY.md T1d).

        Not symmetric: row i is the class the query comes from. Diagonal NaN; coinciding
        means give +inf and an :class:`NCBoundsWarning`.
        """
        c = self.n_classes
        d2 = self._squared_distances()
        out = np.full((c, c), np.nan)
        zero: list[tuple[int, int]] = []
        for i in range(c):
            for j in range(c):
                if i == j:
                    continue
                if d2[i, j] == 0:
                    out[i, j] = np.inf
                    if i < j:
                        zero.append((i, j))
                    continue
                diff = self._means[j] - self._means[i]
                u = diff / math.sqrt(d2[i, j])
                out[i, j] = self._directional_variances(i, u) / d2[i, j]
        if zero:
            _warn_coinciding(zero, "directional_cdnv_matrix")
        return out

    # ---- sampling --------------------------------------------------------------------
    @abc.abstractmethod
    def _draw(self, c: int, size: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
        """``size + (p,)`` i.i.d. draws from class c (no validation: internal, hot path)."""
        raise NotImplementedError

    def draw_class(self, c: int, size: int | tuple[int, ...], rng: Any) -> np.ndarray:
        """i.i.d. draws from class ``c``, shape ``size + (p,)`` float64."""
        c = self._check_class(c, "c")
        if isinstance(size, (numbers.Integral, np.integer)):
            size = (int(size),)
        size = tuple(check_positive_int(s, "size", minimum=0) for s in size)
        return self._draw(c, size, as_generator(rng))

    def sample(self, n_per_class: int | Sequence[int], rng: Any) -> tuple[np.ndarray, np.ndarray]:
        """``n_per_class`` i.i.d. draws from each class.

        Returns ``(features, labels)``: features (Σ n_c, p) float64, class by class in order;
        labels (Σ n_c,) int64 with values 0..C−1. ``n_per_class`` is an int or one int per
        class.
        """
        gen = as_generator(rng)
        if isinstance(n_per_class, (numbers.Integral, np.integer)) and not isinstance(
            n_per_class, bool
        ):
            counts = [check_positive_int(n_per_class, "n_per_class")] * self.n_classes
        else:
            try:
                seq = list(n_per_class)
            except TypeError:
                raise NCBoundsError(
                    f"n_per_class: expected an int or one int per class, got {describe(n_per_class)}"
                ) from None
            if len(seq) != self.n_classes:
                raise NCBoundsError(
                    f"n_per_class: expected {self.n_classes} counts (one per class), got {len(seq)}"
                )
            counts = [check_positive_int(s, "n_per_class", minimum=0) for s in seq]
        feats = [self._draw(c, (n,), gen) for c, n in enumerate(counts)]
        labels = np.repeat(np.arange(self.n_classes, dtype=np.int64), counts)
        return np.concatenate(feats, axis=0), labels

    # ---- subsets -----------------------------------------------------------------------
    def _check_class(self, c: Any, name: str) -> int:
        if isinstance(c, bool) or not isinstance(c, (numbers.Integral, np.integer)):
            raise NCBoundsError(f"{name}: expected a class index, got {describe(c)}")
        if not 0 <= int(c) < self.n_classes:
            raise NCBoundsError(
                f"{name}: expected a class index in [0, {self.n_classes - 1}], got {int(c)}"
            )
        return int(c)

    def subset(self, classes: Sequence[int]) -> "ClassFamily":
        """The family restricted to ``classes`` (in that order), of the same type."""
        try:
            idx = [self._check_class(c, "classes") for c in classes]
        except TypeError:
            raise NCBoundsError(
                f"classes: expected a sequence of class indices, got {describe(classes)}"
            ) from None
        if not idx or len(set(idx)) != len(idx):
            raise NCBoundsError(f"classes: expected distinct class indices, got {list(classes)}")
        return self._subset(idx)

    @abc.abstractmethod
    def _subset(self, idx: list[int]) -> "ClassFamily":
        raise NotImplementedError

    # ---- display -----------------------------------------------------------------------
    def _describe_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        means = np.array2string(
            self._means, precision=3, threshold=12, edgeitems=2, separator=", "
        ).replace("\n", "")
        extra = self._describe_extra()
        return (
            f"{type(self).__name__}(n_classes={self.n_classes}, dim={self.dim}, "
            f"means={means}{', ' + extra if extra else ''})"
        )


def _short(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=3, threshold=8, edgeitems=2, separator=", ").replace(
        "\n", ""
    )


# --------------------------------------------------------------------------------------
# Gaussian classes
# --------------------------------------------------------------------------------------


class GaussianClasses(ClassFamily):
    """Gaussian classes N(μ_c, Σ_c) (THEORY.md T5).

    Give exactly one of ``sigma`` (isotropic Σ_c = σ_c² I: a number or one per class) and
    ``covariances`` ((p, p) shared, or (C, p, p); symmetric positive semi-definite).
    Var(P_c) = tr Σ_c; for isotropic classes V_ij = p (σ_i² + σ_j²) / (2 ‖μ_i − μ_j‖²).
    Unbounded: ``radius`` is +inf.

    >>> fam = GaussianClasses([[0.0, 0.0], [2.0, 0.0]], sigma=1.0)
    >>> float(fam.cdnv())                         # p σ² / d² = 2 / 4
    0.5
    >>> float(fam.directional_cdnv_matrix()[0, 1])   # σ² / d²
    0.25
    """

    def __init__(self, means: Any, covariances: Any = None, sigma: Any = None):
        super().__init__(means)
        c, p = self.n_classes, self.dim
        if (covariances is None) == (sigma is None):
            raise NCBoundsError(
                "covariances, sigma: expected exactly one of them (sigma for isotropic classes), "
                f"got {'both' if sigma is not None else 'neither'}"
            )
        self._sigma: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        self._diag_sd: np.ndarray | None = None
        self._factor: np.ndarray | None = None
        if sigma is not None:
            self._sigma = _readonly(_per_class(sigma, c, "sigma"))
            return
        cov = _as_float_array(covariances, "covariances")
        if cov.shape == (p, p):
            cov = np.broadcast_to(cov, (c, p, p))
        if cov.shape != (c, p, p):
            raise NCBoundsError(
                f"covariances: expected a ({p}, {p}) or ({c}, {p}, {p}) array, got {describe(covariances)}"
            )
        scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
        if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=0.0, atol=1e-12 * scale):
            raise NCBoundsError("covariances: expected symmetric matrices, got an asymmetric one")
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        evals, evecs = np.linalg.eigh(cov)
        if np.any(evals < -1e-10 * scale):
            raise NCBoundsError(
                f"covariances: expected positive semi-definite matrices, got smallest eigenvalue "
                f"{float(evals.min())!r}"
            )
        self._cov = _readonly(cov)
        offdiag = cov - np.einsum("cii->ci", cov)[:, :, None] * np.eye(p)[None]
        diag = np.einsum("cii->ci", cov)
        if not np.any(offdiag):
            if np.all(diag == diag[:, :1]):
                self._sigma = _readonly(np.sqrt(diag[:, 0]))
                self._cov = None
            else:
                self._diag_sd = np.sqrt(diag)
        else:
            # x = μ + z @ Fᵀ with F = V diag(√λ) has covariance F Fᵀ = Σ
            self._factor = evecs * np.sqrt(evals.clip(min=0.0))[:, None, :]

    @classmethod
    def isotropic(cls, means: Any, sigma: Any = 1.0) -> "GaussianClasses":
        """Isotropic classes N(μ_c, σ_c² I); ``sigma`` is a number or one per class."""
        return cls(means, sigma=sigma)

    @property
    def sigmas(self) -> np.ndarray | None:
        """σ_c (C,) when every class is isotropic (Σ_c = σ_c² I), else None."""
        return self._sigma

    @property
    def variances(self) -> np.ndarray:
        if self._sigma is not None:
            return self.dim * self._sigma**2
        return np.einsum("cii->c", self._cov)

    def _isotropic_variances(self) -> np.ndarray | None:
        return None if self._sigma is None else self._sigma**2

    def _full_covariances(self) -> np.ndarray:
        return self._cov

    @property
    def radius(self) -> float:
        return math.inf

    def _draw(self, c: int, size: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
        z = gen.standard_normal(size + (self.dim,))
        if self._sigma is not None:
            z *= self._sigma[c]
        elif self._diag_sd is not None:
            z *= self._diag_sd[c]
        else:
            z = z @ self._factor[c].T
        z += self._means[c]
        return z

    def _subset(self, idx: list[int]) -> "GaussianClasses":
        if self._sigma is not None:
            return GaussianClasses(self._means[idx], sigma=self._sigma[idx])
        return GaussianClasses(self._means[idx], covariances=self._cov[idx])

    def _describe_extra(self) -> str:
        if self._sigma is not None:
            return f"sigma={_short(self._sigma)}"
        return f"variances={_short(self.variances)}, max_eigenvalues={_short(self.max_eigenvalues)}"


# --------------------------------------------------------------------------------------
# spherically symmetric classes
# --------------------------------------------------------------------------------------


class SphericalClasses(ClassFamily):
    """Spherically symmetric classes μ_c + R·U (THEORY.md T2).

    U is uniform on the unit sphere of R^p and independent of R ≥ 0, whose law is atomic:
    ``radii`` with probabilities ``radius_weights`` (uniform when omitted). Give one law for
    all classes (1-D arrays) or one per class (a list of 1-D arrays). Var(P_c) = E R_c²,
    Σ_c = E R_c² / p · I, λ_c = E R_c² / p, sup ‖f(x)‖ = max_c ‖μ_c‖ + max R_c.

    >>> fam = SphericalClasses([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], radii=[0.0, 2.0],
    ...                        radius_weights=[0.75, 0.25])
    >>> float(fam.variances[0]), float(fam.cdnv())      # E R² = 1, V = (1 + 1) / 2
    (1.0, 1.0)
    """

    def __init__(self, means: Any, radii: Any, radius_weights: Any = None):
        super().__init__(means)
        c = self.n_classes
        per_class = _is_sequence_of_arrays(radii) or np.ndim(radii) == 2
        if per_class:
            if len(radii) != c:
                raise NCBoundsError(
                    f"radii: expected one radius law per class ({c}), got {len(radii)}"
                )
            if radius_weights is None:
                radius_weights = [None] * c
            elif not (_is_sequence_of_arrays(radius_weights) or np.ndim(radius_weights) == 2) or len(
                radius_weights
            ) != c:
                raise NCBoundsError(
                    f"radius_weights: expected one weight vector per class ({c}) to match "
                    f"per-class radii, got {describe(radius_weights)}"
                )
            laws = [
                _check_law(r, w, f"radii[{i}]", f"radius_weights[{i}]", ndim=1)
                for i, (r, w) in enumerate(zip(radii, radius_weights))
            ]
        else:
            laws = [_check_law(radii, radius_weights, "radii", "radius_weights", ndim=1)] * c
        for i, (r, _) in enumerate(laws):
            if np.any(r < 0):
                raise NCBoundsError(f"radii: expected non-negative radii, got {r.tolist()} (class {i})")
        self._radii = [_readonly(r) for r, _ in laws]
        self._weights = [_readonly(w) for _, w in laws]
        self._second = np.array([float(np.dot(w, r * r)) for r, w in laws])

    @classmethod
    def two_point_radius(cls, dim: int, q: float, distance: float = 1.0) -> "SphericalClasses":
        """THEORY.md T2 counterexample: two classes at distance d, R = 2d w.p. q, else 0.

        Var = 4 q d², V = 4q; with one shot the error is at least q (1 − q)² whatever p,
        while the slides' form gives 192 q / p.

        >>> fam = SphericalClasses.two_point_radius(500, 0.05)
        >>> round(fam.cdnv(), 12)
        0.2
        """
        dim = check_positive_int(dim, "dim")
        try:
            q = float(q)
        except (TypeError, ValueError):
            raise NCBoundsError(f"q: expected a number in (0, 1], got {describe(q)}") from None
        if not 0.0 < q <= 1.0:
            raise NCBoundsError(f"q: expected a number in (0, 1], got {q!r}")
        d = _positive_float(distance, "distance")
        means = np.zeros((2, dim))
        means[1, 0] = d
        if q == 1.0:
            return cls(means, radii=[2.0 * d])
        return cls(means, radii=[0.0, 2.0 * d], radius_weights=[1.0 - q, q])

    @property
    def radii(self) -> list[np.ndarray]:
        """The radius atoms of each class (a list of C 1-D arrays)."""
        return list(self._radii)

    @property
    def radius_weights(self) -> list[np.ndarray]:
        """The radius probabilities of each class (a list of C 1-D arrays)."""
        return list(self._weights)

    @property
    def variances(self) -> np.ndarray:
        return self._second.copy()

    def _isotropic_variances(self) -> np.ndarray:
        return self._second / self.dim

    @property
    def radius(self) -> float:
        norms = np.sqrt(np.einsum("ij,ij->i", self._means, self._means))
        return float(max(norms[i] + float(r.max()) for i, r in enumerate(self._radii)))

    def _draw(self, c: int, size: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
        r = self._radii[c]
        if r.size == 1:
            u = _unit_sphere(size, self.dim, gen)
            u *= r[0]
            u += self._means[c]
            return u
        # draw R first: points with R = 0 sit at the mean and need no direction
        radius = gen.choice(r, size=size, p=self._weights[c])
        out = np.empty(size + (self.dim,))
        out[...] = self._means[c]
        moving = radius > 0
        k = int(np.count_nonzero(moving))
        if k:
            u = _unit_sphere((k,), self.dim, gen)
            u *= radius[moving][:, None]
            out[moving] += u
        return out

    def _subset(self, idx: list[int]) -> "SphericalClasses":
        return SphericalClasses(
            self._means[idx], [self._radii[i] for i in idx], [self._weights[i] for i in idx]
        )

    def _describe_extra(self) -> str:
        laws = ", ".join(
            f"{_short(r)}@{_short(w)}" for r, w in zip(self._radii, self._weights)
        )
        return f"radius laws=[{laws}]"


# --------------------------------------------------------------------------------------
# finitely supported classes
# --------------------------------------------------------------------------------------


class FiniteSupportClasses(ClassFamily):
    """Classes with finitely many atoms: class c puts weight w_{c,k} on atom a_{c,k} ∈ R^p.

    ``atoms`` is a list of C arrays of shape (k_c, p); ``weights`` a list of C positive
    vectors summing to 1 (uniform when omitted). μ_c = Σ_k w_k a_k,
    Σ_c = Σ_k w_k (a_k − μ_c)(a_k − μ_c)ᵀ, radius = max ‖a‖. Few-shot errors of these
    families can be computed exactly by enumeration (``simulations.montecarlo``); integer
    atoms make the tie decisions exact in float64.

    >>> fam = FiniteSupportClasses([[[0.0], [2.0]], [[5.0]]], [[0.5, 0.5], [1.0]])
    >>> fam.means.ravel().tolist(), fam.variances.tolist(), float(fam.cdnv())
    ([1.0, 5.0], [1.0, 0.0], 0.03125)
    """

    def __init__(self, atoms: Sequence[Any], weights: Sequence[Any] | None = None):
        if not isinstance(atoms, (list, tuple)) and not (
            isinstance(atoms, np.ndarray) and atoms.ndim == 3
        ):
            raise NCBoundsError(
                f"atoms: expected a list with one (k_c, dim) array per class, got {describe(atoms)}"
            )
        if len(atoms) < 1:
            raise NCBoundsError("atoms: expected at least one class, got an empty list")
        if weights is None:
            weights = [None] * len(atoms)
        if len(weights) != len(atoms):
            raise NCBoundsError(
                f"weights: expected one weight vector per class ({len(atoms)}), got {len(weights)}"
            )
        laws = [
            _check_law(a, w, f"atoms[{i}]", f"weights[{i}]", ndim=2)
            for i, (a, w) in enumerate(zip(atoms, weights))
        ]
        dims = {a.shape[1] for a, _ in laws}
        if len(dims) != 1:
            raise NCBoundsError(
                f"atoms: expected the same dimension for every class, got dimensions {sorted(dims)}"
            )
        means = np.stack([w @ a for a, w in laws])
        super().__init__(means)
        self._atoms = [_readonly(a) for a, _ in laws]
        self._weights = [_readonly(w) for _, w in laws]
        centred = [a - m for (a, _), m in zip(laws, means)]
        self._variances = np.array(
            [float(np.dot(w, np.einsum("kp,kp->k", x, x))) for (_, w), x in zip(laws, centred)]
        )
        self._cov = _readonly(np.stack([(x * w[:, None]).T @ x for (_, w), x in zip(laws, centred)]))

    @property
    def atoms(self) -> list[np.ndarray]:
        """The atoms of each class (a list of C arrays (k_c, p))."""
        return list(self._atoms)

    @property
    def weights(self) -> list[np.ndarray]:
        """The atom probabilities of each class (a list of C 1-D arrays)."""
        return list(self._weights)

    @property
    def variances(self) -> np.ndarray:
        return self._variances.copy()

    def _full_covariances(self) -> np.ndarray:
        return self._cov

    @property
    def radius(self) -> float:
        return float(max(np.sqrt(np.einsum("kp,kp->k", a, a)).max() for a in self._atoms))

    def _draw(self, c: int, size: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
        a = self._atoms[c]
        if a.shape[0] == 1:
            return np.broadcast_to(a[0], size + (self.dim,)).copy()
        idx = gen.choice(a.shape[0], size=size, p=self._weights[c])
        return a[idx]

    def _subset(self, idx: list[int]) -> "FiniteSupportClasses":
        return FiniteSupportClasses([self._atoms[i] for i in idx], [self._weights[i] for i in idx])

    def __repr__(self) -> str:
        laws = "; ".join(
            f"{_short(a.tolist())}@{_short(w)}" for a, w in zip(self._atoms, self._weights)
        )
        return f"FiniteSupportClasses(n_classes={self.n_classes}, dim={self.dim}, atoms@weights=[{laws}])"


# --------------------------------------------------------------------------------------
# uniform in a ball (bounded, for T3)
# --------------------------------------------------------------------------------------


class BallUniformClasses(ClassFamily):
    """Class c uniform in the ball of radius r_c around μ_c (bounded; THEORY.md T3).

    Var(P_c) = p r_c² / (p + 2), Σ_c = r_c² / (p + 2) · I, sup ‖f(x)‖ = max_c ‖μ_c‖ + r_c.

    >>> fam = BallUniformClasses([[0.0, 0.0], [3.0, 4.0]], ball_radius=1.0)
    >>> fam.radius, fam.variances.tolist()
    (6.0, [0.5, 0.5])
    """

    def __init__(self, means: Any, ball_radius: Any):
        super().__init__(means)
        self._r = _readonly(_per_class(ball_radius, self.n_classes, "ball_radius"))

    @property
    def ball_radius(self) -> np.ndarray:
        """r_c, shape (C,)."""
        return self._r

    @property
    def variances(self) -> np.ndarray:
        return self.dim * self._r**2 / (self.dim + 2)

    def _isotropic_variances(self) -> np.ndarray:
        return self._r**2 / (self.dim + 2)

    @property
    def radius(self) -> float:
        norms = np.sqrt(np.einsum("ij,ij->i", self._means, self._means))
        return float(np.max(norms + self._r))

    def _draw(self, c: int, size: tuple[int, ...], gen: np.random.Generator) -> np.ndarray:
        u = _unit_sphere(size, self.dim, gen)
        u *= (self._r[c] * gen.random(size) ** (1.0 / self.dim))[..., None]
        u += self._means[c]
        return u

    def _subset(self, idx: list[int]) -> "BallUniformClasses":
        return BallUniformClasses(self._means[idx], self._r[idx])

    def _describe_extra(self) -> str:
        return f"ball_radius={_short(self._r)}"


# --------------------------------------------------------------------------------------
# mean layouts
# --------------------------------------------------------------------------------------


_LAYOUTS = ("gaussian", "cube", "simplex")


def mean_layout(
    kind: str, n_classes: int, dim: int, *, scale: float = 1.0, rng: Any = None
) -> np.ndarray:
    """Class means, a (C, p) float64 array.

    - ``"gaussian"``: i.i.d. N(0, scale²) coordinates (needs ``rng``);
    - ``"cube"``: uniform in the cube [0, scale]^p (needs ``rng``; THEORY.md T4's example);
    - ``"simplex"``: the vertices of a regular simplex centred at 0 with every pairwise
      distance equal to ``scale`` (needs dim ≥ C − 1; deterministic; THEORY.md T5).

    >>> m = mean_layout("simplex", 3, 2, scale=2.0)
    >>> round(float(np.linalg.norm(m[0] - m[1])), 12), round(float(np.linalg.norm(m[1] - m[2])), 12)
    (2.0, 2.0)
    """
    if kind not in _LAYOUTS:
        raise NCBoundsError(f"kind: expected one of {', '.join(map(repr, _LAYOUTS))}, got {kind!r}")
    c = check_positive_int(n_classes, "n_classes")
    p = check_positive_int(dim, "dim")
    s = _positive_float(scale, "scale")
    if kind == "simplex":
        if p < c - 1:
            raise NCBoundsError(
                f"dim: a regular simplex with {c} vertices needs dim >= {c - 1}, got {p}"
            )
        # vertices e_1..e_C of R^C (pairwise distance √2), centred, written in an orthonormal
        # basis of the hyperplane orthogonal to (1, …, 1), then embedded in R^p
        centred = np.eye(c) - 1.0 / c
        if c == 1:
            return np.zeros((1, p))
        q, _ = np.linalg.qr(centred[:, : c - 1])
        coords = centred @ q  # (C, C-1), pairwise distances √2
        out = np.zeros((c, p))
        out[:, : c - 1] = coords * (s / math.sqrt(2.0))
        return out
    if rng is None:
        raise NCBoundsError(f"rng: the {kind!r} layout draws random means; pass a Generator or a seed")
    gen = as_generator(rng)
    if kind == "gaussian":
        return s * gen.standard_normal((c, p))
    return s * gen.random((c, p))
