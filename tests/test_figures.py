"""Tests for the figures package: plotters judged by their drawn artists, stable files, report.

The plotters are checked on small frames built here, by asserting on what they drew (the
diagonal, the violation markers at the right coordinates, the shaded vacuous region, the
LaTeX of the Bound in the labels), not on image bytes. References are independent of the
plotting code: coordinates come from the frames written in the tests, formulas from closed
forms typed in the test (cube margin) or from scipy (rank correlation), slopes from the
construction of the data.
"""

from __future__ import annotations

import math
import sqlite3
import sys

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

import figures
from figures import _style
from ncbounds import bounds
from ncbounds._errors import NCBoundsError


def by_gid(fig, gid):
    return [a for a in fig.findobj() if a.get_gid() == gid]


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def legend_texts(fig):
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# --------------------------------------------------------------------------------------------
# E1: bound against measurement
# --------------------------------------------------------------------------------------------
def e1_frame():
    rows = []
    # T1: two holding cells (one informative, one vacuous), one violation, one exact zero
    for fam, bound_value, measured, status in [
        ("gaussian", 0.05, 0.01, "holds"),
        ("gaussian", 4.0, 0.3, "holds"),
        ("finite_outlier", 0.02, 0.04, "violated"),
        ("finite_outlier", 0.1, 0.0, "holds"),
    ]:
        rows.append(dict(bound="nearest_mean", theory_item="T1", family=fam, shots=1, ways=2,
                         bound_value=bound_value, measured=measured, ci_low=measured * 0.8,
                         ci_high=measured * 1.2 + 1e-3, status=status,
                         vacuous=bound_value >= 1, ratio=measured / bound_value))
    rows.append(dict(bound="nearest_mean_anisotropic", theory_item="T1c", family="gaussian",
                     shots=1, ways=2, bound_value=0.03, measured=0.02, ci_low=0.015,
                     ci_high=0.025, status="inconclusive", vacuous=False, ratio=2 / 3))
    return pd.DataFrame(rows)


