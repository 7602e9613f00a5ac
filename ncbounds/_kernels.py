"""Compiled (numba) kernels behind :mod:`ncbounds.stats` and :mod:`ncbounds.metrics`.

The kernels are deliberately small; the math lives in the callers' docstrings.

* :func:`class_moments` – per-class counts, means and centred scatter Σ‖x − μ_c‖² in two
  passes: sums of ``x - ref[class]`` with ``ref[c]`` the first row of class ``c`` (shifting
  by a member of the class keeps the summands at the scale of the class spread, so a large
  common offset costs no digits), then the squared deviations from the means.
* :func:`pairwise_sqdist` – ‖μ_i − μ_j‖² for all pairs in the difference form, never the
  expanded ‖a‖² + ‖b‖² − 2⟨a, b⟩.

Rows are split into a number of chunks that depends on the number of rows only (never on
the thread count, see :func:`row_chunks`) and the partial results are combined in a fixed
order, so on a given machine the result is bit-for-bit the same whatever the number of
threads (CPUs that differ in fused multiply-add support may differ in the last bits). Only reassociation and contraction are
allowed to the compiler (``fastmath={"reassoc", "contract"}``) so that NaN and inf still
propagate and are detected by the callers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "PARALLEL_ROWS",
    "chan_merge_into",
    "class_moments",
    "first_rows",
    "pair_cdnv_rowsums",
    "pairwise_sqdist",
]

_FM = {"reassoc", "contract"}


#: inputs with at least this many rows use the multi-threaded kernel (below it, measured on 2
#: cores, the threads cost as much as they save: the loop is bound by the float32 → float64
#: conversion and adds, not by memory bandwidth)
PARALLEL_ROWS = 262_144


def class_moments(x, inv, n_classes):
    """Dispatch to the serial or parallel moments kernel; the chunking depends on the number
    of rows only, never on the thread count, so results are reproducible bit for bit."""
    if x.shape[0] >= PARALLEL_ROWS:
        return moments_parallel(x, inv, n_classes, 8)
    return moments_serial(x, inv, n_classes, 1)


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


def _moments(x, inv, n_classes, chunks):  # pragma: no cover - compiled below
    """Per-class counts (C,), means (C × p) and centred scatter Σ‖x − μ_c‖² (C,), float64.

    Pass 1 sums x − ref[c] per class, ref[c] the first row of class c (a shift inside the
    class: a common offset cancels exactly, since the float64 difference of two float32
    numbers is exact). Pass 2 sums ‖x − μ_c‖² directly. Rows are split into ``chunks``
    contiguous chunks whose partial sums are added in chunk order. ``ok`` is False when a
    NaN or inf reached an accumulator.
    """
    n, p = x.shape
    first = first_rows(inv, n_classes)
    ref = np.empty((n_classes, p))
    for c in range(n_classes):
        for j in range(p):
            ref[c, j] = x[first[c], j]
    part = np.zeros((chunks, n_classes, p))
    cnt = np.zeros((chunks, n_classes), np.int64)
    step = (n + chunks - 1) // chunks
    for t in prange(chunks):
        lo = t * step
        hi = min(n, lo + step)
        for i in range(lo, hi):
            c = inv[i]
            cnt[t, c] += 1
            row = part[t, c]
            r = ref[c]
            for j in range(p):
                row[j] += np.float64(x[i, j]) - r[j]
    # fold the chunks into chunk 0 (in chunk order), then turn its sums into means in place:
    # no further C × p array is allocated (small streamed batches are dominated by them)
    counts = np.zeros(n_classes, np.int64)
    ok = True
    for c in range(n_classes):
        for t in range(chunks):
            counts[c] += cnt[t, c]
        inv_n = 1.0 / counts[c]
        row = part[0, c]
        for t in range(1, chunks):
            other = part[t, c]
            for j in range(p):
                row[j] += other[j]
        r = ref[c]
        for j in range(p):
            if not np.isfinite(row[j]):
                ok = False
            row[j] = r[j] + row[j] * inv_n
    means = part[0] if chunks == 1 else part[0].copy()
    part2 = np.zeros((chunks, n_classes))
    for t in prange(chunks):
        lo = t * step
        hi = min(n, lo + step)
        for i in range(lo, hi):
            c = inv[i]
            m = means[c]
            acc = 0.0
            for j in range(p):
                d = np.float64(x[i, j]) - m[j]
                acc += d * d
            part2[t, c] += acc
    scatter = np.zeros(n_classes)
    for c in range(n_classes):
        for t in range(chunks):
            scatter[c] += part2[t, c]
        if not np.isfinite(scatter[c]):
            ok = False
    return counts, means, scatter, ok


#: the same kernel compiled twice: multi-threaded for large inputs, serial for small batches
#: (a parallel region per small batch costs more than it saves, worst on a loaded machine)
moments_parallel = njit(parallel=True, cache=True, fastmath=_FM)(_moments)
moments_serial = njit(parallel=False, cache=True, fastmath=_FM)(_moments)


@njit(cache=True, fastmath=_FM)
def _sqdist(a, b):  # pragma: no cover - compiled
    """‖a − b‖² in the difference form."""
    s = 0.0
    for j in range(a.shape[0]):
        d = a[j] - b[j]
        s += d * d
    return s


@njit(cache=True, fastmath=_FM)
def _sqdist_row(means, i, out):  # pragma: no cover - compiled
    for k in range(i + 1, means.shape[0]):
        out[i, k] = _sqdist(means[i], means[k])


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
    for k in range(i + 1, means.shape[0]):
        s = _sqdist(means[i], means[k])
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
