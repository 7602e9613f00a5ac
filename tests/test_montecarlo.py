"""Few-shot nearest-mean error measurements (simulations.montecarlo; THEORY.md T1, T5).

References:
- brute force: every ordered support tuple and query enumerated with exact rational
  arithmetic (fractions.Fraction), written here independently of the library's multiset
  enumeration;
- closed forms of THEORY.md T5: Φ(−d/2σ) and Φ(−d / (2 √(uᵀΣ₁u))) for known means, the simplex
  integral 1 − ∫ φ(w) Φ(d/(√2σ) − w)^{k−1} dw (scipy.integrate.quad);
- hand-derived values for tiny cases (each test says how).
Statistical comparisons use intervals at confidence 1 − 1e-6 (or ≥ 5.3 standard errors) with
fixed seeds, so a false alarm has probability below about 1e-6.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats

from ncbounds import NCBoundsError
from simulations.families import FiniteSupportClasses, GaussianClasses, SphericalClasses, mean_layout
from simulations.montecarlo import exact_enumeration_size, known_means_error, nearest_mean_error

LEVEL = 1 - 1e-6


def brute_force_error(atoms, weights, shots, ways):
    """E_S Pr[h_S(x) ≠ y] by enumerating ordered support tuples, in exact rationals.

    atoms: per class a list of integer tuples; weights: per class a list of Fractions;
    shots: per class ints. Ties count as errors.
    """
    c_all = len(atoms)
    subsets = list(itertools.combinations(range(c_all), ways))
    total = Fraction(0)
    for subset in subsets:
        per_class = [itertools.product(range(len(atoms[c])), repeat=shots[c]) for c in subset]
        for supports in itertools.product(*per_class):
            prob = Fraction(1)
            centres = []
            for c, supp in zip(subset, supports):
                for i in supp:
                    prob *= weights[c][i]
                dim = len(atoms[c][0])
                centres.append([Fraction(sum(atoms[c][i][d] for i in supp), shots[c])
                                for d in range(dim)])
            for pos, y in enumerate(subset):
                for a, w in zip(atoms[y], weights[y]):
                    dist = [sum((Fraction(x) - m) ** 2 for x, m in zip(a, cen)) for cen in centres]
                    wrong = any(dist[k] <= dist[pos] for k in range(len(subset)) if k != pos)
                    if wrong:
                        total += prob * w / ways
    return total / len(subsets)


def make_finite(atoms, weights):
    return FiniteSupportClasses([np.array(a, dtype=float) for a in atoms],
                                [np.array([float(w) for w in ws]) for ws in weights])


F = Fraction
FINITE_CASES = {
    "1d_tie": ([[(0,), (2,)], [(4,)]], [[F(1, 2), F(1, 2)], [F(1)]]),
    "2d": ([[(0, 0), (1, 2), (3, 1)], [(2, 2), (4, 0)]],
           [[F(1, 5), F(3, 10), F(1, 2)], [F(3, 5), F(2, 5)]]),
    "3_classes": ([[(0, 0), (1, 2)], [(2, 2), (4, 0)], [(0, 3), (1, 1), (2, 0)]],
                  [[F(1, 2), F(1, 2)], [F(1, 4), F(3, 4)], [F(1, 3), F(1, 3), F(1, 3)]]),
    "rare_atom": ([[(-1,), (0,)], [(1,)]], [[F(4, 5), F(1, 5)], [F(1)]]),
}
SHOTS_CASES = [1, 2, 3, "unequal"]


def _cases(shots_cases, ways_cases=(None,)):
    """(family name, shots, ways) combinations that fit each family: "unequal" expands to
    per-class shots 1, 3, 2, … for that family's classes."""
    out = []
    for name, (atoms, _) in sorted(FINITE_CASES.items()):
        c = len(atoms)
        for shots in shots_cases:
            s = tuple([1, 3, 2][:c]) if shots == "unequal" else shots
            for ways in ways_cases:
                if ways is None or ways < c:
                    out.append((name, s, ways))
    return out


