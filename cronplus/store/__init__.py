"""The run history: one interface for the daemon, the control socket and the CLI.

`records` are the rows; `sqlite` keeps them in one SQLite file; `writebehind`
holds what the daemon records in memory until the file takes it, so a full disk
never stops the schedule; `postgres` and `remote` do the same for a cluster's
shared store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from .pruning import Pruner
from .records import FAILED_STATES, OPEN_STATES, AlertState, JobState, Run
from .schema import SCHEMA_VERSION
from .sqlite import HistoryUnavailable, SqliteHistory, open_daemon_history, read_snapshot
from .writebehind import Report, RunStore

if TYPE_CHECKING:
    from ..model import Config


class HistoryReader(Protocol):
    """What cronplusctl reads of a history with no daemon to ask: a file or a shared store."""

    path: str

    def run(self, run_id: int) -> Optional[Run]: ...

    def job_of(self, run_id: int) -> Optional[str]: ...

    def runs(self, job: str, limit: int = 20, failed_only: bool = False) -> list[Run]: ...

    def open_runs(self) -> list[Run]: ...

    def job_states(self) -> dict[str, JobState]: ...

    def last_runs(self) -> dict[str, Run]: ...

    def misses_since(self, since: float) -> dict[str, int]: ...

    def runs_between(
        self, since: float, until: float, jobs: Optional[Sequence[str]], limit: int
    ) -> list[Run]: ...

    def job_times(self, failed: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]: ...

    def close(self) -> None: ...


def open_store(
    path: str, now: datetime, report: Report, pause: Callable[[], None] = lambda: None
) -> RunStore:
    """The daemon's store; a damaged history file is moved aside and reported.

    A file that cannot be opened for writing now (a full disk, a read-only file
    system) does not stop the daemon: it starts from what the file holds, read-only,
    keeps what it records in memory, and opens the file when it can.  Old runs are
    pruned in a thread that calls `pause` before each slice (the loop's gate).
    """
    try:
        backend, snapshot, moved = open_daemon_history(path, now)
    except HistoryUnavailable as exc:
        store = RunStore(None, read_snapshot(path), report, path)
        store.fail(now, exc)
    else:
        if moved is not None:
            report("history damaged; moved aside", level="error", history=path, moved_to=moved)
        store = RunStore(backend, snapshot, report, path)
    store.pruner = Pruner(path, pause)
    return store


def open_readonly(path: str) -> SqliteHistory:
    """The history as cronplusctl reads it when the daemon is down."""
    return SqliteHistory(path, readonly=True)


def open_reader(config: Config, path: str) -> HistoryReader:
    """The history `config` names, read-only: the file at `path`, or a cluster's store."""
    cluster = config.settings.cluster
    if cluster is None:
        return open_readonly(path)
    from .postgres import PostgresHistory

    def scope(job: str) -> str:
        found = config.jobs.get(job)
        return cluster.node if found is not None and found.run_on == "each" else ""

    return PostgresHistory(
        cluster.store, cluster.node, scope, readonly=True, password_file=cluster.password_file
    )


__all__ = [
    "FAILED_STATES",
    "OPEN_STATES",
    "SCHEMA_VERSION",
    "AlertState",
    "HistoryReader",
    "JobState",
    "Run",
    "RunStore",
    "SqliteHistory",
    "open_reader",
    "open_readonly",
    "open_store",
]
