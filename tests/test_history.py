"""The SQLite history: schema, state changes, pruning and read-only access."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cronplus.errors import HistoryError
from cronplus.history import SCHEMA_VERSION, History
from cronplus.model import RunState, Trigger

OPEN = (RunState.PENDING, RunState.RUNNING)


def test_a_new_file_is_wal_with_the_current_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "history.db")
    History(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "jobs"} <= tables


def test_a_run_moves_forward_only(tmp_path: Path) -> None:
    history = History(str(tmp_path / "h.db"))
    run_id = history.create_run("backup", 1000.0, Trigger.SCHEDULE, now=1000.5)
    assert history.transition(run_id, RunState.RUNNING, (RunState.PENDING,), started=1000.6, pid=42)
    assert history.transition(
        run_id, RunState.SUCCEEDED, OPEN, ended=1001.0, exit_code=0, output=b"ok\n"
    )
    # a late second result cannot overwrite a final state
    assert not history.transition(run_id, RunState.FAILED, OPEN, ended=1002.0)
    run = history.run(run_id)
    assert run is not None
    assert (run.state, run.pid, run.exit_code, run.output) == ("succeeded", 42, 0, b"ok\n")
    assert history.last_runs()["backup"].id == run_id


def test_open_runs_are_the_ones_a_crash_leaves(tmp_path: Path) -> None:
    history = History(str(tmp_path / "h.db"))
    pending = history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0)
    running = history.create_run("b", 1.0, Trigger.MANUAL, now=1.0)
    history.transition(running, RunState.RUNNING, (RunState.PENDING,))
    done = history.create_run("c", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SKIPPED)
    assert [r.id for r in history.open_runs()] == [pending, running]
    assert history.run(done) is not None


def test_prune_keeps_the_newest_finished_runs(tmp_path: Path) -> None:
    history = History(str(tmp_path / "h.db"))
    ids = [
        history.create_run("a", float(i), Trigger.SCHEDULE, now=float(i), state=RunState.SUCCEEDED)
        for i in range(10)
    ]
    other = history.create_run("b", 0.0, Trigger.SCHEDULE, now=0.0, state=RunState.FAILED)
    assert history.prune("a", 3) == 7
    assert [r.id for r in history.runs("a", limit=100)] == ids[:-4:-1]
    assert history.run(other) is not None


def test_failed_only_listing(tmp_path: Path) -> None:
    history = History(str(tmp_path / "h.db"))
    history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SUCCEEDED)
    bad = history.create_run("a", 2.0, Trigger.SCHEDULE, now=2.0, state=RunState.TIMED_OUT)
    history.create_run("a", 3.0, Trigger.SCHEDULE, now=3.0, state=RunState.SKIPPED)
    assert [r.id for r in history.runs("a", failed_only=True)] == [bad]


def test_job_state(tmp_path: Path) -> None:
    history = History(str(tmp_path / "h.db"))
    history.set_last_scheduled("a", 100.0)
    history.set_paused("a", True)
    history.set_last_scheduled("a", 200.0)
    state = history.job_states()["a"]
    assert (state.last_scheduled, state.paused) == (200.0, True)


def test_read_only_access(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    with pytest.raises(HistoryError, match="no history yet"):
        History(path, readonly=True)
    writer = History(path)
    writer.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0)
    reader = History(path, readonly=True)
    assert len(reader.open_runs()) == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM runs")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    History(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="newer than this cronplus understands"):
        History(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="file is not a database"):
        History(str(path))
