r"""One-pass class statistics: the sufficient statistics every metric is computed from.

For each class :math:`c` present in the labels, ncbounds keeps

* the count :math:`n_c`,
* the mean :math:`\mu_c = \frac1{n_c}\sum_{y_i = c} x_i`,
* the centred scatter :math:`M_c = \sum_{y_i = c} \lVert x_i - \mu_c \rVert^2`
  (so :math:`\mathrm{Var}(S_c) = M_c / n_c`, THEORY.md T0, ddof = 0), and, when asked,
* the total within-class scatter matrix :math:`S_W = \sum_c \sum_{y_i = c}
  (x_i - \mu_c)(x_i - \mu_c)^\top` (``scatter_matrix="within"``, p × p) or the per-class
  matrices :math:`S_c` (``scatter_matrix="per_class"``, C × p × p).

Everything is accumulated in float64 whatever the input dtype. Within a batch the statistics
are computed in two passes over the rows, with every row first shifted by a member of its
class, so a large common offset costs no digits. Batches, workers and devices are combined
with the parallel update of Chan, Golub & LeVeque (1979): for parts :math:`a, b` of one class
with :math:`n = n_a + n_b` and :math:`\delta = \mu_b - \mu_a`,

.. math::
   \mu = \mu_a + \delta\, n_b / n, \qquad
   M = M_a + M_b + \lVert\delta\rVert^2 n_a n_b / n, \qquad
   S = S_a + S_b + \delta\delta^\top n_a n_b / n .

The math lives in two pure functions, :func:`batch_moments` and :func:`merge_moments`;
:class:`ClassStats` is the thin stateful accumulator around them (update / merge / reset, the
torchmetrics convention).

Reference: THEORY.md T0; Galanti, György & Hutter, ICLR 2022, §3 (CDNV); Chan, Golub &
LeVeque, "Updating formulae and a pairwise algorithm for computing sample variances" (1979).

>>> import numpy as np
>>> from ncbounds import ClassStats
>>> x = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
>>> s = ClassStats.from_features(x, [7, 7, 2])
>>> s.classes.tolist(), s.counts.tolist()
([2, 7], [1, 2])
>>> s.means.tolist(), s.variances().tolist()
([[0.0, 5.0], [2.0, 0.0]], [0.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ._errors import NCBoundsError
from ._validation import (
    check_features,
    check_labels,
    check_positive_int,
    describe,
    is_torch_tensor,
    raise_nonfinite,
)

__all__ = ["ClassStats", "Moments", "batch_moments", "merge_moments", "encode_labels"]

ScatterKind = Literal["within", "per_class"] | None

# rows per block when a p×p scatter matrix is formed (bounds the float64 temporary)
_BLOCK_ROWS = 4096
# rows per block on the torch path (bounds the float64 temporary on the device)
_TORCH_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class Moments:
    """Per-class sufficient statistics (all float64 / int64 numpy arrays, classes sorted).

    Attributes
    ----------
    classes : (C,) int64, the labels present, sorted.
    counts : (C,) int64.
    means : (C, p) float64.
    scatter : (C,) float64, :math:`M_c = \\sum \\lVert x - \\mu_c\\rVert^2`.
    within : (p, p) float64 or None, total within-class scatter matrix.
    per_class : (C, p, p) float64 or None, per-class scatter matrices.
    eps : float, unit round-off of the least precise input dtype seen (used for rank
        decisions, e.g. float32 → 2**-23).
    """

    classes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    scatter: np.ndarray
    within: np.ndarray | None = None
    per_class: np.ndarray | None = None
    eps: float = float(np.finfo(np.float64).eps)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


def _check_scatter_kind(scatter_matrix: Any) -> ScatterKind:
    if scatter_matrix in (None, False):
        return None
    if scatter_matrix is True:
        return "within"
    if scatter_matrix in ("within", "per_class"):
        return scatter_matrix
    raise NCBoundsError(
        "scatter_matrix: expected None, 'within' or 'per_class', got " f"{scatter_matrix!r}"
    )


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and, for each row, the index of its class among them.

    Equivalent to ``np.unique(labels, return_inverse=True)`` but O(n) when the labels span a
    modest integer range (the common case), via a presence table.

    >>> encode_labels(np.array([10, -3, 10, 4]))[0].tolist()
    [-3, 4, 10]
    >>> encode_labels(np.array([10, -3, 10, 4]))[1].tolist()
    [2, 0, 2, 1]
    """
    if labels.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    lo = int(labels.min())
    hi = int(labels.max())
    span = hi - lo + 1
    if span <= max(4 * labels.size, 1 << 16):
        shifted = labels - lo
        present = np.bincount(shifted, minlength=span) > 0
        classes = np.flatnonzero(present).astype(np.int64) + lo
        lut = np.cumsum(present, dtype=np.int64) - 1
        return classes, lut[shifted]
    classes, inv = np.unique(labels, return_inverse=True)
    return classes.astype(np.int64), inv.astype(np.int64).reshape(-1)