@pytest.mark.parametrize("name, shots, ways", _cases(SHOTS_CASES, (None, 2)))
def test_exact_enumeration_matches_brute_force(name, shots, ways):
    atoms, weights = FINITE_CASES[name]
    c = len(atoms)
    per = [shots] * c if isinstance(shots, int) else list(shots)
    fam = make_finite(atoms, weights)
    m = nearest_mean_error(fam, shots=shots, ways=ways, method="exact")
    assert m.kind == "exact"
    reference = brute_force_error(atoms, weights, per, ways or c)
    assert m.estimate == pytest.approx(float(reference), abs=1e-13)


def test_hand_computed_tie():
    # class 0 ∈ {0, 2} (½ each), class 1 = {4}, one shot: a class-0 query at 2 ties with the
    # class-1 centre when the class-0 centre is 0 (prob ¼), nothing else errs: err = ½ · ¼
    fam = make_finite(*FINITE_CASES["1d_tie"])
    assert nearest_mean_error(fam, shots=1).estimate == pytest.approx(0.125, abs=1e-15)


def test_coinciding_centres_are_all_ties_hence_errors():
    fam = GaussianClasses([[1.0, 2.0], [1.0, 2.0]], sigma=0.0)
    assert nearest_mean_error(fam, shots=3, tasks=500, rng=0).estimate == 1.0
    assert nearest_mean_error(fam, shots=3, tasks=500, rng=0, method="rao_blackwell").estimate == 1.0
    fin = FiniteSupportClasses([[[0.0]], [[0.0]]])
    assert nearest_mean_error(fin, shots=2).estimate == 1.0
    assert known_means_error(fin).estimate == 1.0
    # point masses at distinct means never err
    sep = GaussianClasses([[0.0, 0.0], [1.0, 0.0]], sigma=0.0)
    assert nearest_mean_error(sep, shots=1, tasks=500, rng=0).estimate == 0.0
    assert nearest_mean_error(sep, shots=1, tasks=500, rng=0, method="rao_blackwell").estimate == 0.0


@pytest.mark.parametrize("name, shots, ways", _cases([2, "unequal"]) + _cases([2], [2]))
def test_plain_monte_carlo_agrees_with_exact(name, shots, ways):
    atoms, weights = FINITE_CASES[name]
    fam = make_finite(atoms, weights)
    exact = nearest_mean_error(fam, shots=shots, ways=ways, method="exact").estimate
    plain = nearest_mean_error(fam, shots=shots, ways=ways, tasks=100_000, rng=7, method="plain")
    low, high = plain.confidence_interval(LEVEL)
    assert low <= exact <= high


def test_auto_picks_exact_only_for_small_finite_families():
    fam = make_finite(*FINITE_CASES["2d"])
    assert nearest_mean_error(fam, shots=2).method == "exact"
    gauss = GaussianClasses([[0.0], [1.0]], sigma=1.0)
    assert nearest_mean_error(gauss, shots=2, tasks=100, rng=0).method == "clopper-pearson"
    # size: k = (3, 2) atoms, n = 2 → 6 and 3 multisets; (3 + 2) query atoms × (6 + 3)
    assert exact_enumeration_size(fam, shots=2) == 45
    assert exact_enumeration_size(gauss, shots=2) == 0
    big = FiniteSupportClasses([np.arange(12.0)[:, None], np.arange(12.0)[:, None] + 0.5])
    assert exact_enumeration_size(big, shots=12) > 2_000_000
    assert nearest_mean_error(big, shots=12, tasks=100, rng=0).method == "clopper-pearson"


# --------------------------------------------------------------------------------------
# known means: closed forms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d, sigma, p", [(2.0, 1.0, 1), (3.0, 0.7, 5)])
def test_known_means_isotropic_closed_form(d, sigma, p):
    means = np.zeros((2, p))
    means[1, 0] = d
    fam = GaussianClasses.isotropic(means, sigma=sigma)
    m = known_means_error(fam, tasks=200_000, rng=8)
    reference = stats.norm.cdf(-d / (2 * sigma))  # THEORY.md T5
    low, high = m.confidence_interval(LEVEL)
    assert low <= reference <= high


