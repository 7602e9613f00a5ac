"""Shared plumbing of the plotters: local styling, LaTeX labels from the Bounds, stable saving.

Everything here works on :class:`matplotlib.figure.Figure` objects (Agg for PNG, matplotlib's
PDF backend for PDF) and never on pyplot's global state: styles are applied with context
managers around the construction of a figure, so importing or calling the plotters changes
no global setting of the caller.

Labels: every formula shown on a figure is read from a :class:`ncbounds.bounds.Bound`
(``bound.latex``, or the sympy expression it holds), never retyped (DESIGN.md, "Bound").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import seaborn as sns
import sympy as sp
from matplotlib.figure import Figure

from ncbounds._errors import NCBoundsError
from ncbounds._validation import describe
from ncbounds.bounds import Bound, registry

__all__ = [
    "FORMATS",
    "bound_math",
    "check_frame",
    "colors",
    "figure_legend",
    "log_floor",
    "markers",
    "palette",
    "log_ticks",
    "no_minor_ticks",
    "new_figure",
    "save_figure",
    "style",
    "symbol_math",
]

#: the formats written side by side by :func:`save_figure`
FORMATS = ("png", "pdf")
#: colour-blind-safe palette (seaborn's "colorblind", after Wong 2011)
PALETTE = "colorblind"
#: metadata that would otherwise carry a timestamp or a version string
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": "ncbounds figures", "CreationDate": None,
            "ModDate": None},
}
#: settings applied (locally) while a figure is built and saved
_RC = {
    "svg.hashsalt": "ncbounds",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same glyphs everywhere
    "mathtext.fontset": "dejavusans",
    "axes.titlesize": "medium",
    "legend.frameon": True,
    "legend.framealpha": 0.85,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Seaborn's whitegrid / paper styling and stable-output settings, for this block only."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), mpl.rc_context(_RC):
        yield


def colors(n: int) -> list[tuple[float, float, float]]:
    """``n`` colours of the colour-blind-safe palette (cycled when n exceeds it)."""
    base = sns.color_palette(PALETTE)
    return [base[i % len(base)] for i in range(max(int(n), 0))]


def palette(keys: Sequence[Any]) -> dict[Any, tuple[float, float, float]]:
    """One colour of the palette per key, in order."""
    return dict(zip(keys, colors(len(keys))))


_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "<", ">", "h")


def markers(keys: Sequence[Any]) -> dict[Any, str]:
    """One marker style per key, in order (cycled)."""
    return {k: _MARKERS[i % len(_MARKERS)] for i, k in enumerate(keys)}


def new_figure(ncols: int, nrows: int = 1, *, panel: tuple[float, float] = (3.6, 3.0),
               sharex: bool = False, sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A styled figure with a grid of axes (returned as a flat array), constrained layout.

    Call it inside :func:`style` so the axes pick up the local styling.
    """
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes.ravel()


