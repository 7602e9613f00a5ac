r"""The one-command reproduction: run every experiment, draw every figure, write ``report.md``.

:func:`reproduce` runs the simulation experiments E1–E5
(:func:`simulations.experiments.run_experiment`) and the trained-network experiments
(:func:`simulations.training.run_training_experiment`) into one store, ``OUT/results.sqlite``,
then :func:`write_report` reads the store and writes ``OUT/figures/*.png`` and ``*.pdf``
(byte-stable) and ``OUT/report.md``: one section per statement of THEORY.md with the
statement (LaTeX, from the :class:`ncbounds.bounds.Bound`), its assumptions, the figure,
the verdict table and the tightness found by the search E5. Finished cells and finished
training runs are reused from the store, so a rerun computes nothing and takes seconds.

Scales (``size``):

=======  =====================  =============================================================
size     simulations (E1–E5)    trained networks
=======  =====================  =============================================================
tiny     "tiny" grids           N1 at "tiny" (tests; seconds)
quick    "quick" grids          N1, N2, N3 at "quick" (small CNNs on glyphs)
full     "default" grids        N1, N2, N3 at "full" (meant for a GPU)
=======  =====================  =============================================================

The quick scale is the ``ncbounds reproduce --quick`` command: at most 10 minutes on 2 CPU
cores (measured: about 5.5 minutes on a lightly loaded 2-core machine, glyphs rendered in the
run; a rerun takes seconds).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncbounds._errors import NCBoundsError
from ncbounds._validation import describe
from ncbounds.bounds import Bound, registry

from ._style import save_figure
from .plots import (
    _base_bound,
    plot_bound_vs_measurement,
    plot_new_classes,
    plot_new_samples_coverage,
    plot_spherical,
    plot_tightness,
    with_k_way_items,
)
from .tables import coverage_table, markdown_table, verdict_table
from .training import (
    fewshot_table_markdown,
    final_runs,
    plot_training_curves,
    plot_transferability,
)

__all__ = ["PLANS", "reproduce", "write_report", "write_gallery"]

STORE = "results.sqlite"
FIGURES = "figures"
REPORT = "report.md"


@dataclass(frozen=True)
class Plan:
    """What one scale runs: the simulation size and (experiment, size) training runs."""

    simulations: str
    training: tuple[tuple[str, str], ...]


PLANS = {
    "tiny": Plan("tiny", (("n1", "tiny"),)),
    "quick": Plan("quick", (("n1", "quick"), ("n2", "quick"), ("n3", "quick"))),
    "full": Plan("default", (("n1", "full"), ("n2", "full"), ("n3", "full"))),
}
_SIMULATIONS = ("e1", "e2", "e3", "e4", "e5")


def _resolve_size(quick: Any, full: Any, size: Any) -> str:
    for name, value in (("quick", quick), ("full", full)):
        if not isinstance(value, bool):
            raise NCBoundsError(f"{name}: expected True or False, got {describe(value)}")
    if size is not None:
        if size not in PLANS:
            raise NCBoundsError(f"size: expected None or one of {', '.join(map(repr, PLANS))}, "
                                f"got {size!r}")
        return size
    return "full" if full or not quick else "quick"


def reproduce(
    *,
    out: str | os.PathLike,
    quick: bool = True,
    full: bool = False,
    device: str = "auto",
    executor: Any = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    size: str | None = None,
) -> Path:
    """Run E1–E5 and the trained-network experiments, then write the figures and the report.

    Parameters
    ----------
    out
        Output folder: ``results.sqlite`` (the resumable store), ``checkpoints/``,
        ``figures/`` and ``report.md``. A rerun reuses every finished cell and run.
    quick, full
        The scale: ``full=True`` is paper scale (default grids, N1–N3 at "full"; meant for a
        GPU), otherwise ``quick=True`` (the default) is the CPU scale of at most 10 minutes
        on 2 cores; ``quick=False`` alone also means full.
    device
        Torch device of the training runs ("auto": CUDA when present).
    executor, n_jobs
        Where the simulation cells run (:func:`simulations.sweep.run_sweep`): a local
        process pool of ``n_jobs`` workers by default, any Executor, a dask Client or
        "dask://host:port".
    progress
        Progress bars and summaries: None shows them on a terminal, True always, False never.
    size
        Overrides ``quick``/``full``: "tiny" (tests), "quick" or "full" (see the module
        docstring).

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    from simulations.experiments import run_experiment
    from simulations.training import run_training_experiment

    name = _resolve_size(quick, full, size)
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise NCBoundsError(f"out: expected a folder path, got {describe(out)}")
    folder = Path(out).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise NCBoundsError(f"out: expected a folder, got the file {folder}")
    plan = PLANS[name]
    for key in _SIMULATIONS:
        run_experiment(key, out=folder, size=plan.simulations, n_jobs=n_jobs,
                       executor=executor, progress=progress)
    for key, train_size in plan.training:
        run_training_experiment(key, out=folder, size=train_size, device=device,
                                progress=progress)
    return write_report(folder / STORE, out=folder, size=name)


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------
def _grid_keys(size: str) -> dict[str, set[str]]:
    """The cell keys of each simulation experiment's grid at the reproduce scale ``size``."""
    from simulations.experiments import EXPERIMENTS
    from simulations.sweep import cell_key

    grid = PLANS[size].simulations
    return {key: {cell_key(spec.cell, c, s) for c in spec.configs(grid) for s in spec.seeds[grid]}
            for key, spec in EXPERIMENTS.items()}


