"""The run history: schema, state changes, writes held in memory, pruning, modes, read-only access."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cronplus.errors import HistoryError
from cronplus.model import RunState, Trigger
from cronplus.store import SCHEMA_VERSION, RunStore, SqliteHistory, open_readonly, open_store
from cronplus.store.pruning import Pruner
from cronplus.store.schema import SQLITE_MIGRATIONS

OPEN = (RunState.PENDING, RunState.RUNNING)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        self.events.append((event, fields))


def store(path: Path, reports: Reports | None = None) -> RunStore:
    return open_store(str(path), NOW, reports or Reports())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_private_wal_with_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.db"
    history = store(path)
    history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0)
    assert history.flush(NOW)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "jobs", "meta"} <= tables
    assert mode(path.parent) == 0o700
    for name in ("history.db", "history.db-wal", "history.db-shm"):
        assert mode(path.parent / name) == 0o600, name
    db.close()
    history.close()


def test_run_ids_are_the_daemons_and_go_on_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    first = store(path)
    ids = [first.create_run("a", float(i), Trigger.SCHEDULE, now=1.0) for i in range(3)]
    assert ids == [1, 2, 3]
    first.flush(NOW)
    first.close()
    again = store(path)
    assert again.create_run("a", 9.0, Trigger.SCHEDULE, now=1.0) == 4
    assert again.instance == first.instance  # the instance keeps its id in its file


def test_a_run_moves_forward_only(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    run_id = history.create_run("backup", 1000.0, Trigger.SCHEDULE, now=1000.5)
    assert history.transition(run_id, RunState.RUNNING, (RunState.PENDING,), started=1000.6, pid=42)
    history.flush(NOW)
    assert history.transition(
        run_id, RunState.SUCCEEDED, OPEN, ended=1001.0, exit_code=0, output=b"ok\n"
    )
    # a late second result cannot overwrite a final state
    assert not history.transition(run_id, RunState.FAILED, OPEN, ended=1002.0)
    history.flush(NOW)
    reader = open_readonly(str(tmp_path / "h.db"))
    run = reader.run(run_id)
    assert run is not None
    assert (run.state, run.pid, run.exit_code, run.output) == ("succeeded", 42, 0, b"ok\n")
    assert reader.last_runs()["backup"].id == run_id


def test_reads_see_what_is_not_written_yet(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    written = history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SUCCEEDED)
    history.flush(NOW)
    held = history.create_run("a", 2.0, Trigger.SCHEDULE, now=2.0, state=RunState.FAILED)
    history.add_note(written, "notifier pager failed")
    assert [r.id for r in history.runs("a")] == [held, written]
    assert [r.id for r in history.runs("a", failed_only=True)] == [held]
    assert history.last_runs()["a"].id == held
    note = history.run(written)
    assert note is not None and note.notes == "notifier pager failed"
    history.flush(NOW)
    stored = open_readonly(str(tmp_path / "h.db")).run(written)
    assert stored is not None and stored.notes == "notifier pager failed"


def test_open_runs_are_the_ones_a_crash_leaves(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    pending = history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0)
    running = history.create_run("b", 1.0, Trigger.MANUAL, now=1.0)
    history.transition(running, RunState.RUNNING, (RunState.PENDING,))
    history.create_run("c", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SKIPPED)
    history.flush(NOW)
    history.close()
    assert [r.id for r in store(tmp_path / "h.db").open_runs()] == [pending, running]


def test_prune_keeps_the_newest_finished_runs(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    ids = [
        history.create_run("a", float(i), Trigger.SCHEDULE, now=float(i), state=RunState.SUCCEEDED)
        for i in range(10)
    ]
    other = history.create_run("b", 0.0, Trigger.SCHEDULE, now=0.0, state=RunState.FAILED)
    history.prune("a", 3)
    history.flush(NOW)
    assert history.pruner is not None and history.pruner.idle(10)
    reader = open_readonly(str(tmp_path / "h.db"))
    assert [r.id for r in reader.runs("a", limit=100)] == ids[:-4:-1]
    assert reader.run(other) is not None


def test_failed_only_listing_leaves_out_skipped_and_missed(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SUCCEEDED)
    bad = history.create_run("a", 2.0, Trigger.SCHEDULE, now=2.0, state=RunState.TIMED_OUT)
    history.create_run("a", 3.0, Trigger.SCHEDULE, now=3.0, state=RunState.SKIPPED)
    history.create_run("a", 4.0, Trigger.SCHEDULE, now=4.0, state=RunState.MISSED)
    assert [r.id for r in history.runs("a", failed_only=True)] == [bad]


def test_misses_are_counted_with_folded_rows(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    day = NOW.timestamp() - 86400
    history.create_run("a", day - 10, Trigger.SCHEDULE, now=1.0, state=RunState.MISSED)
    history.create_run(
        "a",
        day - 100,
        Trigger.SCHEDULE,
        now=1.0,
        state=RunState.MISSED,
        instants=40,
        scheduled_until=day + 5,
    )
    history.flush(NOW)
    history.create_run("a", day + 10, Trigger.SCHEDULE, now=1.0, state=RunState.MISSED)
    assert history.misses_since(day) == {"a": 41}


def test_job_state(tmp_path: Path) -> None:
    history = store(tmp_path / "h.db")
    history.set_last_scheduled("a", 100.0)
    history.set_paused("a", True)
    history.set_last_scheduled("a", 200.0)
    history.flush(NOW)
    state = open_readonly(str(tmp_path / "h.db")).job_states()["a"]
    assert (state.last_scheduled, state.paused) == (200.0, True)


def test_read_only_access(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with pytest.raises(HistoryError, match="no history yet"):
        open_readonly(str(path))
    writer = store(path)
    writer.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0)
    writer.flush(NOW)
    reader = open_readonly(str(path))
    assert len(reader.open_runs()) == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM runs")


def test_an_older_schema_is_upgraded_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    db = sqlite3.connect(path)
    for migration in SQLITE_MIGRATIONS[:3]:
        db.executescript(migration)
    db.execute(
        "INSERT INTO runs (job, trigger, state, created) VALUES ('a', 'schedule', 'succeeded', 1)"
    )
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    os.chmod(path, 0o644)
    history = store(path)
    assert history.create_run("a", 2.0, Trigger.SCHEDULE, now=2.0) == 2
    history.flush(NOW)
    assert mode(path) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    SqliteHistory(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="newer than this cronplus understands"):
        store(Path(path))


def test_a_damaged_file_is_moved_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite" * 100)
    os.chmod(path, 0o644)
    reports = Reports()
    history = store(path, reports)
    assert history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0) == 1
    assert history.flush(NOW)
    moved = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert [f.name for f in moved] == ["h.db.corrupt-20260601T120000Z"]
    assert moved[0].read_bytes().startswith(b"this is not sqlite")
    assert mode(moved[0]) == 0o600 and mode(path) == 0o600
    assert reports.events[0][0] == "history damaged; moved aside"


def test_offline_reading_works_for_a_reader_who_cannot_write_the_directory() -> None:
    """A clean stop leaves no WAL: a reader that may not make the shared memory file reads all the same."""
    if os.geteuid() != 0:
        pytest.skip("needs root to read as another user")
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        os.chmod(base, 0o755)
        shutil.copytree(Path(__file__).resolve().parent.parent / "cronplus", base / "cronplus")
        directory = base / "state"
        history = store(directory / "h.db")
        history.create_run("a", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SUCCEEDED)
        history.flush(NOW)
        history.close()
        assert not (directory / "h.db-wal").exists()
        os.chmod(directory, 0o755)
        os.chmod(directory / "h.db", 0o644)  # as if its owner let others read it
        code = "from cronplus.store import open_readonly; import sys; print(len(open_readonly(sys.argv[1]).runs('a')))"
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                code,
                str(directory / "h.db"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=base,
        )
    assert result.stdout.strip() == "1", result.stderr


def finished_runs(history: RunStore, job: str, count: int) -> list[int]:
    return [
        history.create_run(job, float(i), Trigger.SCHEDULE, now=float(i), state=RunState.SUCCEEDED)
        for i in range(count)
    ]


def test_a_big_prune_is_deleted_a_slice_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    history = store(path)
    ids = finished_runs(history, "a", 1000)
    history.flush(NOW)
    slices = []
    history.pruner = Pruner(str(path), pause=lambda: slices.append(1), slice_rows=50)
    history.prune("a", 10)
    history.flush(NOW)
    assert history.pruner.idle(30)
    reader = open_readonly(str(path))
    assert [r.id for r in reader.runs("a", limit=2000)] == ids[:-11:-1]
    assert len(slices) >= 990 // 50  # never one transaction of 990 rows


def test_a_prune_racing_writes_deletes_no_run_that_should_stay(tmp_path: Path) -> None:
    """The pruner's slices and the loop's writes interleave, at each slice and freely
    after: at the end exactly the newest runs are kept, with every open run."""
    path = tmp_path / "h.db"
    history = store(path)
    running = history.create_run("a", 0.0, Trigger.SCHEDULE, now=0.0)
    history.transition(running, RunState.RUNNING, (RunState.PENDING,))
    finished_runs(history, "a", 300)
    others = finished_runs(history, "b", 20)
    history.flush(NOW)
    at_slice, go = threading.Semaphore(0), threading.Semaphore(0)
    racing = threading.Event()
    racing.set()

    def pause() -> None:  # in the pruner's thread, before each slice
        if racing.is_set():
            at_slice.release()
            go.acquire()

    history.pruner = Pruner(str(path), pause=pause, slice_rows=7)
    keep = 25
    written = []
    history.prune("a", keep)
    history.flush(NOW)
    for _ in range(10):  # a write between two slices, each time
        assert at_slice.acquire(timeout=10)
        written += finished_runs(history, "a", 2)
        history.prune("a", keep)
        history.flush(NOW)
        go.release()
    racing.clear()
    go.release()
    for _ in range(20):  # and writes while it deletes
        written += finished_runs(history, "a", 1)
        history.prune("a", keep)
        history.flush(NOW)
    assert history.pruner.idle(30)
    with sqlite3.connect(path) as db:
        kept = [r[0] for r in db.execute("SELECT id FROM runs WHERE job = 'a' ORDER BY id")]
        finished = [
            r[0] for r in db.execute("SELECT id FROM runs WHERE job = 'a' AND state = 'succeeded'")
        ]
        assert [r[0] for r in db.execute("SELECT id FROM runs WHERE job = 'b'")] == others
    assert finished == written[-keep:]  # exactly the newest, every one of them
    assert kept == [running, *finished]  # an open run is never pruned
