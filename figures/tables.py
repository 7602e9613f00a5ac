"""Markdown tables of verdicts and coverage (THEORY.md, "What a check means").

Plain GitHub-flavoured Markdown, written without extra dependencies; numbers are formatted
with a fixed number of significant digits so that the same frame always gives the same text.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from ncbounds.verdict import check_coverage

from ._style import check_frame

__all__ = ["markdown_table", "verdict_table", "coverage_table"]

_STATUSES = ("holds", "violated", "inconclusive")


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: Any, *, digits: int = 3) -> str:
    """A DataFrame as a Markdown table (floats to ``digits`` significant digits, NaN empty).

    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.12345, float("nan")]})))
    | a | b |
    |---|---|
    | 1 | 0.123 |
    | 2 |  |
    """
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def verdict_table(frame: Any, *, by: Sequence[str] = ("theory_item", "bound", "family")) -> Any:
    """Verdict counts of bound-vs-measurement rows, one line per group of ``by``.

    Columns: the ``by`` keys, ``cells``, ``holds``, ``violated``, ``inconclusive``,
    ``vacuous`` (bound ≥ 1 for a probability), ``median ratio`` and ``max ratio`` (measured
    / bound over the informative cells; 1 would be tight, above 1 a violation).

    >>> import pandas as pd
    >>> f = pd.DataFrame({"theory_item": "T1", "bound": "nearest_mean", "family": "g",
    ...     "status": ["holds", "holds", "violated"], "vacuous": [False, True, False],
    ...     "ratio": [0.1, 0.01, 2.0]})
    >>> print(markdown_table(verdict_table(f, by=["family"])))
    | family | cells | holds | violated | inconclusive | vacuous | median ratio | max ratio |
    |---|---|---|---|---|---|---|---|
    | g | 3 | 2 | 1 | 0 | 1 | 1.05 | 2 |
    """
    by = [c for c in by if c in frame.columns]
    check_frame(frame, [*by, "status", "vacuous", "ratio"])
    import pandas as pd

    out = []
    for key, g in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        vacuous = g["vacuous"].astype(bool)
        informative = g.loc[~vacuous, "ratio"].astype(float)
        out.append({
            **dict(zip(by, key)), "cells": len(g),
            **{s: int((g["status"] == s).sum()) for s in _STATUSES},
            "vacuous": int(vacuous.sum()),
            "median ratio": float(informative.median()) if len(informative) else math.nan,
            "max ratio": float(informative.max()) if len(informative) else math.nan,
        })
    return pd.DataFrame(out)


def coverage_table(frame: Any, *, by: Sequence[str], confidence: float | None = None) -> Any:
    """Coverage of a probability-δ statement pooled over the rows of each group of ``by``.

    Sums ``violations`` and ``draws`` per group (``by`` should include ``delta``) and
    re-tests the pooled violation rate against δ with
    :func:`ncbounds.verdict.check_coverage` at ``confidence`` (default: the rows' own
    ``confidence``). With ``vacuous_draws`` in the rows, the pooled fraction of draws whose
    bound was vacuous is added.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"samples": [100, 100], "delta": 0.05, "violations": [0, 1],
    ...     "draws": [100, 100], "confidence": 0.99})
    >>> print(markdown_table(coverage_table(f, by=["samples", "delta"])))
    | samples | delta | draws | violations | violation rate | verdict |
    |---|---|---|---|---|---|
    | 100 | 0.05 | 200 | 1 | 0.005 | holds |
    """
    by = [c for c in by if c in frame.columns]
    frame = check_frame(frame, [*by, "delta", "violations"])
    import pandas as pd

    draws_col = "draws" if "draws" in frame.columns else None
    out = []
    for key, g in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        delta = float(g["delta"].iloc[0])
        draws = int(g[draws_col].sum()) if draws_col else len(g)
        violations = int(g["violations"].sum())
        level = confidence if confidence is not None else float(g["confidence"].iloc[0]) \
            if "confidence" in g.columns else 0.99
        cov = check_coverage(violations, draws, delta, confidence=level)
        rec = {**dict(zip(by, key)), "draws": draws, "violations": violations,
               "violation rate": cov.rate, "verdict": cov.status}
        if "vacuous_draws" in g.columns:
            rec["vacuous fraction"] = float(g["vacuous_draws"].sum()) / max(draws, 1)
        out.append(rec)
    return pd.DataFrame(out)