def _frames(store: Path, size: str | None = None) -> dict[str, Any]:
    """Every sweep of the store that the report knows, by name (absent ones left out).

    With ``size``, the simulation sweeps keep only the cells of that scale's grids (a
    folder that also holds cells of another scale reports this one only)."""
    import sqlite3

    from simulations.sweep import load_results

    store = Path(store)
    if not store.is_file():
        raise NCBoundsError(f"store: expected an existing results.sqlite, got {store}")
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        names = {r[0] for r in conn.execute("SELECT DISTINCT sweep FROM sweep_cells")}
    except sqlite3.DatabaseError as exc:
        raise NCBoundsError(f"store: expected a sweep store, got {store} ({exc})") from None
    finally:
        conn.close()
    wanted = (*_SIMULATIONS, "n1", "n2", "n3", "n3-correlations")
    frames = {n: load_results(store, name=n) for n in wanted if n in names}
    if size is not None:
        for name, keys in _grid_keys(size).items():
            if name in frames:
                frames[name] = frames[name][frames[name]["cell_key"].isin(keys)]
    return frames


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _training_curves_frame(frames: dict[str, Any]) -> Any:
    """N1's rows, with N2's runs (other numbers of source classes) when they train the same
    model on the same data set (at the quick scale N2 is a tiny MLP run: left out)."""
    import pandas as pd

    n1, n2 = frames["n1"], frames.get("n2")
    setting = ["model", "dataset"]
    if n2 is None or any(c not in f.columns for f in (n1, n2) for c in setting):
        return n1

    def settings(f: Any) -> set:
        return set(map(tuple, f[setting].drop_duplicates().to_numpy()))

    return pd.concat([n1, n2], ignore_index=True) if settings(n1) == settings(n2) else n1


#: figure stem -> (the sweep it needs, the sweeps it draws, how to draw it from the frames)
_FIGURES: dict[str, tuple[str, tuple[str, ...], Callable[[dict], Any]]] = {
    "e1_nearest_mean": ("e1", ("e1",), lambda f: plot_bound_vs_measurement(f["e1"])),
    "e2_spherical": ("e2", ("e2",), lambda f: plot_spherical(f["e2"])),
    "e3_new_samples": ("e3", ("e3",), lambda f: plot_new_samples_coverage(f["e3"])),
    "e4_new_classes": ("e4", ("e4",), lambda f: plot_new_classes(f["e4"])),
    "e5_tightness": ("e5", ("e5",), lambda f: plot_tightness(f["e5"])),
    "n1_training_curves": ("n1", ("n1", "n2"),
                           lambda f: plot_training_curves(_training_curves_frame(f))),
    "n3_transferability": ("n3", ("n3",), lambda f: plot_transferability(f["n3"])),
}
_FINGERPRINTS = ".fingerprints.json"


def _code_digest() -> str:
    """A digest of the plotting code and library versions (a change redraws every figure)."""
    import matplotlib
    import seaborn

    h = hashlib.sha256(f"{matplotlib.__version__} {seaborn.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _fingerprint(code: str, frames: dict[str, Any], uses: Sequence[str], dpi: float,
                 formats: Sequence[str]) -> str:
    h = hashlib.sha256(f"{code} {dpi!r} {list(formats)}".encode())
    for name in uses:
        if name in frames:
            h.update(name.encode())
            h.update(frames[name].to_csv(index=False).encode())
    return h.hexdigest()