def test_bound_vs_measurement_draws_diagonal_violations_and_vacuous_region():
    frame = e1_frame()
    fig = figures.plot_bound_vs_measurement(frame)
    assert isinstance(fig, Figure)
    axes = panels(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["T1", "T1c"]
    for ax in axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        (diag,) = [a for a in ax.get_lines() if a.get_gid() == "diagonal"]
        np.testing.assert_array_equal(diag.get_xdata(), diag.get_ydata())
        # the vacuous region starts where a probability bound reaches 1
        (span,) = [p for p in ax.patches if p.get_gid() == "vacuous"]
        assert span.get_extents().x0 == pytest.approx(
            ax.transData.transform((1.0, 1.0))[0], abs=1.0)
    # the labels carry the Bound's LaTeX
    assert bounds.nearest_mean.latex in axes[0].get_xlabel()
    assert bounds.nearest_mean_anisotropic.latex in axes[1].get_xlabel()
    # exactly one violation marker, at (bound, measured) of the violated row
    (marks,) = by_gid(fig, "violations")
    np.testing.assert_allclose(marks.get_offsets(), [[0.02, 0.04]])
    assert marks.axes is axes[0]
    # the exact zero sits on the lower edge as a downward triangle
    y_floor = axes[0].get_ylim()[0]
    edge = [c for c in axes[0].collections if isinstance(c, PathCollection)
            and len(c.get_offsets()) and np.allclose(c.get_offsets()[:, 1], y_floor)]
    assert edge and np.allclose(edge[0].get_offsets(), [[0.1, y_floor]])
    assert any("inconclusive" in t for t in legend_texts(fig))


def test_bound_vs_measurement_without_violations_has_no_marker():
    frame = e1_frame()
    frame = frame[frame["status"] != "violated"]
    fig = figures.plot_bound_vs_measurement(frame)
    assert by_gid(fig, "violations") == []


# --------------------------------------------------------------------------------------------
# E2: spherical symmetry
# --------------------------------------------------------------------------------------------
def e2_frame():
    rows = []
    for fam, param, dims, measured in [
        ("gaussian", {"kappa": 0.25, "cdnv_power": 0.5, "q": math.nan}, [8, 512], [0.2, 0.14]),
        ("two_point", {"kappa": math.nan, "cdnv_power": math.nan, "q": 0.05}, [8, 512],
         [0.06, 0.05]),
    ]:
        for p, m in zip(dims, measured):
            for b, value in (("spherical_as_stated", 9.6 / p), ("spherical", 3.0 + 1 / p),
                             ("nearest_mean", 9.6)):
                violated = b == "spherical_as_stated" and m > value
                rows.append(dict(family=fam, dim=p, shots=1, **param, bound=b,
                                 bound_value=value, measured=m, ci_low=m * 0.9, ci_high=m * 1.1,
                                 status="violated" if violated else "holds",
                                 error_lower_bound=0.045 if fam == "two_point" else math.nan))
    return pd.DataFrame(rows)


def test_spherical_plots_both_forms_marks_the_counterexample_and_violations():
    frame = e2_frame()
    fig = figures.plot_spherical(frame)
    axes = panels(fig)
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 2 and "counterexample" in titles[1] and "counterexample" not in titles[0]
    slides = by_gid(fig, "bound_spherical_as_stated")
    assert len(slides) == 2 and all(line.get_linestyle() == "--" for line in slides)
    # the slides' form is drawn at its stored values
    np.testing.assert_allclose(slides[1].get_ydata(), [9.6 / 8, 9.6 / 512])
    # violated: the slides' form at p = 512 in both families (measured > 9.6/512)
    marks = by_gid(fig, "violations")
    coords = sorted(tuple(xy) for m in marks for xy in np.asarray(m.get_offsets()))
    assert coords == [(512.0, 0.05), (512.0, 0.14)]
    texts = legend_texts(fig)
    assert any(bounds.spherical_as_stated.latex in t for t in texts)
    assert any(bounds.spherical.latex in t for t in texts)
    assert len(by_gid(fig, "error_lower_bound")) == 1


# --------------------------------------------------------------------------------------------
# E3: coverage of T3
# --------------------------------------------------------------------------------------------
def e3_frame():
    rows = []
    for m, vac in [(100, 1.0), (1000, 0.25), (10000, 0.0)]:
        for delta in (0.05, 0.1):
            violated = m == 1000 and delta == 0.05
            rate = 0.2 if violated else 0.0
            rows.append(dict(dim=2, cdnv=0.5, samples=m, delta=delta, draws=100,
                             violations=int(rate * 100), violation_rate=rate, ci_low=rate / 2,
                             ci_high=rate + 0.04, status="violated" if violated else "holds",
                             vacuous_draws=int(vac * 100), vacuous_fraction=vac,
                             ratio_median=math.inf if vac == 1 else 10.0 / math.sqrt(m),
                             confidence=0.99))
    return pd.DataFrame(rows)


def test_new_samples_coverage_draws_delta_violations_and_vacuous_fraction():
    frame = e3_frame()
    fig = figures.plot_new_samples_coverage(frame)
    deltas = sorted(line.get_ydata()[0] for line in by_gid(fig, "delta"))
    assert deltas == [0.05, 0.1]
    (marks,) = by_gid(fig, "violations")
    np.testing.assert_allclose(marks.get_offsets(), [[1000, 0.2]])
    (vac,) = by_gid(fig, "vacuous_fraction")
    np.testing.assert_allclose(vac.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(vac.get_ydata(), [1.0, 0.25, 0.0])
    (ratio,) = by_gid(fig, "ratio")  # the vacuous (infinite) median is left out
    np.testing.assert_allclose(ratio.get_xdata(), [1000, 10000])
    # the finite piece of the T3 bound, from its sympy expression, is in the title
    finite_piece = figures.bound_math("new_samples").strip("$")
    assert "cases" not in finite_piece and finite_piece in fig.get_suptitle()
    assert "epsilon" in finite_piece


# --------------------------------------------------------------------------------------------
# E4: new classes
# --------------------------------------------------------------------------------------------
def cube_margin_reference(side, n, p, delta):
    # THEORY.md T4 closed form, typed here independently of the Bound:
    # s (2 δ / (N (N - 1) V_p))^(1/p) with V_p = π^(p/2) / Γ(p/2 + 1)
    vp = math.pi ** (p / 2) / math.gamma(p / 2 + 1)
    return side * (2 * delta / (n * (n - 1) * vp)) ** (1 / p)


def e4_frame():
    rows = []
    for seed, scale in ((0, 1.0), (1, 1.3)):
        for l in (4, 8, 16, 32):
            for delta in (0.05, 0.1):
                rows.append(dict(part="coverage", dim=16, classes=200, side=1.0, seed=seed,
                                 sources=l, delta=delta, draws=50, violations=0,
                                 violation_rate=0.0, ci_low=0.0, ci_high=0.09, status="holds",
                                 gap_rms=scale * l ** -0.5))
    for n, violated in ((10, False), (100, True)):
        for delta in (0.05, 0.1):
            rows.append(dict(part="margin", dim=2, classes=n, side=1.0, seed=0, delta=delta,
                             draws=30, violations=6 if violated else 0,
                             violation_rate=0.2 if violated else 0.0, ci_low=0.0, ci_high=0.3,
                             status="violated" if violated else "holds",
                             margin_median=0.5 / n, margin_q05=0.2 / n, margin_q95=0.9 / n))
    return pd.DataFrame(rows)


def log_slope(line):
    x, y = np.log(line.get_xdata()), np.log(line.get_ydata())
    return (y[-1] - y[0]) / (x[-1] - x[0])


def test_new_classes_slopes_margin_bound_and_asymptotics():
    fig = figures.plot_new_classes(e4_frame())
    assert len(panels(fig)) == 3
    (fit,) = by_gid(fig, "slope_fit")
    (theory,) = by_gid(fig, "slope_theory")
    # the data were built as c * l^(-1/2) (two seeds, different c): both slopes are -1/2
    assert log_slope(fit) == pytest.approx(-0.5, abs=1e-9)
    assert log_slope(theory) == pytest.approx(-0.5, abs=1e-12)
    assert any("-0.50" in t for t in legend_texts(fig))
    (lower,) = by_gid(fig, "margin_bound")
    n = lower.get_xdata()
    expected = [cube_margin_reference(1.0, k, 2, 0.05) for k in n]
    np.testing.assert_allclose(lower.get_ydata(), expected, rtol=1e-12)
    (asym,) = by_gid(fig, "margin_asymptotic")
    # asymptotic median: M V_p Δ^p / s^p ~ Exp(1), so Δ_med = s (ln 2 / (M V_p))^(1/p)
    np.testing.assert_allclose(asym.get_ydata(),
                               [cube_margin_reference(1.0, k, 2, math.log(2)) for k in n],
                               rtol=1e-12)
    (marks,) = by_gid(fig, "violations")
    np.testing.assert_allclose(marks.get_offsets(),
                               [[100, cube_margin_reference(1.0, 100, 2, 0.05)]], rtol=1e-12)
    assert any(bounds.cube_margin.latex in t for t in legend_texts(fig))
    assert any(bounds.new_classes.latex in ax.get_title() for ax in panels(fig))


def test_new_classes_with_only_margin_rows_draws_one_panel():
    frame = e4_frame()
    fig = figures.plot_new_classes(frame[frame["part"] == "margin"])
    assert len(panels(fig)) == 1 and by_gid(fig, "slope_fit") == []


# --------------------------------------------------------------------------------------------
# E5: tightness
# --------------------------------------------------------------------------------------------
def test_tightness_bars_are_the_best_ratio_per_bound():
    frame = pd.DataFrame([
        dict(bound="nearest_mean", theory_item="T1", ratio=0.05, status="holds",
             bound_value=0.5, ci_low=0.02, ci_high=0.03),
        dict(bound="nearest_mean", theory_item="T1", ratio=0.2, status="holds",
             bound_value=0.5, ci_low=0.09, ci_high=0.11),
        dict(bound="nearest_mean[C=1]", theory_item="T1", ratio=3.2, status="violated",
             bound_value=0.1, ci_low=0.3, ci_high=0.34),
        dict(bound="spherical_as_stated", theory_item="T2", ratio=1.5, status="violated",
             bound_value=0.02, ci_low=0.028, ci_high=0.032),
    ])
    fig = figures.plot_tightness(frame)
    (ax,) = panels(fig)
    bars = sorted(by_gid(fig, "ratio_bars"), key=lambda b: b.get_y())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = dict(zip(labels, (b.get_width() for b in bars)))
    assert len(widths) == 3
    t1 = [k for k in labels if bounds.nearest_mean.latex in k]
    assert len(t1) == 1 and widths[t1[0]] == pytest.approx(0.2)
    assert widths["T1: nearest_mean[C=1]"] == pytest.approx(3.2)
    (one,) = by_gid(fig, "ratio_one")
    assert list(one.get_xdata()) == [1.0, 1.0]
    (marks,) = by_gid(fig, "violations")
    assert sorted(np.asarray(marks.get_offsets())[:, 0]) == pytest.approx([1.5, 3.2])


# --------------------------------------------------------------------------------------------
# N1-N3: trained networks
# --------------------------------------------------------------------------------------------
def training_frame(runs=(("a", 8, {}), ("b", 4, {}))):
    rows = []
    for run, l, extra in runs:
        for epoch in (0, 1, 2):
            for split, base in (("source_train", 1.0), ("source_test", 1.2), ("target", 1.5)):
                rows.append(dict(run=run, sweep="n2", model="mlp", n_source_classes=l,
                                 epoch=epoch, split=split, metric="cdnv",
                                 value=base / (1 + epoch) * 8 / l, **extra))
            for shots, acc in ((1, 0.4), (5, 0.6)):
                value = acc + 0.05 * epoch + 0.01 * l
                rows.append(dict(run=run, sweep="n2", model="mlp", n_source_classes=l,
                                 epoch=epoch, split="target", metric="fewshot_accuracy",
                                 value=value, head="ridge", shots=shots, ways=5,
                                 ci_low=value - 0.02, ci_high=value + 0.03, **extra))
    return pd.DataFrame(rows)


def test_training_curves_four_panels_one_line_per_run_coloured_by_l():
    frame = training_frame()
    fig = figures.plot_training_curves(frame)
    axes = panels(fig)
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes[:3]] == [
        "NV source-train", "NV source-test", "NV target (new classes)"]
    for ax, split in zip(axes[:3], ("source_train", "source_test", "target")):
        lines = [ln for ln in ax.get_lines() if ln.get_gid() == "curve"]
        assert len(lines) == 2
        assert mpl.colors.to_hex(lines[0].get_color()) != mpl.colors.to_hex(lines[1].get_color())
        for line in lines:
            l = 4 if "= 4 source" in line.get_label() else 8
            expected = frame[(frame["split"] == split) & (frame["metric"] == "cdnv")
                             & (frame["n_source_classes"] == l)].sort_values("epoch")["value"]
            np.testing.assert_allclose(line.get_ydata(), expected)
        assert ax.get_yscale() == "log"
        assert figures.symbol_math("nearest_mean", "cdnv") in ax.get_ylabel()
    acc = [ln for ln in axes[3].get_lines() if ln.get_gid() == "curve"]
    assert len(acc) == 4  # two runs x (1-shot, 5-shot)
    assert {ln.get_linestyle() for ln in acc} == {"--", "-"}


def n3_frame():
    variants = [("base", 16, {"weight_decay": 5e-4, "width": 32}),
                ("wd0", 16, {"weight_decay": 0.0, "width": 32}),
                ("wd10", 16, {"weight_decay": 5e-3, "width": 32}),
                ("w16", 16, {"weight_decay": 5e-4, "width": 16}),
                ("w64", 16, {"weight_decay": 5e-4, "width": 64})]
    rows = []
    cdnv = {"base": 1.0, "wd0": 1.4, "wd10": 0.8, "w16": 2.0, "w64": 0.6}
    acc = {"base": 0.60, "wd0": 0.61, "wd10": 0.66, "w16": 0.50, "w64": 0.64}
    for run, l, extra in variants:
        for split in ("source_train", "source_test", "target"):
            for metric in ("cdnv", "nc1"):
                rows.append(dict(run=run, sweep="n3", model="cnn", n_source_classes=l,
                                 epochs=4, label_smoothing=0.0, seed=0, dataset="glyphs",
                                 epoch=4, split=split, metric=metric,
                                 value=cdnv[run] if split == "target" else 0.5, **extra))
        for head in ("ridge", "ncm"):
            for shots in (1, 5):
                v = acc[run] + (0.1 if shots == 5 else 0.0)
                rows.append(dict(run=run, sweep="n3", model="cnn", n_source_classes=l,
                                 epochs=4, label_smoothing=0.0, seed=0, dataset="glyphs",
                                 epoch=4, split="target", metric="fewshot_accuracy", value=v,
                                 head=head, shots=shots, ways=5, ci_low=v - 0.01,
                                 ci_high=v + 0.01, **extra))
    return pd.DataFrame(rows), cdnv, acc


def test_transferability_title_has_the_rank_correlation():
    frame, cdnv, acc = n3_frame()
    fig = figures.plot_transferability(frame)
    (ax,) = panels(fig)
    runs = sorted(cdnv)
    # reference: scipy's Spearman on the values written above
    rho = stats.spearmanr([cdnv[r] for r in runs], [acc[r] for r in runs]).statistic
    assert f"= {rho:.2f}" in ax.get_title() and "Spearman" in ax.get_title()
    points = by_gid(fig, "runs")
    coords = sorted(tuple(np.asarray(p.get_offsets())[0]) for p in points)
    np.testing.assert_allclose(coords, sorted((cdnv[r], acc[r] + 0.1) for r in runs))
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert labels == {"base", "wd=0", "wd=0.005", "width=16", "width=64"}


def test_fewshot_table_has_intervals_per_head_and_shots():
    frame, _, acc = n3_frame()
    table = figures.fewshot_table_markdown(frame)
    lines = table.splitlines()
    assert lines[0].startswith("| sweep | model | l | variant | epoch | ridge 1-shot |")
    assert len(lines) == 2 + 5
    w64 = next(line for line in lines if "width=64" in line)
    v = acc["w64"] + 0.1
    assert f"{v:.3f} [{v - 0.01:.3f}, {v + 0.01:.3f}]" in w64


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def test_verdict_and_coverage_tables_count_what_the_rows_say():
    table = figures.verdict_table(e1_frame(), by=("theory_item", "family"))
    t1 = table[table["theory_item"] == "T1"].set_index("family")
    assert t1.loc["finite_outlier", ["cells", "holds", "violated"]].tolist() == [2, 1, 1]
    assert t1.loc["gaussian", "vacuous"] == 1
    assert t1.loc["gaussian", "median ratio"] == pytest.approx(0.01 / 0.05)
    cov = figures.coverage_table(e3_frame(), by=("samples", "delta"))
    row = cov[(cov["samples"] == 1000) & (cov["delta"] == 0.05)].iloc[0]
    assert (row["draws"], row["violations"], row["verdict"]) == (100, 20, "violated")
    assert row["vacuous fraction"] == pytest.approx(0.25)
    md = figures.markdown_table(cov)
    assert md.count("\n") == len(cov) + 1 and "| violated |" in md


# --------------------------------------------------------------------------------------------
# Files, styling, errors
# --------------------------------------------------------------------------------------------
def test_png_and_pdf_are_byte_stable_and_carry_no_timestamp(tmp_path):
    outputs = []
    for k in range(2):  # two independent builds and saves of the same figure
        fig = figures.plot_bound_vs_measurement(e1_frame())
        paths = figures.save_figure(fig, tmp_path / f"run{k}" / "e1", dpi=60)
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        outputs.append([p.read_bytes() for p in paths])
    assert outputs[0] == outputs[1]
    png, pdf = outputs[0]
    assert b"CreationDate" not in pdf and b"ModDate" not in pdf
    assert b"Software" not in png and b"Matplotlib" not in png


def test_plotting_leaves_global_matplotlib_state_alone():
    before = dict(mpl.rcParams)
    figures.plot_bound_vs_measurement(e1_frame())
    figures.plot_training_curves(training_frame())
    assert dict(mpl.rcParams) == before
    pyplot = sys.modules.get("matplotlib.pyplot")  # seaborn imports it; we never use it
    assert pyplot is None or pyplot.get_fignums() == []


def test_bad_inputs_raise_ncbounds_errors_naming_what_is_missing():
    with pytest.raises(NCBoundsError, match="missing.*'status'"):
        figures.plot_bound_vs_measurement(e1_frame().drop(columns="status"))
    with pytest.raises(NCBoundsError, match="DataFrame"):
        figures.plot_tightness([1, 2])
    with pytest.raises(NCBoundsError, match="empty"):
        figures.plot_spherical(e2_frame().iloc[:0])
    with pytest.raises(NCBoundsError, match="bound: expected one of"):
        figures.bound_math("no_such_bound")
    with pytest.raises(NCBoundsError, match="formats"):
        figures.save_figure(Figure(), "x", formats=("gif",))
    with pytest.raises(NCBoundsError, match="size"):
        figures.reproduce(out="unused", size="huge")
    with pytest.raises(NCBoundsError, match="quick"):
        figures.reproduce(out="unused", quick="yes")


def test_every_bound_label_renders_in_mathtext(tmp_path):
    # matplotlib's mathtext must parse every formula a figure may show (no `cases`)
    fig = Figure()
    ax = fig.add_subplot()
    for k, name in enumerate(bounds.registry()):
        ax.text(0, k, _style.bound_math(name))
    figures.save_figure(fig, tmp_path / "all", dpi=30, formats=("png",))


# --------------------------------------------------------------------------------------------
# The one-command reproduction, end to end at the tiny size
# --------------------------------------------------------------------------------------------
def store_snapshot(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT count(*), sum(attempts), max(finished_at), (SELECT count(*) FROM rows) "
            "FROM cells").fetchone()
    finally:
        conn.close()


def test_reproduce_tiny_end_to_end_and_the_rerun_recomputes_nothing(tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "report"
    report = figures.reproduce(out=out, size="tiny", n_jobs=1, device="cpu", progress=False)
    assert report == out / "report.md"
    text = report.read_text(encoding="utf-8")
    for item, name in [("T1", "nearest_mean"), ("T1b", "nearest_mean"),
                       ("T1c", "nearest_mean_anisotropic"), ("T2", "spherical_as_stated"),
                       ("T2", "spherical"), ("T3", "new_samples"), ("T4", "new_classes"),
                       ("T4", "cube_margin")]:
        assert f"## {item}: " in text and f"(`{name}`)" in text
        assert bounds.registry()[name].latex in text
    assert "Not valid in general" in text and "Trained networks" in text
    stems = ["e1_nearest_mean", "e2_spherical", "e3_new_samples", "e4_new_classes",
             "e5_tightness", "n1_training_curves"]
    files = {}
    for stem in stems:
        for ext in ("png", "pdf"):
            path = out / "figures" / f"{stem}.{ext}"
            assert path.stat().st_size > 1000
            files[path] = (path.read_bytes(), path.stat().st_mtime_ns)
        assert f"figures/{stem}.png" in text
    before = store_snapshot(out / "results.sqlite")

    # the rerun through the command line: `ncbounds reproduce --quick` with the quick scale
    # made tiny for the test (same grids, so the same cells)
    from ncbounds import cli

    monkeypatch.setitem(figures.report.PLANS, "quick", figures.report.PLANS["tiny"])
    code = cli.main(["reproduce", "--quick", "--out", str(out), "--n-jobs", "1",
                     "--device", "cpu", "--quiet"])
    assert code == 0
    text = text.replace("at the `tiny` scale", "at the `quick` scale")
    # nothing recomputed: same cells, same attempts, no cell finished since, same rows
    assert store_snapshot(out / "results.sqlite") == before
    # the report is the same text, and no figure was redrawn (files untouched)
    assert capsys.readouterr().out.strip() == f"report: {report}"
    assert report.read_text(encoding="utf-8") == text
    for path, (data, mtime) in files.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, path.name
    # a figure whose file is gone is drawn again, to the same bytes
    (out / "figures" / "e2_spherical.pdf").unlink()
    figures.write_report(out / "results.sqlite", size="quick")
    path = out / "figures" / "e2_spherical.pdf"
    assert path.read_bytes() == files[path][0]

    # cells of another grid in the same folder (E1 with another seed) stay out of the report
    from simulations.experiments import run_experiment

    run_experiment("e1", out=out, size="tiny", seeds=[1], n_jobs=1, progress=False)
    assert store_snapshot(out / "results.sqlite")[0] > before[0]  # new cells in the store
    assert figures.write_report(out / "results.sqlite", size="quick").read_text() == text
