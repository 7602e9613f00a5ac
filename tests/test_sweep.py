"""Tests for simulations.sweep: keys, store, executors, resumption after kill -9 (issue 4 §1, §4).

References are independent of the code under test: expected rows come from calling the cell
functions directly, the key from a hand-written canonical JSON text hashed with hashlib, and
"untouched" from the file's bytes, mtime and the folder's listing taken before the call.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import importlib
import itertools
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncbounds import NCBoundsError
from simulations.sweep import (
    SCHEMA_VERSION,
    STORE_FORMAT,
    cell_key,
    failed_cells,
    grid,
    load_results,
    run_sweep,
)

# ------------------------------------------------------------------ module-level cell functions


def square_cell(config, seed):
    """Two rows per cell; an optional nap makes cells overlap in thread/process pools."""
    time.sleep(config.get("nap", 0.0))
    x = config["x"]
    return [
        {"kind": "square", "value": x * x + seed},
        {"kind": "third", "value": x / 3 + seed},
    ]


FAIL_ON: set = set()  # the x values flaky_cell fails on (inline runs only)


def flaky_cell(config, seed):
    if config["x"] in FAIL_ON:
        raise ValueError(f"flaky failure at x={config['x']}")
    return [{"value": config["x"] + seed}]


def echo_cell(config, seed):
    return [{"v": v} for v in config["values"]]


def mixed_cell(config, seed):
    return [
        {
            "flag": True, "nothing": None, "text": "ünïcode", "big": 2**70,
            "nested": [1.5, math.inf, {"g": -0.0}], "f32": np.float32(0.1),
            "arr": np.arange(3), "npbool": np.bool_(False),
        }
    ]


def dict_cell(config, seed):
    return {"x": 1}


def conflict_cell(config, seed):
    return [{"x": config["x"] + 1}]


def reserved_cell(config, seed):
    return [{"sweep": "mine"}]


def object_cell(config, seed):
    return [{"when": object()}]


def frame_cell(config, seed):
    return pd.DataFrame({"k": ["a", "b"], "value": [config["x"], seed]})


def indexed_frame_cell(config, seed):
    return frame_cell(config, seed).set_index("k")


def echo_seed_cell(config, seed):
    return [{"seed": seed, "x": config["x"], "value": 1.0}]


def empty_cell(config, seed):
    return []


# ------------------------------------------------------------------ helpers


def expected_frame(cell, configs, seeds, sweep):
    """The tidy frame built by calling the cell directly (the reference for load_results):
    configuration keys sorted, then seed, row fields, sweep, cell_key, cell_row; rows ordered
    by (cell_key, cell_row)."""
    records = []
    for config, seed in itertools.product(configs, seeds):
        key = cell_key(cell, config, seed)
        for i, row in enumerate(cell(dict(config), seed)):
            records.append(
                {**dict(sorted(config.items())), "seed": seed, **row,
                 "sweep": sweep, "cell_key": key, "cell_row": i}
            )
    records.sort(key=lambda r: (r["cell_key"], r["cell_row"]))
    return pd.DataFrame.from_records(records)


def snapshot(path: Path):
    """Bytes, mtime and the folder listing: what 'left untouched' compares."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


SQUARES = grid(x=[0, 1, 2, 5])
NAME = f"{__name__}.square_cell"


# ------------------------------------------------------------------ grid and keys


def test_grid_is_the_cartesian_product_in_order():
    # reference: itertools.product written out by hand
    expected = [{"a": a, "b": b, "c": "fixed"} for a in (1, 2) for b in ("x", "y", "z")]
    assert grid(a=[1, 2], b=("x", "y", "z"), c="fixed") == expected
    assert grid(a=range(3), b=[]) == []
    assert grid() == [{}]


def test_grid_blocks_merge_with_axes_and_conflicts_raise():
    blocks = [{"family": "gauss"}, {"family": "t", "df": 3}]
    assert grid(blocks, n=[1, 2]) == [
        {"family": "gauss", "n": 1}, {"family": "gauss", "n": 2},
        {"family": "t", "df": 3, "n": 1}, {"family": "t", "df": 3, "n": 2},
    ]
    assert grid({"p": 2}, q=[0]) == [{"p": 2, "q": 0}]
    with pytest.raises(NCBoundsError, match="'family' is given by two factors"):
        grid(blocks, family=["x"])
    with pytest.raises(NCBoundsError, match=r"blocks\[0\]\[1\]: expected a dict"):
        grid([{"a": 1}, 3])