def test_known_means_anisotropic_class_error_closed_form():
    cov = np.array([[[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]], np.eye(3) * 0.2])
    means = np.array([[0.0, 0.0, 0.0], [1.5, 1.0, -0.5]])
    fam = GaussianClasses(means, covariances=cov)
    diff = means[1] - means[0]
    d = np.linalg.norm(diff)
    u = diff / d
    reference = stats.norm.cdf(-d / (2 * math.sqrt(u @ cov[0] @ u)))  # THEORY.md T5
    m = known_means_error(fam, tasks=200_000, rng=9, query_class=0)
    low, high = m.confidence_interval(LEVEL)
    assert low <= reference <= high


@pytest.mark.parametrize("k, d, sigma", [(3, 2.0, 1.0), (5, 3.0, 0.9)])
def test_known_means_simplex_integral(k, d, sigma):
    fam = GaussianClasses.isotropic(mean_layout("simplex", k, k + 1, scale=d), sigma=sigma)
    a = d / (math.sqrt(2) * sigma)
    correct, _ = integrate.quad(lambda w: stats.norm.pdf(w) * stats.norm.cdf(a - w) ** (k - 1),
                                -np.inf, np.inf, epsabs=1e-13)
    reference = 1.0 - correct  # THEORY.md T5
    m = known_means_error(fam, tasks=200_000, rng=10)
    low, high = m.confidence_interval(LEVEL)
    assert low <= reference <= high


def test_known_means_exact_finite():
    # by hand: class 0 ∈ {0, 2} (½ each), class 1 = {3}; means 1 and 3. The class-0 atom 2
    # ties (|2 − 1| = |2 − 3|), an error; atoms 0 and 3 are nearest to their own means.
    fam = make_finite([[(0,), (2,)], [(3,)]], [[F(1, 2), F(1, 2)], [F(1)]])
    assert known_means_error(fam, query_class=0).estimate == 0.5
    assert known_means_error(fam).estimate == 0.25
    plain = known_means_error(fam, tasks=50_000, rng=3, method="plain")
    low, high = plain.confidence_interval(LEVEL)
    assert low <= 0.25 <= high


# --------------------------------------------------------------------------------------
# Rao–Blackwell estimator and subsets of classes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shots", [1, (2, 5)])
def test_rao_blackwell_agrees_with_plain(shots):
    means = np.zeros((2, 16))
    means[1, :2] = [2.0, 1.0]
    fam = GaussianClasses.isotropic(means, sigma=[0.6, 0.9])
    rb = nearest_mean_error(fam, shots=shots, tasks=100_000, rng=11, method="rao_blackwell")
    plain = nearest_mean_error(fam, shots=shots, tasks=200_000, rng=12, method="plain")
    se_rb = float(np.std(rb.values, ddof=1)) / math.sqrt(rb.values.size)
    se_plain = math.sqrt(plain.estimate * (1 - plain.estimate) / plain.trials)
    assert se_rb < se_plain / 2  # the point of conditioning
    assert abs(rb.estimate - plain.estimate) <= 5.3 * math.hypot(se_rb, se_plain)


def test_many_shots_approach_the_known_means_error():
    # n → ∞ gives the known-means error Φ(−d/2σ) (T1d/T5); at n = 10^6 the centre noise
    # moves the error by O(p σ²/n) relative, far below the tolerance
    fam = GaussianClasses.isotropic([[0.0, 0.0], [2.0, 0.0]], sigma=1.0)
    rb = nearest_mean_error(fam, shots=10**6, tasks=20_000, rng=13, method="rao_blackwell")
    assert rb.estimate == pytest.approx(stats.norm.cdf(-1.0), rel=1e-3)


