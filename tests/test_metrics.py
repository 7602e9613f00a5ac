"""CDNV, the CDNV matrix variants and the NC metrics against independent float64 references."""

import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from ncbounds import ClassStats, NCBoundsError, NCBoundsWarning, cdnv, cdnv_matrix, nc_metrics
from ncbounds.metrics import nearest_class_mean


def ref_cdnv_matrix(x, y, ddof=0):
    """Reference: loops over pairs, two-pass float64 per class, difference-form distances."""
    x = np.asarray(x, np.float64)
    classes = np.unique(y)
    mu = [x[y == c].mean(0) for c in classes]
    v = [((x[y == c] - m) ** 2).sum() / ((y == c).sum() - ddof) for c, m in zip(classes, mu)]
    c = len(classes)
    out = np.full((c, c), np.nan)
    for i, j in itertools.permutations(range(c), 2):
        out[i, j] = (v[i] + v[j]) / (2 * np.sum((mu[i] - mu[j]) ** 2))
    return out


def ref_cdnv(x, y, ddof=0):
    m = ref_cdnv_matrix(x, y, ddof)
    return m[np.triu_indices(len(m), 1)].mean()


def blobs(rng, n=2000, p=12, c=6, offset=0.0, spread=1.0, sep=5.0, dtype=np.float64):
    y = rng.integers(0, c, n)
    centres = rng.normal(size=(c, p)) * sep * spread
    return (offset + centres[y] + spread * rng.normal(size=(n, p))).astype(dtype), y


def test_closed_form_two_points_per_class():
    # class 0 = {(0, ±1)}: mean (0,0), var 1; class 1 = {(4, ±1)}: mean (4,0), var 1; d² = 16
    x = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 1.0], [4.0, -1.0]])
    assert cdnv(x, [0, 0, 1, 1]) == 2 / (2 * 16)
    assert cdnv(x, [0, 0, 1, 1], ddof=1) == 4 / (2 * 16)


@pytest.mark.parametrize("ddof", [0, 1])
def test_cdnv_matches_reference(ddof):
    rng = np.random.default_rng(0)
    x, y = blobs(rng)
    assert cdnv(x, y, ddof=ddof) == pytest.approx(ref_cdnv(x, y, ddof), rel=1e-12)
    np.testing.assert_allclose(cdnv_matrix(x, y, ddof=ddof), ref_cdnv_matrix(x, y, ddof), rtol=1e-12)


def test_float32_large_offset_small_spread_relative_error():
    rng = np.random.default_rng(1)
    x, y = blobs(rng, n=20000, p=32, c=10, offset=1e3, spread=1e-2, dtype=np.float32)
    ref = ref_cdnv(x, y)  # float64 two-pass on the same float32 values
    assert abs(cdnv(x, y) / ref - 1) <= 1e-9
    assert np.nanmax(np.abs(cdnv_matrix(x, y) / ref_cdnv_matrix(x, y) - 1)) <= 1e-9


def test_one_sided_and_relation_to_symmetric():
    rng = np.random.default_rng(2)
    x, y = blobs(rng, c=5)
    one = cdnv_matrix(x, y, kind="one_sided")
    sym = cdnv_matrix(x, y)
    np.testing.assert_allclose((one + one.T) / 2, sym, rtol=1e-13)


def test_directional_against_explicit_covariances():
    rng = np.random.default_rng(3)
    c, p = 4, 6
    y = np.repeat(np.arange(c), 300)
    a = rng.normal(size=(c, p, p))
    x = rng.normal(size=(c, p)) * 4
    x = x[y] + np.einsum("npq,nq->np", a[y], rng.normal(size=(len(y), p)))
    got = cdnv_matrix(x, y, kind="directional")
    for i, j in itertools.permutations(range(c), 2):
        xi = x[y == i]
        mu_i, mu_j = xi.mean(0), x[y == j].mean(0)
        cov_i = np.cov(xi.T, bias=True)
        d = mu_j - mu_i
        expect = d @ cov_i @ d / (d @ d) ** 2
        assert got[i, j] == pytest.approx(expect, rel=1e-10)
    with pytest.raises(NCBoundsError, match="per_class"):
        cdnv_matrix(ClassStats.from_features(x, y), kind="directional")


