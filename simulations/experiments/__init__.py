"""Simulation experiments E1–E5: bounds against measurements over families, as resumable sweeps.

Each experiment is a grid of configurations × seeds whose cells are module-level pure
functions ``cell(config, seed) -> list[dict]`` run by :func:`simulations.sweep.run_sweep`;
:func:`run_experiment` writes ``OUT/results.sqlite`` with the sweep named by the experiment's
key, so ``load_results(path, name="e1")`` returns its tidy rows (issue 4, §2; THEORY.md
T1–T4; Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121).

=====  ==================  ===================================================================
key    alias               what it checks
=====  ==================  ===================================================================
e1     nearest-mean        few-shot error vs T1, T1b, T1c over dim, shots, ways and CDNV
e2     spherical           the slides' T2 form, the valid form and T1 across p
e3     new-samples         T3 coverage over repeated draws of the source sample
e4     new-classes         T4 coverage, the gap against l, the cube margin against N
e5     tightness           global search for the family with the largest error / bound
=====  ==================  ===================================================================

The columns of each experiment's rows are documented in its module
(:mod:`~simulations.experiments.nearest_mean`, :mod:`~simulations.experiments.spherical`,
:mod:`~simulations.experiments.new_samples`, :mod:`~simulations.experiments.new_classes`,
:mod:`~simulations.experiments.tightness`); rows comparing a bound with a measurement share
the verdict columns of :mod:`simulations.experiments._common`. Every row also has the
configuration keys, ``seed``, and the store's ``sweep``, ``cell_key`` and ``cell_row``.

Sizes: ``"tiny"`` (seconds; tests), ``"quick"`` (about a minute on 2 cores; ``--quick``),
``"default"`` (the full grids; E1 takes under 3 minutes on 2 cores).

>>> import tempfile, pathlib
>>> from simulations.sweep import load_results
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = run_experiment("spherical", out=tmp, size="tiny", n_jobs=1, progress=False)
...     frame = load_results(path, name="e2")
>>> path.name, len(frame)
('results.sqlite', 12)
>>> summarize("e2", frame).query("bound == 'spherical_as_stated'")[
...     ["family", "first_violated_dim"]].to_dict("records")
[{'family': 'gaussian', 'first_violated_dim': nan},
 {'family': 'two_point', 'first_violated_dim': 512.0}]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ncbounds._errors import NCBoundsError
from ncbounds._validation import describe
from simulations.sweep import run_sweep

from . import nearest_mean, new_classes, new_samples, spherical, tightness
from ._common import SIZES, check_size

__all__ = ["EXPERIMENTS", "ExperimentSpec", "SIZES", "get_experiment", "run_experiment",
           "summarize"]

STORE_NAME = "results.sqlite"


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: its key, alias, one-line description, cell, grids and summary.

    ``configs(size)`` gives the grid at a size, ``seeds[size]`` the default seeds, and
    ``summarize(frame)`` a summary DataFrame of the experiment's rows.
    """

    key: str
    alias: str
    description: str
    cell: Callable[[dict, int], list]
    configs: Callable[[str], list]
    seeds: dict
    summarize: Callable[[Any], Any]

    def __str__(self) -> str:
        return f"{self.key} ({self.alias}): {self.description}"


def _spec(key: str, alias: str, description: str, module: Any, seeds: dict) -> ExperimentSpec:
    return ExperimentSpec(key, alias, description, module.cell, module.configs, seeds,
                          module.summarize)


_ONE = {"tiny": (0,), "quick": (0,), "default": (0,)}
EXPERIMENTS: dict[str, ExperimentSpec] = {
    s.key: s
    for s in (
        _spec("e1", "nearest-mean", "measured few-shot nearest-mean error against T1, T1b "
              "and T1c over dimension, shots, ways and CDNV on four kinds of families",
              nearest_mean, _ONE),
        _spec("e2", "spherical", "the slides' T2 form, the valid form and T1 against the "
              "measured error across p, on Gaussians and on the two-point radius law",
              spherical, _ONE),
        _spec("e3", "new-samples", "coverage of the T3 new-samples CDNV bound over repeated "
              "draws, at delta 0.05 and 0.1, m from 100 to 50 000, and its vacuous fraction",
              new_samples, {"tiny": (0,), "quick": (0,), "default": (0, 1)}),
        _spec("e4", "new-classes", "T4 on cube-uniform means: coverage of the U-statistic "
              "bound, the gap against l (log-log slope vs -1/2), the margin against N",
              new_classes, {"tiny": (0,), "quick": (0, 1), "default": (0, 1, 2)}),
        _spec("e5", "tightness", "global search (scipy) for the family with the largest "
              "measured / bound ratio, for T1 variants and the T2 forms",
              tightness, _ONE),
    )
}


def get_experiment(name: str) -> ExperimentSpec:
    """The experiment called ``name``: a key ("e1") or an alias ("nearest-mean"; "_" and
    "-" are interchangeable and case is ignored).

    >>> get_experiment("New_Samples").key
    'e3'
    """
    if isinstance(name, str):
        wanted = name.strip().lower().replace("_", "-")
        for spec in EXPERIMENTS.values():
            if wanted in (spec.key, spec.alias):
                return spec
    names = ", ".join(f"{s.key} ({s.alias})" for s in EXPERIMENTS.values())
    raise NCBoundsError(f"name: expected one of the experiments {names}, got {describe(name)}")


def run_experiment(
    name: str,
    *,
    out: str | os.PathLike,
    quick: bool = False,
    size: str | None = None,
    n_jobs: int | None = None,
    executor: Any = None,
    progress: bool | None = None,
    seeds: Any = None,
) -> Path:
    """Run experiment ``name`` as a resumable sweep into ``out/results.sqlite``.

    Parameters
    ----------
    name
        A key of :data:`EXPERIMENTS` ("e1" … "e5") or its alias (see :func:`get_experiment`).
    out
        Output folder (created if missing). A rerun skips the cells already stored.
    quick, size
        ``size`` is "tiny", "quick" or "default"; when None it is "quick" if ``quick`` else
        "default".
    n_jobs, executor, progress
        Passed to :func:`simulations.sweep.run_sweep` (local process pool of ``n_jobs``
        workers by default; any Executor, a dask Client or "dask://host:port").
    seeds
        Seeds of the sweep (default: the experiment's seeds for that size).

    Returns
    -------
    pathlib.Path
        The store; ``load_results(path, name=key)`` gives the rows, and
        ``EXPERIMENTS[key].summarize(frame)`` a summary.
    """
    spec = get_experiment(name)
    if not isinstance(quick, bool):
        raise NCBoundsError(f"quick: expected True or False, got {describe(quick)}")
    size = check_size(("quick" if quick else "default") if size is None else size)
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise NCBoundsError(f"out: expected a folder path, got {describe(out)}")
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NCBoundsError(f"out: expected a folder, got the file {folder}")
    store = folder / STORE_NAME
    run_sweep(spec.cell, spec.configs(size), seeds=spec.seeds[size] if seeds is None else seeds,
              store=store, name=spec.key, executor=executor, n_jobs=n_jobs, progress=progress)
    return store.absolute()


def summarize(name: str, frame: Any) -> Any:
    """The summary of experiment ``name``'s rows (see each module's ``summarize``)."""
    return get_experiment(name).summarize(frame)
