"""Few-shot evaluation: episode sampling, the ridge and nearest-mean heads, results.

The decisions of the batched engines are compared with a plain per-episode reference written
here from the definitions (see ``reference_scores``): a Python loop over episodes in float64,
nearest mean by explicit differences ‖q − μ_c‖², ridge by ``numpy.linalg.lstsq`` on the
augmented primal system [X; √λ I] W ≈ [Y; 0], a different algorithm from the engines'
Cholesky solves (dual or primal).
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ncbounds import NCBoundsError, NCBoundsWarning, fewshot
from ncbounds.fewshot import Episodes, FewShotResult, evaluate, sample_episodes

HEADS = ("ridge", "ncm")
NORMS = ("center", "l2", None)


# --------------------------------------------------------------------------- helpers

# Input kinds: numpy arrays and CPU tensors run the compiled kernel; "torch-engine" forces the
# batched-torch engine (the one GPU tensors use) on a CPU tensor so that it is tested here.
KINDS = ("float64", "float32", "torch32", "torch-engine")


def as_kind(x, kind, monkeypatch):
    if kind == "torch-engine":
        monkeypatch.setattr(fewshot, "_TORCH_ENGINE_ON_CPU", True)
    if kind.startswith("torch"):
        return torch.from_numpy(x)
    return x.astype(np.float32) if kind == "float32" else x



def gaussian_features(seed, n_classes=8, per_class=30, p=32, sep=0.6, dtype=np.float64):
    """Gaussian classes N(μ_c, I) with μ_c ~ N(0, sep² I): partly overlapping classes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    means = sep * rng.standard_normal((n_classes, p))
    x = means[labels] + rng.standard_normal((labels.size, p))
    return x.astype(dtype), labels


