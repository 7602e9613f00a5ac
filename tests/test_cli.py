"""The command line: metrics and fewshot on the built-in example and on .npz files."""

import json

import numpy as np
import pytest

from ncbounds import cdnv
from ncbounds.cli import example_features, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "metrics" in out and "fewshot" in out


def test_metrics_example_json_matches_library(capsys):
    assert main(["metrics", "--example", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    x, y = example_features(0)
    assert out["cdnv"] == pytest.approx(cdnv(x, y), rel=1e-12)
    assert out["n_classes"] == 20


def test_metrics_npz_with_custom_keys(tmp_path, capsys):
    x, y = example_features(1, n_classes=4, per_class=10, dim=3)
    f = tmp_path / "feats.npz"
    np.savez(f, X=x, y=y)
    assert main(["metrics", str(f), "--features-key", "X", "--labels-key", "y"]) == 0
    assert "cdnv" in capsys.readouterr().out


def test_missing_keys_and_files_are_clear_errors(tmp_path, capsys):
    f = tmp_path / "feats.npz"
    np.savez(f, a=np.zeros((2, 2)))
    assert main(["metrics", str(f)]) == 2
    err = capsys.readouterr().err
    assert "expected keys 'features' and 'labels'" in err and "['a']" in err
    assert main(["metrics", str(tmp_path / "nope.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["metrics"]) == 2
    assert "--example" in capsys.readouterr().err


def test_bounds_lists_every_registered_bound(capsys):
    from ncbounds.bounds import registry

    assert main(["bounds"]) == 0
    out = capsys.readouterr().out
    for name in registry():
        assert name in out
    assert main(["bounds", "nope"]) == 2
    assert "expected one of" in capsys.readouterr().err


def test_check_example_reports_bound_measurement_and_verdict(capsys):
    from ncbounds.bounds import nearest_mean

    assert main(["check", "--example", "--ways", "2", "--shots", "1", "--episodes", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    x, y = example_features(0)
    assert out["bound"] == pytest.approx(float(nearest_mean(cdnv=cdnv(x, y), shots=1, ways=2)))
    assert out["status"] in {"holds", "violated", "inconclusive"}
    assert out["low"] <= out["error_rounded"] <= out["high"]


def test_check_on_overlapping_classes_measures_errors_and_holds(tmp_path, capsys):
    # Two overlapping Gaussian classes: the measured one-shot error is clearly positive and
    # the (valid) T1 bound must not be reported violated.
    rng = np.random.default_rng(3)
    n = 400
    y = np.repeat([0, 1], n)
    x = np.where(y[:, None] == 0, 0.0, 1.0) * np.array([[1.0, 0.0]]) + 0.3 * rng.normal(size=(2 * n, 2))
    f = tmp_path / "f.npz"
    np.savez(f, features=x, labels=y)
    assert main(["check", str(f), "--ways", "2", "--shots", "1", "--episodes", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["error"] > 0.05 and out["status"] != "violated"


def test_simulate_tiny_writes_a_store(tmp_path, capsys):
    from simulations.sweep import load_results

    assert main(["simulate", "new-samples", "--size", "tiny", "--out", str(tmp_path), "--n-jobs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "name='e3'" in out
    frame = load_results(tmp_path / "results.sqlite", name="e3")
    assert len(frame) > 0


def test_train_tiny_writes_a_store(tmp_path, capsys):
    from simulations.sweep import load_results

    assert main(["train", "--size", "tiny", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    assert "results:" in capsys.readouterr().out
    frame = load_results(tmp_path / "results.sqlite")
    assert {"epoch", "n_source_classes"} <= set(frame.columns) and len(frame) > 0


def test_npy_and_object_arrays_are_clear_errors(tmp_path, capsys):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((3, 2)))
    assert main(["metrics", str(f)]) == 2
    assert "got a single array" in capsys.readouterr().err
    g = tmp_path / "obj.npz"
    np.savez(g, features=np.array([object(), object()], dtype=object), labels=np.array([0, 1]))
    assert main(["metrics", str(g)]) == 2
    assert "FILE:" in capsys.readouterr().err


def test_json_output_is_strict(capsys):
    assert main(["metrics", "--example", "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["nc3"] is None
