"""Resumable sweeps: configurations × seeds, one pure function per cell, results in SQLite.

A *sweep* evaluates a *cell function* ``cell(config, seed) -> rows`` on every pair
``(config, seed)`` of a grid, where ``rows`` is a list of dicts (or a pandas DataFrame): tidy
long-form measurements. Each pair is a *cell*, identified by

.. math::

    \\mathrm{key}(f, c, s) = \\operatorname{sha256}\\big(\\mathrm{JSON}_{\\mathrm{canonical}}
    (\\{\\texttt{"cell"}: f, \\texttt{"config"}: c, \\texttt{"seed"}: s\\})\\big),

with ``f`` the module-qualified name of the cell function (keys sorted, no spaces, numpy
scalars and arrays turned into Python numbers and lists, non-finite floats tagged). The key is
independent of the order of the grid, of the sweep's name and of the executor, so a rerun finds
what is already done.

The store is one SQLite file (standard library, WAL journal). Each finished cell is written in
one transaction (its rows, its status, its wall time), so after an interruption at any moment,
``kill -9`` included, a rerun skips the finished cells and computes the others, with no lost
and no duplicated rows. A cell that raises is stored as *failed* with its traceback; the sweep
goes on, and a rerun retries it. Only the driving process writes to the database: workers
return their rows (already serialised to JSON) to the driver.

Cells run through the :class:`concurrent.futures.Executor` protocol: inline (``n_jobs=1``), a
local process pool (the default), any executor the caller passes, or a ``dask.distributed``
cluster (``executor="dask://host:port"`` or a ``distributed.Client``).

This module is infrastructure: it encodes no THEORY.md item. It implements issue 4, §1
("Sweeps") and the "Results store" and "Scale-out" conventions of DESIGN.md.

Store layout (schema version 1)
-------------------------------
``ncbounds_store(key, value)``
    ``format = "ncbounds.sweep"`` and ``schema_version = "1"``. A file without this table, or
    with another format or version, is refused before anything is written to it.
``cells(cell_key, cell_fn, config, seed, status, n_rows, wall_time, error, traceback,
attempts, finished_at)``
    one row per cell ever finished; ``status`` is ``"done"`` or ``"failed"``; ``wall_time`` is
    the cell function's own time in seconds (in the worker, serialisation excluded).
``rows(cell_key, cell_row, data)``
    the cell's rows, one JSON object each, in the order the cell returned them.
``sweep_cells(sweep, cell_key)``
    which cells belong to which named sweep (a cell shared by two sweeps is computed once).

Floats round-trip exactly: finite floats through JSON's shortest repr, and ``inf``, ``-inf``,
``nan`` as ``{"__float__": "inf"}`` etc. (strict JSON, readable by SQLite's JSON functions).

Example
-------
>>> import tempfile, pathlib
>>> from simulations.sweep import example_cell, grid, load_results, run_sweep
>>> with tempfile.TemporaryDirectory() as tmp:
...     store = pathlib.Path(tmp) / "out" / "results.sqlite"
...     first = run_sweep(example_cell, grid(n=[1, 4]), seeds=[0, 1], store=store, n_jobs=1)
...     again = run_sweep(example_cell, grid(n=[1, 4]), seeds=[0, 1], store=store, n_jobs=1)
...     frame = load_results(store)
>>> (first.done, first.skipped, again.done, again.skipped)
(4, 0, 0, 4)
>>> list(frame.columns)
['n', 'seed', 'mean', 'sweep', 'cell_key', 'cell_row']
>>> len(frame)
4
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import itertools
import json
import math
import os
import sqlite3
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from ncbounds._errors import NCBoundsError
from ncbounds._validation import as_generator, check_positive_int, describe

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "STORE_FORMAT",
    "SweepResult",
    "cell_key",
    "example_cell",
    "failed_cells",
    "grid",
    "load_results",
    "run_sweep",
]

STORE_FORMAT = "ncbounds.sweep"
SCHEMA_VERSION = 1

#: Column names the tidy frames add; configuration keys may not use them, and rows may use
#: only ``seed`` (with the cell's own seed as value).
RESERVED_COLUMNS = ("seed", "sweep", "cell_key", "cell_row", "cell_status", "cell_error")

_FLOAT_TAG = "__float__"
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_MAX_SEED = 2**63 - 1  # SQLite INTEGER

_SCHEMA_SQL = (
    "CREATE TABLE ncbounds_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE cells (
        cell_key TEXT PRIMARY KEY,
        cell_fn TEXT NOT NULL,
        config TEXT NOT NULL,
        seed INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        n_rows INTEGER NOT NULL,
        wall_time REAL,
        error TEXT,
        traceback TEXT,
        attempts INTEGER NOT NULL,
        finished_at REAL NOT NULL
    )""",
    """CREATE TABLE rows (
        cell_key TEXT NOT NULL,
        cell_row INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (cell_key, cell_row)
    ) WITHOUT ROWID""",
    """CREATE TABLE sweep_cells (
        sweep TEXT NOT NULL,
        cell_key TEXT NOT NULL,
        PRIMARY KEY (sweep, cell_key)
    ) WITHOUT ROWID""",
)
# The columns each table must have, checked when an existing store is opened.
_SCHEMA_COLUMNS = {
    "ncbounds_store": ("key", "value"),
    "cells": (
        "cell_key", "cell_fn", "config", "seed", "status", "n_rows", "wall_time", "error",
        "traceback", "attempts", "finished_at",
    ),
    "rows": ("cell_key", "cell_row", "data"),
    "sweep_cells": ("sweep", "cell_key"),
}