def reference_scores(features, ep, head, lam=1.0, normalize="center"):
    """Plain per-episode scores (E, ways·queries, ways), float64, higher is better.

    Written from the definitions, independently of ncbounds.fewshot: explicit differences
    for the nearest mean, lstsq on the augmented primal ridge system.
    """
    f = np.asarray(features, dtype=np.float64)
    n_ep, ways, shots = ep.support.shape
    out = np.empty((n_ep, ways * ep.queries, ways))
    for e in range(n_ep):
        x = f[ep.support[e].ravel()]
        q = f[ep.query[e].ravel()]
        if normalize is not None or head == "ncm":
            m = x.mean(axis=0)
            x, q = x - m, q - m
        if normalize == "l2":
            x, q = (v / np.where((n := np.linalg.norm(v, axis=1, keepdims=True)) > 0, n, 1) for v in (x, q))
        if head == "ncm":
            mu = x.reshape(ways, shots, -1).mean(axis=1)
            out[e] = -((q[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)
        else:
            p = x.shape[1]
            y = np.kron(np.eye(ways), np.ones((shots, 1)))
            a = np.vstack([x, np.sqrt(lam) * np.eye(p)])
            b = np.vstack([y, np.zeros((p, ways))])
            w = np.linalg.lstsq(a, b, rcond=None)[0]
            out[e] = q @ w
    return out


def reference_decisions(scores, ep):
    """(correct, predicted label) per query by a loop: strict win of the own class, first argmax."""
    n_ep, ways, queries = ep.query.shape
    correct = np.zeros((n_ep, ways, queries), bool)
    pred = np.zeros((n_ep, ways, queries), np.int64)
    for e, w, i in itertools.product(range(n_ep), range(ways), range(queries)):
        s = scores[e, w * queries + i]
        correct[e, w, i] = all(s[w] > s[c] for c in range(ways) if c != w)
        pred[e, w, i] = ep.classes[e, int(np.argmax(s))]
    return correct, pred


def assert_matches_reference(features, labels, ep, head, lam=1.0, normalize="center"):
    res = evaluate(features, labels, head=head, ridge_lambda=lam, normalize=normalize, episode_set=ep)
    ref = features.double().numpy() if isinstance(features, torch.Tensor) else features
    correct, pred = reference_decisions(reference_scores(ref, ep, head, lam, normalize), ep)
    np.testing.assert_array_equal(res.predictions, pred)
    np.testing.assert_array_equal(res.correct, correct)
    np.testing.assert_array_equal(res.accuracies, correct.mean(axis=(1, 2)))
    return res


# --------------------------------------------------------------------------- sampling


def test_sample_shapes_and_invariants():
    labels = np.repeat([-3, 5, 100, 7, 42], [9, 12, 10, 30, 8])  # arbitrary, unsorted values
    ep = sample_episodes(labels, ways=4, shots=3, queries=5, episodes=200, rng=1)
    assert ep.support.shape == (200, 4, 3) and ep.query.shape == (200, 4, 5)
    assert ep.classes.shape == (200, 4) and ep.support.dtype == np.int64
    assert (ep.ways, ep.shots, ep.queries, ep.n_episodes, len(ep)) == (4, 3, 5, 200, 200)
    assert set(np.unique(ep.classes)) == {-3, 5, 100, 7, 42}
    np.testing.assert_array_equal(labels[ep.support], np.broadcast_to(ep.classes[:, :, None], ep.support.shape))
    np.testing.assert_array_equal(labels[ep.query], np.broadcast_to(ep.classes[:, :, None], ep.query.shape))
    rows = np.sort(np.concatenate([ep.support, ep.query], axis=2), axis=2)
    assert (np.diff(rows, axis=2) > 0).all()  # support and query disjoint, no repeats
    assert (np.diff(np.sort(ep.classes, axis=1), axis=1) > 0).all()  # distinct classes
    with pytest.raises(ValueError):
        ep.support[0, 0, 0] = 0  # read-only


def test_absent_labels_are_not_classes():
    labels = np.array([0] * 6 + [2] * 6 + [9] * 6)  # 1 and 3..8 absent
    ep = sample_episodes(labels, ways=3, shots=2, queries=2, episodes=50, rng=0)
    assert set(np.unique(ep.classes)) == {0, 2, 9}
    with pytest.raises(NCBoundsError, match="ways.*at most the number of classes.*3.*got 4"):
        sample_episodes(labels, ways=4, shots=2, queries=2, episodes=5, rng=0)


def test_sampling_is_uniform_exact_enumeration():
    # Reference: the uniform law over ordered class pairs and over ordered (support, query)
    # pairs of distinct rows, enumerated exactly with itertools.permutations. Chi-square
    # goodness of fit with a 1e-6 false-alarm rate (fixed seed, so it cannot flake).
    labels = np.repeat([10, 20, 30], [3, 5, 4])
    n_ep = 12_000
    ep = sample_episodes(labels, ways=2, shots=1, queries=1, episodes=n_ep, rng=123)
    pairs = list(itertools.permutations([10, 20, 30], 2))
    observed = [np.sum((ep.classes[:, 0] == a) & (ep.classes[:, 1] == b)) for a, b in pairs]
    assert stats.chisquare(observed).pvalue > 1e-6
    for cls in (10, 20, 30):
        rows = np.flatnonzero(labels == cls)
        hit = ep.classes == cls
        s, q = ep.support[..., 0][hit], ep.query[..., 0][hit]
        outcomes = list(itertools.permutations(rows, 2))
        observed = [np.sum((s == a) & (q == b)) for a, b in outcomes]
        assert sum(observed) == hit.sum()
        assert stats.chisquare(observed).pvalue > 1e-6


def test_sampling_reproducible():
    labels = np.repeat(np.arange(6), 10)
    a = sample_episodes(labels, ways=3, shots=2, queries=3, episodes=40, rng=7)
    b = sample_episodes(labels, ways=3, shots=2, queries=3, episodes=40, rng=np.random.default_rng(7))
    c = sample_episodes(labels, ways=3, shots=2, queries=3, episodes=40, rng=8)
    assert a == b and a != c
    gen = np.random.default_rng(0)
    d1 = sample_episodes(labels, ways=3, shots=2, queries=3, episodes=40, rng=gen)
    d2 = sample_episodes(labels, ways=3, shots=2, queries=3, episodes=40, rng=gen)
    assert d1 != d2  # a Generator is consumed, never reset


@settings(max_examples=40)
@given(
    counts=st.lists(st.integers(1, 12), min_size=2, max_size=7),
    values=st.lists(st.integers(-1000, 1000), min_size=7, max_size=7, unique=True),
    ways=st.integers(2, 7),
    shots=st.integers(1, 4),
    queries=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampling_property(counts, values, ways, shots, queries, seed):
    labels = np.repeat(np.array(values[: len(counts)]), counts)
    labels = labels[np.random.default_rng(seed).permutation(labels.size)]
    feasible = ways <= len(counts) and min(counts) >= shots + queries
    if not feasible:
        with pytest.raises(NCBoundsError):
            sample_episodes(labels, ways=ways, shots=shots, queries=queries, episodes=5, rng=seed)
        return
    ep = sample_episodes(labels, ways=ways, shots=shots, queries=queries, episodes=5, rng=seed)
    assert (labels[ep.support] == ep.classes[:, :, None]).all()
    assert (labels[ep.query] == ep.classes[:, :, None]).all()
    rows = np.sort(np.concatenate([ep.support, ep.query], axis=2), axis=2)
    assert (np.diff(rows, axis=2) > 0).all()


def test_too_few_samples_names_the_class():
    labels = np.array([0, 0, 0, 4, 2, 2, 2])  # class 4 is a singleton
    with pytest.raises(NCBoundsError, match=r"shots \+ queries = 1 \+ 1 = 2 samples, but class 4 has 1"):
        sample_episodes(labels, ways=2, shots=1, queries=1, episodes=3, rng=0)
    x = np.zeros((7, 3))
    with pytest.raises(NCBoundsError, match="class 4 has 1"):
        evaluate(x, labels, ways=2, shots=1, queries=1, episodes=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ways": 1}, "ways: expected an integer >= 2"),
        ({"shots": 0}, "shots: expected an integer >= 1"),
        ({"queries": 2.5}, "queries: expected an integer"),
        ({"episodes": 0}, "episodes: expected an integer >= 1"),
        ({"rng": "seed"}, "rng: expected"),
    ],
)
def test_sample_bad_sizes(kwargs, match):
    args = {"ways": 2, "shots": 1, "queries": 1, "episodes": 3, "rng": 0, **kwargs}
    with pytest.raises(NCBoundsError, match=match):
        sample_episodes(np.repeat([0, 1, 2], 4), **args)


def test_save_load_roundtrip(tmp_path):
    x, labels = gaussian_features(0)
    ep = sample_episodes(labels, ways=4, shots=2, queries=3, episodes=25, rng=3)
    path = ep.save(tmp_path / "episodes")  # .npz appended
    assert path.name == "episodes.npz"
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert {"support", "query", "classes"} <= set(data.files)
    back = Episodes.load(path)
    assert back == ep
    for name in ("support", "query", "classes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ep, name))
        assert getattr(back, name).dtype == np.int64
    a = evaluate(x, labels, episode_set=ep, head="ncm")
    b = evaluate(x, labels, episode_set=back, head="ncm")
    np.testing.assert_array_equal(a.accuracies, b.accuracies)


def test_load_rejects_bad_files(tmp_path):
    np.savez(tmp_path / "partial.npz", support=np.zeros((1, 2, 1), np.int64))
    with pytest.raises(NCBoundsError, match="without query, classes"):
        Episodes.load(tmp_path / "partial.npz")
    np.savez(tmp_path / "objects.npz", support=np.array([None, 1], dtype=object),
             query=np.zeros((1, 2, 1), np.int64), classes=np.zeros((1, 2), np.int64))
    with pytest.raises(NCBoundsError, match="could not read"):
        Episodes.load(tmp_path / "objects.npz")
    np.savez(tmp_path / "floats.npz", support=np.zeros((1, 2, 1)),
             query=np.zeros((1, 2, 1), np.int64), classes=np.zeros((1, 2), np.int64))
    with pytest.raises(NCBoundsError, match="support: expected a 3-D integer array"):
        Episodes.load(tmp_path / "floats.npz")
    with pytest.raises(NCBoundsError, match="same E and ways"):
        Episodes(np.zeros((2, 2, 1), int), np.zeros((2, 3, 1), int), np.zeros((2, 2), int))


# --------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("normalize", NORMS)
@pytest.mark.parametrize("p", [32, 6])  # ridge: dual (12 < 32) and primal (12 >= 6)
@pytest.mark.parametrize("kind", KINDS)
def test_decisions_equal_plain_reference(head, normalize, p, kind, monkeypatch):
    x, labels = gaussian_features(p + 1, p=p, dtype=np.float32 if kind != "float64" else np.float64)
    ep = sample_episodes(labels, ways=3, shots=4, queries=5, episodes=150, rng=p)
    features = as_kind(x, kind, monkeypatch)
    res = assert_matches_reference(features, labels, ep, head, lam=0.7, normalize=normalize)
    assert 0.3 < res.mean < 0.97  # the decisions are informative: neither chance nor perfect


@settings(max_examples=25)
@given(
    ways=st.integers(2, 4),
    shots=st.integers(1, 4),
    queries=st.integers(1, 3),
    p=st.integers(1, 16),
    head=st.sampled_from(HEADS),
    normalize=st.sampled_from(NORMS),
    lam=st.floats(1e-2, 1e2),
    seed=st.integers(0, 1000),
)
def test_decisions_equal_reference_property(ways, shots, queries, p, head, normalize, lam, seed):
    x, labels = gaussian_features(seed, n_classes=5, per_class=shots + queries + 1, p=p)
    ep = sample_episodes(labels, ways=ways, shots=shots, queries=queries, episodes=6, rng=seed)
    assert_matches_reference(x, labels, ep, head, lam=lam, normalize=normalize)


def test_large_offset_float32_expanded_form_flips_but_ours_does_not(monkeypatch):
    # Offset 1e3 per coordinate, spread 1e-2, float32: the expanded distance
    # ‖q‖² + ‖μ‖² − 2⟨q, μ⟩ in float32 works at the scale 64e6 (ulp 4), while the class
    # differences are ~1e-3, so its decisions are noise. The reference is the float64
    # difference form on the very same float32 values.
    rng = np.random.default_rng(5)
    p, n_classes = 64, 10
    labels = np.repeat(np.arange(n_classes), 40)
    means = 0.01 * 0.5 * rng.standard_normal((n_classes, p))
    offset = 1e3 + 1e3 * rng.random(p)
    x = (offset + means[labels] + 0.01 * rng.standard_normal((labels.size, p))).astype(np.float32)
    ep = sample_episodes(labels, ways=5, shots=5, queries=15, episodes=40, rng=0)

    sup = x[ep.support.reshape(40, -1)]  # float32 throughout, as a naive implementation does
    qry = x[ep.query.reshape(40, -1)]
    mu = sup.reshape(40, 5, 5, p).mean(axis=2)
    naive_d = (qry**2).sum(-1)[:, :, None] + (mu**2).sum(-1)[:, None, :] - 2 * qry @ mu.transpose(0, 2, 1)
    assert naive_d.dtype == np.float32
    correct_ref, pred_ref = reference_decisions(reference_scores(x, ep, "ncm"), ep)
    naive_pred = ep.classes[np.arange(40)[:, None], naive_d.argmin(-1)].reshape(pred_ref.shape)
    assert correct_ref.mean() > 0.6
    assert (naive_pred != pred_ref).mean() > 0.3  # the expanded form flips many decisions

    for kind in ("float32", "torch32", "torch-engine"):
        features = as_kind(x, kind, monkeypatch)
        res = evaluate(features, labels, head="ncm", episode_set=ep)
        np.testing.assert_array_equal(res.predictions, pred_ref)
        np.testing.assert_array_equal(res.correct, correct_ref)
        assert_matches_reference(features, labels, ep, "ridge", normalize="center")
        assert_matches_reference(features, labels, ep, "ridge", normalize="l2")


def test_huge_offset_float64_needs_centring_first(monkeypatch):
    # float64 working precision alone does not save the expanded form: at offset 1e8 and
    # spread 1e-2, ‖q‖² ~ 6e17 (ulp 128) in float64. Centring by the support mean first
    # does. Reference: float64 difference form on the same values.
    rng = np.random.default_rng(8)
    p, n_classes = 64, 10
    labels = np.repeat(np.arange(n_classes), 40)
    means = 0.01 * 0.5 * rng.standard_normal((n_classes, p))
    x = 1e8 * (1 + rng.random(p)) + means[labels] + 0.01 * rng.standard_normal((labels.size, p))
    ep = sample_episodes(labels, ways=5, shots=5, queries=15, episodes=40, rng=0)
    sup, qry = x[ep.support.reshape(40, -1)], x[ep.query.reshape(40, -1)]
    mu = sup.reshape(40, 5, 5, p).mean(axis=2)
    naive_score = 2 * qry @ mu.transpose(0, 2, 1) - (mu**2).sum(-1)[:, None, :]  # uncentred, float64
    correct_ref, pred_ref = reference_decisions(reference_scores(x, ep, "ncm"), ep)
    naive_pred = ep.classes[np.arange(40)[:, None], naive_score.argmax(-1)].reshape(pred_ref.shape)
    assert correct_ref.mean() > 0.6 and (naive_pred != pred_ref).mean() > 0.3
    for kind in ("float64", "torch-engine"):
        features = as_kind(x, kind, monkeypatch)
        for head, normalize in (("ncm", "center"), ("ncm", None), ("ridge", "center")):
            assert_matches_reference(features, labels, ep, head, normalize=normalize)


@pytest.mark.parametrize("kind", ["float64", "torch-engine"])
def test_ties_count_as_errors(kind, monkeypatch):
    # Classes 0 and 1 have identical rows (values 0/1, shots 2: every mean and score is
    # exact), so every query of a {0, 1} episode ties. First-argmax would call half of them
    # right; ties are errors, so the accuracy is 0 and the prediction is the first way.
    x = np.zeros((24, 4))
    x[:16, 0] = 1.0  # classes 0, 1: e_0; class 2: 0
    labels = np.repeat([0, 1, 2], 8)
    ep = sample_episodes(labels[:16], ways=2, shots=2, queries=3, episodes=20, rng=0)
    features = as_kind(x, kind, monkeypatch)
    for head in HEADS:
        res = evaluate(features, labels, head=head, episode_set=ep)
        assert res.mean == 0.0
        np.testing.assert_array_equal(res.predictions, np.broadcast_to(ep.classes[:, :1, None], (20, 2, 3)))
        assert (res.predictions == ep.classes[:, :, None]).mean() == 0.5
    # all-constant features: every centred row is 0 and every score ties, for any head/normalisation
    const = np.ones((24, 4)) * 3.0
    features = as_kind(const, kind, monkeypatch)
    for head, normalize in itertools.product(HEADS, ("center", "l2")):
        assert evaluate(features, labels, ways=3, shots=2, queries=3, episodes=5,
                        head=head, normalize=normalize).mean == 0.0


def test_correct_means_strict_win():
    x, labels = gaussian_features(11)
    res = evaluate(x, labels, ways=4, shots=3, queries=4, episodes=100, head="ridge", rng=1)
    truth = res.episodes.classes[:, :, None]
    # on continuous data there are no ties, so correct is exactly "prediction is the truth"
    np.testing.assert_array_equal(res.correct, res.predictions == truth)


def test_translation_invariance_and_chunking():
    x, labels = gaussian_features(2, p=16)
    ep = sample_episodes(labels, ways=5, shots=3, queries=4, episodes=300, rng=2)
    shift = 1e3 * np.random.default_rng(0).standard_normal(16)
    for head in HEADS:
        a = evaluate(x, labels, head=head, episode_set=ep)
        b = evaluate(x + shift, labels, head=head, episode_set=ep)
        np.testing.assert_array_equal(a.correct, b.correct)
        # the same episodes evaluated alone give bit-identical decisions (no cross-talk
        # between episodes, whatever the chunking or thread count)
        part = Episodes(ep.support[7:19], ep.query[7:19], ep.classes[7:19])
        c = evaluate(x, labels, head=head, episode_set=part)
        np.testing.assert_array_equal(c.correct, a.correct[7:19])


@pytest.mark.parametrize("kind", ["torch32", "torch-engine"])
def test_torch_inputs_match_numpy(kind, monkeypatch):
    x, labels = gaussian_features(4, p=24, dtype=np.float32)
    ep = sample_episodes(labels, ways=4, shots=2, queries=3, episodes=60, rng=4)
    xt = as_kind(x, kind, monkeypatch)
    for head, normalize in itertools.product(HEADS, NORMS):
        a = evaluate(x, labels, head=head, normalize=normalize, episode_set=ep)
        b = evaluate(xt, torch.from_numpy(labels), head=head, normalize=normalize, episode_set=ep)
        np.testing.assert_array_equal(a.predictions, b.predictions)
        assert isinstance(b.accuracies, np.ndarray)
    # bfloat16 (and a tensor that requires grad): decided on the exact float32 widening
    xb = xt.to(torch.bfloat16).requires_grad_(True)
    a = evaluate(xb.detach().float().numpy(), labels, head="ncm", episode_set=ep)
    b = evaluate(xb, labels, head="ncm", episode_set=ep)
    np.testing.assert_array_equal(a.predictions, b.predictions)


def test_reproducible_evaluation():
    x, labels = gaussian_features(6)
    a = evaluate(x, labels, ways=5, shots=1, queries=5, episodes=50, rng=3)
    b = evaluate(x, labels, ways=5, shots=1, queries=5, episodes=50, rng=3)
    c = evaluate(x, labels, ways=5, shots=1, queries=5, episodes=50, rng=4)
    assert a.episodes == b.episodes and a.episodes != c.episodes
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    d = evaluate(x, labels, shots=1, queries=5, episode_set=a.episodes)  # sizes read from the set
    np.testing.assert_array_equal(a.accuracies, d.accuracies)


def test_defaults_and_separated_classes():
    # defaults: 5-way 5-shot, 15 queries, 1000 episodes, ridge, centred
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 20)
    x = 100.0 * np.eye(6)[labels] + rng.standard_normal((120, 6))
    res = evaluate(x, labels)
    assert (res.ways, res.shots, res.queries, res.n_episodes) == (5, 5, 15, 1000)
    assert (res.head, res.ridge_lambda, res.normalize) == ("ridge", 1.0, "center")
    assert res.mean == 1.0 and res.confidence_interval() == (1.0, 1.0)


@pytest.mark.parametrize("kind", ["float64", "torch-engine"])
def test_ridge_singular_system_is_reported(kind, monkeypatch):
    # λ far below the rounding noise of a centred (rank-deficient) Gram matrix of norm 1e24:
    # Cholesky breaks down, which is reported instead of silently returning garbage.
    x, labels = gaussian_features(0, p=32)
    features = as_kind(x * 1e11, kind, monkeypatch)
    with pytest.raises(NCBoundsError, match="ridge_lambda.*numerically singular"):
        evaluate(features, labels, ways=4, shots=4, queries=2, episodes=50, ridge_lambda=1e-300)


# --------------------------------------------------------------------------- results


def test_confidence_interval_matches_scipy_t_test():
    # Reference: scipy's one-sample t-test interval (a separate code path from t.ppf).
    x, labels = gaussian_features(9)
    res = evaluate(x, labels, ways=4, shots=1, queries=3, episodes=120, head="ncm", rng=0)
    for level in (0.9, 0.95, 0.99):
        ref = stats.ttest_1samp(res.accuracies, 0.0).confidence_interval(level)
        low, high = res.confidence_interval(level)
        assert low == pytest.approx(ref.low, rel=1e-12) and high == pytest.approx(ref.high, rel=1e-12)
        assert res.half_width(level) == pytest.approx((high - low) / 2, rel=1e-12)
    assert res.confidence_interval(0.9).high < res.confidence_interval(0.99).high
    assert str(res) == f"{res.mean:.4f} ± {res.half_width():.4f}"
    assert "FewShotResult(" in repr(res) and "ncm" in repr(res)
    with pytest.raises(NCBoundsError, match="level"):
        res.confidence_interval(1.5)


def test_one_episode_interval_is_nan_with_warning():
    x, labels = gaussian_features(1)
    res = evaluate(x, labels, ways=2, shots=1, queries=2, episodes=1)
    with pytest.warns(NCBoundsWarning, match="at least 2 episodes"):
        low, high = res.confidence_interval()
    assert np.isnan(low) and np.isnan(high)
    assert "nan" in str(res)


def test_to_frame():
    x, labels = gaussian_features(3)
    res = evaluate(x, labels, ways=3, shots=2, queries=2, episodes=30, head="ncm", normalize=None)
    df = res.to_frame()
    assert len(df) == 30
    assert {"episode", "accuracy", "head", "ways", "shots", "queries", "ridge_lambda", "normalize"} <= set(df.columns)
    assert df["accuracy"].mean() == pytest.approx(res.mean, rel=1e-15)
    assert set(df["head"]) == {"ncm"} and set(df["normalize"]) == {"none"}
    assert isinstance(res, FewShotResult)


# --------------------------------------------------------------------------- bad input


def _good():
    x, labels = gaussian_features(0, n_classes=4, per_class=6, p=5)
    return x, labels


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda x, y: (x[None], y), "features: expected a 2-D"),
        (lambda x, y: (x[:, 0], y), "features: expected a 2-D"),
        (lambda x, y: (x[:, :0], y), "features: expected at least one feature column"),
        (lambda x, y: (x.astype(complex), y), "features: expected a floating-point"),
        (lambda x, y: (x, y.astype(float)), "labels: expected 1-D integer labels"),
        (lambda x, y: (x, y[:, None]), "labels: expected 1-D integer labels"),
        (lambda x, y: (x, y[:-1]), r"labels: expected one label per feature row \(24\), got 23"),
    ],
)
def test_bad_features_and_labels(change, match):
    x, y = change(*_good())
    with pytest.raises(NCBoundsError, match=match):
        evaluate(x, y, ways=2, shots=2, queries=2, episodes=3)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_features_rows_reported(engine, bad):
    x, y = _good()
    x[[3, 17], [1, 4]] = bad
    features = torch.from_numpy(x) if engine == "torch" else x
    with pytest.raises(NCBoundsError, match=r"features: expected finite values.*2 row\(s\).*first is row 3"):
        evaluate(features, y, ways=2, shots=2, queries=2, episodes=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"head": "svm"}, "head: expected one of"),
        ({"head": None}, "head: expected one of"),
        ({"normalize": "zscore"}, "normalize: expected one of"),
        ({"ridge_lambda": 0.0}, "ridge_lambda: expected a finite number > 0"),
        ({"ridge_lambda": -1}, "ridge_lambda: expected a finite number > 0"),
        ({"ridge_lambda": float("nan")}, "ridge_lambda: expected a finite number > 0"),
        ({"ridge_lambda": "big"}, "ridge_lambda: expected a number > 0"),
        ({"ways": 5}, "ways: expected at most the number of classes"),
        ({"ways": 0}, "ways: expected an integer >= 2"),
        ({"shots": -1}, "shots: expected an integer >= 1"),
        ({"queries": 0}, "queries: expected an integer >= 1"),
        ({"episodes": True}, "episodes: expected an integer"),
        ({"shots": 4, "queries": 3}, "needs shots \\+ queries = 4 \\+ 3 = 7 samples, but class 0 has 6"),
        ({"episode_set": "file.npz"}, "episode_set: expected an Episodes object"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, y = _good()
    args = {"ways": 2, "shots": 2, "queries": 2, "episodes": 3, **kwargs}
    if "episode_set" in kwargs:
        args = {"episode_set": kwargs["episode_set"]}
    with pytest.raises(NCBoundsError, match=match):
        evaluate(x, y, **args)


def test_episode_set_must_fit_labels():
    x, y = _good()
    ep = sample_episodes(y, ways=2, shots=2, queries=2, episodes=4, rng=0)
    with pytest.raises(NCBoundsError, match="shots: expected 2 \\(the value of episode_set\\)"):
        evaluate(x, y, shots=5, episode_set=ep)
    with pytest.raises(NCBoundsError, match="episode_set: expected support rows labelled"):
        evaluate(x, (y + 1) % 4, episode_set=ep)
    with pytest.raises(NCBoundsError, match=r"episode_set: expected (support|query) indices in \[0, 10\)"):
        evaluate(x[:10], y[:10], episode_set=ep)
    dup = Episodes(ep.support, np.concatenate([ep.support[:, :, :1], ep.query[:, :, 1:]], axis=2), ep.classes)
    with pytest.raises(NCBoundsError, match="uses a row twice"):
        evaluate(x, y, episode_set=dup)
    same = Episodes(ep.support[:, [0, 0]], ep.query[:, [0, 0]], ep.classes[:, [0, 0]])
    with pytest.raises(NCBoundsError, match="distinct classes"):
        evaluate(x, y, episode_set=same)


def test_import_is_light():
    # importing the module must not import torch or numba (compiled on first use only)
    code = "import sys, ncbounds.fewshot; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
