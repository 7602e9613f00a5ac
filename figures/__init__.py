"""figures: the bound, the measurement and the verdict at a glance, and the one-command report.

The top layer of ncbounds (DESIGN.md: ``ncbounds`` ← ``simulations`` ← ``figures``). Every
plotter takes the tidy DataFrame of one experiment and returns a
:class:`matplotlib.figure.Figure` (no pyplot global state; seaborn styling applied locally;
colour-blind-safe palette; formulas read from the :class:`ncbounds.bounds.Bound` objects).
:func:`reproduce` runs the experiments E1–E5 and N1–N3 into one resumable store and writes
every figure (PNG and PDF, byte-stable) and ``report.md``.

Plotters (THEORY.md items; Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121):

- :func:`plot_bound_vs_measurement`: T1 / T1b / T1c against the measured error (E1)
- :func:`plot_spherical`: the slides' T2 form, the valid form and the measurement (E2)
- :func:`plot_new_samples_coverage`: T3 coverage and vacuous fraction against m (E3)
- :func:`plot_new_classes`: T4 gap against l, coverage, and the cube margin against N (E4)
- :func:`plot_tightness`: the best measured / bound ratio per bound (E5)
- :func:`plot_training_curves`, :func:`plot_transferability`,
  :func:`fewshot_table_markdown`: the trained networks (N1–N3)

>>> import figures
>>> figures.bound_math("nearest_mean")
'$16 V \\\\left(1 + \\\\frac{2}{n}\\\\right) \\\\left(k - 1\\\\right)$'
"""

from __future__ import annotations

from ._style import bound_math, save_figure, style, symbol_math
from .plots import (
    plot_bound_vs_measurement,
    plot_new_classes,
    plot_new_samples_coverage,
    plot_spherical,
    plot_tightness,
)
from .report import reproduce, write_gallery, write_report
from .tables import coverage_table, markdown_table, verdict_table
from .training import fewshot_table_markdown, plot_training_curves, plot_transferability

__all__ = [
    "bound_math",
    "coverage_table",
    "fewshot_table_markdown",
    "markdown_table",
    "plot_bound_vs_measurement",
    "plot_new_classes",
    "plot_new_samples_coverage",
    "plot_spherical",
    "plot_tightness",
    "plot_training_curves",
    "plot_transferability",
    "reproduce",
    "save_figure",
    "style",
    "symbol_math",
    "verdict_table",
    "write_gallery",
    "write_report",
]
