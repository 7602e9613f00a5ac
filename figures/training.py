r"""Plotters and tables of the trained-network experiments N1–N3 (issue 5).

The paper's evidence (Galanti, György & Hutter, ICLR 2022, §5, Fig. 1): a network trained
with cross-entropy on source classes has its CDNV (THEORY.md T0, the paper's "NV") fall on
the training samples, on held-out samples of the same classes (T3) and on new classes (T4),
while the few-shot accuracy of a simple head on the new classes rises (T1). The frames are
those of :func:`simulations.training.run_training_experiment` (``load_results(path,
name="n1")`` etc.; columns in the docstring of :mod:`simulations.training`): long form, one
row per (run, epoch, split, metric), with ``value`` and, for few-shot rows, ``head``,
``shots``, ``ci_low`` and ``ci_high`` (95% Student-t interval over episodes).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._style import (
    check_frame,
    figure_legend,
    log_ticks,
    new_figure,
    no_minor_ticks,
    palette,
    style,
    symbol_math,
)
from .tables import markdown_table

__all__ = ["plot_training_curves", "plot_transferability", "fewshot_table_markdown",
           "final_runs"]

_SPLITS = (("source_train", "source-train"), ("source_test", "source-test"),
           ("target", "target (new classes)"))
_CURVE_COLUMNS = ["run", "epoch", "split", "metric", "value", "n_source_classes"]
#: configuration columns that vary across the N3 runs (one at a time around a base run)
_VARIED = (("weight_decay", "wd"), ("label_smoothing", "ls"), ("epochs", "epochs"),
           ("width", "width"))


def _fewshot(frame: Any, *, split: str, head: str, shots: int) -> Any:
    sel = ((frame["split"] == split) & (frame["metric"] == "fewshot_accuracy")
           & (frame["head"] == head) & (frame["shots"] == shots))
    return frame[sel]


def plot_training_curves(frame: Any, *, head: str = "ridge", shots: tuple[int, ...] = (1, 5),
                         hue: str = "n_source_classes") -> Any:
    r"""The paper's training figure: four panels against epoch (N1, N2).

    Panels: CDNV :math:`V` (THEORY.md T0, "NV") on source-train, source-test and target
    (shared log y axis), and the 5-way few-shot accuracy of ``head`` on the target classes
    (one line style per number of ``shots``, with the 95% interval as a band). One line per
    run, coloured by ``hue`` (default: the number of source classes, so N2's runs line up by
    l). Every line carries ``gid="curve"``.

    Columns: ``run``, ``epoch``, ``split``, ``metric``, ``value``, ``n_source_classes`` (or
    ``hue``), and for the accuracy panel ``head``, ``shots``, ``ci_low``, ``ci_high``.
    """
    frame = check_frame(frame, list(dict.fromkeys([*_CURVE_COLUMNS, hue])))
    levels = sorted(frame[hue].dropna().unique())
    def name(level: Any) -> str:
        if hue == "n_source_classes":
            return f"{symbol_math('new_classes', 'sources')} = {level} source classes"
        return f"{hue} = {level}"

    colour_of = palette(levels)
    styles = dict(zip(sorted(shots), ("--", "-", ":", "-.")))
    cdnv_symbol = symbol_math("nearest_mean", "cdnv")
    with style():
        fig, axes = new_figure(4, panel=(3.0, 2.8))
        for ax in axes[1:3]:
            ax.sharey(axes[0])
        for ax, (split, title) in zip(axes[:3], _SPLITS):
            rows = frame[(frame["split"] == split) & (frame["metric"] == "cdnv")]
            for (level, run), g in rows.groupby([hue, "run"], sort=True):
                g = g.sort_values("epoch")
                ax.plot(g["epoch"], g["value"], "o-", ms=3, color=colour_of[level], gid="curve",
                        label=name(level))
            ax.set_yscale("log")
            ax.set_title(f"NV {title}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"CDNV {cdnv_symbol}")
        for ax in axes[:3]:  # after every set_yscale: a shared axis resets its siblings' ticks
            log_ticks(ax)
        ax = axes[3]
        has_fewshot = "head" in frame.columns and "shots" in frame.columns
        for n in sorted(shots) if has_fewshot else ():
            rows = _fewshot(frame, split="target", head=head, shots=n)
            for (level, run), g in rows.groupby([hue, "run"], sort=True):
                g = g.sort_values("epoch")
                c = colour_of[level]
                ax.plot(g["epoch"], g["value"], marker="o", ms=3, ls=styles[n], color=c,
                        gid="curve", label=name(level))
                if {"ci_low", "ci_high"} <= set(g.columns):
                    ax.fill_between(g["epoch"].to_numpy(float), g["ci_low"].to_numpy(float),
                                    g["ci_high"].to_numpy(float), color=c, alpha=0.15, lw=0)
            ax.plot([], [], ls=styles[n], color="0.3", label=f"{n}-shot")
        ax.set_title(f"few-shot accuracy ({head}, target)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        figure_legend(fig, axes)
    return no_minor_ticks(fig)


def final_runs(frame: Any) -> Any:
    """One row per run at its last epoch (:func:`simulations.training.summarize`) with a
    ``variant`` column naming what differs from the most common setting (e.g. "wd=0")."""
    from simulations.training import summarize

    check_frame(frame, ["run", "epoch", "split", "metric", "value"])
    runs = summarize(frame).reset_index(drop=True)
    runs["variant"] = runs["run"].map(_variants(frame)).fillna("base")
    return runs


def plot_transferability(frame: Any, *, head: str = "ridge", shots: int = 5) -> Any:
    r"""Target CDNV against few-shot accuracy across pretraining choices (N3).

    One point per run at its last epoch (x: the CDNV :math:`V` of the target classes, log
    scale; y: the ``shots``-shot accuracy of ``head`` on the target classes, with its 95%
    interval), labelled by the setting that differs from the base run. The title carries
    Spearman's rank correlation with its 95% Fisher-z interval
    (:func:`simulations.training.spearman_with_ci`; Li et al., "What deep representations
    should we learn? A neural collapse perspective"). Points: ``gid="runs"``.
    """
    from simulations.training import spearman_with_ci

    runs = final_runs(frame)
    ycol = f"fewshot_{head}_{shots}shot"
    if ycol not in runs.columns:
        check_frame(runs, ["target_cdnv", ycol], name="frame (per-run summary)")
    x = runs["target_cdnv"].to_numpy(float)
    y = runs[ycol].to_numpy(float)
    ci = _final_intervals(frame, runs, head=head, shots=shots)
    parts = _variant_parts(frame)
    families = sorted({p[0][0] if p else "base" for p in parts.values()},
                      key=lambda k: (k != "base", k))
    colour_of = palette(families)
    with style():
        fig, (ax,) = new_figure(1, panel=(5.6, 3.6))
        ax.errorbar(x, y, yerr=ci, fmt="none", ecolor="0.6", lw=0.8, zorder=2)
        for xi, yi, run, label in zip(x, y, runs["run"], runs["variant"]):
            p = parts.get(run, [])
            family = p[0][0] if p else "base"
            marker = {-1: "v", 1: "^"}.get(p[0][2], "s") if p else "o"
            ax.scatter([xi], [yi], s=36, marker=marker, color=colour_of[family],
                       edgecolor="black", linewidth=0.4, zorder=3, gid="runs", label=label)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small",
                  title="run")
        ax.set_xscale("log")
        log_ticks(ax, "x")
        ax.set_xlabel(f"target CDNV {symbol_math('nearest_mean', 'cdnv')} (new classes)")
        ax.set_ylabel(f"{shots}-shot accuracy ({head}, target)")
        if len(runs) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            r = spearman_with_ci(x, y)
            interval = ("" if math.isnan(r["ci_low"])
                        else f", 95% CI [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")
            ax.set_title(f"Spearman $\\rho$ = {r['spearman']:.2f}{interval} ({len(runs)} runs)")
        else:
            ax.set_title(f"rank correlation undefined ({len(runs)} runs)")
    return no_minor_ticks(fig)


def _final_intervals(frame: Any, runs: Any, *, head: str, shots: int) -> np.ndarray:
    """(2, runs) half-widths of the final few-shot intervals (0 where unknown)."""
    out = np.zeros((2, len(runs)))
    if not {"head", "shots", "ci_low", "ci_high"} <= set(frame.columns):
        return out
    rows = _fewshot(frame, split="target", head=head, shots=shots)
    for i, (run, epoch, value) in enumerate(
            zip(runs["run"], runs["epoch"], runs[f"fewshot_{head}_{shots}shot"])):
        g = rows[(rows["run"] == run) & (rows["epoch"] == epoch)]
        if len(g):
            out[0, i] = max(0.0, value - float(g["ci_low"].iloc[0]))
            out[1, i] = max(0.0, float(g["ci_high"].iloc[0]) - value)
    return out


def fewshot_table_markdown(frame: Any, *, split: str = "target", digits: int = 3) -> str:
    """Few-shot accuracy at each run's last epoch with its 95% interval, as a Markdown table.

    One row per run (its sweep, model, number of source classes, the setting that differs
    from the base run, and the epoch); one column per (head, shots), each cell
    ``accuracy [low, high]``.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"run": "a", "sweep": "n1", "model": "mlp", "n_source_classes": 8,
    ...     "epoch": [3, 3], "split": "target", "metric": "fewshot_accuracy",
    ...     "value": [0.5, 0.7], "head": "ridge", "shots": [1, 5], "ways": 5,
    ...     "ci_low": [0.45, 0.66], "ci_high": [0.55, 0.74]})
    >>> print(fewshot_table_markdown(f))
    | sweep | model | l | variant | epoch | ridge 1-shot | ridge 5-shot |
    |---|---|---|---|---|---|---|
    | n1 | mlp | 8 | base | 3 | 0.500 [0.450, 0.550] | 0.700 [0.660, 0.740] |
    """
    frame = check_frame(frame, ["run", "epoch", "split", "metric", "value", "head", "shots",
                                "ci_low", "ci_high"])
    rows = frame[(frame["split"] == split) & (frame["metric"] == "fewshot_accuracy")]
    check_frame(rows, ["value"], name=f"frame (few-shot rows of split {split!r})")
    group = ["sweep", "run"] if "sweep" in rows.columns else ["run"]
    last = rows.groupby(group)["epoch"].transform("max")
    rows = rows[rows["epoch"] == last]
    keys = sorted({(str(h), int(s)) for h, s in zip(rows["head"], rows["shots"])},
                  key=lambda k: (k[0] != "ridge", k))
    variants = _variants(frame)
    records = []
    for key, g in rows.groupby(group, sort=False):
        run = key[-1]
        first = g.iloc[0]
        rec = {"sweep": first.get("sweep", ""), "model": first.get("model", ""),
               "l": first.get("n_source_classes", ""), "variant": variants.get(run, "base"),
               "epoch": int(first["epoch"])}
        for h, s in keys:
            cell = g[(g["head"] == h) & (g["shots"] == s)]
            rec[f"{h} {s}-shot"] = "" if cell.empty else (
                f"{cell['value'].iloc[0]:.{digits}f} [{cell['ci_low'].iloc[0]:.{digits}f}, "
                f"{cell['ci_high'].iloc[0]:.{digits}f}]")
        records.append(rec)
    import pandas as pd

    table = pd.DataFrame(records).sort_values(["sweep", "l", "variant"], kind="stable")
    return markdown_table(table)


def _variant_parts(frame: Any) -> dict[str, list[tuple[str, Any, int]]]:
    """Per run: the (short name, value, sign) of each pretraining setting that differs from
    the most common one across the runs of its sweep (sign: -1 lower, +1 higher, 0 not
    ordered). The number of source classes and the model have columns of their own."""
    cols = [c for c, _ in _VARIED if c in frame.columns]
    if not cols or "run" not in frame.columns:
        return {}
    if "sweep" in frame.columns and frame["sweep"].nunique() > 1:
        out: dict[str, list[tuple[str, Any, int]]] = {}
        for _, g in frame.groupby("sweep", sort=True):
            out.update(_variant_parts(g.drop(columns="sweep")))
        return out
    per_run = frame.drop_duplicates("run").set_index("run")[cols]
    out = {}
    for run, row in per_run.iterrows():
        parts = []
        for col, short in _VARIED:
            if col in per_run.columns and per_run[col].nunique(dropna=False) > 1:
                mode = per_run[col].mode().iloc[0]
                if row[col] != mode:
                    v = row[col]
                    ordered = isinstance(v, numbers.Real) and isinstance(mode, numbers.Real)
                    parts.append((short, v, (1 if v > mode else -1) if ordered else 0))
        out[run] = parts
    return out


def _variants(frame: Any) -> dict[str, str]:
    """Per run, a label such as "wd=0" naming what differs from the base run ("base")."""
    return {run: ", ".join(f"{k}={v:g}" if isinstance(v, numbers.Real) else f"{k}={v}"
                           for k, v, _ in parts) or "base"
            for run, parts in _variant_parts(frame).items()}
