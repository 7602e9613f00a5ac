"""Compiled (numba) kernels behind :mod:`ncbounds.stats` and :mod:`ncbounds.metrics`.

The kernels are deliberately small; the math lives in the callers' docstrings.

* :func:`class_moments` – per-class counts, means and centred scatter Σ‖x − μ_c‖² in one
  pass over sums of ``x - ref[class]`` and of their squares, ``ref[c]`` the first row of
  class ``c`` (shifting by a member of the class keeps the summands at the scale of the class
  spread, so a large common offset costs no digits), with an exact second pass for any class
  whose first row lies so far out that the one-pass formula would cancel digits.
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
    "KAPPA_MAX",
    "PARALLEL_ROWS",
    "chan_merge_into",
    "class_moments",
    "first_rows",
    "pair_cdnv_rowsums",
    "pairwise_sqdist",
    "stream_update",
]

_FM = {"reassoc", "contract"}

#: largest cancellation factor κ = Σ‖x − r‖² / Σ‖x − μ‖² accepted from the one-pass formula
#: (log10 κ ≈ 1.5 digits); classes beyond it get an exact second pass
KAPPA_MAX = 32.0


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

    One pass accumulates, per class, S = Σ (x − r_c) and Q = Σ ‖x − r_c‖² with r_c the first
    row of class c: a shift inside the class, so a common offset cancels exactly (the
    float64 difference of two float32 numbers is exact). Then μ_c = r_c + S/n and
    M_c = Q − ‖S‖²/n. The subtraction loses log10(κ) digits, κ = Q / M_c = 1 + ‖μ_c − r_c‖²/v_c
    (how far the first row lies from the mean, in class variances); for every class with
    κ > :data:`KAPPA_MAX` M_c is recomputed by an exact second pass Σ‖x − μ_c‖² over that
    class's rows, so at most about 1.5 digits are ever given up. Rows are split into
    ``chunks`` contiguous chunks whose partial sums are added in chunk order. ``ok`` is False
    when a NaN or inf reached an accumulator.
    """
    n, p = x.shape
    first = first_rows(inv, n_classes)
    ref = np.empty((n_classes, p))
    for c in range(n_classes):
        for j in range(p):
            ref[c, j] = x[first[c], j]
    part = np.zeros((chunks, n_classes, p))
    sq = np.zeros((chunks, n_classes))
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
            acc = 0.0
            for j in range(p):
                d = np.float64(x[i, j]) - r[j]
                row[j] += d
                acc += d * d
            sq[t, c] += acc
    # fold the chunks into chunk 0 (in chunk order), then turn its sums into means in place:
    # no further C × p array is allocated (small streamed batches are dominated by them)
    counts = np.zeros(n_classes, np.int64)
    scatter = np.zeros(n_classes)
    redo = np.zeros(n_classes, np.bool_)
    ok = True
    for c in range(n_classes):
        q = 0.0
        for t in range(chunks):
            counts[c] += cnt[t, c]
            q += sq[t, c]
        inv_n = 1.0 / counts[c]
        row = part[0, c]
        for t in range(1, chunks):
            other = part[t, c]
            for j in range(p):
                row[j] += other[j]
        r = ref[c]
        s2 = 0.0
        for j in range(p):
            s2 += row[j] * row[j]
            row[j] = r[j] + row[j] * inv_n
        m2 = q - s2 * inv_n
        if not (np.isfinite(q) and np.isfinite(s2)):
            ok = False
        if m2 < 0.0:
            m2 = 0.0
        scatter[c] = m2
        redo[c] = q > KAPPA_MAX * m2 and q > 0.0
    means = part[0] if chunks == 1 else part[0].copy()
    if redo.any():
        scatter_redo = np.zeros(n_classes)
        for i in range(n):
            c = inv[i]
            if redo[c]:
                m = means[c]
                acc = 0.0
                for j in range(p):
                    d = np.float64(x[i, j]) - m[j]
                    acc += d * d
                scatter_redo[c] += acc
        for c in range(n_classes):
            if redo[c]:
                scatter[c] = scatter_redo[c]
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


@njit(cache=True, fastmath=_FM)
def stream_update(x, slots, counts, means, scatter, s_buf, q_buf, n_buf, kappa):  # pragma: no cover
    """Fold a batch of known classes into running (counts, means, scatter), in place.

    Each row is shifted by its class's running mean μ_a: the batch gives n_b,
    S_b = Σ (x − μ_a) and Q_b = Σ ‖x − μ_a‖², and with n = n_a + n_b

        μ = μ_a + S_b / n,    M = M_a + Q_b − ‖S_b‖² / n

    (exact, since Σ_a (x − μ_a) = 0). The shift is the best available estimate of the mean,
    so the cancellation factor κ = (M_a + Q_b) / M stays near 1; the state is left untouched
    and ``(ok, accepted)`` reports when a NaN/inf appeared (ok False) or κ exceeded
    ``kappa`` for some class (accepted False: the caller takes the two-pass route).
    ``s_buf`` (C × p), ``q_buf`` (C,), ``n_buf`` (C,) are zeroed scratch, zeroed again on exit.
    """
    n, p = x.shape
    touched = np.empty(n, np.int64)
    nt = 0
    for i in range(n):
        c = slots[i]
        if n_buf[c] == 0:
            touched[nt] = c
            nt += 1
        n_buf[c] += 1
        m = means[c]
        row = s_buf[c]
        acc = 0.0
        for j in range(p):
            d = np.float64(x[i, j]) - m[j]
            row[j] += d
            acc += d * d
        q_buf[c] += acc
    ok = True
    accepted = True
    s2s = np.empty(nt)
    for k in range(nt):
        c = touched[k]
        total = counts[c] + n_buf[c]
        s2 = 0.0
        row = s_buf[c]
        for j in range(p):
            s2 += row[j] * row[j]
        s2s[k] = s2
        before = scatter[c] + q_buf[c]
        after = before - s2 / total
        if not (np.isfinite(q_buf[c]) and np.isfinite(s2)):
            ok = False
        elif before > kappa * after and before > 0.0:
            accepted = False
    apply = ok and accepted
    for k in range(nt):  # apply (or not) and clear the scratch in the same sweep
        c = touched[k]
        total = counts[c] + n_buf[c]
        row = s_buf[c]
        m = means[c]
        if apply:
            f = 1.0 / total
            for j in range(p):
                m[j] += row[j] * f
                row[j] = 0.0
            scatter[c] = max(scatter[c] + q_buf[c] - s2s[k] * f, 0.0)
            counts[c] = total
        else:
            for j in range(p):
                row[j] = 0.0
        n_buf[c] = 0
        q_buf[c] = 0.0
    return ok, accepted
