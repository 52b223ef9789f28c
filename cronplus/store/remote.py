"""The daemon's history when it lives in a shared PostgreSQL database.

The same memory in front as for SQLite (`RunStore`), with three differences:
writes go to the store thread and the loop does not wait for them (one batch in
flight at a time; a batch that fails is put back in front of what came after);
run ids come from blocks the database hands out; and a scheduled run of the
cluster is *claimed* — recorded only if no other node recorded its instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from ..errors import HistoryError
from .postgres import BLOCK, Pool, PostgresHistory, Scope
from .records import Changes, Run
from .sqlite import Snapshot
from .thread import StoreThread
from .writebehind import Report, RunStore

Claimed = Callable[[Run, bool], None]  # the run, and whether this node won it


class NoRunIds(HistoryError):
    """A node that never reached the store has no block of run ids to number runs with."""


class IdBlocks:
    """Run ids from blocks of BLOCK; the next block is asked for when half of one is used.

    The blocks in hand are kept in a file so that a node restarting while the
    database is away goes on numbering in a block no other node can have; it
    starts on the spare block, as ids of the current one may have been used.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.current: Optional[tuple[int, int]] = None  # (next id, end)
        self.spare: Optional[int] = None  # first id of an unused block
        self.asking = False
        with contextlib.suppress(OSError, ValueError), open(path) as saved:
            _current, spare = saved.read().split()  # "CURRENT SPARE", "-" for none
            if spare != "-":
                self.spare = int(spare)  # never resume the current block: it may be in use

    def take(self) -> int:
        if self.current is None or self.current[0] >= self.current[1]:
            if self.spare is None:
                raise NoRunIds(
                    "no run ids in hand: this node has not reached the cluster's store yet"
                )
            self.current, self.spare = (self.spare, self.spare + BLOCK), None
            self._save()
        run_id, end = self.current
        self.current = (run_id + 1, end)
        return run_id

    @property
    def low(self) -> bool:
        """Whether to ask for another block now."""
        if self.asking:
            return False
        if self.spare is None:
            return True
        return self.current is not None and self.current[1] - self.current[0] < BLOCK // 2

    def given(self, first: int) -> None:
        self.asking = False
        if self.spare is None:
            self.spare = first
        elif self.current is None or self.current[0] >= self.current[1]:
            self.current, self.spare = (self.spare, self.spare + BLOCK), first
        else:
            return  # a block more than needed: dropped, ids are plentiful
        self._save()

    def _save(self) -> None:
        current = str(self.current[1] - BLOCK) if self.current else "-"
        spare = str(self.spare) if self.spare is not None else "-"
        temporary = f"{self.path}.new"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{current} {spare}\n")
        os.replace(temporary, self.path)


class RemoteRunStore(RunStore):
    def __init__(
        self,
        snapshot: Snapshot,
        report: Report,
        url: str,
        writer: StoreThread[PostgresHistory],
        ids: IdBlocks,
        node: str,
        scope: Scope,
    ) -> None:
        super().__init__(None, snapshot, report, url)
        self.writer = writer
        self.ids = ids
        self.node = node
        self.scope = scope
        self._inflight: Optional[Changes] = None
        self._ask_for_ids()

    def close(self) -> None:
        self.writer.close()

    def _new_id(self) -> int:
        run_id = self.ids.take()
        self._ask_for_ids()
        return run_id

    def _ask_for_ids(self) -> None:
        if self.ids.low:
            self.ids.asking = True
            self.writer.submit(lambda backend: backend.id_block(), self._block)

    def _block(self, first: Optional[int], error: Optional[BaseException]) -> None:
        if error is not None or first is None:
            self.ids.asking = False
            return
        self.ids.given(first)

    def new_run(self, job: str, *args: Any, **kwargs: Any) -> Run:
        run = super().new_run(job, *args, **kwargs)
        return dataclasses.replace(run, node=self.node, scope=self.scope(job))

    def _waiting(self) -> list[Changes]:
        return [self._inflight, self._pending] if self._inflight else [self._pending]

    # --- claims ----------------------------------------------------------------------------

    def claim(
        self, claims: Sequence[tuple[Run, int, Optional[Pool]]], incarnation: str, done: Claimed
    ) -> None:
        """Ask the database, in one round trip, to record each run for this node unless its
        instant has a row (with each job's runs at once, and its pool's, across the cluster)."""
        asked = [(run, incarnation, most, pool) for run, most, pool in claims]

        def answered(outcomes: Optional[list[str]], error: Optional[BaseException]) -> None:
            for (run, _, _), outcome in zip(claims, outcomes or ["taken"] * len(claims)):
                won = error is None and outcome == "won"
                if won:
                    self._open[run.id] = run  # written: only later changes go in a batch
                done(run, won)

        self.writer.submit(lambda backend: backend.claim_many(asked), answered)

    def adopt(self, run: Run) -> None:
        """A row this node took from the database (a retry): held, as its own."""
        self._open[run.id] = run

    def make_claimable(self, run_id: int) -> None:
        """A retry of a `run_on: one` job: any node may take it, so none holds it yet."""
        run = self._pending.runs.get(run_id)
        if run is not None:
            self._pending.runs[run_id] = dataclasses.replace(run, node="")
        self._open.pop(run_id, None)

    # --- writing ---------------------------------------------------------------------------

    def flush(self, now: datetime) -> bool:
        """Hand what changed to the store thread; True unless the store is failing."""
        if not self.writer.bound or self._inflight is not None or not self._pending:
            return self.failure is None
        batch, self._pending, self._pending_output = self._pending, Changes(), 0
        self._inflight = batch
        self.writer.submit(
            lambda backend: backend.apply(batch), functools.partial(self._applied, batch)
        )
        return self.failure is None

    def _applied(self, batch: Changes, _result: Any, error: Optional[BaseException]) -> None:
        self._inflight = None
        now = datetime.now(timezone.utc)
        if error is None:
            # a pause is known to the cluster from now on: reads asked before this may be stale
            for job in batch.jobs:
                if job in self._paused_at:
                    self._paused_at[job] = time.monotonic()
            if self.failure is not None:
                self.report(
                    "history written again",
                    level="warning",
                    failing_since=datetime.fromtimestamp(
                        self.failure.since, timezone.utc
                    ).isoformat(),
                    dropped=self.failure.dropped,
                    written=len(batch.runs),
                )
                self.failure = None
            return
        self._pending = batch.absorb(self._pending)
        self._pending_output = sum(len(r.output or b"") for r in self._pending.runs.values())
        self._failed(now, error)


def open_remote_store(
    url: str,
    node: str,
    scope: Scope,
    report: Report,
    loop_writer: StoreThread[PostgresHistory],
    snapshot: Snapshot,
    ids_file: str,
) -> RemoteRunStore:
    return RemoteRunStore(snapshot, report, url, loop_writer, IdBlocks(ids_file), node, scope)


__all__ = ["IdBlocks", "NoRunIds", "RemoteRunStore", "open_remote_store"]