# --------------------------------------------------------------------------------------------
# JSON: plain data, canonical text, exact floats
# --------------------------------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready Python data: numpy scalars and arrays unwrapped, tuples as
    lists, non-finite floats tagged. Raises TypeError naming ``where`` for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # np.float64 included
        value = float(value)
        if math.isfinite(value):
            return value
        return {_FLOAT_TAG: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, np.generic):
        return _plain(value.item(), where)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: expected str keys, got key {describe(k)}")
            out[str(k)] = _plain(v, f"{where}[{k!r}]")
        if list(out) == [_FLOAT_TAG]:
            raise TypeError(f"{where}: a dict whose only key is {_FLOAT_TAG!r} is reserved")
        return out
    pandas = sys.modules.get("pandas")
    if pandas is not None and value is pandas.NA:
        return None
    raise TypeError(
        f"{where}: expected JSON-like data (None, bool, int, float, str, lists, dicts with str "
        f"keys, numpy scalars or arrays), got {describe(value)}"
    )


def _dumps(plain: Any, *, sort: bool) -> str:
    return json.dumps(
        plain, sort_keys=sort, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _untag(d: dict) -> Any:
    if len(d) == 1 and d.get(_FLOAT_TAG) in _NONFINITE:
        return _NONFINITE[d[_FLOAT_TAG]]
    return d


def _loads(text: str) -> Any:
    """Inverse of ``_dumps(_plain(x))``: tagged non-finite floats become floats again."""
    return json.loads(text, object_hook=_untag)


# --------------------------------------------------------------------------------------------
# Grid, keys, validation
# --------------------------------------------------------------------------------------------


def grid(*blocks: Mapping[str, Any] | Iterable[Mapping[str, Any]], **axes: Any) -> list[dict]:
    """The cartesian product of explicit configuration blocks and named axes.

    ``grid(a=[1, 2], b=["x", "y"])`` is ``[{a: 1, b: "x"}, {a: 1, b: "y"}, {a: 2, b: "x"},
    {a: 2, b: "y"}]`` (the first factor varies slowest, like :func:`itertools.product`).

    Parameters
    ----------
    *blocks
        Each a dict or a list of dicts: configurations given explicitly (for parameters that
        vary together, such as a family and its own parameters). They are multiplied with the
        other factors, and their keys merged.
    **axes
        ``name=values``: an iterable of values (a list, a range, a numpy array). A string, a
        dict or a non-iterable value is a fixed value (an axis of length one).

    Returns
    -------
    list of dict
        ``prod(len(factor))`` configurations; an empty factor gives an empty list.

    Examples
    --------
    >>> grid(n=[1, 2], family="gauss")
    [{'n': 1, 'family': 'gauss'}, {'n': 2, 'family': 'gauss'}]
    >>> grid([{"family": "gauss"}, {"family": "t", "df": 3}], n=[5])
    [{'family': 'gauss', 'n': 5}, {'family': 't', 'df': 3, 'n': 5}]
    """
    factors: list[list[Mapping[str, Any]]] = []
    for i, block in enumerate(blocks):
        members = [block] if isinstance(block, Mapping) else block
        if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
            raise NCBoundsError(
                f"blocks[{i}]: expected a dict or a list of dicts, got {describe(block)}"
            )
        members = list(members)
        for j, m in enumerate(members):
            if not isinstance(m, Mapping):
                raise NCBoundsError(f"blocks[{i}][{j}]: expected a dict, got {describe(m)}")
        factors.append(members)
    for name, values in axes.items():
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            values = [values]
        factors.append([{name: v} for v in values])
    configs = []
    for combo in itertools.product(*factors):
        merged: dict[str, Any] = {}
        for part in combo:
            for key, value in part.items():
                if key in merged:
                    raise NCBoundsError(
                        f"grid: key {key!r} is given by two factors ({merged[key]!r} and "
                        f"{value!r}); expected each key in exactly one block or axis"
                    )
                merged[key] = value
        configs.append(merged)
    return configs


def _qualified_name(cell: Any) -> str:
    """``module.qualname`` of a module-level function (importable, hence picklable)."""
    module = getattr(cell, "__module__", None)
    qualname = getattr(cell, "__qualname__", None)
    if not callable(cell) or not isinstance(module, str) or not isinstance(qualname, str):
        raise NCBoundsError(
            f"cell: expected a module-level function cell(config, seed), got {describe(cell)}"
        )
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not cell:
        raise NCBoundsError(
            f"cell: expected a module-level function (picklable by reference, and the same "
            f"function on every run), got {module}.{qualname}, which is not reachable as an "
            "attribute of its module (a lambda, a nested function or a partial?); put its "
            "parameters in the configuration instead"
        )
    return f"{module}.{qualname}"


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise NCBoundsError(f"{where}: expected a dict of parameters, got {describe(config)}")
    for key in config:
        if not isinstance(key, str):
            raise NCBoundsError(f"{where}: expected str keys, got key {describe(key)}")
        if key in RESERVED_COLUMNS:
            raise NCBoundsError(
                f"{where}: the key {key!r} is reserved for the results table "
                f"(reserved: {', '.join(RESERVED_COLUMNS)}); rename the parameter"
            )
    try:
        return _plain(config, where)
    except TypeError as exc:
        raise NCBoundsError(str(exc)) from None


def _check_seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NCBoundsError(f"{where}: expected a non-negative int seed, got {describe(seed)}")
    if not 0 <= int(seed) <= _MAX_SEED:
        raise NCBoundsError(f"{where}: expected an int seed in [0, 2**63 - 1], got {int(seed)}")
    return int(seed)


def _key(cell_name: str, plain_config: dict, seed: int) -> str:
    text = _dumps({"cell": cell_name, "config": plain_config, "seed": seed}, sort=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cell_key(cell: Callable[[dict, int], Any], config: Mapping[str, Any], seed: int) -> str:
    """The stable key of the cell ``(cell, config, seed)``: a sha256 hex digest.

    It hashes the canonical JSON text (sorted keys, no spaces, UTF-8) of
    ``{"cell": "module.qualname", "config": config, "seed": seed}``, with numpy scalars and
    arrays as Python numbers and lists and non-finite floats as ``{"__float__": "inf"}``.
    ``1``, ``1.0`` and ``True`` are different values, hence different keys.

    >>> import numpy as np
    >>> cell_key(example_cell, {"n": np.int64(3)}, 0) == cell_key(example_cell, {"n": 3}, 0)
    True
    >>> len(cell_key(example_cell, {"n": 3}, 0))
    64
    """
    name = _qualified_name(cell)
    return _key(name, _check_config(config, "config"), _check_seed(seed, "seed"))


def example_cell(config: dict, seed: int) -> list[dict]:
    """A toy cell for examples and smoke tests: the mean of ``config["n"]`` standard normal
    draws from the generator seeded with ``seed``; one row ``{"mean": ...}``.

    >>> example_cell({"n": 2}, 0) == example_cell({"n": 2}, 0)
    True
    """
    rng = as_generator(seed, name="seed")
    n = check_positive_int(config["n"], "config['n']")
    return [{"mean": float(rng.standard_normal(n).mean())}]


@dataclass(frozen=True)
class _Cell:
    key: str
    config_json: str  # canonical (sorted keys)
    seed: int


def _plan(cell_name: str, configs: Any, seeds: Any) -> list[_Cell]:
    """Every (config, seed) as a _Cell, in grid order, duplicates removed."""
    if isinstance(configs, Mapping) or isinstance(configs, (str, bytes)) or not isinstance(
        configs, Iterable
    ):
        raise NCBoundsError(
            f"configs: expected a list of dicts (for example from grid()), got {describe(configs)}"
        )
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise NCBoundsError(
            f"seeds: expected an iterable of int seeds such as (0, 1, 2) or range(3), "
            f"got {describe(seeds)}"
        )
    seed_list = [_check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    plain_configs = [_check_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
    if not plain_configs or not seed_list:
        raise NCBoundsError(
            f"configs, seeds: expected at least one configuration and one seed, got "
            f"{len(plain_configs)} configuration(s) and {len(seed_list)} seed(s)"
        )
    cells: dict[str, _Cell] = {}
    for plain in plain_configs:
        text = _dumps(plain, sort=True)
        for seed in seed_list:
            key = _key(cell_name, plain, seed)
            cells.setdefault(key, _Cell(key, text, seed))
    return list(cells.values())


# --------------------------------------------------------------------------------------------
# The worker side: run one cell, return plain data
# --------------------------------------------------------------------------------------------

# (ok, rows as JSON texts or None, one-line error or None, traceback or None, wall time)
_Outcome = tuple[bool, "list[str] | None", "str | None", "str | None", "float | None"]


def _error_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def _rows_json(result: Any, config_json: str, seed: int) -> list[str]:
    """The cell's result as one JSON text per row; TypeError/ValueError if it is malformed."""
    if type(result).__module__.startswith("pandas") and hasattr(result, "to_dict"):
        names = [n for n in getattr(result.index, "names", [None]) if n is not None]
        if names:
            raise TypeError(
                f"the cell returned a DataFrame with a named index {names}, which would be "
                "dropped; call .reset_index() to keep it as columns"
            )
        records = result.to_dict(orient="records")
    elif isinstance(result, (list, tuple)):
        records = result
    else:
        raise TypeError(
            f"the cell must return a list of dicts or a pandas DataFrame, got {describe(result)}"
        )
    context = json.loads(config_json)
    context["seed"] = seed
    texts = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TypeError(f"row {i}: expected a dict, got {describe(record)}")
        row = _plain(record, f"row {i}")
        for name, value in row.items():
            if name in RESERVED_COLUMNS and name != "seed":
                raise ValueError(f"row {i}: the field name {name!r} is reserved; rename it")
            if name in context and _dumps(value, sort=True) != _dumps(context[name], sort=True):
                raise ValueError(
                    f"row {i}: field {name!r} = {value!r} differs from the cell's "
                    f"{'seed' if name == 'seed' else 'configuration value'} {context[name]!r}; "
                    "a row may repeat a parameter only with the same value"
                )
        texts.append(_dumps(row, sort=False))
    return texts


def _execute(cell: Callable[[dict, int], Any], config_json: str, seed: int) -> _Outcome:
    """Run one cell (in a worker or inline). The cell's exceptions come back as data."""
    wall = None
    start = time.perf_counter()
    try:
        result = cell(_loads(config_json), seed)
        wall = time.perf_counter() - start
        return True, _rows_json(result, config_json, seed), None, None, wall
    except Exception as exc:
        if wall is None:
            wall = time.perf_counter() - start
        return False, None, _error_line(exc), traceback.format_exc(), wall


def _outcome(future: cf.Future) -> _Outcome:
    try:
        return future.result()
    except Exception as exc:  # raised by the executor (lost worker, broken pool), not the cell
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return False, None, _error_line(exc), text, None


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _check_store_path(path: Any, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise NCBoundsError(f"{name}: expected a path to an SQLite file, got {describe(path)}")
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        raise NCBoundsError(f"{name}: expected a path to an SQLite file, got the folder {p}")
    return p


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(path))}?{mode}"


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    return sqlite3.connect(_uri(path, mode), uri=True, timeout=60.0, isolation_level=None)


def _read_connection(path: Path, name: str) -> sqlite3.Connection:
    """A read-only connection to a validated sweep store at ``path``.

    The file is never modified, and no side file is created unless a ``-wal`` file is
    already there (a writer is active or was killed): otherwise the file is opened as
    immutable, since a WAL-mode file without ``-wal`` is complete in itself (this also works
    on read-only media). A writer that starts during such a read could checkpoint under it;
    sweeps keep their ``-wal`` while they run, so reading during a sweep is safe.
    """
    if not path.exists():
        raise NCBoundsError(f"{name}: expected an existing sweep store, got no file at {path}")
    with open(path, "rb") as f:
        header = f.read(16)
    if header != b"SQLite format 3\x00":
        raise NCBoundsError(
            f"{name}: expected an ncbounds sweep store (an SQLite file), got a file that is "
            f"not an SQLite database: {path}"
        )
    wal = path.with_name(path.name + "-wal")
    conn = _connect(path, "mode=ro" if wal.exists() else "mode=ro&immutable=1")
    try:
        _check_schema(conn, path, name)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection, path: Path, name: str) -> None:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "ncbounds_store" not in tables:
            shown = ", ".join(sorted(tables)) or "none"
            raise NCBoundsError(
                f"{name}: expected an ncbounds sweep store, got an SQLite database without "
                f"the table 'ncbounds_store' (its tables: {shown}): {path}; "
                "it was left untouched, choose another file"
            )
        info = dict(conn.execute("SELECT key, value FROM ncbounds_store").fetchall())
        if info.get("format") != STORE_FORMAT:
            raise NCBoundsError(
                f"{name}: expected a store of format {STORE_FORMAT!r}, got format "
                f"{info.get('format')!r}: {path}; it was left untouched"
            )
        if info.get("schema_version") != str(SCHEMA_VERSION):
            raise NCBoundsError(
                f"{name}: expected a sweep store of schema version {SCHEMA_VERSION}, got "
                f"version {info.get('schema_version')!r}: {path}; it was left untouched "
                "(written by another version of ncbounds: use a new store file)"
            )
        for table, columns in _SCHEMA_COLUMNS.items():
            found = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                raise NCBoundsError(
                    f"{name}: expected table {table!r} with columns {columns}, got {found}: "
                    f"{path}; the store is damaged and was left untouched"
                )
    except sqlite3.DatabaseError as exc:
        raise NCBoundsError(
            f"{name}: expected a readable ncbounds sweep store, got an SQLite error "
            f"({exc}): {path}; it was left untouched"
        ) from None


class _Store:
    """The driver's read-write connection to a sweep store."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: Path) -> _Store:
        wal = path.with_name(path.name + "-wal")
        if not path.exists() or (path.stat().st_size == 0 and not wal.exists()):
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path, "mode=rwc")
            new = True
        else:
            _read_connection(path, "store").close()  # validate before writing anything
            conn = _connect(path, "mode=rw")
            new = False
        store = cls(conn)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # WAL + synchronous=NORMAL: a commit survives the death of the process (kill -9);
            # only a power cut may lose the last commits, and never leaves a cell half-written.
            conn.execute("PRAGMA synchronous = NORMAL")
            if new:
                with store.transaction():
                    for statement in _SCHEMA_SQL:
                        conn.execute(statement)
                    conn.executemany(
                        "INSERT INTO ncbounds_store VALUES (?, ?)",
                        [("format", STORE_FORMAT), ("schema_version", str(SCHEMA_VERSION))],
                    )
        except BaseException:
            conn.close()
            raise
        return store

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def register(self, sweep: str, keys: Sequence[str]) -> None:
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO sweep_cells VALUES (?, ?)", ((sweep, k) for k in keys)
            )

    def statuses(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT cell_key, status FROM cells WHERE cell_key IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def record(self, cell_name: str, cell: _Cell, outcome: _Outcome) -> None:
        """Write one finished cell (rows, status, time) in one transaction."""
        ok, rows, error, text, wall = outcome
        rows = rows or []
        with self.transaction():
            self.conn.execute("DELETE FROM rows WHERE cell_key = ?", (cell.key,))
            self.conn.executemany(
                "INSERT INTO rows VALUES (?, ?, ?)",
                ((cell.key, i, data) for i, data in enumerate(rows)),
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "1 + COALESCE((SELECT attempts FROM cells WHERE cell_key = ?), 0), ?)",
                (
                    cell.key, cell_name, cell.config_json, cell.seed,
                    "done" if ok else "failed", len(rows), wall, error, text,
                    cell.key, time.time(),
                ),
            )

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


def _default_jobs() -> int:
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _dask_address(spec: str) -> str:
    rest = spec[len("dask://") :] if spec.startswith("dask://") else ""
    if not rest:
        raise NCBoundsError(
            f"executor: expected 'dask://host:port' (a dask.distributed scheduler), an "
            f"Executor or None, got {spec!r}"
        )
    return rest if "://" in rest else f"tcp://{rest}"


def _dask_workers(client: Any) -> int | None:
    try:
        return int(sum(client.nthreads().values())) or None
    except Exception:  # pragma: no cover - a client that cannot answer
        return None


@contextlib.contextmanager
def _open_executor(executor: Any, n_jobs: int | None, n_todo: int) -> Iterator[tuple[Any, Any]]:
    """Yield (executor, number of workers or None); close only what was created here.

    The executor is None for inline execution in the driver (``n_jobs=1``)."""
    if executor is None:
        jobs = min(n_jobs or _default_jobs(), n_todo)
        if jobs == 1:
            yield None, 1
            return
        pool = cf.ProcessPoolExecutor(max_workers=jobs)
        try:
            yield pool, jobs
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    elif isinstance(executor, str):
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise NCBoundsError(
                f"executor: {executor!r} needs dask.distributed, which is not installed "
                "(pip install 'ncbounds[dask]')"
            ) from exc
        address = _dask_address(executor)
        try:
            client = Client(address, set_as_default=False)
        except OSError as exc:
            raise NCBoundsError(
                f"executor: could not connect to the dask scheduler at {address} ({exc})"
            ) from exc
        try:
            yield client.get_executor(), _dask_workers(client)
        finally:
            client.close()
    elif not isinstance(executor, cf.Executor) and callable(
        getattr(executor, "get_executor", None)
    ):  # a dask.distributed Client
        yield executor.get_executor(), _dask_workers(executor)
    else:
        client = getattr(executor, "_client", None)  # dask's ClientExecutor
        workers = getattr(executor, "_max_workers", None)
        yield executor, workers if workers is not None else (
            _dask_workers(client) if client is not None else None
        )


def _stream(
    executor: Any, cell: Callable, todo: Sequence[_Cell], limit: int
) -> Iterator[tuple[_Cell, _Outcome]]:
    """Submit cells keeping at most ``limit`` in flight; yield each as it finishes.

    With ``executor=None`` each cell runs in the driver, and is yielded (hence written)
    before the next one starts."""
    if executor is None:
        for c in todo:
            yield c, _execute(cell, c.config_json, c.seed)
        return
    pending = iter(todo)
    running: dict[cf.Future, _Cell] = {}

    def submit_next() -> bool:
        c = next(pending, None)
        if c is None:
            return False
        running[executor.submit(_execute, cell, c.config_json, c.seed)] = c
        return True

    try:
        for _ in range(limit):  # fill the pipeline up to the in-flight limit
            if not submit_next():
                break
        while running:
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                c = running.pop(future)
                submit_next()  # keep the workers busy while the driver writes
                yield c, _outcome(future)
    finally:
        for future in running:
            future.cancel()


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    store, name
        The store file and the sweep's name.
    total
        Cells in the grid (configurations × seeds, duplicates removed).
    done, failed
        Cells computed in this run that succeeded / raised.
    skipped
        Cells found finished in the store (done, or failed with ``retry_failed=False``).
    elapsed
        Wall time of the whole call in seconds (store, executor start-up and shut-down
        included).
    cell_time
        Sum of the cell functions' own wall times in this run, in seconds.
    workers
        The executor's parallelism when known (1 inline, the pool size), else None.
    """

    store: Path
    name: str
    total: int
    done: int
    skipped: int
    failed: int
    elapsed: float
    cell_time: float
    workers: int | None
    cell_keys: tuple[str, ...] = field(repr=False)

    def frame(self, *, include_failed: bool = False) -> pd.DataFrame:
        """The rows of this sweep's grid, as :func:`load_results` gives them."""
        return _load(self.store, self.name, include_failed, keys=set(self.cell_keys))


def run_sweep(
    cell: Callable[[dict, int], Any],
    configs: Iterable[Mapping[str, Any]],
    *,
    seeds: Iterable[int] = (0,),
    store: str | os.PathLike,
    name: str | None = None,
    executor: Any = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    retry_failed: bool = True,
    max_in_flight: int | None = None,
) -> SweepResult:
    """Evaluate ``cell(config, seed)`` on every configuration × seed; store the rows.

    Each cell is keyed by :func:`cell_key`; cells already done in ``store`` are skipped, the
    others run, and each finished cell is committed with its rows in one transaction, so an
    interrupted sweep (even by ``kill -9``) resumes with no lost and no duplicated rows. A
    cell that raises is stored as failed with its traceback and the sweep goes on; the next
    run retries it (unless ``retry_failed=False``).

    Parameters
    ----------
    cell
        A module-level function ``cell(config: dict, seed: int) -> list[dict] | DataFrame``,
        pure (the same arguments give the same rows). It receives the configuration as
        stored: a new dict with sorted keys, plain Python numbers for numpy scalars, lists
        for tuples and arrays. Its rows may repeat a configuration key or ``seed`` only with
        the same value; a DataFrame's unnamed index is dropped.
    configs
        A list of dicts of JSON-like parameters (see :func:`grid`). Duplicates run once.
    seeds
        Int seeds in ``[0, 2**63)``; every configuration runs with every seed.
    store
        Path of the SQLite store; created with its folder if missing. An existing file that
        is not a sweep store of this schema version raises :class:`NCBoundsError` and is
        left byte-for-byte untouched.
    name
        The sweep's name in the store (default: ``module.qualname`` of ``cell``). Sweeps of
        any names and grids share a store; a cell common to two of them is computed once.
    executor
        None (a local :class:`~concurrent.futures.ProcessPoolExecutor` with ``n_jobs``
        workers, or inline when ``n_jobs=1``); any :class:`~concurrent.futures.Executor`,
        used as is and not shut down; a ``dask.distributed.Client``; or the string
        ``"dask://host:port"`` (a client is made, used and closed; needs the ``dask`` extra).
    n_jobs
        Workers of the default pool (default: the CPUs available to this process). Only with
        ``executor=None``.
    progress
        A tqdm bar with cells done, failed and remaining: None shows it when stderr is a
        terminal, True always, False never.
    retry_failed
        Recompute cells stored as failed (default) or skip them.
    max_in_flight
        Cells submitted but not finished, at most (default: 4 per worker, or 256 when the
        executor's size is unknown), so huge grids do not flood the executor.

    Returns
    -------
    SweepResult
        The counts, the times, and ``.frame()`` for this grid's rows.

    Notes
    -----
    Only this (driving) process writes to the store. The default pool uses Python's default
    start method; pass your own executor to choose another. Issue 4 §1; DESIGN.md,
    "Results store" and "Scale-out".

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = run_sweep(example_cell, grid(n=[2, 3]), seeds=range(2),
    ...                     store=pathlib.Path(tmp) / "s.sqlite", n_jobs=1)
    ...     rows = res.frame()
    >>> res.total, res.done, res.failed, len(rows)
    (4, 4, 0, 4)
    """
    started = time.perf_counter()
    cell_name = _qualified_name(cell)
    if name is None:
        name = cell_name
    elif not isinstance(name, str) or not name:
        raise NCBoundsError(f"name: expected a non-empty str or None, got {describe(name)}")
    cells = _plan(cell_name, configs, seeds)
    path = _check_store_path(store, "store")
    if progress not in (None, True, False):
        raise NCBoundsError(f"progress: expected None, True or False, got {describe(progress)}")
    if not isinstance(retry_failed, bool):
        raise NCBoundsError(f"retry_failed: expected True or False, got {describe(retry_failed)}")
    if n_jobs is not None:
        if executor is not None:
            raise NCBoundsError(
                f"n_jobs: expected None when an executor is given (it sets its own "
                f"parallelism), got n_jobs={n_jobs!r} with executor={describe(executor)}"
            )
        n_jobs = check_positive_int(n_jobs, "n_jobs")
    if isinstance(executor, str):
        _dask_address(executor)
    elif executor is not None and not (
        callable(getattr(executor, "submit", None))
        or callable(getattr(executor, "get_executor", None))
    ):
        raise NCBoundsError(
            f"executor: expected None, a concurrent.futures.Executor, a dask Client or "
            f"'dask://host:port', got {describe(executor)}"
        )
    if max_in_flight is not None:
        max_in_flight = check_positive_int(max_in_flight, "max_in_flight")

    db = _Store.open(path)
    try:
        keys = [c.key for c in cells]
        db.register(name, keys)
        status = db.statuses(keys)
        todo = [
            c for c in cells
            if c.key not in status or (retry_failed and status[c.key] == "failed")
        ]
        counts = {"done": 0, "failed": 0, "remaining": len(todo)}
        cell_time = 0.0
        workers: int | None = None
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(
            total=len(cells), initial=len(cells) - len(todo), desc=name, unit="cell",
            disable=not show, dynamic_ncols=True,
        )
        try:
            if show:
                bar.set_postfix(counts, refresh=False)
            if todo:
                with _open_executor(executor, n_jobs, len(todo)) as (pool, workers):
                    limit = max_in_flight or (4 * workers if workers else 256)
                    for c, outcome in _stream(pool, cell, todo, limit):
                        db.record(cell_name, c, outcome)
                        counts["done" if outcome[0] else "failed"] += 1
                        counts["remaining"] -= 1
                        cell_time += outcome[4] or 0.0
                        if show:
                            bar.set_postfix(counts, refresh=False)
                            bar.update(1)
        finally:
            bar.close()
    finally:
        db.close()
    return SweepResult(
        store=path, name=name, total=len(cells), done=counts["done"],
        skipped=len(cells) - len(todo), failed=counts["failed"],
        elapsed=time.perf_counter() - started, cell_time=cell_time, workers=workers,
        cell_keys=tuple(keys),
    )


def _check_name_in_store(conn: sqlite3.Connection, name: Any, path: Path) -> None:
    if name is None:
        return
    if not isinstance(name, str):
        raise NCBoundsError(f"name: expected a str or None, got {describe(name)}")
    if conn.execute("SELECT 1 FROM sweep_cells WHERE sweep = ? LIMIT 1", (name,)).fetchone():
        return
    names = [r[0] for r in conn.execute("SELECT DISTINCT sweep FROM sweep_cells ORDER BY 1")]
    raise NCBoundsError(f"name: expected one of the sweeps in {path} ({names}), got {name!r}")


def _cells_query(conn: sqlite3.Connection, name: str | None, statuses: tuple[str, ...],
                 columns: str, join_rows: bool) -> sqlite3.Cursor:
    rows_join = "LEFT JOIN rows r ON r.cell_key = c.cell_key" if join_rows else ""
    order = ", r.cell_row" if join_rows else ""
    where = f"c.status IN ({','.join('?' * len(statuses))})"
    params: list[Any] = list(statuses)
    if name is not None:
        where += " AND s.sweep = ?"
        params.append(name)
    return conn.execute(
        f"SELECT s.sweep, c.cell_key, c.config, c.seed, {columns} FROM sweep_cells s "
        f"JOIN cells c ON c.cell_key = s.cell_key {rows_join} WHERE {where} "
        f"ORDER BY s.sweep, c.cell_key{order}",
        params,
    )


def _frame(records: list[dict], config_keys: dict, field_keys: dict, tail: Sequence[str]):
    import pandas as pd

    fields = [k for k in field_keys if k not in config_keys and k != "seed"]
    columns = [*sorted(config_keys), "seed", *fields, *tail]
    return pd.DataFrame.from_records(records, columns=columns)


def _load(path: Any, name: Any, include_failed: Any, keys: set[str] | None = None):
    path = _check_store_path(path, "path")
    if not isinstance(include_failed, bool):
        raise NCBoundsError(
            f"include_failed: expected True or False, got {describe(include_failed)}"
        )
    conn = _read_connection(path, "path")
    try:
        _check_name_in_store(conn, name, path)
        statuses = ("done", "failed") if include_failed else ("done",)
        cursor = _cells_query(conn, name, statuses, "c.status, c.error, r.cell_row, r.data", True)
        records: list[dict] = []
        config_keys: dict[str, None] = {}
        field_keys: dict[str, None] = {}
        for sweep, key, config, seed, status, error, row_index, data in cursor:
            if keys is not None and key not in keys:
                continue
            if status == "done" and row_index is None:
                continue  # a done cell that returned no rows
            record = _loads(config)
            config_keys.update(dict.fromkeys(record))
            record["seed"] = seed
            if data is not None:
                fields = _loads(data)
                field_keys.update(dict.fromkeys(fields))
                record.update(fields)
            record.update(sweep=sweep, cell_key=key, cell_row=row_index)
            if include_failed:
                record.update(cell_status=status, cell_error=error)
            records.append(record)
    finally:
        conn.close()
    tail = ["sweep", "cell_key", "cell_row"]
    if include_failed:
        tail += ["cell_status", "cell_error"]
    frame = _frame(records, config_keys, field_keys, tail)
    if include_failed:
        frame["cell_row"] = frame["cell_row"].astype("Int64")
    return frame


def load_results(
    path: str | os.PathLike, *, name: str | None = None, include_failed: bool = False
) -> pd.DataFrame:
    """The rows of a sweep store as a tidy pandas DataFrame.

    One row per stored measurement; columns: the configuration keys (sorted), ``seed``, the
    cells' own fields (in the order first seen), then ``sweep`` (its name), ``cell_key`` and
    ``cell_row`` (the row's index within its cell). A field missing from some rows is NaN
    there.

    Row order is by ``(sweep, cell_key, cell_row)``: it depends only on what is stored, not
    on the order in which cells finished, so an interrupted and resumed sweep gives exactly
    the frame of an uninterrupted one. A cell belonging to two named sweeps appears under
    each. Sort by the configuration columns for display.

    Parameters
    ----------
    path
        An existing sweep store; it is only read (never modified, even when it is not a
        store or has another schema, which raise :class:`NCBoundsError`).
    name
        Only this sweep's rows (an unknown name raises, listing those in the store).
    include_failed
        Also one row per failed cell, with the extra columns ``cell_status`` (``"done"`` /
        ``"failed"``) and ``cell_error`` (the exception's last line); ``cell_row`` is then
        a nullable integer, missing for failed cells. Tracebacks: :func:`failed_cells`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = pathlib.Path(tmp) / "s.sqlite"
    ...     _ = run_sweep(example_cell, grid(n=[5]), seeds=[0, 1, 2], store=store, n_jobs=1)
    ...     frame = load_results(store)
    >>> sorted(frame["seed"])
    [0, 1, 2]
    """
    return _load(path, name, include_failed)


def failed_cells(path: str | os.PathLike, *, name: str | None = None) -> pd.DataFrame:
    """The failed cells of a sweep store, with their tracebacks.

    Columns: the configuration keys, ``seed``, ``sweep``, ``cell_key``, ``error`` (the
    exception's last line), ``traceback`` (full text, from the worker), ``attempts`` (runs
    of the cell so far) and ``wall_time`` (seconds; missing when the executor itself failed).
    Ordered by ``(sweep, cell_key)``; empty when nothing failed.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = pathlib.Path(tmp) / "s.sqlite"
    ...     _ = run_sweep(example_cell, [{"n": 0}], store=store, n_jobs=1)
    ...     failures = failed_cells(store)
    >>> failures["error"].tolist()
    ["ncbounds._errors.NCBoundsError: config['n']: expected an integer >= 1, got 0"]
    """
    path = _check_store_path(path, "path")
    conn = _read_connection(path, "path")
    try:
        _check_name_in_store(conn, name, path)
        cursor = _cells_query(
            conn, name, ("failed",), "c.error, c.traceback, c.attempts, c.wall_time", False
        )
        records = []
        config_keys: dict[str, None] = {}
        for sweep, key, config, seed, error, text, attempts, wall in cursor:
            record = _loads(config)
            config_keys.update(dict.fromkeys(record))
            record.update(
                seed=seed, sweep=sweep, cell_key=key, error=error, traceback=text,
                attempts=attempts, wall_time=wall,
            )
            records.append(record)
    finally:
        conn.close()
    tail = ["sweep", "cell_key", "error", "traceback", "attempts", "wall_time"]
    return _frame(records, config_keys, {}, tail)