def _input_eps(features: Any) -> float:
    if is_torch_tensor(features):
        import torch

        return float(torch.finfo(features.dtype).eps)
    return float(np.finfo(features.dtype).eps)


def batch_moments(
    features: Any, labels: Any, *, scatter_matrix: ScatterKind = None
) -> Moments:
    r"""Per-class moments of one batch, accurate to float64 whatever the input dtype.

    Two passes over the rows: (1) per-class sums of :math:`x_i - r_{y_i}` where :math:`r_c` is
    the first row of class :math:`c` (a shift inside the class, so a common offset of any
    size cancels exactly), giving :math:`\mu_c`; (2) :math:`M_c = \sum \lVert x_i -
    \mu_c\rVert^2` directly (never :math:`\sum\lVert x\rVert^2 - n\lVert\mu\rVert^2`).
    Numpy arrays and CPU tensors use a compiled multi-threaded kernel; CUDA tensors are
    reduced on their device with torch and only the C × p results are brought back.

    Parameters
    ----------
    features : (n, p) array or tensor, any float dtype (integers are converted).
    labels : (n,) integers, any values; classes are the labels present.
    scatter_matrix : None, "within" or "per_class".

    >>> m = batch_moments(np.array([[0.0], [2.0], [10.0]], np.float32), [1, 1, 5])
    >>> m.classes.tolist(), m.means.ravel().tolist(), m.scatter.tolist()
    ([1, 5], [1.0, 10.0], [2.0, 0.0])
    """
    kind = _check_scatter_kind(scatter_matrix)
    features = check_features(features)
    labels = check_labels(labels, features.shape[0])
    if features.shape[0] == 0:
        raise NCBoundsError("features: expected at least one row, got an empty (0, p) array")
    classes, inv = encode_labels(labels)
    eps = _input_eps(features)
    if is_torch_tensor(features) and features.device.type != "cpu":
        counts, means, scatter, within, per_class = _torch_moments(features, inv, len(classes), kind)
    else:
        x = _cpu_array(features)
        counts, means, scatter = _numba_moments(x, inv, len(classes), features)
        within = per_class = None
        if kind == "within":
            within = _within_scatter(x, inv, means)
        elif kind == "per_class":
            per_class = _per_class_scatter(x, inv, means)
    return Moments(classes, counts, means, scatter, within, per_class, eps)


def _cpu_array(features: Any) -> np.ndarray:
    """A C-contiguous float32/float64 numpy view (or copy) of CPU features."""
    if is_torch_tensor(features):
        import torch

        t = features.detach()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # float16 / bfloat16 widen exactly
        x = t.numpy()
    else:
        x = features
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32 if x.dtype.itemsize <= 4 else np.float64)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _numba_moments(x: np.ndarray, inv: np.ndarray, n_classes: int, original: Any):
    from ._kernels import class_moments

    counts, means, scatter, ok = class_moments(x, inv, n_classes)
    if not ok:
        raise_nonfinite(original)
    return counts, means, scatter


def _within_scatter(x: np.ndarray, inv: np.ndarray, means: np.ndarray) -> np.ndarray:
    p = x.shape[1]
    out = np.zeros((p, p))
    for lo in range(0, x.shape[0], _BLOCK_ROWS):
        d = x[lo : lo + _BLOCK_ROWS].astype(np.float64) - means[inv[lo : lo + _BLOCK_ROWS]]
        out += d.T @ d
    return out