def test_classstats_in_place_of_features():
    rng = np.random.default_rng(4)
    x, y = blobs(rng)
    s = ClassStats.from_features(x, y)
    assert cdnv(s) == cdnv(x, y)
    with pytest.raises(NCBoundsError, match="labels: expected None"):
        cdnv(s, y)
    with pytest.raises(NCBoundsError, match="labels: expected one integer label"):
        cdnv(x)


def test_coinciding_means_give_inf_and_warning():
    x = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0], [5.0, 0.0], [5.0, 1.0]])
    y = [3, 3, 8, 8, 9, 9]  # classes 3 and 8 both have mean (0, 0)
    with pytest.warns(NCBoundsWarning, match="classes 3 and 8"):
        assert cdnv(x, y) == np.inf
    with pytest.warns(NCBoundsWarning):
        m = cdnv_matrix(x, y)
    assert m[0, 1] == m[1, 0] == np.inf and np.isfinite(m[0, 2])
    assert np.isnan(np.diag(m)).all()


def test_fewer_than_two_classes_and_singletons():
    with pytest.raises(NCBoundsError, match="at least two distinct classes, got 1"):
        cdnv(np.ones((3, 2)), [4, 4, 4])
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    assert cdnv(x, [0, 0, 1]) == pytest.approx((1.0 + 0.0) / (2 * 81))
    with pytest.raises(NCBoundsError, match="ddof"):
        cdnv(x, [0, 0, 1], ddof=1)


def test_rank_deficient_scatter_p_larger_than_n():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 200))  # within scatter has rank ≤ 9 in R^200
    y = np.repeat(np.arange(3), 4)
    assert cdnv(x, y) == pytest.approx(ref_cdnv(x, y), rel=1e-12)
    m = nc_metrics(x, y)
    assert np.isfinite(m.nc1) and m.sigma_b_rank == 2


def test_thousand_classes_without_cxcxp():
    rng = np.random.default_rng(6)
    c, per, p = 1000, 5, 16
    y = np.repeat(np.arange(c), per)
    x = rng.normal(size=(c, p))[y] * 3 + rng.normal(size=(c * per, p))
    got = cdnv(x, y)
    s = ClassStats.from_features(x, y)
    v = s.variances()
    mu = s.means
    total = 0.0
    for i in range(c):  # reference row by row in the difference form
        d2 = ((mu[i + 1 :] - mu[i]) ** 2).sum(1)
        total += ((v[i] + v[i + 1 :]) / (2 * d2)).sum()
    assert got == pytest.approx(total / (c * (c - 1) / 2), rel=1e-12)


rotations = st.integers(0, 2**31 - 1)


@settings(max_examples=25)
@given(
    seed=rotations,
    shift=st.floats(-1e3, 1e3),
    scale=st.floats(1e-3, 1e3),
    perm_seed=rotations,
)
def test_invariances(seed, shift, scale, perm_seed):
    rng = np.random.default_rng(seed)
    x, y = blobs(rng, n=300, p=5, c=4)
    base = cdnv(x, y)
    q = special_ortho_group.rvs(5, random_state=seed % (2**32))
    assert cdnv(x @ q.T, y) == pytest.approx(base, rel=1e-9)
    assert cdnv(x + shift, y) == pytest.approx(base, rel=1e-9)
    assert cdnv(scale * x, y) == pytest.approx(base, rel=1e-9)
    relabel = np.random.default_rng(perm_seed).permutation(50)[:4] * 7 - 100
    assert cdnv(x, relabel[y]) == pytest.approx(base, rel=1e-12)


