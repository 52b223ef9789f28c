"""The rows of due instants: the daemon's side of `accounting`.

When a job's instants come due, the ledger asks `accounting.plan` what to do
with them, writes a row for each one that will not run (missed, with the cause,
or skipped while the job is paused), hands the ones that will run to the
daemon, and moves the job's mark past them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from . import accounting
from .clock import iso_utc
from .clockwatch import ClockJump
from .model import Job, RunState, Trigger
from .schedule import Rule, stable_jitter
from .store import Run, RunStore

Submit = Callable[[Job, float, Trigger, datetime], int]
Missed = Callable[[Job, Sequence[Run], datetime], None]


class InstantLedger:
    def __init__(
        self, store: RunStore, submit: Submit, log: Any, started_at: float, missed: Missed
    ) -> None:
        self.store = store
        self.submit = submit
        self.log = log
        self.missed = missed
        self.started_at = started_at  # instants before this passed while the daemon was down
        self.last_jump: Optional[tuple[float, ClockJump]] = None  # (when noticed, the jump)

    def account(
        self, job: Job, rule: Rule, first: datetime, now: datetime, keep_runs: int
    ) -> accounting.Plan:
        """Give each instant of `job` from `first` up to now its row, and start what is due."""
        state = self.store.job_state(job.name)
        paused = bool(state and state.paused)
        horizon = max(now - timedelta(seconds=stable_jitter(job.name, job.jitter)), first)
        plan = accounting.plan(rule, first, horizon, job.catch_up, job.catch_up_limit, not paused)
        if plan.folded or plan.missed or plan.catch_up:
            self._record_missed(job, plan, first, horizon, now, paused)
            self.store.prune(job.name, keep_runs)
        for instant in plan.catch_up:
            self.submit(job, instant.timestamp(), Trigger.CATCH_UP, now)
        if plan.start is not None:
            self.submit(job, plan.start.timestamp(), Trigger.SCHEDULE, now)
        assert plan.last is not None
        self.store.set_last_scheduled(job.name, plan.last.timestamp())
        return plan

    def _record_missed(
        self,
        job: Job,
        plan: accounting.Plan,
        first: datetime,
        horizon: datetime,
        now: datetime,
        paused: bool,
    ) -> None:
        state = RunState.SKIPPED if paused else RunState.MISSED
        why = "skipped: paused" if paused else f"missed: {self.cause(first, horizon)}"
        stamp = now.timestamp()
        folded = plan.folded
        ids = []
        if folded is not None:
            count = f"{folded.count}" if folded.exact else f"at least {folded.count}"
            folded_id = self.store.create_run(
                job.name,
                folded.first.timestamp(),
                Trigger.SCHEDULE,
                stamp,
                state=state,
                reason=f"{why} ({count} instants up to {iso_utc(folded.last.timestamp())})",
                instants=folded.count,
                scheduled_until=folded.last.timestamp(),
            )
            ids.append(folded_id)
        for instant in plan.missed:
            ids.append(
                self.store.create_run(
                    job.name, instant.timestamp(), Trigger.SCHEDULE, stamp, state=state, reason=why
                )
            )
        self.log.warning(
            "instants skipped" if paused else "instants missed",
            job=job.name,
            count=plan.instants - len(plan.catch_up) - (plan.start is not None),
            caught_up=len(plan.catch_up),
            reason=why,
        )
        runs = [run for run in map(self.store.held_run, ids) if run is not None]
        self.missed(job, runs, now)

    def cause(self, first: datetime, horizon: datetime) -> str:
        """Why the instants from `first` on were not reached in time."""
        if first.timestamp() < self.started_at:
            return "the daemon was down"
        if self.last_jump is not None and self.last_jump[0] >= first.timestamp():
            return self.last_jump[1].describe()
        late = (horizon - first).total_seconds()
        return f"the daemon's loop stalled for {late:.1f}s"