def _per_class_scatter(x: np.ndarray, inv: np.ndarray, means: np.ndarray) -> np.ndarray:
    n_classes, p = means.shape
    out = np.zeros((n_classes, p, p))
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(n_classes + 1))
    for c in range(n_classes):
        rows = order[bounds[c] : bounds[c + 1]]
        for lo in range(0, rows.size, _BLOCK_ROWS):
            d = x[rows[lo : lo + _BLOCK_ROWS]].astype(np.float64) - means[c]
            out[c] += d.T @ d
    return out


def _torch_moments(x: Any, inv_np: np.ndarray, n_classes: int, kind: ScatterKind):
    """The same two passes with torch ops on the tensor's device (CUDA), in blocks."""
    import torch

    from ._kernels import first_rows

    dev = x.device
    f64 = torch.float64
    inv = torch.as_tensor(inv_np, device=dev)
    n, p = x.shape
    first = torch.as_tensor(first_rows(inv_np, n_classes), device=dev)
    ref = x[first].to(f64)
    counts = torch.bincount(inv, minlength=n_classes)
    sums = torch.zeros((n_classes, p), dtype=f64, device=dev)
    for lo in range(0, n, _TORCH_BLOCK_ROWS):
        ib = inv[lo : lo + _TORCH_BLOCK_ROWS]
        sums.index_add_(0, ib, x[lo : lo + _TORCH_BLOCK_ROWS].to(f64) - ref[ib])
    if not bool(torch.isfinite(sums).all()):
        raise_nonfinite(x)
    means = ref + sums / counts[:, None].to(f64)
    scatter = torch.zeros(n_classes, dtype=f64, device=dev)
    within = torch.zeros((p, p), dtype=f64, device=dev) if kind == "within" else None
    per_class = torch.zeros((n_classes, p, p), dtype=f64, device=dev) if kind == "per_class" else None
    for lo in range(0, n, _TORCH_BLOCK_ROWS):
        ib = inv[lo : lo + _TORCH_BLOCK_ROWS]
        d = x[lo : lo + _TORCH_BLOCK_ROWS].to(f64) - means[ib]
        scatter.index_add_(0, ib, (d * d).sum(dim=1))
        if within is not None:
            within += d.T @ d
        if per_class is not None:  # rows of each class together: one p × p product per class
            order = torch.argsort(ib, stable=True)
            ds, cs = d[order], ib[order]
            present, sizes = torch.unique_consecutive(cs, return_counts=True)
            for c, dc in zip(present.tolist(), torch.split(ds, sizes.tolist())):
                per_class[c] += dc.T @ dc
    if not bool(torch.isfinite(scatter).all()):
        raise_nonfinite(x)

    def host(t):
        return None if t is None else t.cpu().numpy()

    return host(counts).astype(np.int64), host(means), host(scatter), host(within), host(per_class)


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Combine the moments of two disjoint parts of a data set (Chan et al. update).

    Classes present in only one part are copied; classes in both are merged with the
    parallel update in the module docstring. Both parts must track the same scatter matrices
    and have the same dimension.

    >>> x = np.arange(12.0).reshape(6, 2); y = np.array([0, 1, 0, 1, 0, 2])
    >>> m = merge_moments(batch_moments(x[:3], y[:3]), batch_moments(x[3:], y[3:]))
    >>> w = batch_moments(x, y)
    >>> bool(np.allclose(m.means, w.means) and np.allclose(m.scatter, w.scatter))
    True
    """
    if a.dim != b.dim:
        raise NCBoundsError(
            f"other: expected statistics of dimension {a.dim}, got dimension {b.dim}"
        )
    if (a.within is None) != (b.within is None) or (a.per_class is None) != (b.per_class is None):
        raise NCBoundsError(
            "other: expected statistics tracking the same scatter matrices "
            f"(within: {a.within is not None}, per_class: {a.per_class is not None}), got "
            f"(within: {b.within is not None}, per_class: {b.per_class is not None})"
        )
    classes = np.union1d(a.classes, b.classes)
    ia = np.searchsorted(classes, a.classes)
    ib = np.searchsorted(classes, b.classes)
    n_classes, p = classes.size, a.dim
    na = np.zeros(n_classes, np.int64)
    nb = np.zeros(n_classes, np.int64)
    na[ia] = a.counts
    nb[ib] = b.counts
    n = na + nb
    mu_a = np.zeros((n_classes, p))
    mu_b = np.zeros((n_classes, p))
    mu_a[ia] = a.means
    mu_b[ib] = b.means
    both = (na > 0) & (nb > 0)
    delta = np.where(both[:, None], mu_b - mu_a, 0.0)
    # weight n_b / n applied to delta; for classes only in b, mu_a is 0 and the mean is mu_b
    means = np.where((na > 0)[:, None], mu_a + delta * (nb / n)[:, None], mu_b)
    w = np.where(both, na * nb / np.maximum(n, 1), 0.0)  # n_a n_b / n
    scatter = np.zeros(n_classes)
    scatter[ia] += a.scatter
    scatter[ib] += b.scatter
    scatter += w * np.einsum("cp,cp->c", delta, delta)
    within = per_class = None
    if a.within is not None:
        within = a.within + b.within + (delta * w[:, None]).T @ delta
    if a.per_class is not None:
        per_class = np.zeros((n_classes, p, p))
        per_class[ia] += a.per_class
        per_class[ib] += b.per_class
        idx = np.flatnonzero(both)
        per_class[idx] += w[idx, None, None] * delta[idx, :, None] * delta[idx, None, :]
    return Moments(classes, n, means, scatter, within, per_class, max(a.eps, b.eps))


def _copy_moments(m: Moments) -> Moments:
    def cp(a):
        return None if a is None else a.copy()

    return Moments(m.classes.copy(), m.counts.copy(), m.means.copy(), m.scatter.copy(),
                   cp(m.within), cp(m.per_class), m.eps)


class ClassStats:
    r"""Streaming per-class statistics: ``update`` batch by batch, ``merge`` across workers.

    One pass over the data serves every metric (:func:`ncbounds.cdnv`,
    :func:`ncbounds.cdnv_matrix`, :func:`ncbounds.nc_metrics`). Accumulation is float64 for
    float16, bfloat16, float32 and float64 inputs; numpy arrays and torch tensors (CPU or CUDA)
    are accepted. Labels are arbitrary integers; :attr:`classes` lists those seen, sorted.

    Parameters
    ----------
    scatter_matrix : None (default), "within" or "per_class"
        Also keep the p × p total within-class scatter matrix (needed by NC1) or the C × p × p
        per-class matrices (needed by the directional CDNV). They cost p² (C·p²) memory.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 8)).astype(np.float32); y = rng.integers(0, 5, 1000)
    >>> s = ClassStats()
    >>> for lo in range(0, 1000, 128):
    ...     _ = s.update(x[lo:lo + 128], y[lo:lo + 128])
    >>> whole = ClassStats.from_features(x, y)
    >>> bool(np.allclose(s.means, whole.means, rtol=1e-12, atol=1e-14))
    True
    >>> int(s.n_samples), s.n_classes
    (1000, 5)
    """

    def __init__(self, *, scatter_matrix: ScatterKind = None) -> None:
        self._kind = _check_scatter_kind(scatter_matrix)
        self._m: Moments | None = None
        self._scratch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # streaming buffers

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_features(
        cls,
        features: Any,
        labels: Any,
        *,
        scatter_matrix: ScatterKind = None,
        batch_size: int | None = None,
    ) -> "ClassStats":
        """Statistics of a whole data set (optionally processed ``batch_size`` rows at a time)."""
        stats = cls(scatter_matrix=scatter_matrix)
        if batch_size is None:
            stats._m = batch_moments(features, labels, scatter_matrix=stats._kind)  # errors on 0 rows
            return stats
        batch_size = check_positive_int(batch_size, "batch_size")
        features = check_features(features)
        labels = check_labels(labels, features.shape[0])
        for lo in range(0, features.shape[0], batch_size):
            stats.update(features[lo : lo + batch_size], labels[lo : lo + batch_size])
        return stats

    @classmethod
    def from_moments(cls, moments: Moments) -> "ClassStats":
        """Wrap precomputed :class:`Moments` (for example received from a worker)."""
        if not isinstance(moments, Moments):
            raise NCBoundsError(f"moments: expected a Moments object, got {describe(moments)}")
        kind = "within" if moments.within is not None else (
            "per_class" if moments.per_class is not None else None
        )
        stats = cls(scatter_matrix=kind)
        stats._m = _copy_moments(moments)
        return stats

    # -- accumulator protocol -----------------------------------------------------------
    def update(self, features: Any, labels: Any) -> "ClassStats":
        """Add one batch (numpy array or torch tensor of shape (n, p), labels (n,)); returns self.

        An empty batch (0 rows) is a no-op, so filtered streams need no special case.
        """
        if getattr(features, "shape", None) is not None and len(features.shape) == 2 and features.shape[0] == 0:
            check_labels(labels, 0)
            return self
        if self._m is not None:
            features = check_features(features)
            if features.shape[1] != self._m.dim:
                raise NCBoundsError(
                    f"features: expected {self._m.dim} columns, as in the earlier batches, got "
                    f"{describe(features)}"
                )
            if self._stream(features, labels):
                return self
        batch = batch_moments(features, labels, scatter_matrix=self._kind)
        if self._m is None:
            self._m = batch
        else:
            self._fold(batch)
        return self

    def merge(self, other: "ClassStats") -> "ClassStats":
        """Fold in the statistics of a disjoint part of the data (another worker); returns self."""
        if not isinstance(other, ClassStats):
            raise NCBoundsError(f"other: expected a ClassStats, got {describe(other)}")
        if other._kind != self._kind:
            raise NCBoundsError(
                f"other: expected a ClassStats with scatter_matrix={self._kind!r}, got one with "
                f"scatter_matrix={other._kind!r}"
            )
        if other._m is not None:
            if self._m is None:
                self._m = _copy_moments(other._m)
            else:
                self._fold(other._m)
        return self

    def _stream(self, features: Any, labels: Any) -> bool:
        """One-pass in-place update for a CPU batch whose classes are all known and no scatter
        matrix is tracked (the common streaming case); False when it does not apply."""
        m = self._m
        if self._kind is not None or (is_torch_tensor(features) and features.device.type != "cpu"):
            return False
        labels = check_labels(labels, features.shape[0])
        if features.shape[0] == 0:
            return True
        slots = np.searchsorted(m.classes, labels)
        np.minimum(slots, m.classes.size - 1, out=slots)
        if not np.array_equal(m.classes[slots], labels):
            return False  # a new class: the general route grows the state
        from ._kernels import KAPPA_MAX, stream_update

        if self._scratch is None or self._scratch[0].shape != m.means.shape:
            c, p = m.means.shape
            self._scratch = (np.zeros((c, p)), np.zeros(c), np.zeros(c, np.int64))
        x = _cpu_array(features)
        ok, accepted = stream_update(x, slots, m.counts, m.means, m.scatter, *self._scratch, KAPPA_MAX)
        if not ok:
            raise_nonfinite(features)
        if accepted:
            self._m = replace(m, eps=max(m.eps, _input_eps(features)))
        return accepted

    def _fold(self, b: Moments) -> None:
        """Merge ``b`` into the state: in place when its classes are already known (the
        streaming case), through :func:`merge_moments` otherwise."""
        a = self._m
        idx = np.searchsorted(a.classes, b.classes)
        known = (
            a.dim == b.dim
            and (a.within is None) == (b.within is None)
            and (a.per_class is None) == (b.per_class is None)
            and bool(np.all(idx < a.classes.size))
            and bool(np.array_equal(a.classes[np.minimum(idx, a.classes.size - 1)], b.classes))
        )
        if not known:
            self._m = merge_moments(a, b)
            return
        from ._kernels import chan_merge_into

        delta = np.empty_like(b.means)
        chan_merge_into(a.counts, a.means, a.scatter, idx, b.counts, b.means, b.scatter, delta)
        if a.within is not None:
            np.add(a.within, b.within, out=a.within)  # Moments is frozen: mutate the arrays
            np.add(a.within, delta.T @ delta, out=a.within)
        if a.per_class is not None:
            a.per_class[idx] += b.per_class + delta[:, :, None] * delta[:, None, :]
        if b.eps > a.eps:
            self._m = replace(a, eps=b.eps)

    def reset(self) -> "ClassStats":
        """Forget everything seen; returns self."""
        self._m = None
        return self

    def copy(self) -> "ClassStats":
        """An independent (deep) copy."""
        out = ClassStats(scatter_matrix=self._kind)
        out._m = None if self._m is None else _copy_moments(self._m)
        return out

    # -- read-out -------------------------------------------------------------------------
    @property
    def moments(self) -> Moments:
        """The accumulated :class:`Moments` (error when nothing was seen yet).

        These are the live arrays of the accumulator (no copy): treat them as read-only, and
        use :meth:`copy` to keep a snapshot across later updates.
        """
        if self._m is None:
            raise NCBoundsError("ClassStats: expected at least one update, got an empty accumulator")
        return self._m

    @property
    def empty(self) -> bool:
        return self._m is None

    @property
    def scatter_kind(self) -> ScatterKind:
        return self._kind

    @property
    def classes(self) -> np.ndarray:
        return self.moments.classes

    @property
    def counts(self) -> np.ndarray:
        return self.moments.counts

    @property
    def means(self) -> np.ndarray:
        return self.moments.means

    @property
    def scatter(self) -> np.ndarray:
        """Centred scatter :math:`M_c = \\sum \\lVert x - \\mu_c \\rVert^2` per class."""
        return self.moments.scatter

    @property
    def n_classes(self) -> int:
        return int(self.moments.classes.size)

    @property
    def n_samples(self) -> int:
        return int(self.moments.counts.sum())

    @property
    def dim(self) -> int:
        return self.moments.dim

    @property
    def global_mean(self) -> np.ndarray:
        """Mean of all samples, :math:`\\mu_G = \\sum_c n_c \\mu_c / N`."""
        m = self.moments
        return (m.counts[:, None] * m.means).sum(axis=0) / m.counts.sum()

    def variances(self, ddof: int = 0) -> np.ndarray:
        r"""Per-class variance :math:`M_c / (n_c - \text{ddof})` (trace of the covariance).

        ddof = 1 with a singleton class is an error (its unbiased variance is undefined).
        """
        m = self.moments
        if ddof not in (0, 1):
            raise NCBoundsError(f"ddof: expected 0 or 1, got {ddof!r}")
        if ddof and (m.counts <= ddof).any():
            bad = m.classes[m.counts <= ddof]
            raise NCBoundsError(
                f"ddof: ddof={ddof} needs at least {ddof + 1} samples per class, got class "
                f"{int(bad[0])} with {int(m.counts[m.counts <= ddof][0])} sample(s)"
                + (f" ({bad.size} such classes)" if bad.size > 1 else "")
            )
        return m.scatter / (m.counts - ddof)

    def within_scatter(self) -> np.ndarray:
        """Total within-class scatter matrix :math:`S_W` (p × p); needs scatter_matrix="within"."""
        m = self.moments
        if m.within is not None:
            return m.within
        if m.per_class is not None:
            return m.per_class.sum(axis=0)
        raise NCBoundsError(
            "scatter_matrix: this metric needs the within-class scatter matrix; expected "
            "ClassStats(scatter_matrix='within'), got one built with scatter_matrix=None"
        )

    def class_scatter_matrices(self) -> np.ndarray:
        """Per-class scatter matrices :math:`S_c` (C × p × p); needs scatter_matrix="per_class"."""
        m = self.moments
        if m.per_class is None:
            raise NCBoundsError(
                "scatter_matrix: this metric needs per-class scatter matrices; expected "
                f"ClassStats(scatter_matrix='per_class'), got scatter_matrix={self._kind!r}"
            )
        return m.per_class

    def to_frame(self):
        """Tidy rows: one per class with its label, count, variance (ddof = 0) and mean norm."""
        import pandas as pd

        m = self.moments
        return pd.DataFrame(
            {
                "label": m.classes,
                "count": m.counts,
                "variance": m.scatter / m.counts,
                "mean_norm": np.linalg.norm(m.means, axis=1),
            }
        )

    def __repr__(self) -> str:
        if self._m is None:
            return f"ClassStats(empty, scatter_matrix={self._kind!r})"
        return (
            f"ClassStats(n_samples={self.n_samples}, n_classes={self.n_classes}, dim={self.dim}, "
            f"scatter_matrix={self._kind!r})"
        )
