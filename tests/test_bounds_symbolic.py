"""Symbolic (sympy) checks of the algebra behind the constants of THEORY.md T1–T4.

Each reference expression is derived in this file from the proof steps of THEORY.md (per-class
union bound, Cantelli, the variance identity, the cube bookkeeping), written independently
of ncbounds.bounds, and compared with the Bound's sympy expression by exact simplification.
"""

from __future__ import annotations

import itertools

import pytest
import sympy as sp

from ncbounds import bounds

n, n1, n2, p, d = sp.symbols("n n_1 n_2 p d", positive=True)


def per_class_error(v_c, v_c_shots, v_other_shots, dist):
    """THEORY T1 proof sketch: Pr_c[err] <= 16 (v_c + v_c/n_c + v_c'/n_c') / d^2.

    Query, own-centre and other-centre noise must each be < d/4 (union bound), and Markov on
    squares gives 16 E||.||^2 / d^2 for each; E||B||^2 = v/n for an n-sample mean.
    """
    return 16 * (v_c + v_c_shots + v_other_shots) / dist**2


def simplified_zero(expr) -> bool:
    return sp.simplify(sp.together(sp.expand(expr))) == 0


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_union_bound_over_wrong_centres_sums_to_T1b(k):
    # Reference: average over the k balanced classes of the union over the k - 1 wrong
    # centres of the per-pair bound, with symbolic variances and pairwise distances.
    v = sp.symbols(f"v0:{k}", positive=True)
    dist = {}
    for a, b in itertools.combinations(range(k), 2):
        dist[a, b] = dist[b, a] = sp.Symbol(f"d_{a}{b}", positive=True)
    err = sum(
        per_class_error(v[c], v[c] / n, v[o] / n, dist[c, o])
        for c in range(k)
        for o in range(k)
        if o != c
    ) / k
    pairs = list(itertools.combinations(range(k), 2))
    avg_cdnv = sum((v[a] + v[b]) / (2 * dist[a, b] ** 2) for a, b in pairs) / len(pairs)
    assert simplified_zero(err - bounds.nearest_mean.symbolic(cdnv=avg_cdnv, shots=n, ways=k))


def test_T1a_is_average_of_per_class_bounds_and_reduces_to_T1():
    v1, v2 = sp.symbols("v1 v2", positive=True)
    # Reference: mean of the two per-class bounds with n_1, n_2 shots.
    avg = (per_class_error(v1, v1 / n1, v2 / n2, d) + per_class_error(v2, v2 / n2, v1 / n1, d)) / 2
    t1a = bounds.nearest_mean_unequal.symbolic(var1=v1, var2=v2, distance=d, shots1=n1, shots2=n2)
    assert simplified_zero(avg - t1a)
    equal = bounds.nearest_mean_unequal.symbolic(var1=v1, var2=v2, distance=d, shots1=n, shots2=n)
    t1 = bounds.nearest_mean.symbolic(cdnv=(v1 + v2) / (2 * d**2), shots=n)
    assert simplified_zero(equal - t1)


def test_T1c_average_of_per_class_anisotropic_bounds_and_below_T1():
    v1, v2, l1, l2 = sp.symbols("v1 v2 lambda1 lambda2", positive=True)
    # Reference (THEORY T1c): Pr_1[err] <= 16 lambda_1/d^2 + 16 (v_1/n + v_2/n)/d^2.
    per1 = 16 * l1 / d**2 + 16 * (v1 / n + v2 / n) / d**2
    per2 = 16 * l2 / d**2 + 16 * (v2 / n + v1 / n) / d**2
    t1c = bounds.nearest_mean_anisotropic.symbolic(
        lambda1=l1, lambda2=l2, var1=v1, var2=v2, distance=d, shots=n
    )
    assert simplified_zero((per1 + per2) / 2 - t1c)
    # T1 - T1c = 8 ((v_1 - lambda_1) + (v_2 - lambda_2)) / d^2 >= 0 since lambda_c <= v_c.
    t1 = bounds.nearest_mean.symbolic(cdnv=(v1 + v2) / (2 * d**2), shots=n)
    assert simplified_zero(t1 - t1c - 8 * ((v1 - l1) + (v2 - l2)) / d**2)