def _draw(frames: dict[str, Any], folder: Path, *, dpi: float, formats: Sequence[str],
          reuse: bool = True) -> dict[str, Path]:
    """Draw and save every figure whose sweep is present; stem -> PNG path.

    With ``reuse``, a figure whose files exist and whose inputs (rows drawn, plotting code,
    library versions, dpi) are unchanged since it was written is not drawn again: the
    fingerprints are kept in ``folder/.fingerprints.json``.
    """
    record = folder / _FINGERPRINTS
    known = {}
    if reuse:
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(record.read_text(encoding="utf-8"))
    code = _code_digest()
    written, current = {}, {}
    for stem, (needs, uses, draw) in _FIGURES.items():
        if needs not in frames or not len(frames[needs]):
            continue
        current[stem] = _fingerprint(code, frames, uses, dpi, formats)
        paths = [folder / f"{stem}.{fmt}" for fmt in formats]
        if known.get(stem) != current[stem] or not all(p.is_file() for p in paths):
            paths = save_figure(draw(frames), folder / stem, dpi=dpi, formats=formats)
        written[stem] = paths[0]
    if reuse and current != known:
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n",
                          encoding="utf-8")
    return written


def write_gallery(store: str | os.PathLike, dest: str | os.PathLike, *, dpi: float = 100,
                  size: str | None = "quick") -> list[Path]:
    """The PNG figures of a finished store into ``dest`` (small files for the README).

    Nothing is computed: the figures are drawn from the rows in ``store`` (only the cells of
    the ``size`` scale's simulation grids; None: all).
    """
    if size is not None:
        _resolve_size(True, False, size)
    frames = _frames(Path(store), size)
    written = _draw(frames, Path(dest), dpi=dpi, formats=("png",), reuse=False)
    return list(written.values())


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Section:
    """One statement of THEORY.md in the report."""

    bound: str  # registry name
    item: str  # theory item shown (T1, T1b, ...)
    title: str
    sweep: str  # the experiment checking it
    figure: str  # figure stem
    rows: Callable[[Any], Any]  # the sweep's rows for this statement
    table: Callable[[Any], Any]  # verdict/coverage table of those rows
    notes: Callable[[Any], str] = lambda rows: ""


def _rows_of(item: str | None = None, bound: str | None = None, part: str | None = None):
    def select(frame: Any) -> Any:
        sel = frame.index == frame.index
        if item is not None:
            sel &= frame["theory_item"] == item
        if bound is not None:
            sel &= frame["bound"] == bound
        if part is not None:
            sel &= frame["part"] == part
        return frame[sel]
    return select


def _margin_note(rows: Any) -> str:
    table = coverage_table(rows, by=("delta",))
    rates = ", ".join(f"{r['violation rate']:.3g} at δ = {r['delta']:g}"
                      for _, r in table.iterrows())
    return ("Tightness (E5 does not search this statement): a lower bound that holds with "
            "probability ≥ 1 − δ is nearly tight when the fraction of draws below it is close "
            f"to δ; pooled over N and p: {rates}.")


def _t4_notes(rows: Any) -> str:
    parts = [_t4_slopes(rows), _ratio_note("bound_ratio_median",
                                           "the median bound / population average G")(rows)]
    return "\n\n".join(p for p in parts if p)


def _t4_slopes(rows: Any) -> str:
    from simulations.experiments.new_classes import summarize

    slopes = summarize(rows)
    if slopes.empty:
        return ""
    return ("Log-log slope of the rms gap against l (predicted −1/2 when V_ij has a finite "
            "variance over the pairs, i.e. for p > 4; `consistent`: the 95% interval "
            "contains it):\n\n"
            + markdown_table(slopes[["dim", "classes", "slope", "slope_low", "slope_high",
                                     "points", "consistent"]]))


def _ratio_note(column: str, what: str) -> Callable[[Any], str]:
    def note(rows: Any) -> str:
        if column not in rows.columns:
            return ""
        import numpy as np

        r = rows[column].to_numpy(float)
        r = r[np.isfinite(r)]
        if r.size == 0:
            return f"Tightness: every cell was vacuous ({what} infinite)."
        return (f"Tightness (E5 does not search this statement): over the cells, {what} "
                f"ranges from {r.min():.3g} to {r.max():.3g} (1 would be tight).")
    return note


