"""Numeric behaviour of ncbounds.bounds: evaluator vs sympy, vectorisation, exact checks of
the bounds on finite-support laws (exact enumeration), the epsilon's against their defining
tail equations, cube_margin against mpmath, T3 end to end, and the error messages."""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st

from ncbounds import NCBoundsError, NCBoundsWarning, bounds
from ncbounds.verdict import check_coverage

REGISTRY = bounds.registry()


@pytest.fixture(autouse=True)
def _mpmath_precision():
    """30 significant digits for the mpmath references, restored afterwards."""
    with mpmath.workdps(30):
        yield


EXPECTED_ORDER = [
    "nearest_mean", "nearest_mean_unequal", "nearest_mean_anisotropic", "known_means",
    "spherical_as_stated", "spherical", "eps1_mcdiarmid", "eps2_hoeffding", "eps1_rademacher",
    "new_samples", "new_samples_rademacher", "new_classes", "new_classes_rate", "cube_margin",
]


# ---------------------------------------------------------------------------------------
# Registry and metadata
# ---------------------------------------------------------------------------------------
def test_registry_in_theory_order_with_metadata():
    assert list(REGISTRY) == EXPECTED_ORDER
    items = [b.theory_item for b in REGISTRY.values()]
    assert items == sorted(items)  # "T1" < "T1a" < ... < "T4": THEORY.md order
    for name, b in REGISTRY.items():
        assert b.name == name
        assert b.kind in ("probability", "cdnv", "distance", "rate")
        assert "2112.15121" in b.reference and b.theory_item in b.reference
        assert set(b.symbols) == set(b.meaning) and b.assumptions
        assert set(b.symbols.values()) == b.expr.free_symbols
        text = b.describe()
        for piece in (name, b.theory_item, b.statement, b.latex, *b.symbols, *b.assumptions):
            assert piece in text
    assert [n for n, b in REGISTRY.items() if not b.valid] == ["spherical_as_stated"]
    assert [n for n, b in REGISTRY.items() if not b.certified] == ["new_classes_rate"]
    assert "rate, not a certified bound" in bounds.new_classes_rate.statement
    assert "LOWER bound" in bounds.cube_margin.statement
    doc = bounds.spherical_as_stated.__doc__
    assert "NOT VALID" in doc and "p = 500" in doc and "0.045" in doc and "0.0192" in doc


def test_latex_comes_from_sympy():
    for b in REGISTRY.values():
        assert b.latex == sp.latex(b.expr)
    assert r"\frac{2}{n}" in bounds.nearest_mean.latex


# ---------------------------------------------------------------------------------------
# Generated valid keyword values (per the shared keyword rules)
# ---------------------------------------------------------------------------------------
def _value(rule: str, minimum: int):
    if rule == "nonneg":
        return st.floats(0.0, 1e3)
    if rule == "nonneg_inf":
        return st.floats(0.0, 1e3) | st.just(math.inf)
    if rule == "positive":
        return st.floats(1e-3, 1e3)
    if rule == "count":
        return st.integers(minimum, 300)  # large p: see test_cube_margin_against_mpmath
    if rule == "probability":
        return st.floats(1e-9, 1 - 1e-9)
    return st.sampled_from([1, 2])


@st.composite
def valid_kwargs(draw, bound):
    kw = {}
    for name in bound.symbols:
        spec = bounds._KEYWORDS[name]
        kw[name] = draw(_value(spec.rule, spec.minimum))
    for small, large in bound._relations:  # e.g. lambda1 <= var1
        if kw[small] > kw[large]:
            kw[small], kw[large] = kw[large], kw[small]
    return kw


