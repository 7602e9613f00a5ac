"""ClassStats: one-pass float64 statistics, streaming, merging, backends, bad input."""

import numpy as np
import pytest
import torch

import ncbounds
from ncbounds import ClassStats, NCBoundsError
from ncbounds.stats import _torch_moments, batch_moments, encode_labels, merge_moments


def reference_moments(x, y):
    """Independent reference: per-class two-pass float64 (mean first, then squared deviations)."""
    x = np.asarray(x, dtype=np.float64)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    scatter = np.array([((x[y == c] - means[i]) ** 2).sum() for i, c in enumerate(classes)])
    counts = np.array([(y == c).sum() for c in classes])
    return classes, counts, means, scatter


def offset_data(rng, n=3000, p=16, c=7, offset=1e3, spread=1e-2, dtype=np.float32):
    y = rng.integers(0, c, n)
    centres = rng.normal(size=(c, p)) * 10 * spread
    x = offset + centres[y] + spread * rng.normal(size=(n, p))
    return x.astype(dtype), y


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_matches_float64_two_pass_reference(dtype):
    rng = np.random.default_rng(1)
    x, y = offset_data(rng, offset=1e3 if dtype != np.float16 else 10.0, dtype=dtype)
    s = ClassStats.from_features(x, y)
    classes, counts, means, scatter = reference_moments(x, y)
    np.testing.assert_array_equal(s.classes, classes)
    np.testing.assert_array_equal(s.counts, counts)
    np.testing.assert_allclose(s.means, means, rtol=1e-12)
    np.testing.assert_allclose(s.scatter, scatter, rtol=1e-9)


def test_large_offset_where_naive_formula_loses_every_digit():
    rng = np.random.default_rng(2)
    x, y = offset_data(rng, offset=1e3, spread=1e-2)
    _, _, means, scatter = reference_moments(x, y)
    # the textbook one-pass formula Σ‖x‖² − n‖μ‖² in float32, for contrast
    xc = x[y == 0]
    naive = (xc.astype(np.float32) ** 2).sum(dtype=np.float32) - len(xc) * (
        xc.mean(axis=0, dtype=np.float32) ** 2
    ).sum(dtype=np.float32)
    assert abs(naive / scatter[0] - 1) > 1e-2  # it has no correct digit left
    s = ClassStats.from_features(x, y)
    assert np.max(np.abs(s.scatter / scatter - 1)) <= 1e-9
    v_ref = scatter / np.bincount(y)
    np.testing.assert_allclose(s.variances(), v_ref, rtol=1e-9)


def test_streaming_equals_one_shot_and_merge_of_halves():
    rng = np.random.default_rng(3)
    x, y = offset_data(rng, n=5000)
    whole = ClassStats.from_features(x, y)
    streamed = ClassStats.from_features(x, y, batch_size=333)
    a = ClassStats.from_features(x[:2500], y[:2500])
    b = ClassStats.from_features(x[2500:], y[2500:])
    merged = a.merge(b)
    for other in (streamed, merged):
        np.testing.assert_array_equal(other.classes, whole.classes)
        np.testing.assert_array_equal(other.counts, whole.counts)
        np.testing.assert_allclose(other.means, whole.means, rtol=1e-13)
        np.testing.assert_allclose(other.scatter, whole.scatter, rtol=1e-10)


def test_merge_with_disjoint_and_new_classes_and_scatter_matrices():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 5))
    y = rng.integers(0, 6, 600)
    first = y < 3  # classes 0-2 in the first part only, 3-5 mostly in the second
    y2 = y.copy()
    y2[~first & (rng.random(600) < 0.3)] = 1  # class 1 appears in both parts
    for kind in ("within", "per_class"):
        parts = [ClassStats.from_features(x[m], y2[m], scatter_matrix=kind) for m in (first, ~first)]
        merged = parts[0].merge(parts[1])
        whole = ClassStats.from_features(x, y2, scatter_matrix=kind)
        np.testing.assert_allclose(merged.means, whole.means, rtol=1e-12)
        np.testing.assert_allclose(merged.within_scatter(), whole.within_scatter(), rtol=1e-10, atol=1e-12)
    classes, counts, means, _ = reference_moments(x, y2)
    direct = np.zeros((5, 5))
    per_class = []
    for i, c in enumerate(classes):
        d = x[y2 == c] - means[i]
        direct += d.T @ d
        per_class.append(d.T @ d)
    np.testing.assert_allclose(whole.class_scatter_matrices(), np.stack(per_class), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        ClassStats.from_features(x, y2, scatter_matrix="within").within_scatter(), direct, rtol=1e-10
    )