_SECTIONS = (
    _Section("nearest_mean", "T1", "nearest-mean few-shot error, two classes", "e1",
             "e1_nearest_mean", _rows_of(item="T1"),
             lambda r: verdict_table(r, by=("family", "shots"))),
    _Section("nearest_mean", "T1b", "nearest-mean few-shot error, k classes", "e1",
             "e1_nearest_mean", _rows_of(item="T1b"),
             lambda r: verdict_table(r, by=("family", "ways", "shots"))),
    _Section("nearest_mean_anisotropic", "T1c", "anisotropic refinement", "e1",
             "e1_nearest_mean", _rows_of(item="T1c"),
             lambda r: verdict_table(r, by=("family", "shots"))),
    _Section("known_means", "T1d", "known means (Cantelli)", "e5", "e5_tightness",
             _rows_of(item="T1d"), lambda r: verdict_table(r, by=("dim", "atoms"))),
    _Section("spherical_as_stated", "T2", "spherical symmetry, the slides' form", "e2",
             "e2_spherical", _rows_of(bound="spherical_as_stated"),
             lambda r: verdict_table(r, by=("family", "shots"))),
    _Section("spherical", "T2", "spherical symmetry, the valid form", "e2", "e2_spherical",
             _rows_of(bound="spherical"), lambda r: verdict_table(r, by=("family", "shots"))),
    _Section("new_samples", "T3", "CDNV generalises to new samples", "e3", "e3_new_samples",
             _rows_of(bound="new_samples"),
             lambda r: coverage_table(r, by=("dim", "samples", "delta")),
             _ratio_note("ratio_median", "the median bound / population CDNV")),
    _Section("new_classes", "T4", "CDNV generalises to new classes", "e4", "e4_new_classes",
             _rows_of(part="coverage"),
             lambda r: coverage_table(r, by=("dim", "classes", "delta")), _t4_notes),
    _Section("cube_margin", "T4", "the margin of cube-uniform class means", "e4",
             "e4_new_classes", _rows_of(part="margin"),
             lambda r: coverage_table(r, by=("dim", "delta")), _margin_note),
)


def _statement(bound: Bound, item: str) -> list[str]:
    lines = [f"*{bound.statement}*", "", "$$", bound.latex, "$$", ""]
    if not bound.valid:
        lines += ["**Not valid in general** (THEORY.md T2 gives a counterexample); it is "
                  "checked here to show where it fails.", ""]
    if not bound.certified:
        lines += ["A rate with hidden constants, not a certified bound.", ""]
    lines += ["Assumptions:", ""] + [f"- {a}" for a in bound.assumptions] + [""]
    lines += [f"Reference: {bound.reference}.", ""]
    return lines


def _tightness(e5: Any, bound: str, item: str, *, fallback: str = "") -> str:
    rows = None if e5 is None or e5.empty else \
        e5[(e5["bound"].map(_base_bound) == bound) & (e5["theory_item"] == item)]
    if rows is None or rows.empty:
        return fallback or "Tightness: the search E5 has no results for this statement."
    cols = [c for c in ("bound", "optimizer", "dim", "atoms", "shots", "ways", "seed",
                        "ratio", "implied_constant", "status") if c in rows.columns]
    best = rows.sort_values("ratio", ascending=False, kind="stable")[cols]
    return ("Tightness (E5, best measured / bound found by a global search; > 1 is a "
            "violation; the implied constant is the smallest the best family allows):\n\n"
            + markdown_table(best))


def _figure_md(stem: str, figures: dict[str, Path], root: Path) -> list[str]:
    if stem not in figures:
        return ["(figure not drawn: its experiment has no rows in the store)", ""]
    png = figures[stem].relative_to(root).as_posix()
    pdf = png[: -len(".png")] + ".pdf"
    return [f"![{stem}]({png})", "", f"[PDF]({pdf})", ""]


def _search_md(e5: Any, figures: dict[str, Path], root: Path) -> list[str]:
    lines = ["## Tightness search (E5)", ""]
    if e5 is None or e5.empty:
        return lines + ["No search results in the store.", ""]
    from simulations.experiments.tightness import summarize

    lines += ["A global optimiser (scipy) searches, without being told where to look, for "
              "the class laws with the largest measured / bound ratio: finite supports with "
              "exact errors for T1 and its variants, spherical radius laws for T2. A ratio "
              "above 1, confirmed by an independent re-measurement, is a violation: it "
              "must be found for the slides' T2 form and for T1 with its constant lowered.",
              ""]
    lines += _figure_md("e5_tightness", figures, root)
    best = summarize(e5)
    cols = [c for c in ("target", "bound", "dim", "atoms", "shots", "ways", "ratio",
                        "implied_constant", "violates", "searches") if c in best.columns]
    return lines + [markdown_table(best[cols]), ""]


