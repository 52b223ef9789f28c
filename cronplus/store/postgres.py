"""The history in PostgreSQL, shared by the nodes of a cluster.

The same rows as the SQLite history, plus what coordination needs: the node that
ran each run, and for a `run_on: each` job the node an instant belongs to
(`scope`).  A scheduled run is claimed by inserting its row: a unique index on
(job, instant, scope) lets exactly one insert win, in the same transaction that
records the run, and only while the claiming node's lease is valid on the
database's clock.  Run ids come in blocks of BLOCK from a sequence, so a node
numbers its runs without asking the database each time.

Every method here blocks on the network: the daemon calls them from its store
thread or from control workers, never from its scheduling loop.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Callable, Optional

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
from .schema import POSTGRES_MIGRATIONS, SCHEMA_VERSION

BLOCK = 100_000  # run ids a node takes at a time
CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT_MS = 10_000
_SELECT = ", ".join(RUN_COLUMNS)
_WITHOUT_OUTPUT = _SELECT.replace("output,", "NULL AS output,", 1)
_MARKS = ", ".join(f"%({c})s" for c in RUN_COLUMNS)
_UPSERT_ALERT = upsert_alert("%s", key=("job", "node"))
_UPDATE = ", ".join(f"{c} = %({c})s" for c in RUN_COLUMNS if c != "id")
_PASSWORD_IN_URL = re.compile(r"^[a-z]+://[^/@:]*:[^/@]*@")

Scope = Callable[[str], str]  # job name -> "" (run_on: one) or this node (run_on: each)
Pool = tuple[str, Sequence[str], int]  # a cluster-wide pool: its name, its jobs, its size


class StoreUnreachable(HistoryError):
    """The database did not answer, or refused us; the daemon keeps going and tries again."""


def check_url(url: str) -> Optional[str]:
    """Why `url` cannot name the cluster's store, or None."""
    if not url.startswith(("postgresql://", "postgres://")):
        return "expected a postgresql:// URL"
    if _PASSWORD_IN_URL.match(url):
        return "a password in the URL, expected it in a password file or PGPASSFILE"
    return None


def driver() -> Any:
    """psycopg, or a message saying how to get it."""
    try:
        import psycopg
    except ImportError:
        raise HistoryError(
            "cluster mode needs psycopg 3: pip install 'cronplus[postgres]'"
        ) from None
    return psycopg


