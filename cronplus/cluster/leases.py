"""The SQL of a cluster's coordination, one named statement each, run in the store thread.

Every time is the database's `now()`: a node's lease expires on the database's
clock, so clock skew between nodes changes nothing.  Correctness follows from
row locks and constraints: two survivors sweeping the same dead node cannot
both take its runs (the node row is updated from `alive` to `dead` once), and a
waiting retry is taken by one node (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import HistoryError
from ..store.postgres import _SELECT, PostgresHistory, _run
from ..store.records import OPEN_STATES, Run


class NameTaken(HistoryError):
    """Another live node holds this node's name."""


@dataclass(frozen=True)
class NodeFacts:
    """What a node publishes with each renewal."""

    version: str
    digest: str
    host: str
    pid: int
    running: int
    max_workers: int


@dataclass(frozen=True)
class NodeRow:
    name: str
    state: str
    lease_age: float  # seconds since the lease was last renewed, on the database's clock
    lease_left: float
    version: str
    digest: str
    host: str
    running: int
    max_workers: int
    started: datetime


def join(backend: PostgresHistory, incarnation: str, lease: float, facts: NodeFacts) -> None:
    """Take this node's name: refused while another live incarnation holds it."""
    with backend.db.transaction():
        row = backend.db.execute(
            "INSERT INTO nodes (name, incarnation, lease_expires, started, state, version,"
            " digest, host, pid, running, max_workers)"
            " VALUES (%(name)s, %(incarnation)s, now() + %(lease)s * interval '1 second', now(),"
            " 'alive', %(version)s, %(digest)s, %(host)s, %(pid)s, %(running)s, %(max_workers)s)"
            " ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation,"
            " lease_expires = excluded.lease_expires, renewed = now(),"
            " started = excluded.started, state = 'alive',"
            " version = excluded.version, digest = excluded.digest, host = excluded.host,"
            " pid = excluded.pid, running = excluded.running, max_workers = excluded.max_workers"
            " WHERE nodes.lease_expires < now() OR nodes.state <> 'alive'"
            " OR nodes.incarnation = excluded.incarnation"
            " RETURNING name",
            {"name": backend.node, "incarnation": incarnation, "lease": lease, **facts.__dict__},
        ).fetchone()
    if row is None:
        raise NameTaken(
            f'node name "{backend.node}" is held by another live node; give each node its own'
            " name (daemon.cluster.node)"
        )


def renew(backend: PostgresHistory, incarnation: str, lease: float, facts: NodeFacts) -> bool:
    """Extend the lease from the database's now; False when it had lapsed or was taken."""
    row = backend.db.execute(
        "UPDATE nodes SET lease_expires = now() + %(lease)s * interval '1 second',"
        " renewed = now(), digest = %(digest)s, version = %(version)s, running = %(running)s,"
        " max_workers = %(max_workers)s"
        " WHERE name = %(name)s AND incarnation = %(incarnation)s AND state = 'alive'"
        " AND lease_expires > now() RETURNING name",
        {"name": backend.node, "incarnation": incarnation, "lease": lease, **facts.__dict__},
    ).fetchone()
    return row is not None


def leave(backend: PostgresHistory, incarnation: str) -> None:
    """A clean stop: the lease ends now, and nobody needs to wait for it."""
    backend.db.execute(
        "UPDATE nodes SET state = 'left', lease_expires = now()"
        " WHERE name = %s AND incarnation = %s",
        (backend.node, incarnation),
    )


def sweep_dead(backend: PostgresHistory) -> list[Run]:
    """Declare every node past its lease dead, once, and record its open runs lost."""
    rows = backend.db.execute(
        "WITH dead AS (UPDATE nodes SET state = 'dead' WHERE state = 'alive'"
        " AND lease_expires < now() AND name <> %(me)s RETURNING name)"
        " UPDATE runs SET state = 'lost', ended = extract(epoch FROM now()),"
        " reason = 'lost: node ' || runs.node || ' stopped renewing its lease'"
        f" WHERE node IN (SELECT name FROM dead) AND state = ANY(%(open)s) RETURNING {_SELECT}",
        {"me": backend.node, "open": list(OPEN_STATES)},
    ).fetchall()
    return [_run(row) for row in rows]


def take_retries(
    backend: PostgresHistory, incarnation: str, most: int, caps: dict[str, int]
) -> list[Run]:
    """Waiting retries of `run_on: one` jobs whose backoff has passed, taken by this node,
    each only while its job has room across the cluster (`caps`: max_concurrent by job)."""
    taken: list[Run] = []
    if most <= 0:
        return taken
    with backend.db.transaction():
        holds = backend.db.execute(
            "SELECT 1 FROM nodes WHERE name = %s AND incarnation = %s AND lease_expires > now()",
            (backend.node, incarnation),
        ).fetchone()
        if holds is None:
            return taken
        candidates = backend.db.execute(
            "SELECT id, job FROM runs WHERE trigger = 'retry' AND state = 'pending'"
            " AND node = '' AND scope = '' AND due <= extract(epoch FROM now())"
            " ORDER BY due LIMIT %s FOR UPDATE SKIP LOCKED",
            (most,),
        ).fetchall()
        for run_id, job in candidates:
            if job not in caps:
                continue  # not a job of this node's config
            backend.db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"job:{job}",))
            busy = backend.db.execute(
                "SELECT count(*) FROM runs WHERE job = %s AND scope = ''"
                " AND (state = 'running' OR (state = 'pending' AND node <> ''))",
                (job,),
            ).fetchone()[0]
            if busy >= caps[job]:
                continue
            row = backend.db.execute(
                f"UPDATE runs SET node = %s WHERE id = %s RETURNING {_SELECT}",
                (backend.node, run_id),
            ).fetchone()
            taken.append(_run(row))
    return taken


def paused(backend: PostgresHistory) -> dict[str, bool]:
    """Each job's pause, which holds on every node."""
    rows = backend.db.execute("SELECT name, paused FROM jobs WHERE scope = ''").fetchall()
    return {str(name): bool(flag) for name, flag in rows}


def live(backend: PostgresHistory) -> list[tuple[str, str]]:
    """(name, config digest) of every node holding a lease now, by name."""
    rows = backend.db.execute(
        "SELECT name, digest FROM nodes WHERE state = 'alive' AND lease_expires > now()"
        " ORDER BY name"
    ).fetchall()
    return [(str(name), str(digest)) for name, digest in rows]


def nodes(backend: PostgresHistory) -> list[NodeRow]:
    rows = backend.db.execute(
        "SELECT name, state, extract(epoch FROM now() - renewed),"
        " extract(epoch FROM lease_expires - now()), version, digest, host, running,"
        " max_workers, started FROM nodes ORDER BY name"
    ).fetchall()
    return [
        NodeRow(name, state, float(age), float(left), version, digest, host, running, most, since)
        for name, state, age, left, version, digest, host, running, most, since in rows
    ]
