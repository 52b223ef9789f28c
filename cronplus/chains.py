"""Jobs that follow other jobs: when a run concludes, start the jobs `after:` it.

A run concludes once for its first attempt: when it succeeds, or when it fails and
no retry follows; a retried run that finally succeeds starts its followers once,
not once per attempt.  Each follower whose `on:` matches the outcome is handed
to the caps like any run, with trigger `chain` and a link to the run that caused
it; it respects overlap policies, pools and retries, and its own end starts its
own followers.  A chained run is not an instant of a schedule: it is accounted
for like a manual run, by its own row.

A follower is not started when the run is for an instant older than `within:`,
or when the follower is outside its `start:`/`end:` (said in the log); it is
recorded skipped when the follower is paused or the daemon is stopping.  A run
started by `cronplusctl run` starts followers only with `--chain`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Optional, Protocol

from .chainspec import Followers, followers_of
from .errors import HistoryError, ScheduleError
from .events import Watcher
from .model import After, Config, Job, RunState, Trigger, format_seconds
from .schedule import bounds
from .store import Run, RunStore


class Submit(Protocol):
    def __call__(
        self,
        job: Job,
        scheduled: Optional[float],
        trigger: Trigger,
        now: datetime,
        *,
        caused_by: Optional[int] = None,
    ) -> int: ...


class Chains(Watcher):
    def __init__(
        self, store: RunStore, submit: Submit, stopping: Callable[[], bool], log: Any
    ) -> None:
        self.store = store
        self.submit = submit
        self.stopping = stopping
        self.log = log
        self.jobs: dict[str, Job] = {}
        self.followers: Followers = {}

    def config_applied(self, config: Config, now: datetime) -> None:
        self.jobs = dict(config.jobs)
        self.followers = followers_of(config.jobs)

    def run_concluded(self, job: Job, run: Run, now: datetime) -> None:
        if not run.starts_followers:
            return
        outcome = "success" if run.state == RunState.SUCCEEDED.value else "failure"
        for name, after in self.followers.get(job.name, ()):
            follower = self.jobs.get(name)
            if follower is None or after.on not in (outcome, "any"):
                continue
            why = self._not_followed(follower, after, run, now)
            if why:
                self.log.info("chain not followed", job=name, after=job.name, cause=run.id, why=why)
                continue
            self._start(follower, job, run, now)

    def _start(self, follower: Job, leader: Job, run: Run, now: datetime) -> None:
        state = self.store.job_state(follower.name)
        skip = "paused" if state and state.paused else ""
        if self.stopping():
            skip = "the daemon was stopping"
        if skip:
            self.store.create_run(
                follower.name,
                None,
                Trigger.CHAIN,
                now.timestamp(),
                state=RunState.SKIPPED,
                reason=f"skipped: {skip}",
                caused_by=run.id,
            )
            self.log.info("chain skipped", job=follower.name, after=leader.name, why=skip)
            return
        run_id = self.submit(follower, None, Trigger.CHAIN, now, caused_by=run.id)
        self.log.info("chain started", job=follower.name, run_id=run_id, after=leader.name)

    def _not_followed(self, follower: Job, after: After, run: Run, now: datetime) -> str:
        """Why `run` starts no run of `follower` now, or nothing."""
        if after.within is not None:
            since = self._instant_of(run)
            if now.timestamp() - since > after.within:
                return (
                    f"run {run.id} is for an instant more than {format_seconds(after.within)} ago"
                )
        try:
            start, end = bounds(follower.schedule, follower.timezone)
        except ScheduleError:  # checked when the config was read
            return ""
        if (start is not None and now < start) or (end is not None and now > end):
            return "outside the follower's start: and end:"
        return ""

    def _instant_of(self, run: Run) -> float:
        """The instant a run was for: its schedule's, else when its first attempt was made."""
        if run.scheduled is not None:
            return run.scheduled
        try:
            first = self.store.run(run.first_run) if run.first_run else None
        except HistoryError:  # the file cannot be read now: this attempt's time will do
            first = None
        return first.created if first is not None else run.created