def test_nc_metrics_against_papyan_definitions():
    rng = np.random.default_rng(7)
    c, p = 5, 8
    x, y = blobs(rng, n=1500, p=p, c=c)
    w = rng.normal(size=(c, p))
    pred = rng.integers(0, c, len(y))
    m = nc_metrics(x, y, weights=w, predictions=pred)
    # independent reference, float64, textbook definitions (Papyan, Han & Donoho 2020)
    mu_g = x.mean(0)
    mu = np.stack([x[y == k].mean(0) for k in range(c)])
    sw = sum((x[y == k] - mu[k]).T @ (x[y == k] - mu[k]) for k in range(c)) / len(y)
    mt = mu - mu_g
    sb = mt.T @ mt / c
    nc1 = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10, hermitian=True)) / c
    assert m.nc1 == pytest.approx(nc1, rel=1e-8)
    norms = np.linalg.norm(mt, axis=1)
    assert m.nc2_equinorm == pytest.approx(norms.std() / norms.mean(), rel=1e-12)
    cos = [mt[i] @ mt[j] / (norms[i] * norms[j]) for i, j in itertools.combinations(range(c), 2)]
    assert m.nc2_equiangular == pytest.approx(np.std(cos), rel=1e-10)
    assert m.nc2_maxangle == pytest.approx(np.mean(np.abs(np.array(cos) + 1 / (c - 1))), rel=1e-10)
    nc3 = np.sum((w / np.linalg.norm(w) - mt / np.linalg.norm(mt)) ** 2)
    assert m.nc3 == pytest.approx(nc3, rel=1e-10)
    ncm = np.argmin(((x[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
    assert m.nc4 == pytest.approx(np.mean(ncm == pred), abs=0)
    assert m.cdnv == pytest.approx(ref_cdnv(x, y), rel=1e-12)
    frame = m.to_frame()
    assert set(frame["metric"]) >= {"nc1", "nc2_equinorm", "nc3", "nc4", "cdnv"}


def test_simplex_etf_is_fully_collapsed():
    c = 4
    means = np.eye(c) - 1.0 / c  # centred simplex ETF in R^c
    x = np.repeat(means, 3, axis=0)
    y = np.repeat(np.arange(c), 3)
    m = nc_metrics(x, y)
    assert m.nc1 == 0 and m.sigma_b_rank == c - 1
    assert m.nc2_equinorm == pytest.approx(0, abs=1e-12)
    assert m.nc2_maxangle == pytest.approx(0, abs=1e-12)
    assert m.nc2_etf_distance == pytest.approx(0, abs=1e-12)


def test_nc1_ignores_spurious_tiny_eigenvalue_from_float32_rounding():
    # 5 class means that span only a 2-D subspace (Σ_B has rank 2, not C − 1 = 4),
    # placed at a large offset; rounding the features to float32 adds a tiny spurious
    # component that a float64 default cutoff would invert.
    rng = np.random.default_rng(8)
    p, c, per = 6, 5, 400
    basis = np.linalg.qr(rng.normal(size=(p, 2)))[0]
    coef = rng.normal(size=(c, 2)) * 3
    mu = 1e3 + coef @ basis.T
    y = np.repeat(np.arange(c), per)
    noise = rng.normal(size=(c * per, p))
    noise -= np.stack([noise[y == k].mean(0) for k in range(c)])[y]  # exact class means
    x64 = mu[y] + noise
    x32 = x64.astype(np.float32)
    # reference: exact design, rank-2 Σ_B, float64
    sw = noise.T @ noise / len(y)
    mt = mu - mu.mean(0)
    sb = mt.T @ mt / c
    w, v = np.linalg.eigh(sb)
    v = v[:, w > 1e-8 * w.max()]
    ref = np.trace(sw @ v @ np.diag(1 / w[w > 1e-8 * w.max()]) @ v.T) / c
    m = nc_metrics(x32, y)
    assert m.sigma_b_rank == 2
    assert m.nc1 == pytest.approx(ref, rel=1e-3)
    # what a default cutoff would do on the same float32 statistics
    s = ClassStats.from_features(x32, y, scatter_matrix="within")
    mt32 = s.means - s.global_mean
    naive = np.trace(s.within_scatter() / len(y) @ np.linalg.pinv(mt32.T @ mt32 / c)) / c
    assert naive > 100 * ref


def test_nearest_mean_decisions_on_offset_data():
    # Two classes 2e-3 apart at offset 1e4 in float32. In float32 the expanded form
    # ‖q‖² + ‖μ‖² − 2⟨q, μ⟩ loses the difference and flips decisions; ours does not.
    rng = np.random.default_rng(9)
    p = 16
    mu = np.zeros((2, p))
    mu[1, 0] = 2e-3
    y = np.repeat([0, 1], 200)
    x = (1e4 + mu[y] + 3e-4 * rng.normal(size=(400, p))).astype(np.float32)
    s = ClassStats.from_features(x, y)
    exact = np.argmin(((x.astype(np.float64)[:, None] - s.means[None]) ** 2).sum(-1), axis=1)
    ours = nearest_class_mean(x, s)
    np.testing.assert_array_equal(ours, exact)
    m32 = s.means.astype(np.float32)
    expanded = (x**2).sum(1)[:, None] + (m32**2).sum(1)[None] - 2 * x @ m32.T
    flipped = np.argmin(expanded, axis=1)
    assert (flipped != exact).sum() > 10


def test_nearest_mean_ties_are_never_a_real_class():
    s = ClassStats.from_features(np.array([[-1.0], [1.0]]), [0, 1])
    assert nearest_class_mean(np.array([[0.0], [0.5]]), s).tolist() == [-1, 1]
    # class means -1 and +1; the two points at 0 are exact ties and count as disagreement
    x = np.array([[-1.0], [-1.0], [0.0], [-2.0], [1.0], [1.0], [0.0], [2.0]])
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    assert nc_metrics(x, y, predictions=y).nc4 == 6 / 8


def test_nc_metrics_bad_input():
    rng = np.random.default_rng(10)
    x, y = blobs(rng, n=100, p=3, c=3)
    with pytest.raises(NCBoundsError, match=r"weights: expected a \(K, 3\)"):
        nc_metrics(x, y, weights=np.ones((3, 4)))
    with pytest.raises(NCBoundsError, match="weights: row c is the classifier of label c"):
        nc_metrics(x, y + 5, weights=np.ones((3, 3)))
    with pytest.raises(NCBoundsError, match="predictions: expected one label per feature row"):
        nc_metrics(x, y, predictions=[0, 1])
    with pytest.raises(NCBoundsError, match="scatter_matrix='within'"):
        nc_metrics(ClassStats.from_features(x, y))
    with pytest.raises(NCBoundsError, match="predictions: nc4 compares"):
        nc_metrics(ClassStats.from_features(x, y, scatter_matrix="within"), predictions=y)
    with pytest.raises(NCBoundsError, match="kind: expected"):
        cdnv_matrix(x, y, kind="oops")


def test_torch_tensor_input():
    rng = np.random.default_rng(11)
    x, y = blobs(rng, n=500, p=4, c=3, dtype=np.float32)
    assert cdnv(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref_cdnv(x, y), rel=1e-12)
    m = nc_metrics(torch.from_numpy(x), torch.from_numpy(y), predictions=torch.from_numpy(y))
    assert 0 <= m.nc4 <= 1


def test_no_warnings_on_clean_data():
    rng = np.random.default_rng(12)
    x, y = blobs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nc_metrics(x, y)


def test_nc1_cutoff_follows_the_raw_magnitude_of_float32_inputs():
    # as above, at offsets where float32 rounding of the features is far larger than the
    # spread-relative cutoff would allow
    rng = np.random.default_rng(13)
    p, c, per = 6, 5, 400
    basis = np.linalg.qr(rng.normal(size=(p, 2)))[0]
    coef = rng.normal(size=(c, 2)) * 3
    y = np.repeat(np.arange(c), per)
    noise = rng.normal(size=(c * per, p))
    noise -= np.stack([noise[y == k].mean(0) for k in range(c)])[y]
    for offset in (3e3, 1e4):
        mu = offset + coef @ basis.T
        m = nc_metrics((mu[y] + noise).astype(np.float32), y)
        assert m.sigma_b_rank == 2
        sw = noise.T @ noise / len(y)
        mt = mu - mu.mean(0)
        w, v = np.linalg.eigh(mt.T @ mt / c)
        keep = w > 1e-8 * w.max()
        ref = np.trace(sw @ v[:, keep] @ np.diag(1 / w[keep]) @ v[:, keep].T) / c
        assert m.nc1 == pytest.approx(ref, rel=1e-2)


def test_nc4_tie_never_agrees_even_with_labels_outside_the_classes():
    # class means -1 (label 1) and +1 (label 2); the points at 0 are ties; the network
    # predicts label 0, which is not a class present, for them
    x = np.array([[-1.0], [-1.0], [0.0], [1.0], [1.0], [0.0]])
    y = [1, 1, 1, 2, 2, 2]
    assert nc_metrics(x, y, predictions=[1, 1, 0, 2, 2, 0]).nc4 == pytest.approx(4 / 6)


def test_nearest_class_mean_rejects_nonfinite_queries():
    s = ClassStats.from_features(np.array([[0.0], [2.0]]), [0, 1])
    with pytest.raises(NCBoundsError, match="row 1"):
        nearest_class_mean(np.array([[0.0], [np.nan]]), s)


def test_class_mean_at_global_mean_warns_for_angles():
    x = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    with pytest.warns(NCBoundsWarning, match="angles between centred means are undefined"):
        m = nc_metrics(x, [0, 1, 2, 2])
    assert np.isnan(m.nc2_equiangular)
