"""The history's schema, one migration a version; `PRAGMA user_version` says which applied."""

from __future__ import annotations

from collections.abc import Sequence

SQLITE_MIGRATIONS: Sequence[str] = (
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
    # 4: missed instants (one row may stand for many), the identity of a run's processes,
    #    and the identity of the instance that owns the file
    """
    ALTER TABLE runs ADD COLUMN instants INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN scheduled_until REAL;
    ALTER TABLE runs ADD COLUMN start_ticks INTEGER;
    ALTER TABLE runs ADD COLUMN boot_id TEXT;
    ALTER TABLE runs ADD COLUMN cgroup TEXT;
    CREATE INDEX runs_missed ON runs(job, scheduled) WHERE state = 'missed';
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 5: runs by when they ended, for the runs of a window of time (the dashboard's timeline)
    """
    CREATE INDEX runs_by_end ON runs(ended);
    """,
)
SCHEMA_VERSION = len(SQLITE_MIGRATIONS)