def test_T2_valid_form_follows_from_T1c_with_isotropic_covariance():
    v1, v2 = sp.symbols("v1 v2", positive=True)
    # Spherical symmetry: Sigma_c = (v_c / p) I, so lambda_c = v_c / p.
    t1c = bounds.nearest_mean_anisotropic.symbolic(
        lambda1=v1 / p, lambda2=v2 / p, var1=v1, var2=v2, distance=d, shots=n
    )
    cdnv = (v1 + v2) / (2 * d**2)
    assert simplified_zero(t1c - bounds.spherical.symbolic(cdnv=cdnv, shots=n, dim=p))
    # ... and it is below T1 by 16 V (1 - 1/p) >= 0.
    t1 = bounds.nearest_mean.symbolic(cdnv=cdnv, shots=n)
    assert simplified_zero(t1 - t1c - 16 * cdnv * (1 - 1 / p))
    # The slides' form differs from the valid one (it divides the centre term by p too).
    assert not simplified_zero(
        bounds.spherical_as_stated.symbolic(cdnv=cdnv, shots=n, dim=p) - t1c
    )


def test_T2_counterexample_algebra():
    # THEORY T2: radius 2d with probability q, so Var = 4 q d^2 and V = 4q; err >= q(1-q)^2.
    q = sp.Symbol("q", positive=True)
    V = (4 * q * d**2 + 4 * q * d**2) / (2 * d**2)
    assert sp.simplify(V - 4 * q) == 0
    slides = bounds.spherical_as_stated.symbolic(cdnv=V, shots=1, dim=p)
    assert sp.simplify(slides - 192 * q / p) == 0
    at = {q: sp.Rational(1, 20), p: 500}
    assert slides.subs(at) == sp.Rational(192, 10000)  # 0.0192
    assert (q * (1 - q) ** 2).subs(at) > sp.Rational(45, 1000) > slides.subs(at)
    # The valid form is >= 128 q >= q (1 - q)^2 for every q in (0, 1) and every p.
    valid = bounds.spherical.symbolic(cdnv=V, shots=1, dim=p)
    assert sp.simplify(valid - 128 * q - 64 * q / p) == 0


def test_T1d_is_cantelli_on_the_margin():
    # Cantelli: Pr(X - E X >= a) <= s^2 / (s^2 + a^2); the margin is a = d/2 and the
    # variance along u is s^2 = Vtilde d^2.
    s2 = sp.Symbol("s2", positive=True)
    cantelli = s2 / (s2 + (d / 2) ** 2)
    assert simplified_zero(cantelli - bounds.known_means.symbolic(cdnv_directional=s2 / d**2))


def test_T3_variance_identity_on_symbolic_laws():
    # A symbolic law P (three atoms in R^2 with weights w) and a symbolic sample S (three
    # points); variances by their definition E||f - mu||^2 (difference form).
    dim, atoms = 2, 3
    y = [sp.symbols(f"y{a}_0:{dim}", real=True) for a in range(atoms)]
    x = [sp.symbols(f"x{a}_0:{dim}", real=True) for a in range(atoms)]
    w0, w1 = sp.symbols("w0 w1", positive=True)
    w = (w0, w1, 1 - w0 - w1)
    mu = [sum(w[a] * y[a][t] for a in range(atoms)) for t in range(dim)]
    muh = [sum(x[a][t] for a in range(atoms)) / atoms for t in range(dim)]

    def sq(vec):
        return sum(c**2 for c in vec)

    var_p = sum(w[a] * sq([y[a][t] - mu[t] for t in range(dim)]) for a in range(atoms))
    var_s = sum(sq([x[a][t] - muh[t] for t in range(dim)]) for a in range(atoms)) / atoms
    e2_p = sum(w[a] * sq(y[a]) for a in range(atoms))
    e2_s = sum(sq(x[a]) for a in range(atoms)) / atoms
    inner = sum((mu[t] - muh[t]) * (mu[t] + muh[t]) for t in range(dim))
    # Var(P) - Var(S) = (E||f||^2 - Avg||f||^2) - <mu - mu_hat, mu + mu_hat>
    assert sp.expand(var_p - var_s - ((e2_p - e2_s) - inner)) == 0
    # <D, mu + mu_hat> = 2 <D, mu_hat> + ||D||^2 with D = mu - mu_hat: with ||D|| <= eps1 and
    # Cauchy-Schwarz this is at most 2 ||mu_hat|| eps1 + eps1^2, the e_c term of T3.
    diff = [mu[t] - muh[t] for t in range(dim)]
    assert sp.expand(inner - 2 * sum(diff[t] * muh[t] for t in range(dim)) - sq(diff)) == 0


