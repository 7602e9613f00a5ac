"""Compiled (numba) kernels behind :mod:`ncbounds.stats` and :mod:`ncbounds.metrics`.

The kernels are deliberately small; the math lives in the callers' docstrings.

* :func:`shifted_class_sums` – pass 1: per-class counts and sums of ``x - ref[class]`` in
  float64, where ``ref[c]`` is the first row of class ``c``. Shifting by a member of the class
  keeps the summands at the scale of the class spread, so a large common offset costs no
  digits (the float32 → float64 difference of two float32 numbers is exact).
* :func:`class_scatter` – pass 2: per-class centred scatter Σ‖x − μ_c‖² in float64.
* :func:`pairwise_sqdist` – ‖μ_i − μ_j‖² for all pairs in the difference form, never the
  expanded ‖a‖² + ‖b‖² − 2⟨a, b⟩.

Rows are split into a number of chunks that depends on the number of rows only (never on
the thread count, see :func:`row_chunks`) and the partial results are combined in a fixed
order, so the result is bit-for-bit the same on any machine with any number of threads. Only reassociation and contraction are
allowed to the compiler (``fastmath={"reassoc", "contract"}``) so that NaN and inf still
propagate and are detected by the callers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "row_chunks",
    "chan_merge_into",
    "class_scatter",
    "first_rows",
    "pair_cdnv_rowsums",
    "pairwise_sqdist",
    "shifted_class_sums",
]

_FM = {"reassoc", "contract"}


def row_chunks(n_rows: int) -> int:
    """Row chunks for ``n_rows`` rows: one per 512 rows, at most 8 (a function of n only)."""
    return int(min(8, max(1, n_rows // 512)))


@njit(cache=True)
def first_rows(inv, n_classes):  # pragma: no cover - compiled
    """Index of the first row of each class (``inv`` holds class slots 0..n_classes-1)."""
    first = np.full(n_classes, -1, np.int64)
    found = 0
    for i in range(inv.shape[0]):
        c = inv[i]
        if first[c] < 0:
            first[c] = i
            found += 1
            if found == n_classes:
                break
    return first


@njit(parallel=True, cache=True, fastmath=_FM)
def shifted_class_sums(x, inv, ref, n_chunks):  # pragma: no cover - compiled
    """Per-chunk counts (n_chunks × C) and sums of x − ref[c] (n_chunks × C × p), float64."""
    n, p = x.shape
    n_classes = ref.shape[0]
    sums = np.zeros((n_chunks, n_classes, p))
    counts = np.zeros((n_chunks, n_classes), np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for t in prange(n_chunks):
        lo = t * step
        hi = min(n, lo + step)
        for i in range(lo, hi):
            c = inv[i]
            counts[t, c] += 1
            row = sums[t, c]
            r = ref[c]
            for j in range(p):
                row[j] += np.float64(x[i, j]) - r[j]
    return counts, sums


@njit(parallel=True, cache=True, fastmath=_FM)
def class_scatter(x, inv, centre, n_chunks):  # pragma: no cover - compiled
    """Per-chunk centred scatter Σ_i ‖x_i − centre[y_i]‖² per class (n_chunks × C), float64."""
    n, p = x.shape
    n_classes = centre.shape[0]
    out = np.zeros((n_chunks, n_classes))
    step = (n + n_chunks - 1) // n_chunks
    for t in prange(n_chunks):
        lo = t * step
        hi = min(n, lo + step)
        for i in range(lo, hi):
            c = inv[i]
            m = centre[c]
            s = 0.0
            for j in range(p):
                d = np.float64(x[i, j]) - m[j]
                s += d * d
            out[t, c] += s
    return out


@njit(cache=True, fastmath=_FM)
def _sqdist_row(means, i, out):  # pragma: no cover - compiled
    c, p = means.shape
    a = means[i]
    for k in range(i + 1, c):
        b = means[k]
        s = 0.0
        for j in range(p):
            d = a[j] - b[j]
            s += d * d
        out[i, k] = s


@njit(parallel=True, cache=True, fastmath=_FM)
def pairwise_sqdist(means):  # pragma: no cover - compiled
    """Symmetric C × C matrix of ‖μ_i − μ_j‖² (difference form, float64), zero diagonal.

    Row i of the upper triangle is paired with row C − 1 − i so that every parallel step
    does the same amount of work.
    """
    c = means.shape[0]
    out = np.zeros((c, c))
    for h in prange((c + 1) // 2):
        _sqdist_row(means, h, out)
        if c - 1 - h != h:
            _sqdist_row(means, c - 1 - h, out)
    for i in range(c):
        for k in range(i + 1, c):
            out[k, i] = out[i, k]
    return out


@njit(cache=True, fastmath=_FM)
def _cdnv_row(means, v, i, sums, zero_partner, n_zero):  # pragma: no cover - compiled
    c, p = means.shape
    a = means[i]
    for k in range(i + 1, c):
        b = means[k]
        s = 0.0
        for j in range(p):
            d = a[j] - b[j]
            s += d * d
        if s == 0.0:
            n_zero[i] += 1
            if zero_partner[i] < 0:
                zero_partner[i] = k
        else:
            sums[i] += (v[i] + v[k]) / (2.0 * s)


@njit(parallel=True, cache=True, fastmath=_FM)
def pair_cdnv_rowsums(means, v):  # pragma: no cover - compiled
    """Row sums over k > i of V_ik = (v_i + v_k) / (2‖μ_i − μ_k‖²), O(C) memory.

    Pairs with coinciding means are not summed; they are counted in ``n_zero`` and the first
    partner of each row is kept in ``zero_partner`` (−1 when none).
    """
    c = means.shape[0]
    sums = np.zeros(c)
    n_zero = np.zeros(c, np.int64)
    zero_partner = np.full(c, -1, np.int64)
    for h in prange((c + 1) // 2):
        _cdnv_row(means, v, h, sums, zero_partner, n_zero)
        if c - 1 - h != h:
            _cdnv_row(means, v, c - 1 - h, sums, zero_partner, n_zero)
    return sums, n_zero, zero_partner


@njit(cache=True, fastmath=_FM)
def chan_merge_into(counts, means, scatter, idx, nb, mb, sb, delta):  # pragma: no cover
    """In-place Chan et al. merge of batch moments (nb, mb, sb) into slots ``idx``.

    For each batch class k going to slot c = idx[k]: δ = mb_k − μ_c, μ_c += δ nb/n,
    M_c += sb_k + ‖δ‖² na nb / n. ``delta`` (K × p) receives δ·sqrt(na nb / n) so that the
    caller can add the rank-one scatter-matrix corrections as one matrix product.
    """
    p = means.shape[1]
    for k in range(idx.shape[0]):
        c = idx[k]
        na = counts[c]
        n = na + nb[k]
        if na == 0:
            for j in range(p):
                means[c, j] = mb[k, j]
                delta[k, j] = 0.0
            scatter[c] = sb[k]
            counts[c] = n
            continue
        f = nb[k] / n
        w = na * (nb[k] / n)
        r = np.sqrt(w)
        s = 0.0
        for j in range(p):
            d = mb[k, j] - means[c, j]
            delta[k, j] = d * r
            means[c, j] += d * f
            s += d * d
        scatter[c] += sb[k] + w * s
        counts[c] = n
