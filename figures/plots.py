r"""Plotters of the simulation experiments E1–E5: bound against measurement at a glance.

Each plotter takes the tidy DataFrame of one experiment (:func:`simulations.sweep.load_results`
of its store, or any frame with the documented columns) and returns a
:class:`matplotlib.figure.Figure`; nothing touches pyplot's global state. Formulas on the
axes, titles and legends come from the :class:`ncbounds.bounds.Bound` objects
(THEORY.md T1–T4; Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121).

Artists that carry meaning have a ``gid`` so that tests (and readers of the figure object)
can find them: ``"diagonal"`` (measured = bound), ``"vacuous"`` (the shaded region where a
probability bound is ≥ 1), ``"violations"`` (cells whose verdict is *violated*),
``"delta"`` (the level δ of a coverage statement), ``"slope_fit"`` and ``"slope_theory"``
(fitted and predicted log-log slopes), ``"margin_bound"`` and ``"margin_asymptotic"``
(T4 cube margin), ``"ratio_one"`` (ratio 1 in the tightness plot).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ncbounds.bounds import registry

from ._style import (
    bound_math,
    check_frame,
    colors,
    figure_legend,
    log_floor,
    markers,
    new_figure,
    no_minor_ticks,
    palette,
    style,
    symbol_math,
)

__all__ = [
    "plot_bound_vs_measurement",
    "plot_spherical",
    "plot_new_samples_coverage",
    "plot_new_classes",
    "plot_tightness",
]

_VIOLATION_COLOR = (0.835, 0.369, 0.0)  # the palette's vermilion
_VACUOUS_COLOR = "0.55"
_ITEM_ORDER = ("T1", "T1a", "T1b", "T1c", "T1d", "T2", "T3", "T4")


def _item_key(item: str) -> tuple[int, str]:
    return (_ITEM_ORDER.index(item) if item in _ITEM_ORDER else len(_ITEM_ORDER), item)


def _mark_violations(ax: Any, x: np.ndarray, y: np.ndarray, *, label: str = "violated") -> None:
    """A large cross on each violated cell (gid ``"violations"``)."""
    if len(x):
        ax.scatter(x, y, marker="X", s=70, color=_VIOLATION_COLOR, edgecolor="black",
                   linewidth=0.5, zorder=6, label=label, gid="violations")


def _clip(values: Any, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Values raised to ``floor`` for a log axis, and the mask of those that were below it."""
    v = np.asarray(values, dtype=float)
    below = ~(v >= floor)
    return np.where(below, floor, v), below


def _marker_proxies(ax: Any, *, inconclusive: bool, below: bool) -> None:
    """Legend entries (no data) explaining the open and the downward markers."""
    if inconclusive:
        ax.scatter([], [], marker="o", s=22, facecolor="none", edgecolor="0.3",
                   label="inconclusive")
    if below:
        ax.scatter([], [], marker="v", s=22, color="0.3",
                   label="measured below the axis (bar: upper confidence bound)")


