"""Families with exact population quantities (simulations.families; THEORY.md T0, T2, T5).

References: closed forms written out by hand in each test (trace, CDNV, simplex geometry),
numpy's eigvalsh on the matrices passed in, and large samples drawn from the families, whose
moments must match the exact quantities within a few standard errors (fixed seeds; the
tolerances are ≥ 6 standard errors, so a false alarm has probability < 1e-8).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncbounds import NCBoundsError, NCBoundsWarning
from simulations.families import (
    BallUniformClasses,
    FiniteSupportClasses,
    GaussianClasses,
    SphericalClasses,
    mean_layout,
)
from simulations.strategies import families, gaussian_families

RNG = np.random.default_rng(20240611)
_A = RNG.standard_normal((3, 3))
FULL_COV = np.stack([_A @ _A.T, np.diag([1.0, 0.5, 0.1]), 0.3 * np.eye(3)])


def example_families():
    """One of each kind, small enough to sample heavily."""
    return {
        "gaussian_full": GaussianClasses([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 1.0]],
                                         covariances=FULL_COV),
        "gaussian_iso": GaussianClasses.isotropic([[0.0, 0.0], [3.0, 0.0]], sigma=[0.5, 1.5]),
        "spherical": SphericalClasses([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]],
                                      radii=[[0.0, 1.0, 3.0], [2.0]],
                                      radius_weights=[[0.5, 0.3, 0.2], [1.0]]),
        "finite": FiniteSupportClasses([[[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]], [[2.0, 2.0], [4.0, 0.0]]],
                                       [[0.2, 0.3, 0.5], [0.6, 0.4]]),
        "ball": BallUniformClasses([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], ball_radius=[1.0, 0.5]),
    }


FAMILIES = example_families()


# --------------------------------------------------------------------------------------
# exact quantities against hand-written closed forms
# --------------------------------------------------------------------------------------


def test_gaussian_isotropic_cdnv_closed_form():
    # T5: V_ij = p (σ_i² + σ_j²) / (2 d²), written out for p = 2, σ = (0.5, 1.5), d = 3
    fam = FAMILIES["gaussian_iso"]
    assert fam.cdnv() == pytest.approx(2 * (0.25 + 2.25) / (2 * 9.0), rel=1e-14)
    assert fam.variances.tolist() == pytest.approx([0.5, 4.5], rel=1e-14)
    assert fam.max_eigenvalues.tolist() == pytest.approx([0.25, 2.25], rel=1e-14)
    # directional: u ᵀ σ_i² I u / d² = σ_i² / d²
    dm = fam.directional_cdnv_matrix()
    assert dm[0, 1] == pytest.approx(0.25 / 9) and dm[1, 0] == pytest.approx(2.25 / 9)
    assert fam.radius == math.inf


def test_gaussian_full_covariance_quantities():
    fam = FAMILIES["gaussian_full"]
    np.testing.assert_allclose(fam.variances, np.trace(FULL_COV, axis1=1, axis2=2), rtol=1e-13)
    np.testing.assert_allclose(fam.max_eigenvalues, [np.linalg.eigvalsh(c)[-1] for c in FULL_COV],
                               rtol=1e-12)
    np.testing.assert_allclose(fam.covariances, FULL_COV, rtol=1e-13, atol=1e-15)
    m, v = fam.means, fam.variances
    mat = fam.cdnv_matrix()
    for i in range(3):
        assert math.isnan(mat[i, i])
        for j in range(3):
            if i != j:
                d2 = float(np.sum((m[i] - m[j]) ** 2))
                assert mat[i, j] == pytest.approx((v[i] + v[j]) / (2 * d2), rel=1e-13)
                u = (m[j] - m[i]) / math.sqrt(d2)
                assert fam.directional_cdnv_matrix()[i, j] == pytest.approx(
                    u @ FULL_COV[i] @ u / d2, rel=1e-12)
    assert fam.cdnv() == pytest.approx((mat[0, 1] + mat[0, 2] + mat[1, 2]) / 3, rel=1e-14)


def test_isotropic_covariance_matrix_is_recognised():
    a = GaussianClasses([[0.0, 0.0], [1.0, 0.0]], covariances=4.0 * np.eye(2))
    b = GaussianClasses.isotropic([[0.0, 0.0], [1.0, 0.0]], sigma=2.0)
    assert a.sigmas is not None and a.sigmas.tolist() == [2.0, 2.0]
    assert a.cdnv() == b.cdnv() == pytest.approx(8.0)


def test_spherical_quantities():
    fam = FAMILIES["spherical"]
    # Var = E R², Σ = E R² / p I (THEORY.md T2)
    e_r2 = [0.3 * 1.0 + 0.2 * 9.0, 4.0]
    np.testing.assert_allclose(fam.variances, e_r2, rtol=1e-14)
    np.testing.assert_allclose(fam.covariances, np.array(e_r2)[:, None, None] * np.eye(3) / 3)
    np.testing.assert_allclose(fam.max_eigenvalues, np.array(e_r2) / 3)
    assert fam.radius == pytest.approx(max(3.0, math.sqrt(2) + 2.0))
    assert fam.cdnv() == pytest.approx((2.1 + 4.0) / (2 * 2.0))


@pytest.mark.parametrize("q", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("d", [1.0, 2.5])
def test_two_point_radius_is_the_theory_counterexample(q, d):
    fam = SphericalClasses.two_point_radius(7, q, distance=d)
    # THEORY.md T2: Var = 4 q d², V = 4q, means at distance d
    assert np.linalg.norm(fam.means[1] - fam.means[0]) == pytest.approx(d)
    np.testing.assert_allclose(fam.variances, [4 * q * d * d] * 2, rtol=1e-14)
    assert fam.cdnv() == pytest.approx(4 * q, rel=1e-14)
    x, _ = fam.sample(2000, rng=1)
    dist = np.linalg.norm(x - np.repeat(fam.means, 2000, axis=0), axis=1)
    assert np.all(np.isclose(dist, 0.0, atol=1e-12) | np.isclose(dist, 2 * d, rtol=1e-12))


def test_finite_support_quantities():
    fam = FAMILIES["finite"]
    a0 = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]])
    w0 = np.array([0.2, 0.3, 0.5])
    mu0 = w0 @ a0
    cov0 = sum(w * np.outer(a - mu0, a - mu0) for a, w in zip(a0, w0))
    np.testing.assert_allclose(fam.means[0], [1.8, 1.1], rtol=1e-14)
    np.testing.assert_allclose(fam.covariances[0], cov0, rtol=1e-13)
    assert fam.variances[0] == pytest.approx(np.trace(cov0), rel=1e-13)
    assert fam.radius == pytest.approx(4.0)  # the atom (4, 0)


def test_ball_quantities():
    fam = FAMILIES["ball"]
    # uniform in a p-ball of radius r: E‖x − μ‖² = p r² / (p + 2)
    np.testing.assert_allclose(fam.variances, [4 * 1.0 / 6, 4 * 0.25 / 6], rtol=1e-14)
    assert fam.radius == pytest.approx(1.5)
    x, y = fam.sample(5000, rng=2)
    assert np.all(np.linalg.norm(x - fam.means[y], axis=1) <= fam.ball_radius[y] * (1 + 1e-12))
    assert np.all(np.linalg.norm(x, axis=1) <= fam.radius * (1 + 1e-12))


# --------------------------------------------------------------------------------------
# sampling matches the exact quantities
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sample_moments_match_population(name):
    fam = FAMILIES[name]
    n = 40_000
    x, y = fam.sample(n, rng=3)
    assert x.dtype == np.float64 and x.shape == (fam.n_classes * n, fam.dim)
    assert y.tolist() == np.repeat(np.arange(fam.n_classes), n).tolist()
    for c in range(fam.n_classes):
        xc = x[y == c]
        se_mean = np.sqrt(np.diag(fam.covariances[c]) / n)
        assert np.all(np.abs(xc.mean(axis=0) - fam.means[c]) <= 6 * se_mean + 1e-12)
        sq = np.sum((xc - fam.means[c]) ** 2, axis=1)
        se_var = sq.std() / math.sqrt(n)
        assert abs(sq.mean() - fam.variances[c]) <= 6 * se_var + 1e-12
        centred = xc - fam.means[c]
        emp_cov = centred.T @ centred / n
        scale = float(np.max(np.abs(fam.covariances[c]))) + 1e-12
        assert np.max(np.abs(emp_cov - fam.covariances[c])) <= 0.06 * scale


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_expected_empirical_variance_and_distance(name):
    # THEORY.md T5: E Var(S_c) = (m − 1)/m tr Σ_c and E‖μ̂_i − μ̂_j‖² = d² + (tr Σ_i + tr Σ_j)/m
    fam = FAMILIES[name]
    m, reps = 3, 20_000
    gen = np.random.default_rng(4)
    s0 = fam.draw_class(0, (reps, m), gen)
    s1 = fam.draw_class(1, (reps, m), gen)
    mu0, mu1 = s0.mean(axis=1), s1.mean(axis=1)
    var0 = np.mean(np.sum((s0 - mu0[:, None, :]) ** 2, axis=2), axis=1)
    assert abs(var0.mean() - (m - 1) / m * fam.variances[0]) <= 6 * var0.std() / math.sqrt(reps)
    dist2 = np.sum((mu0 - mu1) ** 2, axis=1)
    d2 = float(np.sum((fam.means[0] - fam.means[1]) ** 2))
    expected = d2 + (fam.variances[0] + fam.variances[1]) / m
    assert abs(dist2.mean() - expected) <= 6 * dist2.std() / math.sqrt(reps)


def test_spherical_radius_law_and_directions():
    fam = FAMILIES["spherical"]
    n = 60_000
    x = fam.draw_class(0, n, rng=5)
    r = np.linalg.norm(x - fam.means[0], axis=1)
    for atom, w in zip([0.0, 1.0, 3.0], [0.5, 0.3, 0.2]):
        freq = np.mean(np.isclose(r, atom, atol=1e-12))
        assert abs(freq - w) <= 6 * math.sqrt(w * (1 - w) / n)
    u = (x - fam.means[0])[r > 0] / r[r > 0, None]
    # uniform on the sphere of R^3: E U = 0, E U Uᵀ = I/3
    assert np.all(np.abs(u.mean(axis=0)) <= 6 * math.sqrt(1 / 3 / u.shape[0]))
    assert np.max(np.abs(u.T @ u / u.shape[0] - np.eye(3) / 3)) <= 0.02


def test_finite_support_frequencies():
    fam = FAMILIES["finite"]
    n = 50_000
    x = fam.draw_class(0, n, rng=6)
    atoms = fam.atoms[0]
    idx = np.argmin(np.sum((x[:, None, :] - atoms[None]) ** 2, axis=2), axis=1)
    assert np.array_equal(x, atoms[idx])  # every draw is an atom
    freq = np.bincount(idx, minlength=3) / n
    w = fam.weights[0]
    assert np.all(np.abs(freq - w) <= 6 * np.sqrt(w * (1 - w) / n))


def test_same_seed_same_numbers():
    for fam in FAMILIES.values():
        a, _ = fam.sample(7, rng=11)
        b, _ = fam.sample(7, rng=np.random.default_rng(11))
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------
# layouts, subsets, degenerate cases, validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c,p", [(2, 1), (3, 2), (4, 3), (5, 10), (8, 7)])
def test_simplex_layout(c, p):
    m = mean_layout("simplex", c, p, scale=2.5)
    assert m.shape == (c, p)
    d = np.linalg.norm(m[:, None] - m[None], axis=2)
    np.testing.assert_allclose(d[~np.eye(c, dtype=bool)], 2.5, rtol=1e-12)
    np.testing.assert_allclose(m.mean(axis=0), 0.0, atol=1e-12)


def test_random_layouts():
    cube = mean_layout("cube", 50, 3, scale=2.0, rng=0)
    assert cube.shape == (50, 3) and cube.min() >= 0 and cube.max() <= 2.0
    gauss = mean_layout("gaussian", 4, 6, rng=1)
    assert np.array_equal(gauss, mean_layout("gaussian", 4, 6, rng=1))
    with pytest.raises(NCBoundsError, match="rng"):
        mean_layout("cube", 3, 2)


def test_subset_keeps_rows():
    for fam in FAMILIES.values():
        sub = fam.subset([1, 0])
        assert type(sub) is type(fam)
        np.testing.assert_array_equal(sub.means, fam.means[[1, 0]])
        np.testing.assert_allclose(sub.variances, fam.variances[[1, 0]])
        assert sub.cdnv() == pytest.approx(fam.cdnv_matrix()[0, 1])


def test_coinciding_means_give_inf_and_warn():
    fam = GaussianClasses([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], sigma=1.0)
    with pytest.warns(NCBoundsWarning, match=r"coincide.*\(0, 1\)"):
        mat = fam.cdnv_matrix()
    assert mat[0, 1] == math.inf and np.isfinite(mat[0, 2])
    with pytest.warns(NCBoundsWarning):
        assert fam.cdnv() == math.inf
    with pytest.warns(NCBoundsWarning):
        assert fam.directional_cdnv_matrix()[1, 0] == math.inf


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: GaussianClasses([[0.0], [1.0]]), "covariances, sigma"),
        (lambda: GaussianClasses([[0.0], [1.0]], sigma=-1.0), "sigma"),
        (lambda: GaussianClasses([0.0, 1.0], sigma=1.0), "means"),
        (lambda: GaussianClasses([[0.0], [np.nan]], sigma=1.0), "means"),
        (lambda: GaussianClasses([[0.0, 0], [1, 0]], covariances=[[1.0, 2.0], [0.0, 1.0]]),
         "covariances"),
        (lambda: GaussianClasses([[0.0, 0], [1, 0]], covariances=[[1.0, 2.0], [2.0, 1.0]]),
         "covariances"),
        (lambda: GaussianClasses([[0.0, 0], [1, 0]], covariances=np.eye(3)), "covariances"),
        (lambda: SphericalClasses([[0.0], [1.0]], radii=[-1.0, 1.0]), "radii"),
        (lambda: SphericalClasses([[0.0], [1.0]], radii=[1.0, 2.0], radius_weights=[0.5, 0.6]),
         "radius_weights"),
        (lambda: SphericalClasses([[0.0], [1.0]], radii=[[1.0]]), "radii"),
        (lambda: SphericalClasses.two_point_radius(5, 0.0), "q"),
        (lambda: FiniteSupportClasses([[[0.0]], [[1.0, 2.0]]]), "atoms"),
        (lambda: FiniteSupportClasses([[[0.0]], [[1.0]]], [[1.0], [0.0]]), "weights"),
        (lambda: FiniteSupportClasses([[[0.0], [1.0]]], [[0.5, 0.5, 0.0]]), "weights"),
        (lambda: BallUniformClasses([[0.0], [1.0]], ball_radius=[1.0]), "ball_radius"),
        (lambda: mean_layout("simplex", 4, 2), "dim"),
        (lambda: mean_layout("hexagon", 4, 2), "kind"),
        (lambda: FAMILIES["finite"].subset([0, 0]), "classes"),
        (lambda: FAMILIES["finite"].subset([2]), "classes"),
        (lambda: FAMILIES["finite"].sample(-1, rng=0), "n_per_class"),
        (lambda: FAMILIES["finite"].sample(3, rng="x"), "rng"),
        (lambda: FAMILIES["finite"].subset([0]).cdnv(), "cdnv"),
    ],
)
def test_bad_input_names_the_argument(make, name):
    with pytest.raises(NCBoundsError, match=name):
        make()


# --------------------------------------------------------------------------------------
# properties over generated families
# --------------------------------------------------------------------------------------


@settings(max_examples=40)
@given(fam=families(dim=st.integers(1, 5), n_classes=st.integers(2, 4)))
def test_generated_family_quantities_are_consistent(fam):
    cov = fam.covariances
    # tr Σ = Var, λ_max ≤ Var, Ṽ_ij ≤ λ_i / d² ≤ 2 V_ij · v_i / (v_i + v_j)
    np.testing.assert_allclose(np.trace(cov, axis1=1, axis2=2), fam.variances, rtol=1e-9,
                               atol=1e-12)
    assert np.all(fam.max_eigenvalues <= fam.variances * (1 + 1e-9) + 1e-15)
    mat, dmat = fam.cdnv_matrix(), fam.directional_cdnv_matrix()
    off = ~np.eye(fam.n_classes, dtype=bool)
    np.testing.assert_allclose(mat, mat.T)
    d2 = np.sum((fam.means[:, None] - fam.means[None]) ** 2, axis=2)
    lam = fam.max_eigenvalues[:, None] / np.where(off, d2, 1.0)
    assert np.all(dmat[off] <= lam[off] * (1 + 1e-9) + 1e-15)
    # CDNV is unchanged by translating all classes (the laws move with their means)
    shifted = fam.means + 10.0
    assert type(fam)(**_rebuild_kwargs(fam, shifted)).cdnv() == pytest.approx(fam.cdnv(), rel=1e-9)


def _rebuild_kwargs(fam, means):
    if isinstance(fam, GaussianClasses):
        if fam.sigmas is not None:
            return {"means": means, "sigma": fam.sigmas}
        return {"means": means, "covariances": fam.covariances}
    if isinstance(fam, SphericalClasses):
        return {"means": means, "radii": fam.radii, "radius_weights": fam.radius_weights}
    if isinstance(fam, BallUniformClasses):
        return {"means": means, "ball_radius": fam.ball_radius}
    shift = means - fam.means
    return {"atoms": [a + s for a, s in zip(fam.atoms, shift)], "weights": fam.weights}


@settings(max_examples=25)
@given(fam=gaussian_families(cdnv=st.floats(0.01, 0.3)))
def test_gaussian_strategy_hits_the_target_cdnv(fam):
    assert 0.01 * (1 - 1e-9) <= fam.cdnv() <= 0.3 * (1 + 1e-9)