def test_cell_key_is_sha256_of_canonical_json():
    # Reference: the canonical text written by hand (sorted keys, no spaces, tagged inf).
    text = (
        '{"cell":"' + NAME + '","config":{"a":1,"b":[0.5,"x"],"c":{"__float__":"inf"}},'
        '"seed":7}'
    )
    expected = hashlib.sha256(text.encode()).hexdigest()
    config = {"c": np.float64(np.inf), "b": (np.float32(0.5), "x"), "a": np.int64(1)}
    assert cell_key(square_cell, config, np.int64(7)) == expected


def test_cell_key_distinguishes_values_types_seeds_and_functions():
    keys = {
        cell_key(square_cell, {"x": 1}, 0),
        cell_key(square_cell, {"x": 1.0}, 0),
        cell_key(square_cell, {"x": True}, 0),
        cell_key(square_cell, {"x": 1}, 1),
        cell_key(flaky_cell, {"x": 1}, 0),
        cell_key(square_cell, {"x": -0.0}, 0),
        cell_key(square_cell, {"x": 0.0}, 0),
    }
    assert len(keys) == 7
    assert cell_key(square_cell, {"x": 1, "y": 2}, 0) == cell_key(square_cell, {"y": 2, "x": 1}, 0)


@pytest.mark.parametrize(
    "cell", [lambda c, s: [], functools.partial(square_cell)], ids=["lambda", "partial"]
)
def test_cell_must_be_a_module_level_function(cell, tmp_path):
    with pytest.raises(NCBoundsError, match="module-level function"):
        run_sweep(cell, [{}], store=tmp_path / "s.sqlite", n_jobs=1)
    assert not (tmp_path / "s.sqlite").exists()


# ------------------------------------------------------------------ executors


def test_inline_sweep_matches_direct_calls(tmp_path):
    store = tmp_path / "deep" / "folder" / "s.sqlite"  # parent folders are created
    res = run_sweep(square_cell, SQUARES, seeds=[0, 3], store=store, n_jobs=1)
    assert (res.total, res.done, res.skipped, res.failed, res.workers) == (8, 8, 0, 0, 1)
    assert res.cell_time > 0 and res.elapsed > 0
    expected = expected_frame(square_cell, SQUARES, [0, 3], NAME)
    pd.testing.assert_frame_equal(load_results(store), expected)
    pd.testing.assert_frame_equal(res.frame(), expected)
    again = run_sweep(square_cell, SQUARES, seeds=[0, 3], store=store, n_jobs=1)
    assert (again.done, again.skipped, again.failed) == (0, 8, 0)
    pd.testing.assert_frame_equal(load_results(store), expected)


def test_process_pool_gives_the_inline_table(tmp_path):
    configs = grid(x=range(6), nap=[0.005])
    run_sweep(square_cell, configs, seeds=[0, 1], store=tmp_path / "a.sqlite", n_jobs=1)
    res = run_sweep(square_cell, configs, seeds=[0, 1], store=tmp_path / "b.sqlite", n_jobs=2)
    assert (res.done, res.workers) == (12, 2)
    pd.testing.assert_frame_equal(
        load_results(tmp_path / "b.sqlite"), load_results(tmp_path / "a.sqlite")
    )