# --------------------------------------------------------------------------------------------
# E1: T1 / T1b / T1c
# --------------------------------------------------------------------------------------------
def plot_bound_vs_measurement(frame: Any, *, hue: str = "family") -> Any:
    r"""Measured few-shot error against the bound, one log-log panel per bound (E1).

    One panel per ``theory_item`` (T1, T1b, T1c): x is the uncapped bound value, y the
    measured error with its one-sided confidence bounds (``ci_low``, ``ci_high``) as a
    vertical bar; the diagonal y = x (``gid="diagonal"``) separates holding cells (below)
    from violations (above); cells whose verdict is *violated* get a cross
    (``gid="violations"``), inconclusive ones an open marker; the region where the bound
    is ≥ 1, vacuous for a probability, is shaded (``gid="vacuous"``). Points measured below
    the plotted range (exact zeros, or Rao–Blackwell estimates like 1e-200) sit on the lower
    edge as downward triangles. The x label carries the bound's formula (``Bound.latex``).

    Columns: ``bound``, ``theory_item``, ``bound_value``, ``measured``, ``ci_low``,
    ``ci_high``, ``status`` and ``hue`` (default ``family``).
    """
    cols = ["bound", "theory_item", "bound_value", "measured", "ci_low", "ci_high", "status", hue]
    frame = check_frame(frame, cols)
    bounds = registry()
    items = sorted(frame["theory_item"].unique(), key=_item_key)
    groups = sorted(frame[hue].astype(str).unique())
    colour_of = palette(groups)
    finite = frame["bound_value"].to_numpy(float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    floor = log_floor(finite, decades=3.0)
    with style():
        fig, axes = new_figure(len(items), panel=(3.6, 3.4))
        any_below = any_inconclusive = False
        for ax, item in zip(axes, items):
            g = frame[frame["theory_item"] == item]
            bound = bounds[g["bound"].iloc[0]]
            x = g["bound_value"].to_numpy(float)
            y, below = _clip(g["measured"], floor)
            lo, _ = _clip(g["ci_low"], floor)
            hi, _ = _clip(g["ci_high"], floor)
            pos = x[np.isfinite(x) & (x > 0)]
            xmin = float(pos.min()) / 3 if pos.size else floor
            xmax = max(3.0, float(pos.max()) * 3 if pos.size else 3.0)
            ymax = max(1.5, float(np.nanmax(hi)) * 2)
            lo_lim, hi_lim = min(xmin, floor), max(xmax, ymax)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if bound.kind == "probability":
                ax.axvspan(1.0, hi_lim, color=_VACUOUS_COLOR, alpha=0.18, lw=0,
                           label="vacuous (bound $\\geq 1$)", gid="vacuous", zorder=0)
            ax.plot([lo_lim, hi_lim], [lo_lim, hi_lim], ls="--", color="black", lw=1,
                    label="measured = bound", gid="diagonal", zorder=2)
            status = g["status"].to_numpy(str)
            fam = g[hue].astype(str).to_numpy()
            for name in groups:
                sel = fam == name
                if not sel.any():
                    continue
                c = colour_of[name]
                ax.scatter([], [], marker="o", s=22, color=c, label=name)  # legend entry
                ax.vlines(x[sel], lo[sel], hi[sel], color=c, lw=0.8, alpha=0.45, zorder=3)
                for mask, marker, face in (
                    (sel & ~below & (status != "inconclusive"), "o", c),
                    (sel & ~below & (status == "inconclusive"), "o", "none"),
                    (sel & below, "v", c),
                ):
                    if mask.any():
                        ax.scatter(x[mask], y[mask], marker=marker, s=22, facecolor=face,
                                   edgecolor=c, linewidth=0.9, zorder=4, label=f"_{name}")
            bad = status == "violated"
            _mark_violations(ax, x[bad], y[bad])
            ax.set_xlim(xmin, xmax)
            ax.set_ylim(floor, ymax)
            ax.set_xlabel(f"bound {bound_math(bound)}")
            ax.set_ylabel("measured few-shot error")
            ax.set_title(f"{item}: {bound.name}")
            any_below = any_below or bool(below.any())
            any_inconclusive = any_inconclusive or bool((status == "inconclusive").any())
        _marker_proxies(axes[0], inconclusive=any_inconclusive, below=any_below)
        figure_legend(fig, axes)
    return no_minor_ticks(fig)


# --------------------------------------------------------------------------------------------
# E2: T2 spherical symmetry
# --------------------------------------------------------------------------------------------
_FAMILY_PARAMS = ("kappa", "cdnv_power", "q", "tail", "decay")
_COUNTEREXAMPLE = "two_point"


def _param_label(row: Any, params: Sequence[str]) -> str:
    parts = []
    for p in params:
        v = row[p]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        parts.append(f"{p}={v:g}" if isinstance(v, numbers.Real) else f"{p}={v}")
    return ", ".join(parts) or "-"


def plot_spherical(frame: Any, *, counterexample: str = _COUNTEREXAMPLE) -> Any:
    r"""The slides' T2 form, the valid form and the measured error against p (E2).

    One panel per (family, shots); within a panel one colour per family parameter setting
    (``kappa``/``cdnv_power`` for Gaussians, ``q`` for the two-point radius law): the
    measured error with its confidence bars (solid), the slides' form
    :data:`ncbounds.bounds.spherical_as_stated` (dashed) and the valid form
    :data:`ncbounds.bounds.spherical` (dotted), both read from the rows. Cells where the
    slides' form is *violated* get a cross (``gid="violations"``). The counterexample family
    of THEORY.md T2 (``counterexample``, default ``"two_point"``) is marked in its panel
    titles and, where the rows carry ``error_lower_bound`` (q (1 − q)² at n = 1), that
    p-independent lower bound on the error is drawn as a thin horizontal line.

    Columns: ``family``, ``dim``, ``shots``, ``bound``, ``bound_value``, ``measured``,
    ``ci_low``, ``ci_high``, ``status``; optional family parameters and
    ``error_lower_bound``.
    """
    cols = ["family", "dim", "shots", "bound", "bound_value", "measured", "ci_low", "ci_high",
            "status"]
    frame = check_frame(frame, cols)
    slides, valid = registry()["spherical_as_stated"], registry()["spherical"]
    frame = frame[frame["bound"].isin([slides.name, valid.name])]
    check_frame(frame, cols)
    params = [p for p in _FAMILY_PARAMS if p in frame.columns]
    families = sorted(frame["family"].unique(), key=lambda f: (f == counterexample, f))
    shots = sorted(frame["shots"].unique())
    floor = log_floor(frame["bound_value"].to_numpy(float), decades=2.0)
    with style():
        fig, axes = new_figure(len(shots), len(families), panel=(3.6, 3.0))
        axes = axes.reshape(len(families), len(shots))
        any_below = False
        for i, fam in enumerate(families):
            for j, n in enumerate(shots):
                ax = axes[i, j]
                g = frame[(frame["family"] == fam) & (frame["shots"] == n)]
                ax.set_xscale("log")
                ax.set_yscale("log")
                title = f"{fam}, n = {n}"
                if fam == counterexample:
                    title = f"{fam} (counterexample, T2), n = {n}"
                ax.set_title(title)
                ax.set_xlabel(f"dimension {symbol_math(valid, 'dim')}")
                ax.set_ylabel("few-shot error and bounds")
                if g.empty:
                    continue
                labels, settings = _settings(g, params)
                colour_of = palette(settings)
                for s in settings:
                    gs = g[labels == s].sort_values("dim")
                    c = colour_of[s]
                    meas = gs.drop_duplicates(["dim", "measured"])  # one per cell
                    p = meas["dim"].to_numpy(float)
                    lo, _ = _clip(meas["ci_low"], floor)
                    hi, _ = _clip(meas["ci_high"], floor)
                    y, below = _clip(meas["measured"], floor)
                    ax.plot(p, y, "-", color=c, lw=1.2, zorder=4)
                    ax.plot(p[~below], y[~below], "o", color=c, ms=3.5, label=s, zorder=4)
                    ax.plot(p[below], y[below], "v", color=c, ms=4, zorder=4,
                            label="_below the axis")
                    any_below = any_below or bool(below.any())
                    ax.vlines(p, lo, hi, color=c, lw=0.8, alpha=0.6, zorder=3)
                    for b, ls in ((slides, "--"), (valid, ":")):
                        gb = gs[gs["bound"] == b.name]
                        ax.plot(gb["dim"].to_numpy(float), gb["bound_value"].to_numpy(float),
                                ls=ls, color=c, lw=1.2, zorder=3, gid=f"bound_{b.name}")
                    if "error_lower_bound" in gs.columns:
                        lower = meas["error_lower_bound"].to_numpy(float)
                        if np.isfinite(lower).any():
                            ax.plot(p, lower, color=c, lw=0.7, alpha=0.8, zorder=2,
                                    gid="error_lower_bound")
                bad = g[(g["bound"] == slides.name) & (g["status"] == "violated")]
                yb, _ = _clip(bad["measured"], floor)
                _mark_violations(ax, bad["dim"].to_numpy(float), yb,
                                 label="slides' form violated")
        # the line styles, explained once
        ax0 = axes[0, 0]
        ax0.plot([], [], "k--", label=f"slides' form {bound_math(slides)}")
        ax0.plot([], [], "k:", label=f"valid form {bound_math(valid)}")
        ax0.plot([], [], "ko-", ms=3.5, label="measured error")
        if any_below:
            ax0.plot([], [], "kv", ms=4, label="measured below the axis")
        if "error_lower_bound" in frame.columns and np.isfinite(
                frame["error_lower_bound"].to_numpy(float)).any():
            ax0.plot([], [], "k-", lw=0.7, label="counterexample's error lower bound")
        figure_legend(fig, list(axes.ravel()))
    return no_minor_ticks(fig)


# --------------------------------------------------------------------------------------------
# Coverage of probability-delta statements (E3 and E4)
# --------------------------------------------------------------------------------------------
def _settings(frame: Any, keys: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A label per row from the values of ``keys`` (e.g. "dim=2, cdnv=0.5"), and the labels."""
    keys = [k for k in keys if k in frame.columns]
    labels = frame.apply(lambda r: _param_label(r, keys), axis=1).to_numpy(str) \
        if keys and len(frame) else np.full(len(frame), "-")
    return labels, sorted(set(labels), key=_natural)


def _natural(label: str) -> tuple:
    """Sort "dim=16" after "dim=2": numbers compared as numbers."""
    out: list[Any] = []
    for part in label.split(", "):
        name, _, value = part.partition("=")
        try:
            out.append((name, 0, float(value), ""))
        except ValueError:
            out.append((name, 1, 0.0, value))
    return tuple(out)


def _coverage_panel(ax: Any, frame: Any, *, x: str, settings: Sequence[str],
                    delta_label: str) -> None:
    """Violation rate against ``x``, one colour per δ (its level drawn as a dashed line,
    ``gid="delta"``), one marker per setting, the upper confidence bound as a bar, and a
    cross on each cell whose coverage verdict is *violated*."""
    labels, all_settings = _settings(frame, settings)
    deltas = sorted(frame["delta"].unique())
    colour_of = palette(deltas)
    marker_of = markers(all_settings)
    offsets = dict(zip(all_settings, np.linspace(-0.06, 0.06, len(all_settings))
                       if len(all_settings) > 1 else [0.0]))
    for d in deltas:
        ax.axhline(d, ls="--", lw=1, color=colour_of[d], gid="delta",
                   label=f"{delta_label} = {d:g}", zorder=1)
    for d in deltas:
        for s in all_settings:
            g = frame[(frame["delta"] == d) & (labels == s)].sort_values(x)
            if g.empty:
                continue
            xs = g[x].to_numpy(float) * 10 ** offsets[s]  # a small horizontal dodge
            rate = g["violation_rate"].to_numpy(float)
            ax.vlines(xs, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float),
                      color=colour_of[d], lw=0.8, alpha=0.6, zorder=2)
            ax.plot(xs, rate, marker=marker_of[s], ms=4, lw=0.8, color=colour_of[d], zorder=3,
                    label=f"_{s}")
    for s in all_settings:
        ax.plot([], [], marker=marker_of[s], ls="none", color="0.3", label=s)
    bad = frame["status"].to_numpy(str) == "violated"
    _mark_violations(ax, frame.loc[bad, x].to_numpy(float),
                     frame.loc[bad, "violation_rate"].to_numpy(float),
                     label="coverage violated")
    top = max(float(np.nanmax(frame["ci_high"].to_numpy(float))), max(deltas)) * 1.25
    ax.set_ylim(-0.02 * top, top)
    ax.set_xscale("log")
    ax.set_ylabel("violation rate")


def plot_new_samples_coverage(frame: Any, *, settings: Sequence[str] = ("dim", "cdnv")) -> Any:
    r"""T3 coverage against the sample size m (E3), three panels.

    (1) the fraction of draws of the sample in which the population CDNV exceeded the bound,
    with its one-sided upper confidence bound, one colour per δ and the level δ drawn
    (``gid="delta"``): coverage holds when the rate stays below δ; cells whose verdict is
    *violated* get a cross (``gid="violations"``); (2) the fraction of draws in which the
    bound was vacuous (+inf, the empirical means too close for the ε's), which must fall to
    0 as m grows; (3) the median over draws of bound / population CDNV (1 would be tight),
    the bound being :data:`ncbounds.bounds.new_samples` (its finite piece in the title).
    One marker (and line) per setting of ``settings`` (default: dimension and CDNV).

    Columns: ``samples``, ``delta``, ``violation_rate``, ``ci_low``, ``ci_high``,
    ``status``, ``vacuous_fraction``; optional ``ratio_median`` and the ``settings``.
    """
    cols = ["samples", "delta", "violation_rate", "ci_low", "ci_high", "status",
            "vacuous_fraction"]
    frame = check_frame(frame, cols)
    bound, eps = registry()["new_samples"], registry()["eps1_mcdiarmid"]
    m_label = f"samples per class {symbol_math(eps, 'samples')}"
    has_ratio = "ratio_median" in frame.columns
    with style():
        fig, axes = new_figure(3 if has_ratio else 2, panel=(3.5, 3.0))
        _coverage_panel(axes[0], frame, x="samples", settings=settings,
                        delta_label=symbol_math(eps, "delta"))
        axes[0].set_title("coverage")
        # one value per (setting, m): the vacuous fraction and the ratio do not depend much
        # on delta, so the smallest delta is shown
        first = frame[frame["delta"] == frame["delta"].min()]
        labels, all_settings = _settings(first, settings)
        colour_of = palette(all_settings)
        marker_of = markers(all_settings)
        for s in all_settings:
            g = first[labels == s].sort_values("samples")
            axes[1].plot(g["samples"], g["vacuous_fraction"], marker=marker_of[s], ms=4,
                         color=colour_of[s], label=f"_{s}", gid="vacuous_fraction")
            if has_ratio:
                r = g["ratio_median"].to_numpy(float)
                ok = np.isfinite(r)
                axes[2].plot(g["samples"].to_numpy(float)[ok], r[ok], marker=marker_of[s],
                             ms=4, color=colour_of[s], label=f"_{s}", gid="ratio")
        axes[1].set_xscale("log")
        axes[1].set_ylim(-0.03, 1.03)
        axes[1].set_title("vacuous draws (bound = +inf)")
        axes[1].set_ylabel("fraction of draws")
        if has_ratio:
            axes[2].axhline(1.0, color="black", lw=1, ls="--", gid="ratio_one",
                            label="bound = population CDNV")
            axes[2].set_xscale("log")
            axes[2].set_yscale("log")
            axes[2].set_title("tightness (median over draws)")
            axes[2].set_ylabel("bound / population CDNV")
        for ax in axes:
            ax.set_xlabel(m_label)
        fig.suptitle(f"T3 (new samples): $V_f(P_i, P_j) \\leq$ {bound_math(bound)} "
                     f"with probability $\\geq 1 - \\delta$", fontsize="medium")
        figure_legend(fig, axes)
    return no_minor_ticks(fig)


# --------------------------------------------------------------------------------------------
# E4: T4 new classes and the cube margin
# --------------------------------------------------------------------------------------------
def plot_new_classes(frame: Any) -> Any:
    r"""T4 on cube-uniform class means (E4): the gap against l, coverage, and the margin.

    Panels (those whose rows are present): (1) the root mean square of the gap G − Ĝ
    between the population and the source average CDNV against the number of source classes
    l, log-log, with the least-squares fit (``gid="slope_fit"``, slope and 95% interval in
    the legend, :func:`simulations.experiments.new_classes.fit_slope`) and a line of the
    predicted slope −1/2 (``gid="slope_theory"``) through the data's centre; (2) coverage
    of the U-statistic bound :data:`ncbounds.bounds.new_classes` against l, with δ drawn;
    (3) the minimum distance Δ between N class means against N (median and 5–95% range over
    draws) with the rigorous lower bound :data:`ncbounds.bounds.cube_margin` at the smallest
    δ (``gid="margin_bound"``) and the asymptotic median, the same formula at δ = ln 2
    (``gid="margin_asymptotic"``), both evaluated from the Bound on a fine grid of N;
    crosses where the lower bound's coverage is *violated*.

    Columns: ``part`` ("coverage" / "margin"), ``dim``, ``classes``, ``delta``, ``status``,
    ``violation_rate``, ``ci_low``, ``ci_high``; coverage rows ``sources``, ``gap_rms``;
    margin rows ``side``, ``margin_median``, ``margin_q05``, ``margin_q95``.
    """
    from simulations.experiments.new_classes import fit_slope

    frame = check_frame(frame, ["part", "dim", "classes", "delta", "status"])
    bounds = registry()
    uniform, margin_bound = bounds["new_classes"], bounds["cube_margin"]
    cov = frame[frame["part"] == "coverage"]
    mar = frame[frame["part"] == "margin"]
    panels = (2 if len(cov) else 0) + (1 if len(mar) else 0)
    with style():
        fig, axes = new_figure(max(panels, 1), panel=(3.5, 3.1))
        i = 0
        if len(cov):
            ax = axes[i]
            first = cov[cov["delta"] == cov["delta"].min()]  # gap_rms does not depend on δ
            labels, settings = _settings(first, ("dim", "classes"))
            colour_of = palette(settings)
            l_label = symbol_math(uniform, "sources")
            for s in settings:
                g = first[labels == s]
                c = colour_of[s]
                ax.scatter(g["sources"], g["gap_rms"], s=16, color=c, zorder=3, label=f"_{s}")
                fit = fit_slope(g["sources"], g["gap_rms"])
                ls = np.geomspace(g["sources"].min(), g["sources"].max(), 50)
                ax.plot(ls, np.exp(fit["intercept"]) * ls ** fit["slope"], color=c, lw=1.2,
                        gid="slope_fit", label=f"{s}: fitted slope {fit['slope']:.2f} "
                        f"[{fit['slope_low']:.2f}, {fit['slope_high']:.2f}]")
                centre_x = math.exp(np.mean(np.log(g["sources"].to_numpy(float))))
                centre_y = math.exp(np.mean(np.log(g["gap_rms"].to_numpy(float))))
                ax.plot(ls, centre_y * (ls / centre_x) ** -0.5, color=c, lw=1, ls=":",
                        gid="slope_theory", label="_predicted")
            ax.plot([], [], color="0.3", ls=":", label="predicted slope $-1/2$")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"source classes {l_label}")
            ax.set_ylabel(r"rms of $G - \hat{G}$")
            ax.set_title("gap between new and source classes")
            ax = axes[i + 1]
            _coverage_panel(ax, cov, x="sources", settings=("dim", "classes"),
                            delta_label=symbol_math(uniform, "delta"))
            ax.set_xlabel(f"source classes {l_label}")
            ax.set_title(f"coverage of $G \\leq$ {bound_math(uniform)}", fontsize="small")
            i += 2
        if len(mar):
            ax = axes[i]
            first = mar[mar["delta"] == mar["delta"].min()]
            delta = float(first["delta"].iloc[0])
            labels, settings = _settings(first, ("dim",))
            colour_of = palette(settings)
            for s in settings:
                g = first[labels == s].sort_values("classes")
                c = colour_of[s]
                n = g["classes"].to_numpy(float)
                ax.plot(n, g["margin_median"], "o", ms=4, color=c, label=f"{s}: median",
                        zorder=3)
                ax.vlines(n, g["margin_q05"], g["margin_q95"], color=c, lw=1, zorder=3)
                grid_n = np.unique(np.geomspace(n.min(), n.max(), 60).round()).astype(int)
                shape = {"side": float(g["side"].iloc[0]), "dim": int(g["dim"].iloc[0]),
                         "classes": grid_n}
                ax.plot(grid_n, margin_bound(**shape, delta=delta), color=c, lw=1.2,
                        gid="margin_bound", label="_bound")
                ax.plot(grid_n, margin_bound(**shape, delta=math.log(2.0)), color=c, lw=1,
                        ls="--", gid="margin_asymptotic", label="_asymptotic")
            ax.plot([], [], color="0.3", lw=1.2,
                    label=f"lower bound {bound_math(margin_bound)}, "
                          f"{symbol_math(margin_bound, 'delta')} = {delta:g}")
            ax.plot([], [], color="0.3", lw=1, ls="--",
                    label=f"asymptotic median ({symbol_math(margin_bound, 'delta')} = ln 2)")
            bad = first[first["status"] == "violated"]
            if len(bad):
                lows = [margin_bound(side=float(r["side"]), dim=int(r["dim"]),
                                     classes=int(r["classes"]), delta=delta)
                        for _, r in bad.iterrows()]
                _mark_violations(ax, bad["classes"].to_numpy(float), np.array(lows),
                                 label="lower bound violated")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"classes {symbol_math(margin_bound, 'classes')}")
            ax.set_ylabel(f"margin {symbol_math('new_classes_rate', 'margin')} "
                          "(median, 5-95% range)")
            ax.set_title("cube margin")
        figure_legend(fig, axes)
    return no_minor_ticks(fig)


# --------------------------------------------------------------------------------------------
# E5: tightness search
# --------------------------------------------------------------------------------------------
def _base_bound(label: str) -> str:
    """"nearest_mean[C=1]" -> "nearest_mean"."""
    return label.split("[", 1)[0]


def with_k_way_items(frame: Any) -> Any:
    """``frame`` with ``theory_item`` "T1b" on k-way rows (``ways`` > 2) of T1's bound.

    :data:`ncbounds.bounds.nearest_mean` is T1 for two classes and T1b for more; E1 labels
    its rows so, and rows that say "T1" with ``ways`` > 2 are relabelled here.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"bound": ["nearest_mean", "nearest_mean[C=1]", "known_means"],
    ...                   "theory_item": ["T1", "T1", "T1d"], "ways": [3, 2, 3]})
    >>> with_k_way_items(f)["theory_item"].tolist()
    ['T1b', 'T1', 'T1d']
    """
    if "ways" not in frame.columns:
        return frame
    k_way = ((frame["bound"].map(_base_bound) == "nearest_mean")
             & (frame["theory_item"] == "T1") & (frame["ways"].astype(float) > 2))
    if not k_way.any():
        return frame
    return frame.assign(theory_item=frame["theory_item"].where(~k_way, "T1b"))


def plot_tightness(frame: Any) -> Any:
    r"""The best measured / bound ratio found per bound by the tightness search (E5).

    One horizontal bar per bound and theory item (the best search over its configurations,
    so T1 and T1b, both :data:`ncbounds.bounds.nearest_mean`, get a bar each; the label names
    the bound with its formula, or the changed constant, e.g. ``nearest_mean[C=1]``), on a
    log axis with ratio 1 drawn (``gid="ratio_one"``): a bar beyond 1 is a violation (a
    cross, ``gid="violations"``, when the independent re-measurement's verdict is
    *violated*); the distance of a valid bound's bar from 1 is how far from tight it is
    on the families searched. The re-measurement's confidence interval, divided by the
    bound, is drawn as an error bar.

    Columns: ``bound``, ``theory_item``, ``ratio``, ``status``; optional ``bound_value``,
    ``ci_low``, ``ci_high``, ``dim``, ``atoms``, ``shots``, ``ways``.
    """
    frame = with_k_way_items(check_frame(frame, ["bound", "theory_item", "ratio", "status"]))
    bounds = registry()
    best = frame.loc[frame.groupby(["bound", "theory_item"], sort=True)["ratio"].idxmax()]
    best = best.assign(_key=[_item_key(t) for t in best["theory_item"]])
    best = best.sort_values(["_key", "bound"], ascending=False, kind="stable")
    ratio = best["ratio"].to_numpy(float)
    pos = ratio[np.isfinite(ratio) & (ratio > 0)]
    floor = float(pos.min()) / 3 if pos.size else 1e-3
    labels = []
    for _, r in best.iterrows():
        name = _base_bound(r["bound"])
        if name != r["bound"] or name not in bounds:
            labels.append(f"{r['theory_item']}: {r['bound']}")
        else:
            labels.append(f"{r['theory_item']}: {bound_math(name)}")
    y = np.arange(len(best))
    with style():
        fig, (ax,) = new_figure(1, panel=(6.4, 0.55 * len(best) + 1.4))
        shown = np.maximum(ratio, floor)
        bar_colors = [_VIOLATION_COLOR if v > 1 else colors(1)[0] for v in ratio]
        ax.barh(y, shown, left=0, color=bar_colors, height=0.6, zorder=2, gid="ratio_bars")
        if {"bound_value", "ci_low", "ci_high"} <= set(best.columns):
            bv = best["bound_value"].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                lo = np.maximum(best["ci_low"].to_numpy(float) / bv, floor)
                hi = np.maximum(best["ci_high"].to_numpy(float) / bv, floor)
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.hlines(y[ok], lo[ok], hi[ok], color="black", lw=1.2, zorder=3)
        ax.axvline(1.0, color="black", ls="--", lw=1, gid="ratio_one",
                   label="measured = bound")
        bad = best["status"].to_numpy(str) == "violated"
        _mark_violations(ax, shown[bad], y[bad])
        for yi, v in zip(y, ratio):
            ax.annotate(f"{v:.3g}", (max(v, floor), yi), textcoords="offset points",
                        xytext=(9, -3), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlim(floor, max(2.0, float(np.nanmax(shown)) * 3))
        ax.set_yticks(y, labels)
        ax.grid(False, axis="y")
        ax.set_xlabel("best measured / bound found (ratio > 1: violation)")
        ax.set_title("tightness search")
        figure_legend(fig, [ax])
    return no_minor_ticks(fig)
