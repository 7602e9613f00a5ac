"""simulations.training: tracked training, the store rows, checkpoints and resumption, the
NaN stop, the experiments N1-N3 at the "tiny" size, and the rank-correlation interval.

Independent references: the stored CDNV is recomputed from the checkpointed network with a
plain pairwise numpy formula (THEORY.md T0); the learning-rate schedules against their
closed forms; the Spearman interval's coverage against the closed form of the population
Spearman correlation of a bivariate normal, (6/π) arcsin(ρ/2) (Pearson 1907; Kruskal 1958).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from ncbounds import NCBoundsError, NCBoundsWarning
from simulations import training
from simulations.datasets import gaussian_mixture
from simulations.sweep import load_results
from simulations.training import (
    TIMING_METRICS,
    TrainConfig,
    experiment_configs,
    format_summary,
    load_trained_model,
    run_training_experiment,
    spearman_with_ci,
    summarize,
    train,
)

TINY = TrainConfig(
    model="mlp", dataset="gaussian_mixture", width=16, data_source_classes=6,
    data_target_classes=5, data_per_class=30, input_dim=8, epochs=3, batch_size=16,
    eval_train_per_class=10, fewshot_episodes=30, device="cpu", num_threads=1,
)


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["metric"].isin(TIMING_METRICS)].reset_index(drop=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    epochs = []
    store = train(TINY, out=out, progress=False, callback=lambda info: epochs.append(info))
    return out, load_results(store), epochs


def brute_force_cdnv(f: np.ndarray, y: np.ndarray) -> float:
    """Average over unordered class pairs of (v_i + v_j) / (2 |mu_i - mu_j|^2), ddof 0."""
    classes = np.unique(y)
    mu = [f[y == c].astype(np.float64).mean(axis=0) for c in classes]
    var = [((f[y == c].astype(np.float64) - m) ** 2).sum(axis=1).mean()
           for c, m in zip(classes, mu)]
    vals = [(var[i] + var[j]) / (2 * np.sum((mu[i] - mu[j]) ** 2))
            for i in range(len(classes)) for j in range(i + 1, len(classes))]
    return float(np.mean(vals))


# ----------------------------------------------------------------------------- rows


def test_rows_cover_every_split_metric_and_evaluation(tiny_run):
    _, frame, _ = tiny_run
    assert sorted(frame["epoch"].unique()) == [0, 1, 2, 3]
    assert frame["run"].nunique() == 1 and set(frame["device"]) == {"cpu"}
    for split in ("source_train", "source_test", "target"):
        metrics = set(frame.loc[frame["split"] == split, "metric"])
        base = {"cdnv", "nc1", "nc2_equinorm", "nc2_equiangular", "nc2_maxangle",
                "nc2_etf_distance", "fewshot_accuracy"}
        expected = base | ({"nc3", "nc4", "accuracy"} if split != "target" else set())
        assert metrics == expected, split
    fs = frame[frame["metric"] == "fewshot_accuracy"]
    per_eval = fs.groupby(["epoch", "split"]).apply(
        lambda g: sorted(zip(g["head"], g["shots"].astype(int))), include_groups=False)
    assert all(v == [("ncm", 1), ("ncm", 5), ("ridge", 1), ("ridge", 5)] for v in per_eval)
    assert ((fs["ci_low"] <= fs["value"]) & (fs["value"] <= fs["ci_high"])).all()
    assert fs["value"].between(0, 1).all() and (fs["ways"] == 5).all()
    assert (fs["episodes"] == TINY.fewshot_episodes).all()
    # the configuration is in columns; n_source_classes resolved to the classes trained on
    assert (frame["n_source_classes"] == 6).all() and (frame["width"] == 16).all()
    assert (frame["seed"] == 0).all() and not frame["amp"].any()
    nc = frame[frame["split"] != "train"]
    assert np.isfinite(nc["value"].astype(float)).all()


def test_sizes_of_the_evaluated_sets(tiny_run):
    _, frame, _ = tiny_run
    cd = frame[(frame["metric"] == "cdnv") & (frame["epoch"] == 0)].set_index("split")
    # source_train: the fixed subset of 10 per class; source_test: 30 // 5 = 6 per class
    assert cd.loc["source_train", "n_samples"] == 6 * 10
    assert cd.loc["source_test", "n_samples"] == 6 * 6
    assert cd.loc["target", "n_samples"] == 5 * 30
    assert cd.loc["target", "n_classes"] == 5


def test_stored_cdnv_matches_a_brute_force_recomputation(tiny_run):
    out, frame, _ = tiny_run
    model = load_trained_model(TINY, out=out)
    s = gaussian_mixture(n_source_classes=6, n_target_classes=5, per_class=30, input_dim=8, rng=0)
    x = s.source_train.x.astype(np.float64)
    z = (s.target.x - x.mean(axis=0)) / x.std(axis=0)  # the standardisation of train()
    with torch.no_grad():
        f = model.features(torch.from_numpy(z.astype(np.float32))).numpy()
    stored = frame.query("split == 'target' and metric == 'cdnv' and epoch == 3")["value"].item()
    assert stored == pytest.approx(brute_force_cdnv(f, s.target.y), rel=1e-6)


def test_training_reduces_the_source_cdnv_and_loss(tiny_run):
    _, frame, _ = tiny_run
    cd = frame.query("split == 'source_train' and metric == 'cdnv'").set_index("epoch")["value"]
    assert cd[3] < cd[0]
    loss = frame.query("split == 'train' and metric == 'loss'").set_index("epoch")["value"]
    assert loss[3] < loss[1]


def test_timing_rows_add_up(tiny_run):
    _, frame, epochs = tiny_run
    t = frame[frame["split"] == "train"].pivot_table(index="epoch", columns="metric",
                                                     values="value")
    assert t["train_seconds"].sum() == pytest.approx(t.loc[3, "train_seconds_total"])
    assert t["eval_seconds"].sum() == pytest.approx(t.loc[3, "eval_seconds_total"])
    assert (t[["train_seconds", "eval_seconds"]] >= 0).all().all()
    assert t.loc[0, "setup_seconds"] >= 0 and t.loc[0, "data_seconds"] >= 0
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and all(e["evaluated"] for e in epochs)
    s = summarize(frame)
    assert len(s) == 1
    assert s["tracking_fraction"].item() == pytest.approx(
        t.loc[3, "eval_seconds_total"] / t.loc[3, "train_seconds_total"])
    assert "% of training time" in format_summary(s)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_loads_weights_only_and_keeps_the_last(tiny_run):
    out, _, epochs = tiny_run
    files = sorted((out / "checkpoints").rglob("epoch-*.pt"))
    assert [f.name for f in files] == ["epoch-0003.pt"]  # keep_checkpoints=1
    assert epochs[-1]["checkpoint"] == files[0]
    state = torch.load(files[0], weights_only=True)
    assert state["epoch"] == 3 and state["seed"] == 0
    assert {"model", "optimizer", "scaler", "rows", "totals"} <= set(state)
    assert all(torch.is_tensor(v) for v in state["model"].values())


def test_interrupted_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    cfg = TINY.replace(epochs=4, eval_every=1, keep_checkpoints=2)

    def stop_after_two(info):
        if info["epoch"] == 2:
            raise KeyboardInterrupt  # simulated interruption after epoch 2's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "a", progress=False, callback=stop_after_two)
    assert sorted(load_results(tmp_path / "a" / "results.sqlite")["epoch"].unique()) == [0, 1, 2]
    seen = []
    train(cfg, out=tmp_path / "a", progress=False, callback=lambda i: seen.append(i["epoch"]))
    assert seen == [3, 4]  # resumed after the last checkpoint
    train(cfg, out=tmp_path / "b", progress=False)
    resumed = without_timings(load_results(tmp_path / "a" / "results.sqlite"))
    straight = without_timings(load_results(tmp_path / "b" / "results.sqlite"))
    pd.testing.assert_frame_equal(resumed, straight)
    assert len(resumed) > 0 and set(resumed["epoch"]) == {0, 1, 2, 3, 4}
    # a finished run does nothing more and adds no rows
    before = len(load_results(tmp_path / "a" / "results.sqlite"))
    again = []
    train(cfg, out=tmp_path / "a", progress=False, callback=again.append)
    assert again == [] and len(load_results(tmp_path / "a" / "results.sqlite")) == before


def test_another_seed_gives_other_rows(tmp_path, tiny_run):
    _, frame, _ = tiny_run
    other = load_results(train(TINY.replace(seed=1), out=tmp_path, progress=False))
    a = frame.query("split == 'target' and metric == 'cdnv' and epoch == 3")["value"].item()
    b = other.query("split == 'target' and metric == 'cdnv' and epoch == 3")["value"].item()
    assert a != b and (other["seed"] == 1).all()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = TINY.replace(lr=1e30, momentum=0.0)
    with pytest.raises(NCBoundsError, match=r"diverged: the loss became (nan|inf).* epoch 1, step"):
        train(cfg, out=tmp_path, progress=False)
    files = sorted((tmp_path / "checkpoints").rglob("epoch-*.pt"))
    assert [f.name for f in files] == ["epoch-0000.pt"]
    state = torch.load(files[0], weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert set(load_results(tmp_path / "results.sqlite")["epoch"]) == {0}


def test_train_leaves_global_state_alone(tmp_path):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    train(TINY.replace(epochs=1, optimizer="adamw", lr=1e-2, schedule="step"), out=tmp_path,
          progress=False)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_cnn_on_glyphs(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOUNDS_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(model="cnn", dataset="glyphs", width=2, data_source_classes=5,
                      data_target_classes=5, data_per_class=12, image_size=12, epochs=1,
                      batch_size=16, fewshot_episodes=10, device="cpu", num_threads=1)
    frame = load_results(train(cfg, out=tmp_path / "out", progress=False))
    assert set(frame["split"]) == {"source_train", "source_test", "target", "train"}
    cd = frame.query("metric == 'cdnv' and split == 'target'")
    assert (cd["n_classes"] == 5).all() and (cd["n_samples"] == 60).all()
    assert (frame.query("metric == 'nc3'")["value"] > 0).all()


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("field, value", [
    ("model", "resnet"), ("dataset", "omniglot"), ("optimizer", "adam"), ("schedule", "linear"),
    ("epochs", 0), ("lr", 0.0), ("lr", float("nan")), ("label_smoothing", 1.0),
    ("weight_decay", -1e-4), ("n_source_classes", 1), ("device", "tpu"), ("amp", "yes"),
    ("fewshot_ways", 1), ("fewshot_episodes", 1), ("data_root", 3),
])
def test_bad_configuration_names_the_field(field, value):
    with pytest.raises(NCBoundsError, match=f"^{field}:"):
        TINY.replace(**{field: value})


def test_real_data_sets_need_a_root():
    with pytest.raises(NCBoundsError, match="^data_root:.*nothing is downloaded"):
        TrainConfig(dataset="cifar_fs")


def test_too_many_source_classes_is_an_error(tmp_path):
    with pytest.raises(NCBoundsError, match="^n_source_classes: expected at most the 6"):
        train(TINY.replace(n_source_classes=7), out=tmp_path, progress=False)


def test_device_resolution():
    available = torch.cuda.is_available()
    assert training._resolve_device("auto").type == ("cuda" if available else "cpu")
    if available:
        assert training._resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(NCBoundsError, match="^device:.*CUDA is not available"):
            training._resolve_device("cuda")


def test_learning_rate_schedules_follow_their_closed_forms():
    cos = TINY.replace(epochs=4)
    # cosine: 0.5 (1 + cos(pi t / T)) over T = epochs * steps steps
    vals = [training._lr_factor(cos, e, s, 5) for e in range(1, 5) for s in range(5)]
    assert vals == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 20)) for t in range(20)])
    step = TINY.replace(epochs=9, schedule="step", lr_gamma=0.5)  # default: every 9 // 3 epochs
    factors = [training._lr_factor(step, e, 0, 5) for e in range(1, 10)]
    assert factors == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_per_class_subset_takes_k_of_each_class():
    y = np.repeat([3, 9, 4], [5, 2, 8])
    idx = training._per_class_subset(y, 3, np.random.default_rng(0))
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist()[3:10:1] == [3, 3, 0, 0, 0, 0, 2]
    again = training._per_class_subset(y, 3, np.random.default_rng(0))
    assert np.array_equal(idx, again)
    everything = training._per_class_subset(y, None, np.random.default_rng(0))
    assert np.array_equal(everything, np.arange(15))


# ----------------------------------------------------------------------------- experiments


def test_experiment_n1_tiny(tmp_path, capsys):
    store = run_training_experiment("n1", out=tmp_path, size="tiny", progress=None)
    frame = load_results(store, name="n1")
    assert frame["run"].nunique() == 1 and frame["epoch"].max() == 3
    printed = capsys.readouterr().out
    assert "neural-collapse tracking" in printed and "wall time" in printed


def test_experiment_n2_has_nested_sources_and_a_fixed_target(tmp_path):
    store = run_training_experiment("n2", out=tmp_path, size="tiny", progress=False)
    frame = load_results(store, name="n2")
    assert sorted(frame["n_source_classes"].unique()) == [2, 4, 8]
    assert sorted(frame["epoch"].unique()) == [0, 3]  # start and end only
    # one target set for every l: same size, same classes, same episodes' shape
    tgt = frame.query("split == 'target' and metric == 'cdnv'")
    assert tgt["n_samples"].nunique() == 1 and tgt["n_classes"].nunique() == 1
    fs = frame.query("split == 'target' and metric == 'fewshot_accuracy'")
    assert fs.groupby("n_source_classes")["queries"].apply(tuple).nunique() == 1
    src = frame.query("split == 'source_train' and metric == 'cdnv'")
    assert sorted(src.groupby("n_source_classes")["n_classes"].first()) == [2, 4, 8]


def test_experiment_n3_correlations(tmp_path):
    store = run_training_experiment("n3", out=tmp_path, size="tiny", progress=False)
    runs = load_results(store, name="n3")
    assert runs["run"].nunique() == len(experiment_configs("n3", "tiny")) == 9
    corr = load_results(store, name="n3-correlations")
    assert len(corr) == 9 and (corr["n_runs"] == 9).all()
    assert corr["spearman"].between(-1, 1).all()
    assert ((corr["ci_low"] <= corr["spearman"]) & (corr["spearman"] <= corr["ci_high"])).all()
    assert set(corr["x"]) == {"source_train_nc1", "target_cdnv"}


def test_experiment_names_are_checked(tmp_path):
    with pytest.raises(NCBoundsError, match="^name:"):
        run_training_experiment("n4", out=tmp_path)
    with pytest.raises(NCBoundsError, match="^size:"):
        run_training_experiment("n1", out=tmp_path, size="huge")


def test_quick_n1_is_the_cnn_on_glyphs():
    (cfg,) = experiment_configs("n1", "quick")
    assert (cfg.model, cfg.dataset) == ("cnn", "glyphs")
    (full,) = experiment_configs("n1", "full")
    assert full.data_source_classes > cfg.data_source_classes
    (paper,) = experiment_configs("n1", "paper")
    assert (paper.model, paper.width, paper.depth) == ("wrn", 4, 28)  # WRN-28-4


# ----------------------------------------------------------------------------- correlation


def test_spearman_is_pearson_of_ranks():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(12), rng.standard_normal(12)
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))  # no ties: exact ranks
    ref = np.corrcoef(rx, ry)[0, 1]
    assert spearman_with_ci(x, y)["spearman"] == pytest.approx(ref)
    assert spearman_with_ci(x, 2 * x + 1)["spearman"] == pytest.approx(1.0)


def test_spearman_interval_covers_the_population_value():
    # bivariate normal with correlation rho: population Spearman = (6/pi) arcsin(rho/2)
    rho, n, reps = 0.6, 25, 400
    target = 6 / math.pi * math.asin(rho / 2)
    rng = np.random.default_rng(7)
    cov = [[1, rho], [rho, 1]]
    hits = 0
    for _ in range(reps):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        r = spearman_with_ci(xy[:, 0], xy[:, 1])
        hits += r["ci_low"] <= target <= r["ci_high"]
    # nominal 95%; with 400 reps a correct interval lands in [0.91, 0.99] with
    # probability > 0.999 (binomial), a badly wrong one does not
    assert 0.91 <= hits / reps <= 0.99


def test_spearman_degenerate_inputs_warn_and_give_nan():
    with pytest.warns(NCBoundsWarning, match="undefined"):
        r = spearman_with_ci([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(r["spearman"]) and math.isnan(r["ci_low"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r3 = spearman_with_ci([1, 2, 3], [1, 3, 2])  # three runs: estimate, no interval
    assert r3["spearman"] == pytest.approx(0.5) and math.isnan(r3["ci_low"])
    with pytest.raises(NCBoundsError, match="^x, y:"):
        spearman_with_ci([1, 2], [1, 2, 3])


def test_smaller_source_sets_are_nested_in_larger_ones():
    splits = training._load_splits(TINY, progress=False)
    dev = torch.device("cpu")
    chosen = [set(training._prepare_data(splits, TINY.replace(n_source_classes=l), dev)
                  .source_classes.tolist()) for l in (2, 4, 6)]
    assert chosen[0] < chosen[1] < chosen[2] and len(chosen[2]) == 6