def test_random_class_subsets_average_the_pairs():
    fam = GaussianClasses.isotropic(mean_layout("gaussian", 4, 3, scale=1.5, rng=5),
                                    sigma=[0.5, 0.6, 0.7, 0.8])
    mixed = nearest_mean_error(fam, shots=2, tasks=300_000, rng=14, ways=2)
    pairs = list(itertools.combinations(range(4), 2))
    per_pair = [nearest_mean_error(fam.subset(list(pq)), shots=2, tasks=40_000, rng=15 + i,
                                   method="rao_blackwell") for i, pq in enumerate(pairs)]
    average = float(np.mean([m.estimate for m in per_pair]))
    se_avg = math.sqrt(sum(float(np.var(m.values, ddof=1)) / m.values.size for m in per_pair)) / 6
    se_mixed = math.sqrt(mixed.estimate * (1 - mixed.estimate) / mixed.trials)
    assert abs(mixed.estimate - average) <= 5.3 * math.hypot(se_avg, se_mixed)


def test_spherical_counterexample_error_exceeds_its_lower_bound():
    # THEORY.md T2: err ≥ q (1 − q)² whatever p (one shot)
    q = 0.2
    fam = SphericalClasses.two_point_radius(50, q)
    m = nearest_mean_error(fam, shots=1, tasks=50_000, rng=16)
    assert m.confidence_interval(LEVEL, "greater").low >= q * (1 - q) ** 2 * 0.95


def test_same_seed_same_measurement():
    fam = GaussianClasses.isotropic(mean_layout("simplex", 3, 4), sigma=0.4)
    a = nearest_mean_error(fam, shots=2, tasks=3000, rng=21)
    b = nearest_mean_error(fam, shots=2, tasks=3000, rng=np.random.default_rng(21))
    assert (a.errors, a.trials) == (b.errors, b.trials)
    c = known_means_error(fam, tasks=3000, rng=21)
    assert c.errors == known_means_error(fam, tasks=3000, rng=21).errors


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda f: nearest_mean_error(f, shots=1, tasks=10, rng=0, method="magic"), "method"),
        (lambda f: nearest_mean_error(f, shots=0, tasks=10, rng=0), "shots"),
        (lambda f: nearest_mean_error(f, shots=(1, 2, 3), tasks=10, rng=0), "shots"),
        (lambda f: nearest_mean_error(f, shots=1, tasks=0, rng=0), "tasks"),
        (lambda f: nearest_mean_error(f, shots=1, tasks=10), "rng"),
        (lambda f: nearest_mean_error(f, shots=1, tasks=10, rng=0, ways=3), "ways"),
        (lambda f: nearest_mean_error(f, shots=1, method="exact"), "exact"),
        (lambda f: nearest_mean_error(f.subset([0]), shots=1, tasks=10, rng=0), "family"),
        (lambda f: nearest_mean_error("features", shots=1, tasks=10, rng=0), "family"),
        (lambda f: known_means_error(f, tasks=10, rng=0, query_class=2), "query_class"),
        (lambda f: known_means_error(f, method="exact"), "exact"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    fam = GaussianClasses([[0.0, 0.0], [1.0, 0.0]], covariances=np.diag([1.0, 2.0]))
    with pytest.raises(NCBoundsError, match=name):
        call(fam)


def test_rao_blackwell_needs_two_isotropic_gaussian_classes():
    aniso = GaussianClasses([[0.0, 0.0], [1.0, 0.0]], covariances=np.diag([1.0, 2.0]))
    with pytest.raises(NCBoundsError, match="isotropic"):
        nearest_mean_error(aniso, shots=1, tasks=10, rng=0, method="rao_blackwell")
    three = GaussianClasses.isotropic(mean_layout("simplex", 3, 2), sigma=1.0)
    with pytest.raises(NCBoundsError, match="two classes"):
        nearest_mean_error(three, shots=1, tasks=10, rng=0, method="rao_blackwell")