class CountingThreadPool(cf.ThreadPoolExecutor):
    """A caller's executor that records the most calls submitted and not yet finished."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.outstanding = self.peak = 0

    def submit(self, fn, /, *args, **kwargs):
        with self.lock:
            self.outstanding += 1
            self.peak = max(self.peak, self.outstanding)

        def counted():
            try:
                return fn(*args, **kwargs)
            finally:  # before the future resolves, so the driver never sees a stale count
                with self.lock:
                    self.outstanding -= 1

        return super().submit(counted)


def test_caller_thread_pool_is_used_bounded_and_left_open(tmp_path):
    configs = grid(x=range(20), nap=[0.002])
    with CountingThreadPool(max_workers=4) as pool:
        res = run_sweep(
            square_cell, configs, store=tmp_path / "s.sqlite", executor=pool, max_in_flight=3
        )
        assert res.workers == 4 and res.done == 20
        assert 1 <= pool.peak <= 3
        assert pool.submit(int, "3").result() == 3  # not shut down by run_sweep
    pd.testing.assert_frame_equal(
        load_results(tmp_path / "s.sqlite"), expected_frame(square_cell, configs, [0], NAME)
    )


def test_dask_local_cluster_by_address_and_by_client(tmp_path):
    from dask import distributed  # the 'dask' extra, part of 'dev': this check must run
    configs = grid(x=range(4))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
        res = run_sweep(square_cell, configs, seeds=[0, 1], store=tmp_path / "a.sqlite",
                        executor=address)
        assert (res.done, res.workers) == (8, 1)
        with distributed.Client(cluster, set_as_default=False) as client:
            res = run_sweep(flaky_cell, configs, store=tmp_path / "a.sqlite", executor=client)
            assert res.done == 4
            assert client.status == "running"  # the caller's client stays open
    pd.testing.assert_frame_equal(
        load_results(tmp_path / "a.sqlite", name=NAME),
        expected_frame(square_cell, configs, [0, 1], NAME),
    )


def test_dask_address_without_dask_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import now fails
    with pytest.raises(NCBoundsError, match=r"needs dask\.distributed.*ncbounds\[dask\]"):
        run_sweep(square_cell, SQUARES, store=tmp_path / "s.sqlite", executor="dask://h:1")


class LostWorkerExecutor(cf.Executor):
    """Every call fails in the executor itself (as a lost worker would), never in the cell."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        future.set_exception(RuntimeError("worker lost"))
        return future


def test_executor_failures_are_stored_as_failed_and_retried(tmp_path):
    store = tmp_path / "s.sqlite"
    res = run_sweep(square_cell, SQUARES, store=store, executor=LostWorkerExecutor())
    assert (res.done, res.failed) == (0, 4)
    failures = failed_cells(store)
    assert set(failures["error"]) == {"RuntimeError: worker lost"}
    assert failures["wall_time"].isna().all()
    res = run_sweep(square_cell, SQUARES, store=store, n_jobs=1)
    assert (res.done, res.failed, res.skipped) == (4, 0, 0)
    assert failed_cells(store).empty


# ------------------------------------------------------------------ kill -9 and resume