def _training_md(frames: dict[str, Any], figures: dict[str, Path], root: Path) -> list[str]:
    lines = ["## Trained networks (N1–N3): neural collapse on source and new classes", ""]
    if not any(n in frames for n in ("n1", "n2", "n3")):
        return lines + ["No training runs in the store.", ""]
    lines += ["A network trained with cross-entropy on source classes: the CDNV (the paper's "
              "NV) on source-train, source-test (T3) and new classes (T4), and the few-shot "
              "accuracy on the new classes (T1's rule and a ridge head), against epoch; "
              "colours: number of source classes l (N2's runs, evaluated at the start and "
              "the end only, are drawn when they train the same model on the same data).", ""]
    lines += _figure_md("n1_training_curves", figures, root)
    import pandas as pd

    parts = [frames[n] for n in ("n1", "n2", "n3") if n in frames]
    lines += ["Few-shot accuracy on the new classes at the last epoch (5-way; 95% intervals "
              "over episodes):", "", fewshot_table_markdown(pd.concat(parts, ignore_index=True)),
              ""]
    if "n3" in frames:
        lines += ["### Transferability (N3)", "",
                  "Runs that vary weight decay, label smoothing, training length and width "
                  "one at a time: target CDNV against few-shot accuracy.", ""]
        lines += _figure_md("n3_transferability", figures, root)
        runs = final_runs(frames["n3"])
        cols = [c for c in ("variant", "source_train_nc1", "source_train_cdnv",
                            "source_test_cdnv", "target_cdnv", "fewshot_ridge_5shot",
                            "fewshot_ncm_5shot") if c in runs.columns]
        lines += [markdown_table(runs.sort_values("variant", kind="stable")[cols]), ""]
    if "n3-correlations" in frames:
        corr = frames["n3-correlations"]
        cols = [c for c in ("x", "y", "spearman", "ci_low", "ci_high", "p_value", "n_runs")
                if c in corr.columns]
        lines += ["Spearman rank correlations across the N3 runs (95% Fisher-z intervals):",
                  "", markdown_table(corr[cols]), ""]
    return lines


def write_report(store: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 size: str | None = None, dpi: float = 150) -> Path:
    """Draw every figure of the rows in ``store`` and write ``report.md``; nothing is run.

    ``out`` defaults to the store's folder; figures go to ``out/figures/`` as PNG and PDF.
    ``size`` (a scale of :func:`reproduce`: "tiny", "quick", "full") keeps only the
    simulation cells of that scale's grids and is named in the header; None reports every
    stored row. (Training runs are all reported: keep one scale per folder.) The report's text and the figures' bytes
    depend only on the stored rows, so rewriting it from the same store changes nothing.
    Returns the path of ``report.md``.
    """
    store = Path(store).expanduser().absolute()
    root = store.parent if out is None else Path(out).expanduser().absolute()
    if size is not None:
        _resolve_size(True, False, size)
    frames = _frames(store, size)
    figures = _draw(frames, root / FIGURES, dpi=dpi, formats=("png", "pdf"))
    bounds = registry()
    e5 = frames.get("e5")
    if e5 is not None:
        e5 = with_k_way_items(e5)
    scale = f" at the `{size}` scale" if size else ""
    lines = [
        "# ncbounds: the bounds of neural collapse in transfer learning, checked",
        "",
        f"Generated by `figures.reproduce`{scale} from `{store.name}` (Galanti, György & "
        "Hutter, ICLR 2022, arXiv 2112.15121; the explicit statements are THEORY.md "
        "T1–T4). Verdicts follow THEORY.md, \"What a check means\": *holds* when an upper "
        "confidence bound of the measurement is below the bound, *violated* when a lower "
        "one is above it, *inconclusive* otherwise; probability-δ statements are checked "
        "by coverage over repeated draws. `ratio` is measured / bound (1 would be tight).",
        "",
    ]
    for sec in _SECTIONS:
        bound = bounds[sec.bound]
        lines += [f"## {sec.item}: {sec.title} (`{sec.bound}`)", ""]
        lines += _statement(bound, sec.item)
        frame = frames.get(sec.sweep)
        rows = sec.rows(frame) if frame is not None and len(frame) else None
        if rows is None or rows.empty:
            lines += [f"No rows of experiment {sec.sweep} for this statement in the store.", ""]
        else:
            lines += _figure_md(sec.figure, figures, root)
            lines += ["Verdicts:", "", markdown_table(sec.table(rows)), ""]
        note = sec.notes(rows) if rows is not None and not rows.empty else ""
        if sec.sweep != "e5":
            lines += [_tightness(e5, sec.bound, sec.item, fallback=note), ""]
        elif note:
            lines += [note, ""]
    lines += _search_md(e5, figures, root)
    lines += _training_md(frames, figures, root)
    path = root / REPORT
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return path