def test_arbitrary_labels_and_absent_labels_are_not_classes():
    x = np.arange(10.0).reshape(5, 2)
    y = np.array([1000, -7, 1000, 42, -7])
    s = ClassStats.from_features(x, y)
    assert s.classes.tolist() == [-7, 42, 1000]
    assert s.counts.tolist() == [2, 1, 2]
    # a huge label span takes the sorting route and gives the same answer
    cls, inv = encode_labels(np.array([10**12, -(10**12), 10**12]))
    assert cls.tolist() == [-(10**12), 10**12] and inv.tolist() == [1, 0, 1]


def test_singleton_class_ddof():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    s = ClassStats.from_features(x, [0, 0, 1])
    np.testing.assert_array_equal(s.variances(0), [1.0, 0.0])
    with pytest.raises(NCBoundsError, match=r"ddof.*class 1 with 1 sample"):
        s.variances(1)


def test_torch_inputs_and_torch_backend_agree():
    rng = np.random.default_rng(5)
    x, y = offset_data(rng, n=2000, offset=100.0)
    ref = ClassStats.from_features(x, y)
    t = torch.from_numpy(x)
    s_t = ClassStats.from_features(t, torch.from_numpy(y))
    np.testing.assert_allclose(s_t.means, ref.means, rtol=1e-13)
    # the device path (torch ops, as used for CUDA tensors) run on CPU tensors
    _, inv = encode_labels(y)
    counts, means, scatter, within, _ = _torch_moments(t, inv, 7, "within")
    np.testing.assert_array_equal(counts, ref.counts)
    np.testing.assert_allclose(means, ref.means, rtol=1e-12)
    np.testing.assert_allclose(scatter, ref.scatter, rtol=1e-9)
    w_ref = ClassStats.from_features(x, y, scatter_matrix="within").within_scatter()
    np.testing.assert_allclose(within, w_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_tensors_accumulate_in_float64(dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4096, 8, generator=g) + 3.0).to(dtype)
    y = torch.randint(0, 4, (4096,), generator=g)
    s = ClassStats.from_features(x, y)
    _, _, means, scatter = reference_moments(x.double().numpy(), y.numpy())
    np.testing.assert_allclose(s.means, means, rtol=1e-12)
    np.testing.assert_allclose(s.scatter, scatter, rtol=1e-10)
    assert s.moments.eps == float(torch.finfo(dtype).eps)