def test_T3_reciprocal_identity_and_lemma_form():
    a, b = sp.symbols("a b", positive=True)
    assert sp.simplify(1 / a**2 - (1 / b**2 - (a**2 - b**2) / (a**2 * b**2))) == 0
    # The lemma's valid branch is (v_i + v_j + e_i + e_j) / (2 (b - eta)^2): the CDNV with
    # Var_f(P_c) <= v_c + e_c and ||mu_i - mu_j|| >= b - eta.
    syms = bounds.new_samples.symbols
    e = {
        c: syms[f"eps2_{c}"] + 2 * syms[f"mean_norm_{c}"] * syms[f"eps1_{c}"] + syms[f"eps1_{c}"] ** 2
        for c in "ij"
    }
    eta = syms["eps1_i"] + syms["eps1_j"]
    reference = (syms["var_i"] + syms["var_j"] + e["i"] + e["j"]) / (2 * (syms["mean_distance"] - eta) ** 2)
    value = bounds.new_samples.symbolic(mean_distance=eta + b)  # b > 0: the valid branch
    assert simplified_zero(value - reference.subs(syms["mean_distance"], eta + b))
    assert bounds.new_samples.symbolic(mean_distance=eta) == sp.oo
    assert bounds.new_samples.symbolic(mean_distance=eta / 2) == sp.oo


def test_cube_rate_bookkeeping():
    N, l = sp.symbols("N l", positive=True)
    C = sp.Symbol("C", positive=True)
    # Slides' cube example: Delta ~ sqrt(p) N^(-2/p), Rad ~ p sqrt(l), max var ~ p, l - 1 ~ l.
    rate = bounds.new_classes_rate.symbolic(
        constant=C, var_max=p, margin=sp.sqrt(p) * N ** (-2 / p), rademacher=p * sp.sqrt(l),
        sources=l + 1,
    )
    target = C * sp.sqrt(p) * N ** (6 / p) / sp.sqrt(l)
    # rate / target = 1 + 1 / (sqrt(p) N^(2/p)): the leading term is sqrt(p) N^(6/p)/sqrt(l).
    assert sp.simplify(sp.powsimp(rate / target - 1 - 1 / (sp.sqrt(p) * N ** (2 / p)))) == 0
    assert sp.limit((rate / target).subs(p, 4), N, sp.oo) == 1


def test_cube_margin_is_the_union_bound_solution():
    # Union bound over N(N-1)/2 pairs of Pr(||X - Y|| < r) <= V_p r^p / s^p, set equal to
    # delta and solved for r (by sympy here, not typed): r = s (2 delta / (N (N-1) V_p))^(1/p).
    r, s, delta = sp.symbols("r s delta", positive=True)
    N = sp.Symbol("N", positive=True)
    Vp = sp.pi ** (p / 2) / sp.gamma(p / 2 + 1)
    (sol,) = sp.solve(sp.Eq(N * (N - 1) / 2 * Vp * r**p / s**p, delta), r)
    for dims, classes in [(1, 2), (3, 10), (7, 50)]:
        at = {p: dims, N: classes, s: sp.Rational(3, 2), delta: sp.Rational(1, 20)}
        ours = bounds.cube_margin.symbolic(side=sp.Rational(3, 2), classes=classes, dim=dims,
                                           delta=sp.Rational(1, 20))
        assert sp.N(sol.subs(at) - ours, 40) == pytest.approx(0, abs=1e-30)
