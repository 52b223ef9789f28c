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
    # 5: clusters: which node ran a run, and which node an instance of `run_on: each` is for
    """
    ALTER TABLE runs ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    """,
    # 6: chains: the run whose end started a chained run, and whether a run's final outcome
    #    starts its job's followers (not for `cronplusctl run` without --chain)
    """
    ALTER TABLE runs ADD COLUMN caused_by INTEGER;
    ALTER TABLE runs ADD COLUMN starts_followers INTEGER NOT NULL DEFAULT 1;
    """,
    # 7: what each job's alarms remember: failing since, last told, last success
    """
    CREATE TABLE alerts (
        job TEXT PRIMARY KEY,
        failing_since REAL,
        told REAL,
        untold INTEGER NOT NULL DEFAULT 0,
        last_success REAL,
        watched_since REAL,
        overdue REAL
    );
    """,
    # 8: runs by when they ended, for the runs of a window of time (the dashboard's timeline)
    """
    CREATE INDEX runs_by_end ON runs(ended);
    """,
)
SCHEMA_VERSION = len(SQLITE_MIGRATIONS)

# The same history for PostgreSQL, step for step, and what a cluster adds in step 5.
POSTGRES_MIGRATIONS: Sequence[str] = (
    # 1: runs and per-job state
    """
    CREATE TABLE runs (
        id BIGINT PRIMARY KEY,
        job TEXT NOT NULL,
        scheduled DOUBLE PRECISION,
        trigger TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        first_run BIGINT,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        created DOUBLE PRECISION NOT NULL,
        started DOUBLE PRECISION,
        ended DOUBLE PRECISION,
        exit_code INTEGER,
        signal INTEGER,
        duration DOUBLE PRECISION,
        output BYTEA,
        output_bytes BIGINT NOT NULL DEFAULT 0,
        peak_rss BIGINT
    );
    CREATE INDEX runs_by_job ON runs(job, id);
    CREATE INDEX runs_open ON runs(state) WHERE state IN ('pending', 'running');
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_scheduled DOUBLE PRECISION,
        last_run BIGINT,
        paused BOOLEAN NOT NULL DEFAULT FALSE
    );
    """,
    # 2: when a waiting retry is due
    """
    ALTER TABLE runs ADD COLUMN due DOUBLE PRECISION;
    """,
    # 3: what went wrong telling the notifiers
    """
    ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
    """,
    # 4: missed instants, the identity of a run's processes, the instance
    """
    ALTER TABLE runs ADD COLUMN instants INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN scheduled_until DOUBLE PRECISION;
    ALTER TABLE runs ADD COLUMN start_ticks BIGINT;
    ALTER TABLE runs ADD COLUMN boot_id TEXT;
    ALTER TABLE runs ADD COLUMN cgroup TEXT;
    CREATE INDEX runs_missed ON runs(job, scheduled) WHERE state = 'missed';
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 5: clusters.  A run is claimed by inserting its row: one row per (job, instant)
    # for `run_on: one`, per (job, instant, node) for `run_on: each`; nodes hold leases
    # on the database's clock; run ids come in blocks, one block a node at a time.
    """
    ALTER TABLE runs ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX runs_one_per_instant ON runs(job, scheduled, scope)
        WHERE trigger IN ('schedule', 'catch-up') AND scheduled IS NOT NULL;
    CREATE INDEX runs_by_node ON runs(node) WHERE state IN ('pending', 'running');
    ALTER TABLE jobs ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs DROP CONSTRAINT jobs_pkey;
    ALTER TABLE jobs ADD PRIMARY KEY (name, scope);
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        incarnation TEXT NOT NULL,
        lease_expires TIMESTAMPTZ NOT NULL,
        renewed TIMESTAMPTZ NOT NULL DEFAULT now(),
        started TIMESTAMPTZ NOT NULL,
        state TEXT NOT NULL DEFAULT 'alive',
        version TEXT NOT NULL DEFAULT '',
        digest TEXT NOT NULL DEFAULT '',
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        running INTEGER NOT NULL DEFAULT 0,
        max_workers INTEGER NOT NULL DEFAULT 0
    );
    CREATE SEQUENCE run_blocks START 1;
    CREATE FUNCTION cronplus_claim(
        claimed runs, incarnation TEXT, most INTEGER, pool TEXT, pool_jobs TEXT[], pool_most INTEGER
    ) RETURNS TEXT LANGUAGE plpgsql AS $claim$
    DECLARE
        busy INTEGER;
        inserted BIGINT;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM nodes WHERE name = claimed.node
                       AND nodes.incarnation = cronplus_claim.incarnation
                       AND lease_expires > now()) THEN
            RETURN 'taken';
        END IF;
        IF most > 0 THEN
            PERFORM pg_advisory_xact_lock(hashtext('job:' || claimed.job));
            SELECT count(*) INTO busy FROM runs WHERE job = claimed.job
                AND scope = claimed.scope
                AND (state = 'running' OR (state = 'pending' AND node <> ''));
            IF busy >= most THEN
                claimed.state := 'skipped';
                claimed.ended := claimed.created;
                claimed.reason := 'skipped: overlap: ' || busy
                    || ' run(s) already running in the cluster';
            END IF;
        END IF;
        IF pool_most > 0 AND claimed.state <> 'skipped' THEN
            PERFORM pg_advisory_xact_lock(hashtext('pool:' || pool));
            SELECT count(*) INTO busy FROM runs WHERE job = ANY(pool_jobs)
                AND (state = 'running' OR (state = 'pending' AND node <> ''));
            IF busy >= pool_most THEN
                claimed.state := 'skipped';
                claimed.ended := claimed.created;
                claimed.reason := 'skipped: pool ' || pool || ': ' || busy
                    || ' run(s) already running in the cluster';
            END IF;
        END IF;
        INSERT INTO runs SELECT claimed.* ON CONFLICT DO NOTHING RETURNING id INTO inserted;
        IF inserted IS NULL THEN
            RETURN 'taken';
        END IF;
        INSERT INTO jobs (name, scope, last_scheduled)
            VALUES (claimed.job, claimed.scope, claimed.scheduled)
            ON CONFLICT (name, scope) DO UPDATE SET last_scheduled = CASE
                WHEN excluded.scope = '' THEN GREATEST(jobs.last_scheduled, excluded.last_scheduled)
                ELSE excluded.last_scheduled END;
        RETURN CASE WHEN claimed.state = 'skipped' THEN 'skipped' ELSE 'won' END;
    END
    $claim$;
    """,
    # 6: chains, as for SQLite
    """
    ALTER TABLE runs ADD COLUMN caused_by BIGINT;
    ALTER TABLE runs ADD COLUMN starts_followers INTEGER NOT NULL DEFAULT 1;
    """,
    # 7: what each job's alarms remember, as for SQLite but a row a node: each node tells
    # of the runs it ran and the instants it missed, and learns the others' successes
    """
    CREATE TABLE alerts (
        job TEXT NOT NULL,
        node TEXT NOT NULL DEFAULT '',
        failing_since DOUBLE PRECISION,
        told DOUBLE PRECISION,
        untold INTEGER NOT NULL DEFAULT 0,
        last_success DOUBLE PRECISION,
        watched_since DOUBLE PRECISION,
        overdue DOUBLE PRECISION,
        PRIMARY KEY (job, node)
    );
    """,
    # 8: runs by when they ended: a window of time, the successes other nodes learn
    """
    CREATE INDEX runs_by_end ON runs(ended);
    """,
)
assert len(POSTGRES_MIGRATIONS) == SCHEMA_VERSION, "one schema history for both backends"