def save_figure(fig: Figure, stem: str | Path, *, dpi: float = 150,
                formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.pdf`` (by default); the same bytes every time.

    No timestamps or version strings go into the files (PNG ``Software``, PDF
    ``CreationDate``/``ModDate``/``Creator`` removed, a fixed ``Producer``), fonts are the
    DejaVu fonts shipped with matplotlib, and the SVG hash salt is fixed, so two saves of
    the same figure give byte-identical files.

    >>> import tempfile, pathlib
    >>> with style():
    ...     fig, (ax,) = new_figure(1)
    ...     _ = ax.plot([1, 2], [3, 4])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = save_figure(fig, pathlib.Path(tmp) / "line", dpi=50)
    ...     names = [p.name for p in paths]
    >>> names
    ['line.png', 'line.pdf']
    """
    if not isinstance(fig, Figure):
        raise NCBoundsError(f"fig: expected a matplotlib Figure, got {describe(fig)}")
    unknown = [f for f in formats if f not in _METADATA]
    if unknown or not formats:
        raise NCBoundsError(f"formats: expected some of {list(_METADATA)}, got {list(formats)}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with mpl.rc_context(_RC):
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(path, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            paths.append(path)
    return paths


def _bound(bound: str | Bound) -> Bound:
    if isinstance(bound, Bound):
        return bound
    bounds = registry()
    if bound not in bounds:
        raise NCBoundsError(f"bound: expected one of {', '.join(bounds)}, got {bound!r}")
    return bounds[bound]


def bound_math(bound: str | Bound) -> str:
    """The bound's formula as a mathtext string ``$...$``, from its sympy expression.

    Matplotlib's mathtext has no ``cases`` environment, so a piecewise bound (T3: finite
    when the empirical means are far enough apart, +inf otherwise) shows its finite piece.

    >>> bound_math("spherical")
    '$16 V \\\\left(\\\\frac{1}{p} + \\\\frac{2}{n}\\\\right)$'
    """
    b = _bound(bound)
    if isinstance(b.expr, sp.Piecewise):
        return f"${sp.latex(b.expr.args[0].expr)}$"
    return f"${b.latex}$"


def symbol_math(bound: str | Bound, keyword: str) -> str:
    """The symbol of one keyword of a bound as mathtext, e.g. ``"$\\\\delta$"``.

    >>> symbol_math("new_samples_rademacher", "delta"), symbol_math("nearest_mean", "cdnv")
    ('$\\\\delta$', '$V$')
    """
    b = _bound(bound)
    if keyword not in b.symbols:
        raise NCBoundsError(f"keyword: expected one of {', '.join(b.symbols)} for {b.name}, "
                            f"got {keyword!r}")
    return f"${sp.latex(b.symbols[keyword])}$"


def check_frame(frame: Any, columns: Sequence[str], name: str = "frame") -> Any:
    """``frame`` if it is a non-empty DataFrame with ``columns``, else :class:`NCBoundsError`."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise NCBoundsError(f"{name}: expected a pandas DataFrame, got {describe(frame)}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NCBoundsError(
            f"{name}: expected the columns {list(columns)}, missing {missing}; got "
            f"{list(frame.columns)}"
        )
    if frame.empty:
        raise NCBoundsError(f"{name}: expected at least one row, got an empty frame")
    return frame


def no_minor_ticks(fig: Figure) -> Figure:
    """Remove minor ticks on every axis of ``fig`` (invisible in the whitegrid style anyway;
    on log axes they cost most of the drawing time)."""
    from matplotlib import ticker

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_locator(ticker.NullLocator())
    return fig


def log_ticks(ax: Any, axis: str = "y") -> None:
    """Readable labelled ticks on a log axis that spans few decades (call after plotting).

    Matplotlib labels only powers of ten, so an axis from 0.7 to 2 shows a single label;
    here short spans get ticks at 1–9 × 10^k (under 0.6 decades), 1, 2, 3, 5 × 10^k (under
    two) or 1, 2, 5 × 10^k (under four), written as plain numbers (``%g``).
    """
    from matplotlib import ticker

    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if not (lo > 0 and hi > lo):
        return
    decades = math.log10(hi / lo)
    if decades < 0.6:
        subs: Any = tuple(range(1, 10))
    elif decades < 2:
        subs = (1.0, 2.0, 3.0, 5.0)
    elif decades < 4:
        subs = (1.0, 2.0, 5.0)
    else:
        return
    target.set_major_locator(ticker.LogLocator(subs=subs, numticks=99))
    target.set_major_formatter(ticker.FormatStrFormatter("%g"))
    target.set_minor_formatter(ticker.NullFormatter())


def figure_legend(fig: Figure, axes: Sequence[Any]) -> None:
    """One legend for the figure below the panels, each label of ``axes`` once (labels
    starting with "_" are left out, as matplotlib does)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_") and label not in seen:
                seen[label] = handle
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=max(1, min(3, len(seen), int(fig.get_figwidth() // 3.4))))


def log_floor(values: np.ndarray, *, decades: float = 2.0) -> float:
    """A floor for log axes: ``decades`` below the smallest positive finite value (or 1e-4).

    Values below the floor are drawn at the floor with a 'below the axis' marker.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 1e-4
    return 10.0 ** (math.floor(math.log10(v.min())) - decades)