@pytest.mark.parametrize(
    "features, labels, match",
    [
        (np.zeros(5), [0, 1, 0, 1, 0], r"features: expected a 2-D"),
        (np.zeros((4, 2)), [[0, 1], [0, 1]], r"labels: expected 1-D integer labels"),
        (np.zeros((4, 2)), [0.5, 1, 0, 1], r"labels: expected 1-D integer labels, got dtype float64"),
        (np.zeros((4, 2)), [0, 1, 0], r"labels: expected one label per feature row \(4\), got 3"),
        (np.array([["a", "b"]]), [0], r"features: expected a floating-point"),
        (np.zeros((0, 3)), np.zeros(0, int), r"features: expected at least one row"),
    ],
)
def test_bad_input_names_the_argument(features, labels, match):
    with pytest.raises(NCBoundsError, match=match):
        ClassStats.from_features(features, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_features_report_rows(bad):
    x = np.ones((50, 3), np.float32)
    x[17, 1] = bad
    x[40, 0] = bad
    with pytest.raises(NCBoundsError, match=r"features: expected finite values, got NaN or inf in 2 row\(s\); the first is row 17"):
        ClassStats.from_features(x, np.arange(50) % 3)


def test_accumulator_protocol():
    s = ClassStats()
    assert s.empty and "empty" in repr(s)
    with pytest.raises(NCBoundsError, match="empty accumulator"):
        _ = s.means
    s.update(np.ones((3, 2)), [0, 1, 1])
    assert s.n_samples == 3 and s.dim == 2
    c = s.copy()
    s.reset()
    assert s.empty and c.n_samples == 3
    with pytest.raises(NCBoundsError, match="other: expected a ClassStats"):
        c.merge(np.ones(3))
    with pytest.raises(NCBoundsError, match="other: expected statistics of dimension 2"):
        c.merge(ClassStats.from_features(np.ones((2, 3)), [0, 1]))
    with pytest.raises(NCBoundsError, match="scatter_matrix: expected None"):
        ClassStats(scatter_matrix="full")
    with pytest.raises(NCBoundsError, match="scatter_matrix='within'"):
        c.within_scatter()
    frame = c.to_frame()
    assert list(frame.columns) == ["label", "count", "variance", "mean_norm"]


def test_merge_moments_is_associative_on_three_parts():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 4)) + 50
    y = rng.integers(0, 5, 300)
    parts = [batch_moments(x[i::3], y[i::3]) for i in range(3)]
    left = merge_moments(merge_moments(parts[0], parts[1]), parts[2])
    right = merge_moments(parts[0], merge_moments(parts[1], parts[2]))
    np.testing.assert_allclose(left.means, right.means, rtol=1e-13)
    np.testing.assert_allclose(left.scatter, right.scatter, rtol=1e-11)


def test_public_names_resolve():
    assert ncbounds.ClassStats is ClassStats
    assert callable(ncbounds.cdnv) and callable(ncbounds.nc_metrics)


@pytest.mark.parametrize("kind", ["within", "per_class"])
def test_streaming_with_scatter_matrices_equals_one_shot(kind):
    rng = np.random.default_rng(8)
    x, y = offset_data(rng, n=3000, p=6, offset=50.0)
    whole = ClassStats.from_features(x, y, scatter_matrix=kind)
    streamed = ClassStats.from_features(x, y, scatter_matrix=kind, batch_size=256)
    merged = ClassStats.from_features(x[:1500], y[:1500], scatter_matrix=kind).merge(
        ClassStats.from_features(x[1500:], y[1500:], scatter_matrix=kind)
    )
    for other in (streamed, merged):
        np.testing.assert_allclose(other.means, whole.means, rtol=1e-13)
        np.testing.assert_allclose(other.within_scatter(), whole.within_scatter(), rtol=1e-9, atol=1e-12)
        if kind == "per_class":
            np.testing.assert_allclose(
                other.class_scatter_matrices(), whole.class_scatter_matrices(), rtol=1e-9, atol=1e-12
            )


def test_torch_per_class_scatter_path_matches_numpy():
    rng = np.random.default_rng(9)
    x, y = offset_data(rng, n=500, p=5, c=4, offset=10.0, dtype=np.float64)
    _, inv = encode_labels(y)
    *_, per_class = _torch_moments(torch.from_numpy(x), inv, 4, "per_class")
    ref = ClassStats.from_features(x, y, scatter_matrix="per_class").class_scatter_matrices()
    np.testing.assert_allclose(per_class, ref, rtol=1e-10, atol=1e-12)


def test_merge_requires_the_same_scatter_kind_and_update_the_same_dimension():
    x = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(NCBoundsError, match="other: expected a ClassStats with scatter_matrix='within'"):
        ClassStats(scatter_matrix="within").merge(ClassStats.from_features(x, y))
    s = ClassStats.from_features(x, y)
    with pytest.raises(NCBoundsError, match="features: expected 2 columns, as in the earlier batches"):
        s.update(np.ones((2, 3)), [0, 1])


