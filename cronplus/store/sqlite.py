"""The history in one SQLite file: WAL, forward migrations, private file modes.

The daemon opens it writable and applies each batch of changes in one short
transaction (`apply`); cronplusctl opens it read-only when the daemon is down.
The file and its WAL and shared-memory files are readable by their owner only
(0600, in a directory made 0700): other users read history through the daemon,
which shows each of them only their own jobs.  A file SQLite cannot read as a
database is moved aside, never deleted, and a fresh one is started.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from ..errors import HistoryError
from .records import (
    ALERT_COLUMNS,
    FAILED_STATES,
    OPEN_STATES,
    RUN_COLUMNS,
    AlertState,
    Changes,
    JobState,
    Run,
    alert_row,
    upsert_alert,
)
from .schema import SCHEMA_VERSION, SQLITE_MIGRATIONS

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
COMPANIONS = ("-wal", "-shm")
# The daemon's writes give up quickly when someone else holds the lock: they are kept
# and written on the next turn, so a stray `sqlite3` shell can never stall the loop.
WRITER_BUSY_MS = 100
READER_BUSY_MS = 5000
_SELECT = ", ".join(RUN_COLUMNS)
_WITHOUT_OUTPUT = _SELECT.replace("output,", "NULL AS output,", 1)
_UPSERT_ALERT = upsert_alert("?")
_UPSERT_RUN = (
    f"INSERT INTO runs ({_SELECT}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)})"
    " ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "id")
)


def is_corrupt(exc: BaseException) -> bool:
    """Whether SQLite says the file is not a database, or a damaged one."""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc)
    return "malformed" in text or "not a database" in text


# A file system that is full, read-only or failing may recover; a path that cannot
# exist or may not be opened needs the operator.
_PASSING_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT, errno.EAGAIN}
_PASSING_SQLITE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED")


def passing(exc: BaseException) -> bool:
    """Whether an error opening or writing the history may go away by itself."""
    if isinstance(exc, OSError):
        return exc.errno in _PASSING_ERRNOS
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(_PASSING_SQLITE)
    text = str(exc)
    return any(w in text for w in ("disk is full", "disk I/O", "readonly", "locked"))


def move_aside(path: str, now: datetime) -> str:
    """Rename a damaged history (and its WAL and shared memory) out of the way; returns the name."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = f"{path}.corrupt-{stamp}"
    for suffix in ("", *COMPANIONS):
        with contextlib.suppress(FileNotFoundError):
            os.rename(path + suffix, target + suffix)
            os.chmod(target + suffix, FILE_MODE)
    return target


def _secure(path: str) -> None:
    """Owner-only modes on the file and its companions, where this process owns them."""
    for suffix in ("", *COMPANIONS):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            info = os.stat(path + suffix)
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != FILE_MODE:
                os.chmod(path + suffix, FILE_MODE)


