"""What the daemon records, held in memory until the history file takes it.

Scheduling never waits on the disk: every change lands in memory first and is
written at the loop's flush points, one transaction each.  When the file cannot
be written (a full disk, a read-only file system, an I/O error, a lock someone
else holds) the changes stay in memory and are written as soon as the file
accepts them; jobs run on meanwhile.  What stays in memory is bounded: at most
MAX_UNWRITTEN_RUNS rows and MAX_UNWRITTEN_OUTPUT bytes of captured output; past
those, output is dropped first (the byte count is kept), then the oldest
finished rows, and the count of dropped rows is logged.  Runs still pending or
running are always kept: the daemon needs them.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from secrets import token_hex
from typing import Any, Callable, Optional, TypeVar

from ..errors import HistoryError
from ..model import RunState, Trigger
from .pruning import Pruner
from .records import AlertState, Changes, JobState, Run
from .sqlite import Snapshot, SqliteHistory, is_corrupt, move_aside, open_daemon_history

MAX_UNWRITTEN_RUNS = 10_000
MAX_UNWRITTEN_OUTPUT = 32 << 20
REPORT_EVERY = 60.0  # seconds between log lines about a history that stays unwritable
OUTPUT_DROPPED = "output not kept: the history could not be written for too long"

Report = Callable[..., None]
T = TypeVar("T")


@dataclass
class WriteFailure:
    since: float  # epoch seconds of the first failed write
    error: str
    reported: float  # when it was last logged
    dropped: int = 0  # rows given up to keep memory bounded


class RunStore:
    """The daemon's history: memory in front, the file behind."""

    def __init__(
        self, backend: Optional[SqliteHistory], snapshot: Snapshot, report: Report, path: str
    ) -> None:
        self.backend = backend  # None until the file can be opened for writing
        self._path = path
        self.report = report
        self._next_id = snapshot.largest_run_id + 1
        self._open = {run.id: run for run in snapshot.open_runs}
        self._jobs = dict(snapshot.job_states)
        self._alerts = dict(snapshot.alert_states)
        self._pending = Changes()
        self._pending_output = 0
        self.failure: Optional[WriteFailure] = None
        self.on_end: Optional[Callable[[Run], None]] = None  # told of each run that ends
        self._paused_at: dict[str, float] = {}  # monotonic time of each pause set here
        self.pruner: Optional[Pruner] = None  # with a file: old runs deleted in a thread
        self._to_prune: dict[str, int] = {}  # handed to the pruner once written
        if snapshot.instance is None:
            self.instance = token_hex(8)
            self._pending.meta["instance"] = self.instance
        else:
            self.instance = snapshot.instance

    @property
    def path(self) -> str:
        return self._path

    @property
    def unwritten(self) -> int:
        return len(self._pending.runs)

    def close(self) -> None:
        if self.pruner is not None:
            self.pruner.close()
        if self.backend is not None:
            self.backend.close()

    # --- recording -------------------------------------------------------------------------

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
        instants: int = 1,
        scheduled_until: Optional[float] = None,
        caused_by: Optional[int] = None,
        starts_followers: bool = True,
    ) -> int:
        run = self.new_run(
            job,
            scheduled,
            trigger,
            now,
            state,
            attempt,
            first_run,
            reason,
            due,
            instants,
            scheduled_until,
            caused_by,
            starts_followers,
        )
        self._pending.new.add(run.id)
        self._record(run, ending=state.final)
        return run.id

    def new_run(
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
        instants: int = 1,
        scheduled_until: Optional[float] = None,
        caused_by: Optional[int] = None,
        starts_followers: bool = True,
    ) -> Run:
        """A row with a fresh id, not recorded yet."""
        return Run(
            id=self._new_id(),
            job=job,
            scheduled=scheduled,
            trigger=trigger.value,
            attempt=attempt,
            first_run=first_run,
            state=state.value,
            reason=reason,
            pid=None,
            created=now,
            started=None,
            ended=now if state.final else None,
            exit_code=None,
            signal=None,
            duration=None,
            output=None,
            output_bytes=0,
            peak_rss=None,
            due=due,
            notes="",
            instants=instants,
            scheduled_until=scheduled_until,
            caused_by=caused_by,
            starts_followers=int(starts_followers),
        )

    def _new_id(self) -> int:
        run_id = self._next_id
        self._next_id += 1
        return run_id

    def transition(
        self, run_id: int, state: RunState, expected: Iterable[RunState], **fields: Any
    ) -> bool:
        """Move an open run to `state` only if it is in one of `expected`; write `fields` with it.

        Only open runs can move, and the daemon holds every open run: a row can never
        move back from a final state.
        """
        run = self._open.get(run_id)
        if run is None or run.state not in {s.value for s in expected}:
            return False
        self._record(dataclasses.replace(run, state=state.value, **fields), ending=state.final)
        return True

    def _record(self, run: Run, ending: bool = False) -> None:
        """Keep the newest version of a row; `ending`: it just reached its final state."""
        old = self._pending.runs.get(run.id)
        self._pending_output += len(run.output or b"") - len((old.output if old else None) or b"")
        self._pending.runs[run.id] = run
        if run.open:
            self._open[run.id] = run
            return
        self._open.pop(run.id, None)
        state = self._jobs.get(run.job) or JobState(run.job, None, None, False)
        if state.last_run is None or run.id > state.last_run:
            self._set_job(dataclasses.replace(state, last_run=run.id))
        if ending and self.on_end is not None:
            self.on_end(run)

    def _set_job(self, state: JobState) -> None:
        self._jobs[state.name] = state
        self._pending.jobs[state.name] = state

    def set_last_scheduled(self, job: str, instant: float) -> None:
        state = self._jobs.get(job) or JobState(job, None, None, False)
        self._set_job(dataclasses.replace(state, last_scheduled=instant))

    def set_marks(self, jobs: Iterable[str], instant: float) -> None:
        """`set_last_scheduled` of many jobs (a reload's), made cheap for ten thousand."""
        known, pending = self._jobs, self._pending.jobs
        for job in jobs:
            state = known.get(job)
            if state is None:
                state = JobState(job, instant, None, False)
            else:
                state = JobState(job, instant, state.last_run, state.paused)
            known[job] = pending[job] = state

    def set_paused(self, job: str, paused: bool) -> None:
        state = self._jobs.get(job) or JobState(job, None, None, False)
        self._set_job(dataclasses.replace(state, paused=paused))
        self._paused_at[job] = time.monotonic()

    def learn_paused(self, paused: dict[str, bool], asked: float) -> None:
        """Pauses set elsewhere (another node of a cluster), as read when `asked` (monotonic):
        known here, not written back.  A pause set here that was not yet written when the
        read was made, or set since, is newer than what was read."""
        for job, flag in paused.items():
            state = self._jobs.get(job)
            if self._paused_at.get(job, -1.0) >= asked or any(
                job in batch.jobs for batch in self._waiting()
            ):
                continue
            if state is None:
                self._jobs[job] = JobState(job, None, None, flag)
            elif state.paused != flag:
                self._jobs[job] = dataclasses.replace(state, paused=flag)

    def alert_state(self, job: str) -> AlertState:
        return self._alerts.get(job) or AlertState(job)

    def alert_states(self) -> dict[str, AlertState]:
        return dict(self._alerts)

    def set_alert_state(self, state: AlertState) -> None:
        self._alerts[state.job] = state
        self._pending.alerts[state.job] = state

    def add_note(self, run_id: int, note: str) -> None:
        """Append a line to a run's notes, such as a notifier that failed."""
        run = self._pending.runs.get(run_id) or self._open.get(run_id)
        if run is None:
            self._pending.notes.append((note, run_id))
            return
        notes = f"{run.notes}\n{note}" if run.notes else note
        self._record(dataclasses.replace(run, notes=notes))

    def prune(self, job: str, keep: int) -> None:
        """Keep only the newest `keep` finished runs of `job`, after the next write: in
        the pruner's thread, a slice at a time; without one, in the write itself."""
        if self.pruner is not None:
            self._to_prune[job] = keep
        else:
            self._pending.prune[job] = keep

    # --- writing ---------------------------------------------------------------------------

    def flush(self, now: datetime) -> bool:
        """Write what changed; False when it stays in memory for a later try."""
        if not self._pending and self.failure is None:
            self._hand_prunes()
            return True
        try:
            self._write(now)
        except (sqlite3.Error, OSError, HistoryError) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc):
                return self._start_fresh(now, exc)
            self._failed(now, exc)
            return False
        self._written(now)
        self._hand_prunes()
        return True

    def _hand_prunes(self) -> None:
        failure = self.pruner.take_failure() if self.pruner is not None else None
        if failure is not None:
            self.report("history prune failed", level="warning", history=self._path, error=failure)
        if self._to_prune and self.pruner is not None:
            for job, keep in self._to_prune.items():
                self.pruner.request(job, keep)
            self._to_prune = {}

    def _write(self, now: datetime) -> None:
        if self.backend is None:
            self.backend, _, moved = open_daemon_history(self._path, now)
            if moved is not None:
                self.report("history damaged; moved aside", level="error", moved_to=moved)
            self._hold_everything()
        self.backend.apply(self._pending)

    def _hold_everything(self) -> None:
        """A file opened late, or started afresh, is given all that memory knows."""
        self._pending.jobs.update(self._jobs)
        self._pending.alerts.update(self._alerts)
        for run_id, run in self._open.items():
            self._pending.runs.setdefault(run_id, run)
        self._pending.meta["instance"] = self.instance

    def _written(self, now: datetime) -> None:
        if self.failure is not None:
            self.report(
                "history written again",
                level="warning",
                failing_since=_iso(self.failure.since),
                dropped=self.failure.dropped,
                written=len(self._pending.runs),
            )
            self.failure = None
        self._pending = Changes()
        self._pending_output = 0

    def fail(self, now: datetime, exc: BaseException) -> None:
        """The file could not be opened or written: what is recorded stays in memory."""
        self._failed(now, exc)

    def _failed(self, now: datetime, exc: BaseException) -> None:
        stamp = now.timestamp()
        first = self.failure is None
        if self.failure is None:
            self.failure = WriteFailure(stamp, str(exc), stamp)
        self.failure.error = str(exc)
        self._bound()
        if first or stamp - self.failure.reported >= REPORT_EVERY:
            self.failure.reported = stamp
            self.report(
                "history not written; kept in memory",
                level="error",
                history=self.path,
                error=str(exc),
                since=_iso(self.failure.since),
                unwritten=len(self._pending.runs),
                dropped=self.failure.dropped,
            )

    def _start_fresh(self, now: datetime, exc: BaseException) -> bool:
        """A file damaged under the daemon: moved aside, a new one takes what memory holds."""
        if self.backend is not None:
            self.backend.close()
        moved = move_aside(self.path, now)
        self.report("history damaged; moved aside", level="error", error=str(exc), moved_to=moved)
        try:
            self.backend = SqliteHistory(self.path)
        except HistoryError as again:
            self._failed(now, again)
            return False
        self._pending.jobs.update(self._jobs)
        self._pending.alerts.update(self._alerts)
        self._pending.runs.update(
            {k: v for k, v in self._open.items() if k not in self._pending.runs}
        )
        self._pending.meta["instance"] = self.instance
        return self.flush(now)

    def _bound(self) -> None:
        """Keep memory bounded while the file refuses writes: output first, then old rows."""
        assert self.failure is not None
        pending = self._pending.runs
        if self._pending_output > MAX_UNWRITTEN_OUTPUT:
            for run_id in sorted(pending):
                run = pending[run_id]
                if run.open or not run.output:
                    continue
                self._pending_output -= len(run.output)
                notes = f"{run.notes}\n{OUTPUT_DROPPED}" if run.notes else OUTPUT_DROPPED
                pending[run_id] = dataclasses.replace(run, output=None, notes=notes)
                if self._pending_output <= MAX_UNWRITTEN_OUTPUT:
                    break
        if len(pending) > MAX_UNWRITTEN_RUNS:
            for run_id in sorted(pending):
                if len(pending) <= MAX_UNWRITTEN_RUNS:
                    break
                if not pending[run_id].open:
                    self._pending_output -= len(pending.pop(run_id).output or b"")
                    self._pending.new.discard(run_id)
                    self.failure.dropped += 1

    # --- reading ---------------------------------------------------------------------------

    def _waiting(self) -> list[Changes]:
        """What is not written yet, oldest first."""
        return [self._pending]

    def _unwritten(self) -> list[Run]:
        rows: dict[int, Run] = {}
        for batch in self._waiting():
            rows.update(batch.runs)
        return list(rows.values())

    def _held(self, run_id: int) -> Optional[Run]:
        for batch in reversed(self._waiting()):
            if run_id in batch.runs:
                return batch.runs[run_id]
        return self._open.get(run_id)

    def run(self, run_id: int) -> Optional[Run]:
        held = self._held(run_id)
        if held is not None:
            return held
        return with_notes(self._read(lambda b: b.run(run_id), None), self.held_notes(run_id))

    def runs(self, job: str, limit: int = 20, failed_only: bool = False) -> list[Run]:
        """The newest runs of a job, newest first: written ones and those still in memory."""
        written: list[Run] = self._read(lambda b: b.runs(job, limit, failed_only), [])
        return merge_runs(written, self.held(job), limit, failed_only)

    def held(self, job: str) -> list[Run]:
        """The job's rows not written yet, for an answer computed away from the loop."""
        return [run for run in self._unwritten() if run.job == job]

    def held_by_job(self) -> dict[str, list[Run]]:
        """Every job's rows not written yet."""
        out: dict[str, list[Run]] = {}
        for run in self._unwritten():
            out.setdefault(run.job, []).append(run)
        return out

    def held_between(self, since: float, until: float) -> list[Run]:
        """Rows not written yet that were open at some time in [since, until]."""
        return [
            run
            for run in self._unwritten()
            if (run.ended is None or run.ended >= since) and (run.started or run.created) <= until
        ]

    def job_of(self, run_id: int) -> Optional[str]:
        """The job a run belongs to, without reading its output."""
        held = self._held(run_id)
        if held is not None:
            return held.job
        return self._read(lambda b: b.job_of(run_id), None)

    def held_run(self, run_id: int) -> Optional[Run]:
        return self._held(run_id)

    def held_notes(self, run_id: int) -> list[str]:
        return [note for batch in self._waiting() for note, rid in batch.notes if rid == run_id]

    def held_last_runs(self) -> dict[str, Run]:
        """Each job's latest finished run where it is not written yet."""
        last = {}
        for run in self._unwritten():
            state = self._jobs.get(run.job)
            if state is not None and state.last_run == run.id:
                last[run.job] = run
        return last

    def held_misses(self, since: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self._unwritten():
            until = run.scheduled_until or run.scheduled or 0.0
            if run.state == RunState.MISSED.value and until >= since:
                counts[run.job] = counts.get(run.job, 0) + run.instants
        return counts

    def open_runs(self) -> list[Run]:
        return [self._open[i] for i in sorted(self._open)]

    def job_states(self) -> dict[str, JobState]:
        return dict(self._jobs)

    def job_state(self, job: str) -> Optional[JobState]:
        return self._jobs.get(job)

    def last_runs(self) -> dict[str, Run]:
        """The latest finished run of every job, by name."""
        last: dict[str, Run] = self._read(lambda b: b.last_runs(), {})
        return {**last, **self.held_last_runs()}

    def misses_since(self, since: float) -> dict[str, int]:
        counts: dict[str, int] = self._read(lambda b: b.misses_since(since), {})
        return add_counts(counts, self.held_misses(since))

    def _read(self, read: Callable[[SqliteHistory], T], default: T) -> T:
        """A read of the file; nothing while the daemon could not open it yet."""
        if self.backend is None:
            return default
        try:
            return read(self.backend)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot read the history: {exc}") from exc


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def merge_runs(written: list[Run], held: list[Run], limit: int, failed_only: bool) -> list[Run]:
    """Rows read from the file and rows still in memory, newest first; memory wins."""
    found = {r.id: r for r in written}
    for run in held:
        if not failed_only or RunState(run.state).failed:
            found[run.id] = run
    return [found[i] for i in sorted(found, reverse=True)[:limit]]


def with_notes(run: Optional[Run], notes: list[str]) -> Optional[Run]:
    if run is None or not notes:
        return run
    return dataclasses.replace(run, notes="\n".join([run.notes, *notes]).strip("\n"))


def add_counts(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value
    return counts
