"""The run history: SQLite in WAL mode with forward migrations.

The daemon writes from its loop in short transactions; the CLI opens the file
read-only.  A run's state only changes through `transition`, a compare-and-swap
update, so a row can never move backwards from a final state.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

from .errors import HistoryError
from .model import RunState, Trigger

MIGRATIONS: Sequence[str] = (
    # 1: runs and per-job state
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        scheduled REAL,
        trigger TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        first_run INTEGER,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        exit_code INTEGER,
        signal INTEGER,
        duration REAL,
        output BLOB,
        output_bytes INTEGER NOT NULL DEFAULT 0,
        peak_rss INTEGER
    );
    CREATE INDEX runs_by_job ON runs(job, id);
    CREATE INDEX runs_open ON runs(state) WHERE state IN ('pending', 'running');
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_scheduled REAL,
        last_run INTEGER,
        paused INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: when a waiting retry is due, so that it survives a restart
    """
    ALTER TABLE runs ADD COLUMN due REAL;
    """,
    # 3: what went wrong telling the notifiers about a run
    """
    ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
OPEN_STATES = (RunState.PENDING.value, RunState.RUNNING.value)


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    scheduled: Optional[float]
    trigger: str
    attempt: int
    first_run: Optional[int]
    state: str
    reason: str
    pid: Optional[int]
    created: float
    started: Optional[float]
    ended: Optional[float]
    exit_code: Optional[int]
    signal: Optional[int]
    duration: Optional[float]
    output: Optional[bytes]
    output_bytes: int
    peak_rss: Optional[int]
    due: Optional[float]
    notes: str


@dataclass(frozen=True)
class JobState:
    name: str
    last_scheduled: Optional[float]
    last_run: Optional[int]
    paused: bool


_RUN_COLUMNS = ", ".join(Run.__dataclass_fields__)


class History:
    """One SQLite file; open it writable in the daemon, read-only in the CLI."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        try:
            if readonly:
                if not os.path.exists(path):
                    raise HistoryError(f"{path}: no history yet (the daemon has not run)")
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
                self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(f"{path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.path}: schema version {version} is newer than this cronplus"
                f" understands ({SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise HistoryError(
                f"{self.path}: schema version {version} needs the daemon to upgrade it"
            )
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # --- writing ---------------------------------------------------------------------------

    def create_run(
        self,
        job: str,
        scheduled: Optional[float],
        trigger: Trigger,
        now: float,
        state: RunState = RunState.PENDING,
        attempt: int = 1,
        first_run: Optional[int] = None,
        reason: str = "",
        due: Optional[float] = None,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs"
            " (job, scheduled, trigger, attempt, first_run, state, reason, created, due)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job, scheduled, trigger.value, attempt, first_run, state.value, reason, now, due),
        )
        run_id = cursor.lastrowid
        assert run_id is not None
        if state.final:
            self._set_last_run(job, run_id)
        return run_id

    def transition(
        self, run_id: int, state: RunState, expected: Iterable[RunState], **fields: object
    ) -> bool:
        """Move a run to `state` only if it is in one of `expected`; write `fields` with it."""
        allowed = [s.value for s in expected]
        columns = "".join(f", {name} = ?" for name in fields)
        marks = ", ".join("?" for _ in allowed)
        with self.batch():
            cursor = self.db.execute(
                f"UPDATE runs SET state = ?{columns} WHERE id = ? AND state IN ({marks})",
                (state.value, *fields.values(), run_id, *allowed),
            )
            changed = cursor.rowcount == 1
            if changed and state.final:
                job = self.db.execute("SELECT job FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
                self._set_last_run(job, run_id)
        return changed

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for several writes; inside another batch, part of that one."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _set_last_run(self, job: str, run_id: int) -> None:
        self.db.execute(
            "INSERT INTO jobs (name, last_run) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE"
            " SET last_run = MAX(COALESCE(last_run, 0), excluded.last_run)",
            (job, run_id),
        )

    def add_note(self, run_id: int, note: str) -> None:
        """Append a line to a run's notes, such as a notifier that failed."""
        self.db.execute(
            "UPDATE runs SET notes = CASE WHEN notes = '' THEN ? ELSE notes || char(10) || ? END"
            " WHERE id = ?",
            (note, note, run_id),
        )

    def set_last_scheduled(self, job: str, instant: float) -> None:
        self.db.execute(
            "INSERT INTO jobs (name, last_scheduled) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET last_scheduled = excluded.last_scheduled",
            (job, instant),
        )

    def set_paused(self, job: str, paused: bool) -> None:
        self.db.execute(
            "INSERT INTO jobs (name, paused) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET paused = excluded.paused",
            (job, int(paused)),
        )

    def prune(self, job: str, keep: int) -> int:
        """Delete all but the newest `keep` finished runs of `job`; returns how many went."""
        cursor = self.db.execute(
            "DELETE FROM runs WHERE job = ? AND state NOT IN (?, ?) AND id < ("
            " SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (job, *OPEN_STATES, job, keep - 1),
        )
        return cursor.rowcount

    # --- reading ---------------------------------------------------------------------------

    def run(self, run_id: int) -> Optional[Run]:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Run(*row) if row else None

    def runs(self, job: str, limit: int = 20, failed_only: bool = False) -> list[Run]:
        """The newest runs of a job, newest first."""
        where, args = "job = ?", [job]
        if failed_only:
            failed = [s.value for s in RunState if s.failed]
            where += f" AND state IN ({', '.join('?' for _ in failed)})"
            args += failed
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [Run(*row) for row in rows]

    def open_runs(self) -> list[Run]:
        """Runs still pending or running: after a crash, the ones that were lost."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE state IN (?, ?) ORDER BY id", OPEN_STATES
        ).fetchall()
        return [Run(*row) for row in rows]

    def job_states(self) -> dict[str, JobState]:
        rows = self.db.execute("SELECT name, last_scheduled, last_run, paused FROM jobs").fetchall()
        return {r[0]: JobState(r[0], r[1], r[2], bool(r[3])) for r in rows}

    def last_runs(self) -> dict[str, Run]:
        """The latest finished run of every job, by name."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id IN (SELECT last_run FROM jobs)"
        ).fetchall()
        return {row[1]: Run(*row) for row in rows}