@pytest.mark.parametrize("name", EXPECTED_ORDER)
@settings(max_examples=25)
@given(data=st.data())
def test_numeric_equals_symbolic(name, data):
    # Reference: sympy's exact value (inputs substituted as exact binary rationals),
    # evaluated to 30 digits.
    bound = REGISTRY[name]
    kw = data.draw(valid_kwargs(bound))
    if name.startswith("new_samples"):
        # Away from b = eta, where (b - eta)^2 cancels catastrophically in floating point.
        syms = bound.symbolic(**kw)
        assume(syms == sp.oo or syms.is_finite)
        if name == "new_samples":
            eta = kw["eps1_i"] + kw["eps1_j"]
            assume(abs(kw["mean_distance"] - eta) > 1e-6 * max(eta, 1.0))
    numeric = bound(**kw)
    exact = bound.symbolic(**kw)
    assert isinstance(numeric, float)
    if exact == sp.oo:
        assert numeric == math.inf
    else:
        reference = float(sp.N(exact, 30))
        assert numeric == pytest.approx(reference, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("name", EXPECTED_ORDER)
def test_vectorised_equals_scalar(name):
    bound = REGISTRY[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    columns = {k: [] for k in bound.symbols}
    rows = []
    for _ in range(12):
        kw = {}
        for k in bound.symbols:
            spec = bounds._KEYWORDS[k]
            if spec.rule in ("count", "sides"):
                lo = spec.minimum
                kw[k] = int(rng.integers(lo, 3 if spec.rule == "sides" else 200))
            elif spec.rule == "probability":
                kw[k] = float(rng.uniform(1e-4, 0.5))
            else:
                kw[k] = float(rng.uniform(0.01, 20.0))
        for small, large in bound._relations:
            kw[small] = min(kw[small], kw[large])
        rows.append(kw)
        for k in bound.symbols:
            columns[k].append(kw[k])
    vector = bound(**{k: np.array(v) for k, v in columns.items()})
    scalar = np.array([bound(**kw) for kw in rows])
    assert vector.shape == (12,)
    np.testing.assert_allclose(vector, scalar, rtol=1e-14)
    # broadcasting: a column of the last keyword against a row of the others
    *rest, last = bound.symbols
    grid = bound(**{last: np.array(columns[last])[:, None],
                    **{k: np.array(columns[k]) for k in rest}})
    assert grid.shape == ((12, 12) if rest else (12, 1))
    diagonal = np.diag(grid) if rest else grid[:, 0]
    np.testing.assert_allclose(diagonal, scalar, rtol=1e-14)


def test_vacuous_new_samples_is_inf_elementwise():
    b = np.array([0.0, 0.5, 1.0, 1.0 + 1e-12, 3.0])
    out = bounds.new_samples(var_i=1.0, var_j=2.0, mean_distance=b, eps1_i=0.25, eps1_j=0.75,
                             eps2_i=0.1, eps2_j=0.1, mean_norm_i=1.0, mean_norm_j=2.0)
    assert np.isinf(out[:3]).all() and np.isfinite(out[3:]).all()
    # Reference for the last entry: the lemma evaluated by hand.
    e_i = 0.1 + 2 * 1.0 * 0.25 + 0.25**2
    e_j = 0.1 + 2 * 2.0 * 0.75 + 0.75**2
    assert out[4] == pytest.approx((1.0 + 2.0 + e_i + e_j) / (2 * (3.0 - 1.0) ** 2), rel=1e-14)


def test_inf_cdnv_gives_the_limit():
    assert bounds.known_means(cdnv_directional=math.inf) == 1.0
    out = bounds.known_means(cdnv_directional=np.array([0.0, 0.25, math.inf]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])
    assert bounds.known_means.symbolic(cdnv_directional=math.inf) == 1  # limit, not oo/oo
    assert bounds.nearest_mean(cdnv=math.inf, shots=3) == math.inf
    assert bounds.nearest_mean.capped(cdnv=math.inf, shots=3) == 1.0


def test_capped_keeps_uncapped_in_call():
    v = np.array([0.001, 0.1, 1.0])
    raw = bounds.nearest_mean(cdnv=v, shots=1)
    np.testing.assert_allclose(raw, 48 * v)
    np.testing.assert_allclose(bounds.nearest_mean.capped(cdnv=v, shots=1), np.minimum(48 * v, 1))
    with pytest.raises(NCBoundsError, match="probability"):
        bounds.new_classes.capped(cdnv_source=0.1, cdnv_max=1.0, sources=10, delta=0.1)


# ---------------------------------------------------------------------------------------
# Exact enumeration on finite-support laws: the T1 family of bounds must hold
# ---------------------------------------------------------------------------------------
def _exact_nearest_mean_error(atoms, weights, shots):
    """E_S Pr[h_S(x) != y] by enumerating every support set and query (ties are errors).

    atoms[c]: (a_c, p) support of class c; weights[c]: (a_c,) probabilities; balanced labels.
    """
    k = len(atoms)
    total = 0.0
    per_class_supports = []
    for c in range(k):
        combos = list(itertools.product(range(len(weights[c])), repeat=shots[c]))
        centres = np.array([atoms[c][list(idx)].mean(axis=0) for idx in combos])
        probs = np.array([np.prod(weights[c][list(idx)]) for idx in combos])
        per_class_supports.append((centres, probs))
    for choice in itertools.product(*[range(len(s[1])) for s in per_class_supports]):
        centres = np.array([per_class_supports[c][0][i] for c, i in enumerate(choice)])
        prob_s = np.prod([per_class_supports[c][1][i] for c, i in enumerate(choice)])
        err = 0.0
        for c in range(k):
            diff = atoms[c][:, None, :] - centres[None, :, :]
            dist = np.einsum("apk,apk->ap", diff, diff)
            own = dist[:, c]
            others = np.delete(dist, c, axis=1)
            wrong = (others <= own[:, None]).any(axis=1)  # ties count as errors
            err += float(weights[c] @ wrong) / k
        total += prob_s * err
    return total


def _moments(atoms, weights):
    mu = weights @ atoms
    cov = (atoms - mu).T @ ((atoms - mu) * weights[:, None])
    return mu, cov


@st.composite
def finite_laws(draw, classes=2, dim=2, max_atoms=3):
    atoms, weights = [], []
    for _ in range(classes):
        a = draw(st.integers(1, max_atoms))
        pts = draw(st.lists(st.lists(st.integers(-4, 4), min_size=dim, max_size=dim),
                            min_size=a, max_size=a))
        w = np.array(draw(st.lists(st.integers(1, 20), min_size=a, max_size=a)), float)
        atoms.append(np.array(pts, float))
        weights.append(w / w.sum())
    mus = [_moments(a, w)[0] for a, w in zip(atoms, weights)]
    for i, j in itertools.combinations(range(classes), 2):
        assume(np.linalg.norm(mus[i] - mus[j]) > 1e-9)
    return atoms, weights


@st.composite
def outlier_laws(draw, dim=2):
    """Adversarial two-class laws: class 1 is a bulk atom plus a rare atom placed on the
    segment towards class 2's point mass (at a multiple of 1/4 of it, so that exact ties
    occur); that is where nearest-mean errors concentrate for a given variance."""
    pt = st.lists(st.integers(-4, 4), min_size=dim, max_size=dim)
    bulk, other = np.array(draw(pt), float), np.array(draw(pt), float)
    assume(np.any(bulk != other))
    outlier = bulk + draw(st.integers(1, 6)) / 4 * (other - bulk)
    k = draw(st.integers(1, 60))
    return [np.array([bulk, outlier]), other[None, :]], [np.array([k, 1.0]) / (k + 1), np.ones(1)]


two_class_laws = finite_laws() | outlier_laws()


def _t1_inputs(laws, n1, n2):
    atoms, weights = laws
    (mu1, cov1), (mu2, cov2) = (_moments(a, w) for a, w in zip(atoms, weights))
    d = float(np.linalg.norm(mu1 - mu2))
    err = _exact_nearest_mean_error(atoms, weights, (n1, n2))
    return err, np.trace(cov1), np.trace(cov2), d, (cov1, cov2)


@settings(max_examples=80)
@given(laws=two_class_laws, n1=st.integers(1, 2), n2=st.integers(1, 2))
def test_T1_family_holds_by_exact_enumeration(laws, n1, n2):
    err, v1, v2, d, (cov1, cov2) = _t1_inputs(laws, n1, n2)
    t1a = bounds.nearest_mean_unequal(var1=v1, var2=v2, distance=d, shots1=n1, shots2=n2)
    assert err <= t1a + 1e-12
    if n1 == n2:
        cdnv = (v1 + v2) / (2 * d**2)
        assert err <= bounds.nearest_mean(cdnv=cdnv, shots=n1) + 1e-12
        lam = [max(np.linalg.eigvalsh(c)[-1], 0.0) for c in (cov1, cov2)]
        t1c = bounds.nearest_mean_anisotropic(lambda1=min(lam[0], v1), lambda2=min(lam[1], v2),
                                              var1=v1, var2=v2, distance=d, shots=n1)
        assert err <= t1c + 1e-12


def test_exact_enumeration_has_teeth():
    # T1 with the constant 16 replaced by 1 must be refuted by the same laws and the same
    # enumeration within a small example budget (hypothesis.find searches and shrinks).
    def weakened_violated(args):
        laws, n = args
        err, v1, v2, d, _ = _t1_inputs(laws, n, n)
        return err > (v1 + v2) / (2 * d**2) * (1 + 2 / n)

    found = find(st.tuples(two_class_laws, st.integers(1, 2)), weakened_violated,
                 settings=settings(max_examples=300, derandomize=True, database=None))
    (atoms, weights), n = found
    err, v1, v2, d, _ = _t1_inputs((atoms, weights), n, n)
    cdnv = (v1 + v2) / (2 * d**2)
    assert err > cdnv * (1 + 2 / n)  # the weakened constant fails on this law ...
    assert err <= bounds.nearest_mean(cdnv=cdnv, shots=n)  # ... while T1 holds on it


@settings(max_examples=25)
@given(laws=finite_laws(classes=3, max_atoms=2))
def test_T1b_holds_by_exact_enumeration_three_classes(laws):
    atoms, weights = laws
    mom = [_moments(a, w) for a, w in zip(atoms, weights)]
    pairs = list(itertools.combinations(range(3), 2))
    avg = np.mean([(np.trace(mom[i][1]) + np.trace(mom[j][1]))
                   / (2 * np.sum((mom[i][0] - mom[j][0]) ** 2)) for i, j in pairs])
    err = _exact_nearest_mean_error(atoms, weights, (1, 1, 1))
    assert err <= bounds.nearest_mean(cdnv=avg, shots=1, ways=3) + 1e-12


@settings(max_examples=60)
@given(laws=two_class_laws)
def test_T1d_known_means_holds_exactly(laws):
    atoms, weights = laws
    (mu1, cov1), (mu2, _) = (_moments(a, w) for a, w in zip(atoms, weights))
    u = (mu2 - mu1) / np.linalg.norm(mu2 - mu1)
    vt = float(u @ cov1 @ u) / float(np.sum((mu2 - mu1) ** 2))
    # exact: probability that a class-1 atom is at least as close to mu_2 as to mu_1
    d1 = np.sum((atoms[0] - mu1) ** 2, axis=1)
    d2 = np.sum((atoms[0] - mu2) ** 2, axis=1)
    err = float(weights[0] @ (d2 <= d1))
    assert err <= bounds.known_means(cdnv_directional=vt) + 1e-12


def test_T1d_is_attained_by_a_two_point_law():
    # Cantelli is tight: X = d/2 with probability r, X = -r d / (2 (1 - r)) otherwise
    # (mean 0); the tie at the midpoint counts as an error, so the error is exactly r.
    r, dist = 0.2, 2.0
    x = np.array([dist / 2, -r * dist / (2 * (1 - r))])
    w = np.array([r, 1 - r])
    vt = float(w @ x**2) / dist**2
    assert bounds.known_means(cdnv_directional=vt) == pytest.approx(r, rel=1e-12)


# ---------------------------------------------------------------------------------------
# T2: the counterexample numbers
# ---------------------------------------------------------------------------------------
def test_T2_counterexample_numbers():
    q, p = 0.05, 500
    lower = q * (1 - q) ** 2  # err >= q (1 - q)^2 (THEORY T2)
    slides = bounds.spherical_as_stated(cdnv=4 * q, shots=1, dim=p)
    assert slides == pytest.approx(192 * q / p, rel=1e-14)
    assert lower >= 0.045 > 0.0192 >= slides - 1e-15
    assert bounds.spherical(cdnv=4 * q, shots=1, dim=p) >= lower


# ---------------------------------------------------------------------------------------
# T3 and T4 epsilons against the tail equations that define them (mpmath root finding)
# ---------------------------------------------------------------------------------------
def _solve_decreasing(tail, target):
    """The t > 0 with tail(t) = target, by bisection in 30-digit arithmetic (tail decreasing)."""
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    while tail(hi) > target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > target else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("radius,m,delta", [(1.0, 10, 0.05), (3.5, 20000, 1e-3), (0.2, 7, 0.5)])
def test_epsilons_solve_their_tail_equations(radius, m, delta):
    B, M, dl = mpmath.mpf(radius), mpmath.mpf(m), mpmath.mpf(delta)
    # McDiarmid, bounded differences 2B/m: Pr(dev >= t) <= exp(-2 t^2 / (m (2B/m)^2)).
    t = _solve_decreasing(lambda t: mpmath.exp(-2 * t**2 / (M * (2 * B / M) ** 2)), dl)
    assert bounds.eps1_mcdiarmid(radius=radius, samples=m, delta=delta) == pytest.approx(
        float(B / mpmath.sqrt(M) + t), rel=1e-12)
    assert bounds.eps1_rademacher(rademacher=0.3, radius=radius, samples=m,
                                  delta=delta) == pytest.approx(float(0.3 + t), rel=1e-12)
    # Two-sided Hoeffding for values in [0, B^2]: 2 exp(-2 m t^2 / B^4) = delta.
    t2 = _solve_decreasing(lambda t: 2 * mpmath.exp(-2 * M * t**2 / B**4), dl)
    assert bounds.eps2_hoeffding(radius=radius, samples=m, delta=delta) == pytest.approx(
        float(t2), rel=1e-12)


@pytest.mark.parametrize("sources,sides", [(2, 1), (7, 2), (100, 1), (101, 2)])
def test_new_classes_solves_the_u_statistic_tail(sources, sides):
    # Hoeffding (1963) for an order-2 U-statistic with values in [0, M]:
    # Pr(G - Ghat >= t) <= exp(-2 floor(l/2) t^2 / M^2); sides x that = delta.
    Mx, delta, g = mpmath.mpf("2.5"), mpmath.mpf("0.01"), 0.125
    t = _solve_decreasing(lambda t: sides * mpmath.exp(-2 * (sources // 2) * t**2 / Mx**2), delta)
    value = bounds.new_classes(cdnv_source=g, cdnv_max=2.5, sources=sources, delta=0.01,
                               sides=sides)
    assert value == pytest.approx(g + float(t), rel=1e-12)


@pytest.mark.parametrize("dim,classes", [(1, 2), (2, 100), (5, 1000), (64, 50), (512, 10),
                                         (4096, 1000)])
def test_cube_margin_against_mpmath(dim, classes):
    # Direct evaluation of s (2 delta / (N (N-1) V_p))^(1/p) in 50-digit arithmetic.
    with mpmath.workdps(50):
        s, delta = mpmath.mpf("1.5"), mpmath.mpf("0.01")
        vp = mpmath.pi ** (mpmath.mpf(dim) / 2) / mpmath.gamma(mpmath.mpf(dim) / 2 + 1)
        ref = s * (2 * delta / (classes * (classes - 1) * vp)) ** (mpmath.mpf(1) / dim)
    got = bounds.cube_margin(side=1.5, classes=classes, dim=dim, delta=0.01)
    assert got == pytest.approx(float(ref), rel=1e-11)


def test_cube_margin_union_bound_by_simulation_in_one_dimension():
    # p = 1: Pr(Delta < r) <= N (N - 1) r / s. With the bound at delta the empirical
    # probability that the minimum spacing falls below it stays below delta.
    rng = np.random.default_rng(11)
    N, delta, s = 20, 0.2, 1.0
    r = bounds.cube_margin(side=s, classes=N, dim=1, delta=delta)
    pts = np.sort(rng.uniform(0, s, size=(4000, N)), axis=1)
    below = int((np.diff(pts, axis=1).min(axis=1) < r).sum())
    assert check_coverage(below, 4000, delta).status == "holds"


# ---------------------------------------------------------------------------------------
# T3 lemma with exact epsilons on finite laws, and end to end from samples
# ---------------------------------------------------------------------------------------
@settings(max_examples=80)
@given(laws=finite_laws(max_atoms=3), data=st.data())
def test_T3_lemma_holds_with_exact_epsilons(laws, data):
    atoms, weights = laws
    vals = []
    for a, w in zip(atoms, weights):
        mu, cov = _moments(a, w)
        idx = data.draw(st.lists(st.integers(0, len(w) - 1), min_size=1, max_size=6))
        smp = a[idx]
        muh = smp.mean(axis=0)
        vals.append(dict(
            var_p=float(np.trace(cov)), mu=mu, muh=muh,
            var_s=float(np.mean(np.sum((smp - muh) ** 2, axis=1))),
            eps1=float(np.linalg.norm(mu - muh)),
            eps2=abs(float(w @ np.sum(a**2, axis=1)) - float(np.mean(np.sum(smp**2, axis=1)))),
        ))
    i, j = vals
    true_cdnv = (i["var_p"] + j["var_p"]) / (2 * np.sum((i["mu"] - j["mu"]) ** 2))
    bound = bounds.new_samples(
        var_i=i["var_s"], var_j=j["var_s"], mean_distance=float(np.linalg.norm(i["muh"] - j["muh"])),
        eps1_i=i["eps1"], eps1_j=j["eps1"], eps2_i=i["eps2"], eps2_j=j["eps2"],
        mean_norm_i=float(np.linalg.norm(i["muh"])), mean_norm_j=float(np.linalg.norm(j["muh"])))
    assert true_cdnv <= bound * (1 + 1e-9)


def test_new_samples_rademacher_is_the_lemma_with_substituted_epsilons():
    kw = dict(var_i=0.7, var_j=1.1, mean_distance=9.0, mean_norm_i=4.0, mean_norm_j=5.0)
    rad, B, m, delta = 0.02, 6.0, 50000, 0.1
    e1 = bounds.eps1_rademacher(rademacher=rad, radius=B, samples=m, delta=delta / 4)
    e2 = bounds.eps2_hoeffding(radius=B, samples=m, delta=delta / 4)
    ref = bounds.new_samples(eps1_i=e1, eps1_j=e1, eps2_i=e2, eps2_j=e2, **kw)
    got = bounds.new_samples_rademacher(rademacher=rad, radius=B, samples=m, delta=delta, **kw)
    assert got == pytest.approx(ref, rel=1e-13)


def _square_classes(rng, m, shift):
    return rng.uniform(-1, 1, size=(m, 2)) + shift


def test_new_samples_from_samples_matches_direct_float64():
    rng = np.random.default_rng(3)
    xi, xj = _square_classes(rng, 5000, [3.0, 0.0]), _square_classes(rng, 3000, [-3.0, 1.0])
    c0 = np.array([0.5, 0.5])
    r = bounds.new_samples_from_samples(xi, xj, radius=6.0, delta=0.1, center=c0)
    # Reference: numpy's own variance (ddof 0) and norms, the epsilons at delta/4.
    assert r.var_i == pytest.approx(np.var(xi, axis=0).sum(), rel=1e-12)
    assert r.var_j == pytest.approx(np.var(xj, axis=0).sum(), rel=1e-12)
    assert r.mean_distance == pytest.approx(np.linalg.norm(xi.mean(0) - xj.mean(0)), rel=1e-12)
    assert r.mean_norm_i == pytest.approx(np.linalg.norm(xi.mean(0) - c0), rel=1e-12)
    assert (r.samples_i, r.samples_j, r.delta_each) == (5000, 3000, 0.025)
    assert r.eps1_j == bounds.eps1_mcdiarmid(radius=6.0, samples=3000, delta=0.025)
    assert r.eps2_i == bounds.eps2_hoeffding(radius=6.0, samples=5000, delta=0.025)
    assert r.cdnv_empirical == pytest.approx((r.var_i + r.var_j) / (2 * r.mean_distance**2))
    assert r.bound == bounds.new_samples(
        var_i=r.var_i, var_j=r.var_j, mean_distance=r.mean_distance, eps1_i=r.eps1_i,
        eps1_j=r.eps1_j, eps2_i=r.eps2_i, eps2_j=r.eps2_j, mean_norm_i=r.mean_norm_i,
        mean_norm_j=r.mean_norm_j)
    frame = r.to_frame()
    assert frame.shape[0] == 1 and "bound" in frame.columns


def test_new_samples_from_samples_large_offset_is_stable():
    # A shared offset of 1e8 with the centre at the offset: the difference form keeps the
    # variance exact to float64 accuracy (the expanded form would lose every digit).
    rng = np.random.default_rng(5)
    base_i, base_j = _square_classes(rng, 400, [1.0, 0]), _square_classes(rng, 400, [-1.0, 0])
    off = np.array([1e8, -1e8])
    r = bounds.new_samples_from_samples(base_i + off, base_j + off, radius=3.0, delta=0.1,
                                        center=off)
    assert r.var_i == pytest.approx(np.var(base_i, axis=0).sum(), rel=1e-6)


def test_T3_coverage_informative_and_vacuous_regimes():
    # Two uniform squares [-1, 1]^2 centred at (+-3, 0): population Var = 2/3 per class,
    # mean distance 6, so V = (2/3 + 2/3) / (2 * 36) = 1/54 (closed form).
    rng = np.random.default_rng(2024)
    true_cdnv = 1 / 54
    radius = math.hypot(4.0, 1.0)
    reps, delta = 100, 0.05  # 0/100 gives a 99% upper bound of 0.045 < delta
    violations = 0
    for _ in range(reps):
        r = bounds.new_samples_from_samples(
            _square_classes(rng, 20000, [3.0, 0.0]), _square_classes(rng, 20000, [-3.0, 0.0]),
            radius=radius, delta=delta)
        assert not r.vacuous and math.isfinite(r.bound)
        violations += true_cdnv > r.bound
    assert check_coverage(violations, reps, delta).status == "holds"
    small = bounds.new_samples_from_samples(
        _square_classes(rng, 20, [3.0, 0.0]), _square_classes(rng, 20, [-3.0, 0.0]),
        radius=radius, delta=delta)
    assert small.vacuous and small.bound == math.inf


def test_new_samples_from_samples_errors_and_warning():
    x = np.zeros((3, 2)) + [1.0, 0.0]
    with pytest.raises(NCBoundsError, match="radius"):
        bounds.new_samples_from_samples(x * 10, -x, radius=1.0, delta=0.1)
    with pytest.raises(NCBoundsError, match="delta"):
        bounds.new_samples_from_samples(x, -x, radius=2.0, delta=1.0)
    with pytest.raises(NCBoundsError, match="features_j"):
        bounds.new_samples_from_samples(x, np.zeros((3, 3)), radius=2.0, delta=0.1)
    with pytest.raises(NCBoundsError, match="center"):
        bounds.new_samples_from_samples(x, -x, radius=2.0, delta=0.1, center=[0.0])
    with pytest.raises(NCBoundsError, match="features_i"):
        bounds.new_samples_from_samples(np.array([[np.nan, 0.0]]), -x, radius=2.0, delta=0.1)
    with pytest.warns(NCBoundsWarning, match="coincide"):
        r = bounds.new_samples_from_samples(x, x, radius=2.0, delta=0.1)
    assert r.cdnv_empirical == math.inf and r.vacuous


# ---------------------------------------------------------------------------------------
# Bad inputs: the messages name the argument and list the accepted keywords
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bound,kwargs,pattern",
    [
        ("nearest_mean", dict(cdnv=0.1), r"missing keyword\(s\) shots; accepted: cdnv, shots, ways"),
        ("nearest_mean", dict(cdnv=0.1, shots=1, n=2), r"unknown keyword\(s\) n; accepted"),
        ("nearest_mean", dict(cdnv=-0.1, shots=1), r"cdnv: expected numbers >= 0"),
        ("nearest_mean", dict(cdnv=0.1, shots=0), r"shots: expected whole numbers >= 1, got 0"),
        ("nearest_mean", dict(cdnv=0.1, shots=[1, 2.5]), r"shots: .* 2\.5 at index \(1,\)"),
        ("nearest_mean", dict(cdnv=0.1, shots=1, ways=1), r"ways: expected whole numbers >= 2"),
        ("nearest_mean", dict(cdnv=float("nan"), shots=1), r"cdnv: .* got nan"),
        ("nearest_mean", dict(cdnv="x", shots=1), r"cdnv: .* got str"),
        ("nearest_mean", dict(cdnv=[0.1, 0.2], shots=[1, 2, 3]), r"do not broadcast"),
        ("nearest_mean_unequal", dict(var1=-1.0, var2=1.0, distance=1.0, shots1=1, shots2=1),
         r"var1: expected finite numbers >= 0"),
        ("nearest_mean_unequal", dict(var1=1.0, var2=1.0, distance=0.0, shots1=1, shots2=1),
         r"distance: expected finite numbers > 0"),
        ("nearest_mean_anisotropic", dict(lambda1=2.0, lambda2=0.1, var1=1.0, var2=1.0,
                                          distance=1.0, shots=1), r"lambda1 <= var1"),
        ("eps1_mcdiarmid", dict(radius=1.0, samples=10, delta=1.0), r"delta: expected numbers in \(0, 1\)"),
        ("new_classes", dict(cdnv_source=0.1, cdnv_max=1.0, sources=10, delta=0.1, sides=3),
         r"sides: expected 1 \(one-sided\) or 2"),
        ("new_classes", dict(cdnv_source=2.0, cdnv_max=1.0, sources=10, delta=0.1),
         r"cdnv_source <= cdnv_max"),
        ("new_classes", dict(cdnv_source=0.1, cdnv_max=1.0, sources=1, delta=0.1),
         r"sources: expected whole numbers >= 2"),
        ("cube_margin", dict(side=1.0, classes=10, dim=2, delta=0.1, p=3), r"unknown keyword\(s\) p"),
    ],
)
def test_bad_inputs_name_the_argument(bound, kwargs, pattern):
    with pytest.raises(NCBoundsError, match=pattern) as info:
        REGISTRY[bound](**kwargs)
    assert info.value.args[0].startswith(bound)


def test_symbolic_rejects_arrays_and_keeps_missing_symbols():
    with pytest.raises(NCBoundsError, match="shots: symbolic"):
        bounds.nearest_mean.symbolic(cdnv=0.1, shots=[1, 2])
    expr = bounds.nearest_mean.symbolic(shots=2)  # cdnv stays symbolic; ways defaults to 2
    assert expr == 32 * bounds.nearest_mean.symbols["cdnv"]


def test_signature_lists_keywords():
    import inspect

    sig = inspect.signature(bounds.nearest_mean)
    assert list(sig.parameters) == ["cdnv", "shots", "ways"]
    assert sig.parameters["ways"].default == 2
    assert all(p.kind is p.KEYWORD_ONLY for p in sig.parameters.values())


def test_constructing_a_bound_validates_its_definition():
    V, n = bounds.nearest_mean.symbols["cdnv"], bounds.nearest_mean.symbols["shots"]
    common = dict(theory_item="T1", statement="s", assumptions=())
    mine = bounds.Bound("mine", expr=V / n, keywords=("cdnv", "shots"), kind="cdnv", **common)
    assert mine(cdnv=1.0, shots=4) == 0.25 and mine.symbolic(cdnv=1, shots=4) == sp.Rational(1, 4)
    with pytest.raises(NCBoundsError, match="kind: expected one of"):
        bounds.Bound("x", expr=V, keywords=("cdnv",), kind="length", **common)
    with pytest.raises(NCBoundsError, match="keywords: expected shared keyword names"):
        bounds.Bound("x", expr=V, keywords=("cdnv", "variance"), kind="cdnv", **common)
    with pytest.raises(NCBoundsError, match=r"expr: .*unused keyword symbols \['n'\]"):
        bounds.Bound("x", expr=V, keywords=("cdnv", "shots"), kind="cdnv", **common)
    with pytest.raises(NCBoundsError, match=r"expr: .*stray symbols \['z'\]"):
        bounds.Bound("x", expr=V * sp.Symbol("z"), keywords=("cdnv",), kind="cdnv", **common)