def _create_private(path: str) -> None:
    """Make the file 0600 before SQLite opens it: its WAL and shared memory copy that mode."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=DIRECTORY_MODE)
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    os.close(descriptor)


_OPEN_LITERAL = "(" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"


class SqliteHistory:
    """One SQLite history file; writable for the daemon, read-only for the CLI."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        try:
            self.db = self._connect()
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            if not readonly:
                _secure(path)
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc):
                raise CorruptHistory(f"{path}: {exc}") from exc
            kind = HistoryUnavailable if passing(exc) else HistoryError
            raise kind(f"{path}: {_explain(exc, readonly)}") from exc

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            _create_private(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {WRITER_BUSY_MS}")
            return db
        try:
            os.stat(self.path)
        except FileNotFoundError:
            raise HistoryError(f"{self.path}: no history yet (the daemon has not run)") from None
        except PermissionError:
            pass  # its directory is closed to this user: said below
        if not os.access(self.path, os.R_OK):
            raise HistoryError(
                f"{self.path}: permission denied: the history is readable by its owner only;"
                " ask the running daemon, or read it as its owner"
            )
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {READER_BUSY_MS}")
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            # A reader that may not create the shared-memory file next to a WAL database
            # (another user, a full or read-only file system) cannot open it read-only;
            # with no daemon writing and nothing left in the WAL, the file is whole.
            db.close()
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(self.path + "-wal") > 0:
                    raise
            db = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True, isolation_level=None)
        return db

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
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
                for statement in SQLITE_MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # --- writing ---------------------------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        """Write one batch of changes in one transaction; raises sqlite3.Error or OSError."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_UPSERT_RUN, [_row(run) for run in changes.runs.values()])
            db.executemany(
                "INSERT INTO jobs (name, last_scheduled, last_run, paused) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET last_scheduled = excluded.last_scheduled,"
                " last_run = excluded.last_run, paused = excluded.paused",
                [
                    (j.name, j.last_scheduled, j.last_run, int(j.paused))
                    for j in changes.jobs.values()
                ],
            )
            db.executemany(
                "UPDATE runs SET notes = CASE WHEN notes = '' THEN ?1"
                " ELSE notes || char(10) || ?1 END WHERE id = ?2",
                changes.notes,
            )
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(changes.meta.items()),
            )
            db.executemany(_UPSERT_ALERT, [alert_row(a) for a in changes.alerts.values()])
            for job, keep in changes.prune.items():
                db.execute(
                    "DELETE FROM runs WHERE job = ? AND state NOT IN (?, ?) AND id < ("
                    " SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (job, *OPEN_STATES, job, keep - 1),
                )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- reading ---------------------------------------------------------------------------

    def _runs(self, where: str, args: Iterable[Any] = ()) -> list[Run]:
        rows = self.db.execute(f"SELECT {_SELECT} FROM runs {where}", tuple(args)).fetchall()
        return [Run(*row) for row in rows]

    def run(self, run_id: int) -> Optional[Run]:
        found = self._runs("WHERE id = ?", (run_id,))
        return found[0] if found else None

    def runs(self, job: str, limit: int = 20, failed_only: bool = False) -> list[Run]:
        """The newest runs of a job, newest first, without their output."""
        where, args = "WHERE job = ?", [job]
        if failed_only:
            where += f" AND state IN ({', '.join('?' for _ in FAILED_STATES)})"
            args += FAILED_STATES
        rows = self.db.execute(
            f"SELECT {_WITHOUT_OUTPUT} FROM runs {where} ORDER BY id DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [Run(*row) for row in rows]

    def job_of(self, run_id: int) -> Optional[str]:
        row = self.db.execute("SELECT job FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def open_runs(self) -> list[Run]:
        """Runs still pending or running: after a crash, the ones that were lost."""
        # the states written out, not bound: only then can SQLite use the partial index
        # on open runs instead of reading every row of a long history
        return self._runs(f"WHERE state IN {_OPEN_LITERAL} ORDER BY id")

    def job_states(self) -> dict[str, JobState]:
        rows = self.db.execute("SELECT name, last_scheduled, last_run, paused FROM jobs").fetchall()
        return {r[0]: JobState(r[0], r[1], r[2], bool(r[3])) for r in rows}

    def last_runs(self) -> dict[str, Run]:
        """The latest finished run of every job, by name, without its output."""
        rows = self.db.execute(
            f"SELECT {_WITHOUT_OUTPUT} FROM runs WHERE id IN (SELECT last_run FROM jobs)"
        ).fetchall()
        return {row[1]: Run(*row) for row in rows}

    def misses_since(self, since: float) -> dict[str, int]:
        """Missed instants per job scheduled at or after `since`."""
        rows = self.db.execute(
            "SELECT job, SUM(instants) FROM runs WHERE state = 'missed'"
            " AND COALESCE(scheduled_until, scheduled) >= ? GROUP BY job",
            (since,),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def alert_states(self) -> dict[str, AlertState]:
        rows = self.db.execute(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts").fetchall()
        return {row[0]: AlertState(*row) for row in rows}

    def runs_between(
        self, since: float, until: float, jobs: Optional[Sequence[str]], limit: int
    ) -> list[Run]:
        """Runs that were open at some time in [since, until], without their output:
        the newest `limit` that ended, and every one still open; `jobs` None is every job.

        Newest first by end, through the index on `ended`, so a long history costs
        only the rows asked for.
        """
        only, args = "", []
        if jobs is not None:
            only, args = "AND job IN (SELECT value FROM json_each(?))", [json.dumps(list(jobs))]
        ended = self.db.execute(
            f"SELECT {_WITHOUT_OUTPUT} FROM runs WHERE ended >= ? AND"
            f" COALESCE(started, created) <= ? {only} ORDER BY ended DESC LIMIT ?",
            (since, until, *args, limit),
        ).fetchall()
        still_open = self.db.execute(
            f"SELECT {_WITHOUT_OUTPUT} FROM runs WHERE ended IS NULL AND created <= ? {only}",
            (until, *args),
        ).fetchall()
        return [Run(*row) for row in [*still_open, *ended]]

    def job_times(self, failed: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]:
        """Per job: when its last run started, its last success ended, its last failure ended."""
        marks = ", ".join("?" for _ in failed)
        rows = self.db.execute(
            "SELECT job, MAX(started), MAX(CASE WHEN state = 'succeeded' THEN ended END),"
            f" MAX(CASE WHEN state IN ({marks}) THEN ended END) FROM runs GROUP BY job",
            tuple(failed),
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def largest_run_id(self) -> int:
        row = self.db.execute(
            "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM runs"
            " UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'runs')"
        ).fetchone()
        return int(row[0] or 0)


class CorruptHistory(HistoryError):
    """SQLite cannot read the file as a history: it is moved aside and a fresh one started."""


class HistoryUnavailable(HistoryError):
    """The file cannot be opened or written now (a full disk, an I/O error, a read-only
    file system); it may be later."""


def _row(run: Run) -> tuple[Any, ...]:
    return tuple(getattr(run, column) for column in RUN_COLUMNS)


def _explain(exc: BaseException, readonly: bool) -> str:
    text = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    if "readonly" in text and readonly:
        return f"{text} (its directory must be writable by the reader, or the daemon running)"
    return text


@dataclass(frozen=True)
class Snapshot:
    """What the daemon reads once at start: the rest it keeps in memory."""

    instance: Optional[str]
    largest_run_id: int
    open_runs: list[Run]
    job_states: dict[str, JobState]
    alert_states: dict[str, AlertState] = field(default_factory=dict)


def open_daemon_history(path: str, now: datetime) -> tuple[SqliteHistory, Snapshot, Optional[str]]:
    """The daemon's history and what it holds; a damaged file is moved aside (its new name)."""
    try:
        history, snapshot = _open_with_snapshot(path)
        return history, snapshot, None
    except CorruptHistory:
        moved = move_aside(path, now)
    history, snapshot = _open_with_snapshot(path)
    return history, snapshot, moved


def _open_with_snapshot(path: str) -> tuple[SqliteHistory, Snapshot]:
    history = SqliteHistory(path)
    try:
        snapshot = Snapshot(
            history.meta("instance"),
            history.largest_run_id(),
            history.open_runs(),
            history.job_states(),
            history.alert_states(),
        )
    except sqlite3.Error as exc:
        history.close()
        if isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc):
            raise CorruptHistory(f"{path}: {exc}") from exc
        raise HistoryUnavailable(f"{path}: {exc}") from exc
    return history, snapshot


EMPTY = Snapshot(None, 0, [], {})


def read_snapshot(path: str) -> Snapshot:
    """What a history holds, read-only: for a daemon that cannot open it for writing yet.

    A missing file holds nothing; a file that cannot be read raises HistoryError, for
    run ids handed out without knowing its own could collide with them later.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:  # none, or made but never written
        return EMPTY
    reader = SqliteHistory(path, readonly=True)
    try:
        return Snapshot(
            reader.meta("instance"),
            reader.largest_run_id(),
            reader.open_runs(),
            reader.job_states(),
            reader.alert_states(),
        )
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: {exc}") from exc
    finally:
        reader.close()