KILL_CELLS = textwrap.dedent(
    """
    import os, time

    def slow_cell(config, seed):
        time.sleep(float(os.environ.get("NCB_SWEEP_TEST_NAP", "0")))
        i = config["i"]
        return [{"i": i, "value": i + seed / 7}, {"i": i, "value": -seed}]
    """
)
KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from ncb_sweep_kill_cells import slow_cell
    from simulations.sweep import grid, run_sweep
    run_sweep(slow_cell, grid(i=range(10)), seeds=[0, 1], store=sys.argv[2], n_jobs=2)
    """
)


def count_done(store: Path) -> int:
    """Done cells in a store being written by another process (0 while it is not there)."""
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT count(*) FROM cells WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_sigkill_mid_sweep_then_rerun_equals_uninterrupted_run(tmp_path):
    (tmp_path / "ncb_sweep_kill_cells.py").write_text(KILL_CELLS)
    (tmp_path / "run_sweep.py").write_text(KILL_SCRIPT)
    store = tmp_path / "killed" / "results.sqlite"
    env = {**os.environ, "NCB_SWEEP_TEST_NAP": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "run_sweep.py"), str(tmp_path), str(store)],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while count_done(store) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:  # the driver and its pool workers, all at once, while cells are running
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, output
    partial = load_results(store)
    n_done = partial["cell_key"].nunique()
    assert 4 <= n_done < 20 and len(partial) == 2 * n_done  # whole cells only

    sys.path.insert(0, str(tmp_path))
    try:
        cells = importlib.import_module("ncb_sweep_kill_cells")  # no nap in this process
        resumed = run_sweep(cells.slow_cell, grid(i=range(10)), seeds=[0, 1], store=store,
                            n_jobs=1)
        reference = tmp_path / "reference.sqlite"
        run_sweep(cells.slow_cell, grid(i=range(10)), seeds=[0, 1], store=reference, n_jobs=1)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("ncb_sweep_kill_cells", None)
    assert (resumed.skipped, resumed.done, resumed.failed) == (n_done, 20 - n_done, 0)
    final = load_results(store)
    assert not final.duplicated(["cell_key", "cell_row"]).any() and len(final) == 40
    pd.testing.assert_frame_equal(final, load_results(reference))  # row for row, no sorting


# ------------------------------------------------------------------ foreign files


def make_text(path):
    path.write_bytes(b"not a database at all\n" * 50)


def make_foreign_sqlite(path, wal=False):
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE measurements (x REAL)")
    conn.execute("INSERT INTO measurements VALUES (1.5)")
    conn.commit()
    conn.close()


def make_altered_store(path, sql):
    run_sweep(square_cell, SQUARES, store=path, n_jobs=1)
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


FOREIGN = {
    "text file": (make_text, "not an SQLite database"),
    "foreign sqlite": (make_foreign_sqlite, r"without the table 'ncbounds_store'.*measurements"),
    "foreign sqlite (WAL)": (
        functools.partial(make_foreign_sqlite, wal=True), "without the table 'ncbounds_store'"
    ),
    "older schema": (
        functools.partial(
            make_altered_store,
            sql="UPDATE ncbounds_store SET value = '0' WHERE key = 'schema_version'",
        ),
        f"schema version {SCHEMA_VERSION}, got version '0'",
    ),
    "other format": (
        functools.partial(
            make_altered_store, sql="UPDATE ncbounds_store SET value = 'x' WHERE key = 'format'"
        ),
        f"format {STORE_FORMAT!r}, got format 'x'",
    ),
    "damaged store": (
        functools.partial(make_altered_store, sql="DROP TABLE sweep_cells"),
        "table 'sweep_cells'",
    ),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_or_other_schema_file_raises_and_is_left_untouched(kind, tmp_path):
    make, message = FOREIGN[kind]
    path = tmp_path / "data.sqlite"
    make(path)
    before = snapshot(path)
    time.sleep(0.01)  # so that a write would show in the mtime even on coarse clocks
    with pytest.raises(NCBoundsError, match=message):
        run_sweep(square_cell, SQUARES, store=path, n_jobs=1)
    with pytest.raises(NCBoundsError, match=message):
        load_results(path)
    with pytest.raises(NCBoundsError, match=message):
        failed_cells(path)
    assert snapshot(path) == before


def test_missing_store_and_folder_store_raise(tmp_path):
    with pytest.raises(NCBoundsError, match="expected an existing sweep store"):
        load_results(tmp_path / "nothing.sqlite")
    assert os.listdir(tmp_path) == []
    with pytest.raises(NCBoundsError, match="got the folder"):
        run_sweep(square_cell, SQUARES, store=tmp_path, n_jobs=1)


# ------------------------------------------------------------------ several sweeps, one store


def test_two_grids_and_two_names_share_a_store(tmp_path):
    store = tmp_path / "s.sqlite"
    first, second = grid(x=[0, 1, 2]), grid(x=[3, 4])
    a = run_sweep(square_cell, first, seeds=[0, 1], store=store, n_jobs=1)
    b = run_sweep(square_cell, second, seeds=[0, 1], store=store, n_jobs=1)
    assert (a.done, b.done, b.skipped) == (6, 4, 0)
    pd.testing.assert_frame_equal(
        load_results(store), expected_frame(square_cell, first + second, [0, 1], NAME)
    )
    pd.testing.assert_frame_equal(b.frame(), expected_frame(square_cell, second, [0, 1], NAME))

    # A named sweep overlapping the first grid: the shared cells are not recomputed, and
    # each name sees its whole grid.
    c = run_sweep(square_cell, grid(x=[2, 7]), seeds=[1], store=store, name="other", n_jobs=1)
    assert (c.done, c.skipped) == (1, 1)
    pd.testing.assert_frame_equal(
        load_results(store, name="other"),
        expected_frame(square_cell, grid(x=[2, 7]), [1], "other"),
    )
    everything = load_results(store)
    assert sorted(everything["sweep"].unique()) == sorted([NAME, "other"])
    assert len(everything) == 2 * (10 + 2)
    with pytest.raises(NCBoundsError, match=r"name: expected one of the sweeps.*'missing'"):
        load_results(store, name="missing")


def test_duplicate_configurations_run_once(tmp_path):
    res = run_sweep(square_cell, [{"x": 1}, {"x": np.int64(1)}, {"x": 2}], seeds=[0, 0],
                    store=tmp_path / "s.sqlite", n_jobs=1)
    assert (res.total, res.done) == (2, 2)


# ------------------------------------------------------------------ failures


def test_failing_cell_is_stored_with_traceback_and_retried(tmp_path, monkeypatch):
    store = tmp_path / "s.sqlite"
    configs = grid(x=range(5))
    monkeypatch.setattr(sys.modules[__name__], "FAIL_ON", {1, 3})
    res = run_sweep(flaky_cell, configs, store=store, n_jobs=1)
    assert (res.done, res.failed) == (3, 2)
    failures = failed_cells(store)
    assert failures["cell_key"].is_monotonic_increasing
    assert set(failures["x"]) == {1, 3}
    assert failures["error"].tolist() == [f"ValueError: flaky failure at x={x}"
                                          for x in failures["x"]]
    for text in failures["traceback"]:
        assert "Traceback" in text and "in flaky_cell" in text and "raise ValueError" in text
    assert (failures["attempts"] == 1).all()
    with_failed = load_results(store, include_failed=True)
    assert with_failed["cell_status"].value_counts().to_dict() == {"done": 3, "failed": 2}
    assert with_failed.loc[with_failed["cell_status"] == "failed", "cell_row"].isna().all()
    assert len(load_results(store)) == 3

    # retry_failed=False leaves them; still failing, they are retried and counted again
    kept = run_sweep(flaky_cell, configs, store=store, n_jobs=1, retry_failed=False)
    assert (kept.done, kept.failed, kept.skipped) == (0, 0, 5)
    again = run_sweep(flaky_cell, configs, store=store, n_jobs=1)
    assert (again.done, again.failed, again.skipped) == (0, 2, 3)
    assert (failed_cells(store)["attempts"] == 2).all()

    monkeypatch.setattr(sys.modules[__name__], "FAIL_ON", set())  # the cause is fixed
    fixed = run_sweep(flaky_cell, configs, store=store, n_jobs=1)
    assert (fixed.done, fixed.failed, fixed.skipped) == (2, 0, 3)
    assert failed_cells(store).empty
    pd.testing.assert_frame_equal(
        load_results(store), expected_frame(flaky_cell, configs, [0], f"{__name__}.flaky_cell")
    )


@pytest.mark.parametrize(
    ("cell", "error"),
    [
        (dict_cell, "TypeError: the cell must return a list of dicts or a pandas DataFrame"),
        (conflict_cell, "ValueError: row 0: field 'x' = 3 differs from the cell's configuration"),
        (reserved_cell, "ValueError: row 0: the field name 'sweep' is reserved"),
        (object_cell, r"TypeError: row 0\['when'\]: expected JSON-like data"),
        (indexed_frame_cell, r"TypeError: the cell returned a DataFrame with a named index"),
    ],
)
def test_malformed_rows_make_the_cell_fail(cell, error, tmp_path):
    res = run_sweep(cell, [{"x": 2}], store=tmp_path / "s.sqlite", n_jobs=1)
    assert (res.done, res.failed) == (0, 1)
    assert failed_cells(tmp_path / "s.sqlite")["error"].str.match(error).all()


def test_dataframe_rows_repeated_parameters_and_empty_cells(tmp_path):
    store = tmp_path / "s.sqlite"
    run_sweep(frame_cell, [{"x": 2}], seeds=[5], store=store, n_jobs=1)
    frame = load_results(store)
    assert frame[["x", "seed", "k", "value"]].values.tolist() == [[2, 5, "a", 2], [2, 5, "b", 5]]
    run_sweep(echo_seed_cell, [{"x": 2}], seeds=[5], store=store, n_jobs=1)
    echoed = load_results(store, name=f"{__name__}.echo_seed_cell")
    assert list(echoed.columns) == ["x", "seed", "value", "sweep", "cell_key", "cell_row"]
    empty = run_sweep(empty_cell, grid(x=[1, 2]), store=store, n_jobs=1)
    assert empty.done == 2 and empty.frame().empty
    assert run_sweep(empty_cell, grid(x=[1, 2]), store=store, n_jobs=1).skipped == 2


# ------------------------------------------------------------------ values round-trip


def same_float(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)  # -0.0 is not 0.0 here


@settings(max_examples=30)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=5))
def test_floats_round_trip_exactly_including_inf_and_nan(values):
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.sqlite"
        run_sweep(echo_cell, [{"values": values}], store=store, n_jobs=1)
        frame = load_results(store)
    stored = frame["v"].tolist()  # rows are in cell_row order (one cell)
    assert len(stored) == len(values)
    assert all(same_float(a, b) for a, b in zip(stored, values))
    assert all(len(c) == len(values) and all(map(same_float, c, values)) for c in frame["values"])


def test_mixed_values_round_trip(tmp_path):
    run_sweep(mixed_cell, [{}], store=tmp_path / "s.sqlite", n_jobs=1)
    row = load_results(tmp_path / "s.sqlite").iloc[0]
    assert row["flag"] is True or row["flag"] == True  # noqa: E712 (numpy bool in a Series)
    assert pd.isna(row["nothing"])
    assert row["text"] == "ünïcode" and row["big"] == 2**70
    assert row["nested"][:2] == [1.5, math.inf] and math.copysign(1, row["nested"][2]["g"]) == -1
    assert row["f32"] == float(np.float32(0.1)) and row["arr"] == [0, 1, 2]
    assert not row["npbool"]


# ------------------------------------------------------------------ store, progress, inputs


def test_store_layout_records_wall_times_in_wal_mode(tmp_path):
    store = tmp_path / "s.sqlite"
    res = run_sweep(square_cell, grid(x=[1, 2], nap=[0.002]), seeds=[0, 1], store=store,
                    n_jobs=1)
    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        info = dict(conn.execute("SELECT key, value FROM ncbounds_store"))
        walls, statuses, n_rows, attempts = zip(
            *conn.execute("SELECT wall_time, status, n_rows, attempts FROM cells")
        )
    finally:
        conn.close()
    assert info == {"format": STORE_FORMAT, "schema_version": str(SCHEMA_VERSION)}
    assert all(w >= 0.002 for w in walls)  # each cell sleeps 2 ms inside the timed call
    assert sum(walls) == pytest.approx(res.cell_time)
    assert set(statuses) == {"done"} and set(n_rows) == {2} and set(attempts) == {1}


def test_progress_bar_shows_done_failed_remaining(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "FAIL_ON", {0})
    run_sweep(flaky_cell, grid(x=range(3)), store=tmp_path / "a.sqlite", n_jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "done=2" in err and "failed=1" in err and "remaining=0" in err
    run_sweep(flaky_cell, grid(x=range(3)), store=tmp_path / "b.sqlite", n_jobs=1)
    assert capsys.readouterr().err == ""  # stderr is not a terminal here


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"configs": {"x": 1}}, r"configs: expected a list of dicts"),
        ({"configs": [{"seed": 1}]}, r"configs\[0\]: the key 'seed' is reserved"),
        ({"configs": [{"x": 1}, {"x": object()}]}, r"configs\[1\]\['x'\]: expected JSON-like"),
        ({"configs": [{1: 2}]}, r"configs\[0\]: expected str keys"),
        ({"configs": []}, r"at least one configuration"),
        ({"seeds": 3}, r"seeds: expected an iterable of int seeds"),
        ({"seeds": [0, -1]}, r"seeds\[1\]: expected an int seed in \[0, 2\*\*63 - 1\], got -1"),
        ({"seeds": [1.5]}, r"seeds\[0\]: expected a non-negative int seed"),
        ({"n_jobs": 0}, r"n_jobs: expected an integer >= 1, got 0"),
        ({"n_jobs": 2, "executor": "dask://h:1"}, r"n_jobs: expected None when an executor"),
        ({"executor": "spark://h:1"}, r"executor: expected 'dask://host:port'"),
        ({"executor": 42}, r"executor: expected None, a concurrent.futures.Executor"),
        ({"progress": "yes"}, r"progress: expected None, True or False"),
        ({"retry_failed": 1}, r"retry_failed: expected True or False"),
        ({"name": ""}, r"name: expected a non-empty str"),
        ({"max_in_flight": 0}, r"max_in_flight: expected an integer >= 1"),
    ],
)
def test_invalid_arguments_raise_before_touching_the_store(kwargs, message, tmp_path):
    arguments = {"configs": SQUARES, "store": tmp_path / "s.sqlite", **kwargs}
    with pytest.raises(NCBoundsError, match=message):
        run_sweep(square_cell, **arguments)
    assert os.listdir(tmp_path) == []
