r"""Class-distance normalised variance (CDNV) and the neural-collapse metrics.

Definitions (THEORY.md T0; Galanti, György & Hutter, ICLR 2022, Def. 1):

.. math::
   V_f(Q_i, Q_j) = \frac{\mathrm{Var}_f(Q_i) + \mathrm{Var}_f(Q_j)}
                        {2\,\lVert \mu_f(Q_i) - \mu_f(Q_j) \rVert^2},
   \qquad \mathrm{Avg}_{i \ne j} V_{ij} \text{ over the } C(C-1)/2 \text{ unordered pairs.}

Other normalisations are offered by :func:`cdnv_matrix` under explicit names and are never
mixed silently: ``"one_sided"`` :math:`V^J_{ij} = v_i / d_{ij}^2` (journal version;
:math:`V_{ij} = (V^J_{ij} + V^J_{ji})/2`) and ``"directional"``
:math:`\tilde V_{ij} = u_{ij}^\top \Sigma_i u_{ij} / d_{ij}^2`. The "(v_i + v_j)/d²" of some
later papers equals :math:`2V_{ij}`.

Papyan, Han & Donoho (2020) metrics (:func:`nc_metrics`): NC1 :math:`= \frac1C
\mathrm{tr}(\Sigma_W \Sigma_B^\dagger)`, NC2 (equinorm, equiangularity, distance to the
simplex-ETF Gram), NC3 (self-duality), NC4 (agreement with the nearest-class-centre rule).

All metrics read the one-pass sufficient statistics of :class:`~ncbounds.ClassStats`, so any
of them accepts either ``(features, labels)`` or a ``ClassStats`` in place of ``features``.
Distances between means are always formed in the difference form in float64.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ._errors import NCBoundsError, NCBoundsWarning
from ._validation import (
    check_features,
    check_labels,
    describe,
    is_torch_tensor,
    raise_nonfinite,
    to_numpy,
)
from .stats import ClassStats, ScatterKind

__all__ = ["cdnv", "cdnv_matrix", "nc_metrics", "NCMetrics", "nearest_class_mean"]

CdnvKind = Literal["symmetric", "one_sided", "directional"]


def _stats(features: Any, labels: Any, need: ScatterKind = None) -> tuple[ClassStats, Any]:
    """A ClassStats from (features, labels) or the ClassStats passed in place of features.

    Returns the statistics and the validated features (None when a ClassStats was given).
    """
    if isinstance(features, ClassStats):
        if labels is not None:
            raise NCBoundsError(
                "labels: expected None when a ClassStats is passed in place of features, got "
                f"{describe(labels)}"
            )
        stats = features
        if stats.empty:
            raise NCBoundsError("features: expected a ClassStats with data, got an empty one")
        return stats, None
    if labels is None:
        raise NCBoundsError("labels: expected one integer label per feature row, got None")
    features = check_features(features)
    labels = check_labels(labels, features.shape[0])
    return ClassStats.from_features(features, labels, scatter_matrix=need), features


def _need_two_classes(stats: ClassStats) -> None:
    if stats.n_classes < 2:
        raise NCBoundsError(
            f"labels: expected at least two distinct classes, got {stats.n_classes} "
            f"(labels present: {stats.classes.tolist()})"
        )


def _warn_coinciding(stats: ClassStats, i: int, k: int, count: int) -> None:
    c = stats.classes
    warnings.warn(
        f"{count} pair(s) of classes have coinciding means (first: classes {int(c[i])} and "
        f"{int(c[k])}); their CDNV is undefined and reported as +inf (THEORY.md T0)",
        NCBoundsWarning,
        stacklevel=3,
    )


def cdnv(features: Any, labels: Any = None, *, ddof: int = 0) -> float:
    r"""Average class-distance normalised variance over unordered pairs of distinct classes.

    .. math::
       \mathrm{Avg}_{i<j}\; \frac{v_i + v_j}{2\lVert\mu_i - \mu_j\rVert^2},
       \qquad v_c = \frac{1}{n_c - \text{ddof}} \sum_{y=c} \lVert x - \mu_c\rVert^2 .

    Parameters
    ----------
    features : (n, p) numpy array or torch tensor (CPU or CUDA), or a :class:`ClassStats`.
    labels : (n,) integers (arbitrary values; classes are the labels present). Omit when
        ``features`` is a ClassStats.
    ddof : 0 (default, the paper's convention) or 1.

    Returns
    -------
    float. +inf (with an :class:`NCBoundsWarning`) when two class means coincide.

    Notes
    -----
    One pass over the data with float64 accumulators (see :mod:`ncbounds.stats`); the pair
    step is O(C) in memory (no C × C × p, nor even C × C, array). Invariant under rotations,
    translations and uniform scalings of the features and under relabelling of the classes.
    Reference: THEORY.md T0; Galanti, György & Hutter (ICLR 2022), Definition 1.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 1.0], [4.0, -1.0]])
    >>> cdnv(x, [0, 0, 1, 1])          # (1 + 1) / (2 · 16)
    0.0625
    """
    stats, _ = _stats(features, labels)
    _need_two_classes(stats)
    from ._kernels import pair_cdnv_rowsums

    v = stats.variances(ddof)
    sums, n_zero, partner = pair_cdnv_rowsums(np.ascontiguousarray(stats.means), v)
    if n_zero.any():
        i = int(np.flatnonzero(n_zero)[0])
        _warn_coinciding(stats, i, int(partner[i]), int(n_zero.sum()))
        return float("inf")
    c = stats.n_classes
    return float(sums.sum() / (c * (c - 1) / 2))


def _pair_sqdist(stats: ClassStats) -> np.ndarray:
    from ._kernels import pairwise_sqdist

    return pairwise_sqdist(np.ascontiguousarray(stats.means))


def cdnv_matrix(
    features: Any, labels: Any = None, *, kind: CdnvKind = "symmetric", ddof: int = 0
) -> np.ndarray:
    r"""C × C matrix of pairwise CDNVs (classes in sorted label order), diagonal NaN.

    kind
        ``"symmetric"``: :math:`V_{ij} = (v_i + v_j) / (2 d_{ij}^2)` (the paper's);
        ``"one_sided"``: :math:`V^J_{ij} = v_i / d_{ij}^2`;
        ``"directional"``: :math:`\tilde V_{ij} = u_{ij}^\top \Sigma_i u_{ij} / d_{ij}^2` with
        :math:`u_{ij} = (\mu_j - \mu_i)/d_{ij}` and :math:`\Sigma_i` the covariance of class
        i (needs per-class scatter matrices: computed automatically from features, or pass
        ``ClassStats(scatter_matrix="per_class")``). Used by the known-means bound T1d.

    Coinciding means give +inf for that pair and an :class:`NCBoundsWarning`. Reference:
    THEORY.md T0.

    >>> import numpy as np
    >>> x = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 0.0], [4.0, 0.0]])
    >>> cdnv_matrix(x, [0, 0, 1, 1], kind="one_sided")
    array([[   nan, 0.0625],
           [0.    ,    nan]])
    >>> float(cdnv_matrix(x, [0, 0, 1, 1], kind="directional")[0, 1])   # no spread along e_1
    0.0
    """
    if kind not in ("symmetric", "one_sided", "directional"):
        raise NCBoundsError(
            f"kind: expected 'symmetric', 'one_sided' or 'directional', got {kind!r}"
        )
    stats, _ = _stats(features, labels, "per_class" if kind == "directional" else None)
    _need_two_classes(stats)
    v = stats.variances(ddof)
    d2 = _pair_sqdist(stats)
    c = stats.n_classes
    off = ~np.eye(c, dtype=bool)
    zero = (d2 == 0) & off
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "symmetric":
            num = v[:, None] + v[None, :]
            out = num / (2.0 * d2)
        elif kind == "one_sided":
            out = np.broadcast_to(v[:, None], (c, c)) / d2
        else:
            cov = stats.class_scatter_matrices() / (stats.counts - ddof)[:, None, None]
            out = np.empty((c, c))
            means = stats.means
            for i in range(c):
                diff = means - means[i]  # rows μ_j − μ_i, difference form
                quad = np.einsum("jp,pq,jq->j", diff, cov[i], diff)
                out[i] = quad / d2[i] ** 2
    out = np.array(out, dtype=np.float64)
    if zero.any():
        i, k = np.argwhere(zero)[0]
        _warn_coinciding(stats, int(i), int(k), int(zero.sum() // 2))
        out[zero] = np.inf
    np.fill_diagonal(out, np.nan)
    return out


@dataclass(frozen=True)
class NCMetrics:
    r"""Neural-collapse metrics of one feature set (Papyan, Han & Donoho 2020; THEORY.md T0).

    The global mean μ_G is the mean of all samples (count-weighted), as in Papyan et al.
    whose data sets are balanced; with imbalanced classes the NC2 metrics are measured
    around that centre.

    Attributes
    ----------
    nc1 : :math:`\frac1C \mathrm{tr}(\Sigma_W \Sigma_B^\dagger)`, Σ_W = S_W / N,
        Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ, pseudo-inverse over the ``sigma_b_rank``
        directions kept (rank ≤ C − 1, tolerance from the input precision).
    nc2_equinorm : coefficient of variation (std / mean, ddof = 0) of ‖μ_c − μ_G‖.
    nc2_equiangular : standard deviation of the cosines between distinct centred means.
    nc2_maxangle : mean of |cos + 1/(C − 1)| over distinct pairs (0 for a simplex ETF).
    nc2_etf_distance : ‖G/‖G‖_F − E/‖E‖_F‖_F, G the Gram matrix of the unit-normalised centred
        means and E = I − 11ᵀ/C the simplex-ETF Gram (up to scale).
    nc3 : ‖W/‖W‖_F − M/‖M‖_F‖²_F with W the classifier rows of the present classes and M the
        centred means (NaN when no weights were given).
    nc4 : fraction of samples where the network's prediction equals the nearest-class-mean
        decision (NaN when no predictions were given; ties count as disagreement).
    cdnv : average CDNV (:func:`cdnv`), for convenience.
    """

    n_samples: int
    n_classes: int
    dim: int
    cdnv: float
    nc1: float
    nc2_equinorm: float
    nc2_equiangular: float
    nc2_maxangle: float
    nc2_etf_distance: float
    nc3: float
    nc4: float
    sigma_b_rank: int

    def to_frame(self):
        """Tidy rows: one per metric, columns ``metric`` and ``value`` (plus sizes)."""
        import pandas as pd

        d = asdict(self)
        sizes = {k: d.pop(k) for k in ("n_samples", "n_classes", "dim")}
        return pd.DataFrame(
            [{"metric": k, "value": float(v), **sizes} for k, v in d.items()]
        )

    def __str__(self) -> str:
        d = asdict(self)
        width = max(len(k) for k in d)
        return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in d.items())


def nc_metrics(
    features: Any,
    labels: Any = None,
    *,
    weights: Any = None,
    predictions: Any = None,
) -> NCMetrics:
    r"""NC1–NC4 and the CDNV from one pass over the features (THEORY.md T0).

    Parameters
    ----------
    features : (n, p) array/tensor, or a ClassStats built with ``scatter_matrix="within"``
        (or "per_class"); nc4 then needs the features and is unavailable.
    labels : (n,) integers.
    weights : optional (K, p) last-layer classifier weights, row ``c`` the classifier of
        label ``c`` (labels must lie in [0, K)); gives nc3.
    predictions : optional (n,) network predictions; gives nc4.

    Notes
    -----
    Σ_B's pseudo-inverse is rank-aware: singular values of the centred-mean matrix below
    max(C, p) · ε_input · s_max are dropped, with ε_input the round-off of the input dtype
    (float32 → 2⁻²³), and at most C − 1 are kept. A default float64 cutoff applied to
    float32 data would keep rounding noise as a spurious tiny eigenvalue and blow NC1 up.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]])
    >>> m = nc_metrics(x, [0, 0, 1, 1], weights=np.array([[1.0, 0.0], [-1.0, 0.0]]),
    ...                predictions=[0, 0, 1, 1])
    >>> round(m.nc1, 12), m.sigma_b_rank, round(m.nc3, 12), m.nc4
    (0.0, 1, 0.0, 1.0)
    """
    if isinstance(features, ClassStats) and features.scatter_kind is None:
        raise NCBoundsError(
            "features: nc_metrics needs the within-class scatter matrix; expected a "
            "ClassStats(scatter_matrix='within') or features and labels, got a ClassStats "
            "built with scatter_matrix=None"
        )
    stats, feats = _stats(features, labels, "within")
    _need_two_classes(stats)
    m = stats.moments
    c, n, p = stats.n_classes, stats.n_samples, stats.dim
    mu_g = stats.global_mean
    centred = m.means - mu_g  # C × p, difference form
    norms = np.linalg.norm(centred, axis=1)

    # NC1 via the SVD of the centred means: Σ_B = Vᵀ diag(s²/C) V
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # Rounding of the inputs perturbs each mean by about eps·‖μ_c‖ (a common offset counts),
    # so the cutoff scales with the raw mean norms, not only with the spread of the means.
    scale = max(s[0] if s.size else 0.0, float(np.linalg.norm(m.means, axis=1).max()))
    tol = max(c, p) * m.eps * scale
    keep = min(int((s > tol).sum()), c - 1)
    sigma_w = stats.within_scatter() / n
    if keep == 0:
        nc1 = float("inf")
        warnings.warn("all class means coincide: Σ_B = 0 and NC1 is +inf", NCBoundsWarning, stacklevel=2)
    else:
        v = vt[:keep]  # keep × p
        quad = np.einsum("kp,pq,kq->k", v, sigma_w, v)
        nc1 = float(np.sum(quad / s[:keep] ** 2))  # (1/C) Σ_k C·quad_k / s_k²

    # NC2
    nc2_equinorm = float(norms.std() / norms.mean()) if norms.mean() > 0 else float("nan")
    if (norms == 0).any():
        warnings.warn(
            f"class {int(m.classes[np.flatnonzero(norms == 0)[0]])} has its mean at the global "
            "mean: the angles between centred means are undefined and the NC2 angle metrics "
            "are NaN",
            NCBoundsWarning,
            stacklevel=2,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / norms[:, None]
    gram = unit @ unit.T
    iu = np.triu_indices(c, 1)
    cos = gram[iu]
    nc2_equiangular = float(cos.std())
    nc2_maxangle = float(np.mean(np.abs(cos + 1.0 / (c - 1))))
    etf = np.eye(c) - np.full((c, c), 1.0 / c)
    nc2_etf = float(np.linalg.norm(gram / np.linalg.norm(gram) - etf / np.linalg.norm(etf)))

    nc3 = float("nan")
    if weights is not None:
        w = to_numpy(weights)
        if w.ndim != 2 or w.shape[1] != p:
            raise NCBoundsError(
                f"weights: expected a (K, {p}) matrix of classifier rows, got {describe(weights)}"
            )
        if m.classes.min() < 0 or m.classes.max() >= w.shape[0]:
            raise NCBoundsError(
                f"weights: row c is the classifier of label c, so expected at least "
                f"{int(m.classes.max()) + 1} rows for labels {int(m.classes.min())}.."
                f"{int(m.classes.max())}, got {w.shape[0]}"
            )
        wc = np.asarray(w, dtype=np.float64)[m.classes]
        nc3 = float(
            np.linalg.norm(wc / np.linalg.norm(wc) - centred / np.linalg.norm(centred)) ** 2
        )

    nc4 = float("nan")
    if predictions is not None:
        if feats is None:
            raise NCBoundsError(
                "predictions: nc4 compares predictions with the nearest-class-mean rule on "
                "the features; expected features and labels, got a ClassStats"
            )
        pred = check_labels(predictions, n, name="predictions")
        ncm, tie = _ncm_decisions(feats, stats)
        nc4 = float(np.mean((ncm == pred) & ~tie))  # a tie never agrees

    return NCMetrics(
        n_samples=n,
        n_classes=c,
        dim=p,
        cdnv=cdnv(stats),
        nc1=nc1,
        nc2_equinorm=nc2_equinorm,
        nc2_equiangular=nc2_equiangular,
        nc2_maxangle=nc2_maxangle,
        nc2_etf_distance=nc2_etf,
        nc3=nc3,
        nc4=nc4,
        sigma_b_rank=keep,
    )


_NCM_BLOCK = 8192


def nearest_class_mean(features: Any, stats: ClassStats, *, tie: int | None = None) -> np.ndarray:
    r"""Nearest-class-mean decisions :math:`\arg\min_c \lVert x - \mu_c\rVert` for every row.

    Features and means are first centred by the global mean in float64; scores come from one
    matrix product, and every row whose two best squared distances are within a relative
    1e-9 of each other is recomputed in the exact difference form, so neither a large common
    offset nor cancellation can flip a decision. Ties (equal exact distances) return ``tie``
    (default: one below the smallest class label, never a real class), so they count as
    errors / disagreements.

    >>> import numpy as np
    >>> s = ClassStats.from_features(np.array([[0.0], [2.0]]), [3, 5])
    >>> nearest_class_mean(np.array([[0.2], [1.0], [1.9]]), s).tolist()
    [3, 2, 5]
    """
    labels, tie_mask = _ncm_decisions(features, stats)
    tie_label = int(stats.classes.min()) - 1 if tie is None else int(tie)
    labels[tie_mask] = tie_label
    return labels


def _ncm_decisions(features: Any, stats: ClassStats) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-class-mean labels and a mask of exact ties (see :func:`nearest_class_mean`)."""
    feats = check_features(features)
    x = to_numpy(feats) if is_torch_tensor(feats) else feats
    if x.shape[1] != stats.dim:
        raise NCBoundsError(
            f"features: expected {stats.dim} columns to match the class means, got {describe(x)}"
        )
    classes = stats.classes
    mu_g = stats.global_mean
    mu = stats.means - mu_g
    mu_sq = np.einsum("cp,cp->c", mu, mu)
    out = np.empty(x.shape[0], dtype=np.int64)
    ties = np.zeros(x.shape[0], dtype=bool)
    for lo in range(0, x.shape[0], _NCM_BLOCK):
        xb = x[lo : lo + _NCM_BLOCK].astype(np.float64) - mu_g
        sq = np.einsum("np,np->n", xb, xb)
        if not np.isfinite(sq).all():
            raise_nonfinite(x)
        d2 = mu_sq[None, :] - 2.0 * (xb @ mu.T) + sq[:, None]
        best = np.argmin(d2, axis=1)
        if classes.size > 1:
            two = np.partition(d2, 1, axis=1)[:, :2]
            scale = np.abs(two).max(axis=1) + mu_sq.max()
            close = np.flatnonzero(two[:, 1] - two[:, 0] <= 1e-9 * scale)
        else:
            close = np.empty(0, np.int64)
        res = classes[best]
        for r in close:  # exact difference form for near-ties, on the raw row
            diff = x[lo + r].astype(np.float64)[None, :] - stats.means
            exact = np.einsum("cp,cp->c", diff, diff)
            winners = np.flatnonzero(exact == exact.min())
            res[r] = classes[winners[0]]
            ties[lo + r] = winners.size > 1
        out[lo : lo + _NCM_BLOCK] = res
    return out, ties