class PostgresHistory:
    """One connection to the shared history; for one thread at a time."""

    def __init__(
        self,
        url: str,
        node: str = "",
        scope: Optional[Scope] = None,
        readonly: bool = False,
        password_file: Optional[str] = None,
    ) -> None:
        self.url = url
        self.path = url  # what messages name
        self.node = node
        self.scope = scope or (lambda _job: "")
        self.readonly = readonly
        psycopg = driver()
        self._errors = (psycopg.Error, OSError)
        options = {"connect_timeout": CONNECT_TIMEOUT, "application_name": f"cronplus {node}"}
        if password_file:
            options["passfile"] = password_file
        try:
            self.db = psycopg.connect(url, autocommit=True, **options)
            self.db.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            if readonly:
                self.db.execute("SET default_transaction_read_only = on")
            self._migrate()
        except psycopg.OperationalError as exc:
            raise StoreUnreachable(f"{_safe(url)}: {_one_line(exc)}") from exc
        except psycopg.Error as exc:
            raise HistoryError(f"{_safe(url)}: {_one_line(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()

    def _version(self) -> int:
        exists = self.db.execute("SELECT to_regclass('schema_version')").fetchone()[0]
        if exists is None:
            return 0
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self.db.transaction():
            if not self.readonly:
                self.db.execute("SELECT pg_advisory_xact_lock(7302311)")  # one node migrates
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
            version = self._version()
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{_safe(self.url)}: schema version {version} is newer than this cronplus"
                    f" understands ({SCHEMA_VERSION})"
                )
            if version == SCHEMA_VERSION:
                return
            if self.readonly:
                raise HistoryError(
                    f"{_safe(self.url)}: schema version {version} needs a daemon to upgrade it"
                )
            for number in range(version, SCHEMA_VERSION):
                self.db.execute(POSTGRES_MIGRATIONS[number])
            self.db.execute("DELETE FROM schema_version")
            self.db.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))

    # --- writing ---------------------------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        """Write one batch of changes in one transaction.

        A row written for the first time is inserted, and quietly dropped when another
        node has already recorded that instant; a row written before is updated.
        """
        new = [_params(r) for i, r in changes.runs.items() if i in changes.new]
        old = [_params(r) for i, r in changes.runs.items() if i not in changes.new]
        with self.db.transaction(), self.db.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO runs ({_SELECT}) VALUES ({_MARKS}) ON CONFLICT DO NOTHING", new
            )
            # a row never moves back from a final state: another node may have ended it
            cursor.executemany(
                f"UPDATE runs SET {_UPDATE} WHERE id = %(id)s"
                " AND (runs.state IN ('pending', 'running') OR runs.state = %(state)s)",
                old,
            )
            for state in changes.jobs.values():
                self._write_mark(cursor, state.name, state.last_scheduled, state.last_run)
                cursor.execute(
                    "INSERT INTO jobs (name, scope, paused) VALUES (%s, '', %s)"
                    " ON CONFLICT (name, scope) DO UPDATE SET paused = excluded.paused",
                    (state.name, state.paused),
                )
            cursor.executemany(
                "UPDATE runs SET notes = CASE WHEN notes = '' THEN %s"
                " ELSE notes || chr(10) || %s END WHERE id = %s",
                [(note, note, run_id) for note, run_id in changes.notes],
            )
            cursor.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(changes.meta.items()),
            )
            cursor.executemany(
                _UPSERT_ALERT, [(self.node, *alert_row(a)) for a in changes.alerts.values()]
            )
            for job, keep in changes.prune.items():
                cursor.execute(
                    "DELETE FROM runs WHERE job = %s AND NOT (state = ANY(%s)) AND id < ("
                    " SELECT id FROM runs WHERE job = %s ORDER BY id DESC LIMIT 1 OFFSET %s)",
                    (job, list(OPEN_STATES), job, keep - 1),
                )

    def _write_mark(
        self, cursor: Any, name: str, mark: Optional[float], last_run: Optional[int]
    ) -> None:
        """The mark and last run in the job's scope; a `run_on: one` mark only moves
        forward, whichever node writes it.  Paused lives in the shared row (scope "")."""
        scope = self.scope(name)
        moved = "excluded.last_scheduled"
        if scope == "":
            moved = "GREATEST(jobs.last_scheduled, excluded.last_scheduled)"
        cursor.execute(
            "INSERT INTO jobs (name, scope, last_scheduled, last_run) VALUES (%s, %s, %s, %s)"
            f" ON CONFLICT (name, scope) DO UPDATE SET last_scheduled = {moved},"
            " last_run = GREATEST(jobs.last_run, excluded.last_run)",
            (name, scope, mark, last_run),
        )

    def claim(self, run: Run, incarnation: str, most: int = 0, pool: Optional[Pool] = None) -> str:
        """Record a scheduled run if no node has recorded its instant, while our lease holds.

        `most` caps the job's runs at once across the cluster (its `max_concurrent`):
        an instant that finds the job full is recorded skipped.  Returns "won",
        "skipped" (recorded here, not run) or "taken" (another node has the instant, or
        our lease is gone).  See `claim_many`.
        """
        return self.claim_many([(run, incarnation, most, pool)])[0]

    def claim_many(self, claims: Sequence[tuple[Run, str, int, Optional[Pool]]]) -> list[str]:
        """Several claims in one round trip to the server (a pipeline); each is one call of
        the database's `cronplus_claim`, its own transaction: the lease check, the job's
        count under an advisory lock (claims of one job take turns), the insert the
        unique index lets one node win, and the job's mark moving with it.  A cluster-wide
        pool (name, its jobs, its size) is counted the same way, under its own lock."""
        from psycopg.types.json import Jsonb

        statement = (
            "SELECT cronplus_claim(jsonb_populate_record(NULL::runs, %s), %s, %s, %s, %s, %s)"
        )
        with self.db.pipeline():
            cursors = [
                self.db.execute(
                    statement,
                    (
                        Jsonb(_json(run)),
                        incarnation,
                        most,
                        pool[0] if pool else "",
                        list(pool[1]) if pool else [],
                        pool[2] if pool else 0,
                    ),
                )
                for run, incarnation, most, pool in claims
            ]
        return [str(cursor.fetchone()[0]) for cursor in cursors]

    def end(self, run: Run) -> bool:
        """Record a run's end if it is still open here; False: another node ended it first
        (it declared this node dead), and retrying it is that node's business."""
        row = self.db.execute(
            f"UPDATE runs SET {_UPDATE} WHERE id = %(id)s AND state IN ('pending', 'running')"
            " RETURNING id",
            _params(run),
        ).fetchone()
        return row is not None

    def id_block(self) -> int:
        """The first id of a fresh block of BLOCK run ids."""
        row = self.db.execute("SELECT nextval('run_blocks')").fetchone()
        return (int(row[0]) - 1) * BLOCK + 1

    # --- reading ---------------------------------------------------------------------------

    def _runs(self, where: str, args: Iterable[Any] = (), columns: str = _SELECT) -> list[Run]:
        rows = self.db.execute(f"SELECT {columns} FROM runs {where}", tuple(args)).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> Optional[Run]:
        found = self._runs("WHERE id = %s", (run_id,))
        return found[0] if found else None

    def runs(self, job: str, limit: int = 20, failed_only: bool = False) -> list[Run]:
        where, args = "WHERE job = %s", list[Any]([job])
        if failed_only:
            where += " AND state = ANY(%s)"
            args.append(list(FAILED_STATES))
        return self._runs(f"{where} ORDER BY id DESC LIMIT %s", (*args, limit), _WITHOUT_OUTPUT)

    def job_of(self, run_id: int) -> Optional[str]:
        row = self.db.execute("SELECT job FROM runs WHERE id = %s", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def open_runs(self) -> list[Run]:
        """This node's runs still pending or running: after a crash, the ones it lost."""
        return self._runs(
            "WHERE state = ANY(%s) AND node = %s ORDER BY id", (list(OPEN_STATES), self.node)
        )

    def job_states(self) -> dict[str, JobState]:
        """Each job's mark and last run in its scope for this node; paused from the shared row."""
        rows = self.db.execute(
            "SELECT name, scope, last_scheduled, last_run, paused FROM jobs"
            " WHERE scope IN ('', %s)",
            (self.node,),
        ).fetchall()
        shared = {r[0]: bool(r[4]) for r in rows if r[1] == ""}
        states: dict[str, JobState] = {}
        for name, scope, mark, last_run, _ in rows:
            if scope == self.scope(name):
                states[name] = JobState(name, mark, last_run, shared.get(name, False))
        for name, paused in shared.items():
            states.setdefault(name, JobState(name, None, None, paused))
        return states

    def last_runs(self) -> dict[str, Run]:
        """The newest finished run of every job, on any node."""
        rows = self.db.execute(
            f"SELECT DISTINCT ON (job) {_WITHOUT_OUTPUT} FROM runs"
            " WHERE id IN (SELECT last_run FROM jobs WHERE last_run IS NOT NULL)"
            " ORDER BY job, id DESC"
        ).fetchall()
        return {row[1]: _run(row) for row in rows}

    def misses_since(self, since: float) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT job, SUM(instants) FROM runs WHERE state = 'missed'"
            " AND COALESCE(scheduled_until, scheduled) >= %s GROUP BY job",
            (since,),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def alert_states(self) -> dict[str, AlertState]:
        """This node's: each node remembers the alarms it raised."""
        rows = self.db.execute(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE node = %s", (self.node,)
        ).fetchall()
        return {row[0]: AlertState(*row) for row in rows}

    def successes_since(self, since: float) -> list[Run]:
        """Each job's latest success by another node that ended after `since`."""
        return self._runs(
            "WHERE id IN (SELECT DISTINCT ON (job) id FROM runs WHERE state = 'succeeded'"
            " AND ended > %s AND node <> %s ORDER BY job, ended DESC)",
            (since, self.node),
            columns=_WITHOUT_OUTPUT,
        )

    def runs_between(
        self, since: float, until: float, jobs: Optional[Sequence[str]], limit: int
    ) -> list[Run]:
        """As SqliteHistory.runs_between: the newest `limit` that ended in the window, and
        every one still open; `jobs` None is every job."""
        only, args = "", []
        if jobs is not None:
            only, args = "AND job = ANY(%s)", [list(jobs)]
        ended = self._runs(
            f"WHERE ended >= %s AND COALESCE(started, created) <= %s {only}"
            " ORDER BY ended DESC LIMIT %s",
            (since, until, *args, limit),
            _WITHOUT_OUTPUT,
        )
        still_open = self._runs(
            f"WHERE ended IS NULL AND created <= %s {only}", (until, *args), _WITHOUT_OUTPUT
        )
        return [*still_open, *ended]

    def job_times(self, failed: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]:
        """Per job, on every node: its last start, last success's end, last failure's end."""
        rows = self.db.execute(
            "SELECT job, MAX(started), MAX(CASE WHEN state = 'succeeded' THEN ended END),"
            " MAX(CASE WHEN state = ANY(%s) THEN ended END) FROM runs GROUP BY job",
            (list(failed),),
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def largest_run_id(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()
        return int(row[0])

    def now(self) -> datetime:
        """The database's clock, which leases are measured on."""
        value: datetime = self.db.execute("SELECT now()").fetchone()[0]
        return value


def _json(run: Run) -> dict[str, Any]:
    """A row for `jsonb_populate_record`: a new claim has no output yet."""
    values = _params(run)
    values["output"] = None
    return values


def _params(run: Run) -> dict[str, Any]:
    return {column: getattr(run, column) for column in RUN_COLUMNS}


def _run(row: Sequence[Any]) -> Run:
    values = list(row)
    output_at = RUN_COLUMNS.index("output")
    if values[output_at] is not None:
        values[output_at] = bytes(values[output_at])
    return Run(*values)


def _safe(url: str) -> str:
    """A URL for a message: never a password, even one given against the rules."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
