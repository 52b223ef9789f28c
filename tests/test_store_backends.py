"""One store interface, two backends: the same tests on SQLite and on a real PostgreSQL server.

Plus what only the shared store does: claims that exactly one of many racing
nodes wins, and only under a valid lease.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import pytest
from postgres import PostgresServer

from cronplus.store import SqliteHistory
from cronplus.store.postgres import PostgresHistory
from cronplus.store.records import Changes, JobState, Run

Backend = Union[SqliteHistory, PostgresHistory]
_count = iter(range(1, 1_000_000))


def row(run_id: int, job: str = "a", scheduled: float = 100.0, **values: Any) -> Run:
    fields: dict[str, Any] = dict(
        id=run_id,
        job=job,
        scheduled=scheduled,
        trigger="schedule",
        attempt=1,
        first_run=None,
        state="succeeded",
        reason="",
        pid=None,
        created=1.0,
        started=2.0,
        ended=3.0,
        exit_code=0,
        signal=None,
        duration=1.0,
        output=b"ok\n",
        output_bytes=3,
        peak_rss=None,
        due=None,
        notes="",
    )
    fields.update(values)
    return Run(**fields)


def write(backend: Backend, *runs: Run, jobs: tuple[JobState, ...] = (), **extra: Any) -> None:
    changes = Changes()
    for run in runs:
        changes.runs[run.id] = run
        changes.new.add(run.id)
    for state in jobs:
        changes.jobs[state.name] = state
    for key, value in extra.items():
        setattr(changes, key, value)
    backend.apply(changes)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        made: Backend = SqliteHistory(str(tmp_path / "h.db"))
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.fresh_database(f"backend{next(_count)}")
        made = PostgresHistory(url, "n1", password_file=str(server.passfile(tmp_path / "pgpass")))
    yield made
    made.close()


def test_rows_are_inserted_updated_and_read_back_alike(backend: Backend) -> None:
    write(
        backend,
        row(1),
        row(2, scheduled=160.0, state="failed", exit_code=2),
        row(3, job="b", state="missed"),
    )
    changes = Changes()
    changes.runs[1] = dataclasses.replace(row(1), notes="seen")
    backend.apply(changes)
    first = backend.run(1)
    assert first is not None and (first.notes, first.output) == ("seen", b"ok\n")
    assert [r.id for r in backend.runs("a")] == [2, 1]
    assert [r.id for r in backend.runs("a", failed_only=True)] == [2]
    assert all(r.output is None for r in backend.runs("a"))  # listings leave output out
    assert backend.job_of(3) == "b" and backend.job_of(99) is None
    assert backend.misses_since(0) == {"b": 1}


def test_job_states_notes_prune_and_meta(backend: Backend) -> None:
    write(
        backend,
        *(row(i, scheduled=float(i)) for i in range(1, 8)),
        jobs=(JobState("a", 7.0, 7, True),),
        notes=[("notifier failed", 3)],
        prune={"a": 3},
        meta={"instance": "abc"},
    )
    assert [r.id for r in backend.runs("a", limit=10)] == [7, 6, 5]
    assert backend.job_states()["a"] == JobState("a", 7.0, 7, True)
    assert backend.last_runs()["a"].id == 7
    assert backend.meta("instance") == "abc"
    write(backend, row(8, scheduled=8.0), notes=[("a note", 8), ("another", 8)])
    eighth = backend.run(8)
    assert eighth is not None and eighth.notes == "a note\nanother"


def test_open_runs_are_those_left_pending_or_running(backend: Backend) -> None:
    write(
        backend,
        row(1, state="running", node="n1"),
        row(2, scheduled=160.0, state="pending", node="n1"),
        row(3, scheduled=220.0),
    )
    assert [r.id for r in backend.open_runs()] == [1, 2]


# --- the shared store only ----------------------------------------------------------------------


def cluster_store(server: PostgresServer, tmp_path: Path, nodes: int) -> list[PostgresHistory]:
    url = server.fresh_database(f"claims{next(_count)}")
    passfile = str(server.passfile(tmp_path / "pgpass"))
    made = [PostgresHistory(url, f"n{i}", password_file=passfile) for i in range(nodes)]
    for i, store in enumerate(made):
        store.db.execute(
            "INSERT INTO nodes (name, incarnation, lease_expires, started)"
            " VALUES (%s, %s, now() + interval '1 minute', now())",
            (f"n{i}", f"inc{i}"),
        )
    return made


def test_of_racing_nodes_exactly_one_claims_each_instant(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    stores = cluster_store(pg_server, tmp_path, 6)
    wins: dict[int, list[float]] = {i: [] for i in range(len(stores))}
    start = threading.Barrier(len(stores))

    def race(index: int) -> None:
        store = stores[index]
        start.wait()
        for instant in range(200):
            run = row(
                index * 1000 + instant + 1,
                scheduled=float(instant),
                state="pending",
                node=f"n{index}",
            )
            if store.claim(run, f"inc{index}") == "won":
                wins[index].append(float(instant))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = sorted(instant for won in wins.values() for instant in won)
    assert claimed == [float(i) for i in range(200)]  # every instant once, none twice
    assert sum(1 for won in wins.values() if won) >= 2  # a race, not one node after another
    assert stores[0].job_states()["a"].last_scheduled == 199.0  # the shared mark moved on
    for store in stores:
        store.close()


def test_no_claim_without_a_valid_lease_and_each_scope_is_per_node(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    first, second = cluster_store(pg_server, tmp_path, 2)
    assert first.claim(row(1, state="pending", node="n0"), "someone-else") == "taken"
    lapse = "UPDATE nodes SET lease_expires = now() - interval '1 second' WHERE name = 'n0'"
    first.db.execute(lapse)
    assert first.claim(row(2, state="pending", node="n0"), "inc0") == "taken"  # lease gone
    each: dict[str, Any] = {"state": "pending", "scope": "n1", "node": "n1"}
    assert second.claim(row(3, **each), "inc1") == "won"
    assert second.claim(row(4, **each), "inc1") == "taken"  # the same instant on the same node
    other: dict[str, Any] = {"state": "pending", "scope": "n0", "node": "n0"}
    renew = "UPDATE nodes SET lease_expires = now() + interval '1 minute' WHERE name = 'n0'"
    first.db.execute(renew)
    assert first.claim(row(5, **other), "inc0") == "won"  # run_on: each: another node's own
    for store in (first, second):
        store.close()


def test_a_job_full_across_the_cluster_records_the_instant_skipped(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    first, second = cluster_store(pg_server, tmp_path, 2)
    assert first.claim(row(1, scheduled=10.0, state="pending", node="n0"), "inc0", 1) == "won"
    first.db.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    later = row(2, scheduled=20.0, state="pending", node="n1")
    assert second.claim(later, "inc1", 1) == "skipped"
    skipped = second.run(2)
    assert skipped is not None and skipped.reason.startswith("skipped: overlap: 1 run(s)")
    assert second.claim(row(3, scheduled=30.0, state="pending", node="n1"), "inc1", 2) == "won"
    for store in (first, second):
        store.close()


def test_a_cluster_wide_pool_counts_the_runs_of_all_its_jobs(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    first, second = cluster_store(pg_server, tmp_path, 2)
    pool = ("db", ["a", "b"], 1)
    assert (
        first.claim(row(1, job="a", scheduled=10.0, state="pending", node="n0"), "inc0", 1, pool)
        == "won"
    )
    first.db.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    other = row(2, job="b", scheduled=10.0, state="pending", node="n1")
    assert second.claim(other, "inc1", 1, pool) == "skipped"
    skipped = second.run(2)
    assert skipped is not None and skipped.reason.startswith("skipped: pool db: 1 run(s)")
    outside = row(3, job="c", scheduled=10.0, state="pending", node="n1")
    assert second.claim(outside, "inc1", 1, None) == "won"  # not in the pool
    for store in (first, second):
        store.close()