def test_empty_batches_are_no_ops_and_zero_columns_are_errors():
    s = ClassStats().update(np.zeros((0, 3)), np.zeros(0, int))
    assert s.empty
    s.update(np.ones((2, 3)), [0, 1]).update(np.zeros((0, 3)), [])
    assert s.n_samples == 2
    with pytest.raises(NCBoundsError, match="features: expected at least one feature column"):
        ClassStats.from_features(np.zeros((4, 0)), [0, 1, 0, 1])
    with pytest.raises(NCBoundsError, match="labels: expected labels that fit in int64"):
        ClassStats.from_features(np.zeros((2, 1)), np.array([0, 2**63], dtype=np.uint64))


def test_parallel_kernel_is_bit_identical_for_any_thread_count():
    import numba

    from ncbounds._kernels import PARALLEL_ROWS

    rng = np.random.default_rng(10)
    n = PARALLEL_ROWS + 1000  # large enough for the multi-threaded kernel
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, 5, n)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = ClassStats.from_features(x, y)
        numba.set_num_threads(before)
        many = ClassStats.from_features(x, y)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.means, many.means) and np.array_equal(one.scatter, many.scatter)
    classes, counts, means, scatter = reference_moments(x, y)
    np.testing.assert_allclose(many.scatter, scatter, rtol=1e-10)


@pytest.mark.parametrize("outlier", [0.0, 5.0, 1e3, 1e6])
def test_far_first_row_keeps_float64_accuracy(outlier):
    # The one-pass shifted formula cancels about log10(1 + ‖μ − r‖²/v) digits when the
    # first row r of a class lies far from its mean; beyond KAPPA_MAX an exact second pass
    # takes over. Reference: per-class two-pass float64.
    rng = np.random.default_rng(11)
    x = (100.0 + rng.normal(size=(2000, 8))).astype(np.float32)
    y = np.repeat([3, 4], 1000)
    x[0] += np.float32(outlier)  # the first row of class 3
    s = ClassStats.from_features(x, y)
    _, _, means, scatter = reference_moments(x, y)
    np.testing.assert_allclose(s.scatter, scatter, rtol=1e-11)
    np.testing.assert_allclose(s.means, means, rtol=1e-13)


def test_streamed_update_falls_back_when_a_batch_would_cancel_digits():
    # The running mean is the shift for known classes. After a first batch holding a single
    # far outlier, a large batch near 0 gives κ ≈ n_b‖δ‖²/(M_b + ‖δ‖²) ≫ KAPPA_MAX: the
    # one-pass update is refused (state untouched) and the two-pass route is exact.
    rng = np.random.default_rng(12)
    a = np.full((1, 4), 1e6)
    b = rng.normal(size=(500, 4))
    s = ClassStats().update(a, [0])
    assert s._stream(b, np.zeros(500, int)) is False
    assert s.n_samples == 1
    s.update(b, np.zeros(500, int))
    _, _, means, scatter = reference_moments(np.vstack([a, b]), np.zeros(501, int))
    np.testing.assert_allclose(s.scatter, scatter, rtol=1e-12)
    np.testing.assert_allclose(s.means, means, rtol=1e-13)
    # and an ordinary second batch is taken by the one-pass route
    assert s._stream(rng.normal(size=(50, 4)), np.zeros(50, int)) is True


def test_nonfinite_streamed_batch_raises_and_leaves_state_untouched():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(200, 3))
    y = rng.integers(0, 2, 200)
    s = ClassStats.from_features(x, y)
    snapshot = s.copy()
    bad = x[:10].copy()
    bad[4, 2] = np.nan
    with pytest.raises(NCBoundsError, match="the first is row 4"):
        s.update(bad, y[:10])
    assert np.array_equal(s.means, snapshot.means) and np.array_equal(s.scatter, snapshot.scatter)
    assert np.array_equal(s.counts, snapshot.counts)
