"""Alarms from runs and from the schedule, without floods.

A watcher of the loop (see `events`).  What a job's `on_failure` notifiers hear:

* with `alerts: changes` (the default), the start of trouble: the first run that
  failed for good, or the first instants that did not start (recorded missed,
  skipped while the job is paused, or still waiting `grace` after their time behind
  a cap), after a success.  While the trouble lasts they hear at most one digest
  every `alert_digest` (1 day), counting what happened since they last heard.  The
  first success after it is a recovery, told to `on_recovery` (by default the
  `on_failure` notifiers).  A job failing every second makes one alert, one digest
  a day and one recovery;
* with `alerts: every-run`, every failure and every missed instant, as they happen;
* with `no_success_within: 26h`, once when no run has succeeded for that long
  (since the last success, or since the window was configured), and a recovery at
  the next success.

`mail_to` names email notifiers that get a run's output as cron mails it:
`mail_output: always` when it printed anything, `on-failure` when it failed,
`never`.  A failure alert is not sent again to a notifier that already got the
run's output mail.

What the alarms remember (failing since, last told, last success, an alarm
raised) is kept in the history, so a restart neither repeats nor forgets one.
Times are checked by `tick`, a step of the daemon's loop, at `deadline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

from .events import Watcher
from .model import Config, Job, RunState, Trigger, format_seconds
from .notify import Event, event_for
from .notify.outbox import Notifications
from .store import AlertState, Run, RunStore

UTC = timezone.utc
MAX_REMEMBERED = 1000  # runs whose output mail stands for their failure alert
SHOWN_INSTANTS = 5


def local(stamp: Optional[float], zone_name: str) -> str:
    if stamp is None:
        return "-"
    moment = datetime.fromtimestamp(stamp, UTC).astimezone(ZoneInfo(zone_name))
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}"


class Alerts(Watcher):
    def __init__(self, store: RunStore, outbox: Notifications, log: Any) -> None:
        self.store = store
        self.outbox = outbox
        self.log = log
        self.jobs: dict[str, Job] = {}
        self.waiting: dict[int, tuple[str, float]] = {}  # queued run -> (job, when it is missed)
        self.mailed: dict[int, tuple[str, ...]] = {}  # failed run -> notifiers mailed its output
        self.watched: set[str] = set()  # jobs in trouble or with no_success_within: tick's work
        self._deadline: Optional[float] = None
        self._stale = True  # the deadline is recomputed before it is next read
        # False on the nodes of a cluster but one: `no_success_within` is raised once
        self.speaks_for_cluster = True

    # --- events ----------------------------------------------------------------------------

    def config_applied(self, config: Config, now: datetime) -> None:
        self.jobs = dict(config.jobs)
        states = self.store.alert_states()
        # only the jobs watched now or before: a pass over every job's alarms is not made
        watching = {name for name, job in self.jobs.items() if job.no_success_within is not None}
        for name in watching | {n for n, s in states.items() if s.watched_since is not None}:
            job = self.jobs.get(name)
            state = states.get(name) or self.store.alert_state(name)
            if job is None:
                continue
            if job.no_success_within is not None and state.watched_since is None:
                self._save(dataclasses.replace(state, watched_since=now.timestamp()))
            elif job.no_success_within is None and state.watched_since is not None:
                self._save(dataclasses.replace(state, watched_since=None, overdue=None))
        self.waiting = {k: v for k, v in self.waiting.items() if v[0] in self.jobs}
        self.watched = watching | {
            name
            for name, state in states.items()
            if name in self.jobs and state.failing_since is not None
        }
        self._stale = True

    def run_queued(self, job: Job, run: Run, now: datetime) -> None:
        if run.trigger == Trigger.SCHEDULE.value and run.scheduled is not None:
            self.waiting[run.id] = (job.name, run.scheduled + job.grace)
            self._stale = True

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        if self.waiting.pop(run.id, None) is not None:
            self._stale = True

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        if self.waiting.pop(run.id, None) is not None:
            self._stale = True
        if job is None:
            return
        if run.state == RunState.SUCCEEDED.value:
            self._succeeded(job, run, now)
        self._mail_output(job, run)

    def run_failed(self, job: Job, run: Run, now: datetime) -> None:
        mailed = self.mailed.pop(run.id, ())
        names = [name for name in job.on_failure if name not in mailed]
        self._trouble(job, now, 1, names, event_for("failure", run, timezone=job.timezone))

    def instants_missed(self, job: Job, runs: Sequence[Run], now: datetime) -> None:
        if not runs:
            return
        count = sum(run.instants for run in runs)
        shown = [local(r.scheduled, job.timezone) for r in runs[-SHOWN_INSTANTS:]]
        more = count - len(shown)
        when = ", ".join(shown) + (f" and {more} earlier" if more > 0 else "")
        why = runs[-1].reason.split(" (", 1)[0]
        reason = f"{job.name} did not run at {when} ({why})"
        detail = "\n".join(f"{local(r.scheduled, job.timezone)}: {r.reason}" for r in runs[-20:])
        event = event_for("missed", runs[-1], timezone=job.timezone, reason=reason, detail=detail)
        self._trouble(
            job, now, count, job.on_failure, dataclasses.replace(event, ended=now.timestamp())
        )

    def learn_success(self, run: Run, now: datetime) -> None:
        """A success another node of a cluster had: it ends trouble that began before it."""
        job = self.jobs.get(run.job)
        if job is None or run.ended is None or job.run_on == "each":
            return  # a job run on each node is in trouble or not on each
        state = self.store.alert_state(job.name)
        if run.ended <= max(state.last_success or 0.0, state.failing_since or 0.0):
            return
        self._succeeded(job, run, now)

    def _speaks_for(self, job: Job) -> bool:
        return self.speaks_for_cluster or job.run_on == "each"

    def reconsider(self) -> None:
        """Something outside the runs changed (who speaks for a cluster): look again."""
        self._stale = True

    # --- the loop's step -------------------------------------------------------------------

    def deadline(self) -> Optional[datetime]:
        """When `tick` has work: a queued run's grace ends, a digest or a no-success alarm."""
        if self._stale:
            self._deadline = self._next_deadline()
            self._stale = False
        return None if self._deadline is None else datetime.fromtimestamp(self._deadline, UTC)

    def tick(self, now: datetime) -> None:
        """Raise what is due: runs still waiting after their grace, digests, no-success alarms."""
        due = self.deadline()
        if due is None or now < due:
            return
        stamp = now.timestamp()
        for run_id, (name, until) in sorted(self.waiting.items()):
            if until <= stamp:
                del self.waiting[run_id]
                self._still_waiting(name, run_id, now)
        for job in [self.jobs[name] for name in sorted(self.watched) if name in self.jobs]:
            state = self.store.alert_state(job.name)
            digest = self._digest_due(job, state)
            if digest is not None and digest <= stamp:
                self._digest(job, state, now)
                state = self.store.alert_state(job.name)
            window, since = job.no_success_within, _since(state)
            if window is None or state.overdue is not None or since is None:
                continue
            if not self._speaks_for(job):
                continue
            if since + window <= stamp:
                self._overdue(job, state, window, now)
        self._stale = True

    def _next_deadline(self) -> Optional[float]:
        times = [until for _, until in self.waiting.values()]
        for job in [self.jobs[name] for name in self.watched if name in self.jobs]:
            state = self.store.alert_state(job.name)
            digest = self._digest_due(job, state)
            if digest is not None:
                times.append(digest)
            since = _since(state)
            if (
                job.no_success_within is not None
                and state.overdue is None
                and since is not None
                and self._speaks_for(job)
            ):
                times.append(since + job.no_success_within)
        return min(times) if times else None

    @staticmethod
    def _digest_due(job: Job, state: AlertState) -> Optional[float]:
        if job.alerts != "changes" or not job.alert_digest or not state.untold:
            return None
        if state.failing_since is None or state.told is None:
            return None
        return state.told + job.alert_digest

    # --- what is told ----------------------------------------------------------------------

    def _trouble(
        self, job: Job, now: datetime, count: int, names: Sequence[str], event: Event
    ) -> None:
        """A failure or missed instants: told at the start of trouble, else counted."""
        state = self.store.alert_state(job.name)
        stamp = now.timestamp()
        if state.failing_since is None or job.alerts == "every-run":
            self.outbox.notify(names, event)
            since = stamp if state.failing_since is None else state.failing_since
            state = dataclasses.replace(state, failing_since=since, told=stamp, untold=0)
        else:
            state = dataclasses.replace(state, untold=state.untold + count)
        self._save(state)

    def _succeeded(self, job: Job, run: Run, now: datetime) -> None:
        state = self.store.alert_state(job.name)
        troubled = state.failing_since is not None or state.overdue is not None
        if not troubled and job.no_success_within is None:
            return  # nothing to remember: no write a run
        ended = run.ended or now.timestamp()
        if troubled:
            since = state.failing_since if state.failing_since is not None else _since(state)
            reason = (
                f"{job.name} succeeded again (run {run.id});"
                f" in trouble since {local(since, job.timezone)}"
            )
            if state.untold:
                reason += f", {state.untold} failures or missed runs not told one by one"
            names = job.on_recovery if job.on_recovery is not None else job.on_failure
            self.outbox.notify(
                names, event_for("recovery", run, timezone=job.timezone, reason=reason)
            )
        self._save(
            dataclasses.replace(
                state, failing_since=None, told=None, untold=0, overdue=None, last_success=ended
            )
        )

    def _still_waiting(self, name: str, run_id: int, now: datetime) -> None:
        job, run = self.jobs.get(name), self.store.held_run(run_id)
        if job is None or run is None or run.state != RunState.PENDING.value:
            return
        reason = (
            f"{name} did not start within {format_seconds(job.grace)} of"
            f" {local(run.scheduled, job.timezone)}: it waits for room (max_workers, its pool"
            " or max_concurrent)"
        )
        event = event_for("missed", run, timezone=job.timezone, reason=reason)
        self._trouble(
            job, now, 1, job.on_failure, dataclasses.replace(event, ended=now.timestamp())
        )

    def _digest(self, job: Job, state: AlertState, now: datetime) -> None:
        reason = (
            f"{job.name} is still failing: {state.untold} more failures or missed runs since"
            f" {local(state.told, job.timezone)}; in trouble since"
            f" {local(state.failing_since, job.timezone)}"
        )
        self.outbox.notify(job.on_failure, self._event("digest", job, reason, now))
        self._save(dataclasses.replace(state, told=now.timestamp(), untold=0))

    def _overdue(self, job: Job, state: AlertState, window: float, now: datetime) -> None:
        since = _since(state)
        last = "no success since" if state.last_success is None else "last success"
        reason = (
            f"{job.name} has not succeeded for {format_seconds(window)}"
            f" ({last} {local(since, job.timezone)})"
        )
        self.outbox.notify(job.on_failure, self._event("no-success", job, reason, now))
        self._save(dataclasses.replace(state, overdue=now.timestamp()))

    def _event(self, kind: str, job: Job, reason: str, now: datetime) -> Event:
        """An event about the job rather than one run: noted on its newest run."""
        held = self.store.job_state(job.name)
        return Event(
            kind=kind,
            job=job.name,
            run_id=held.last_run if held and held.last_run else 0,
            state=kind,
            attempt=0,
            reason=reason,
            exit_code=None,
            timezone=job.timezone,
            ended=now.timestamp(),
        )

    def _mail_output(self, job: Job, run: Run) -> None:
        """cron's MAILTO: the run's output to the mail_to notifiers, by mail_output."""
        if not job.mail_to or job.mail_output == "never":
            return
        if run.state in (RunState.SKIPPED.value, RunState.MISSED.value):
            return
        failed = RunState(run.state).failed
        if job.mail_output == "on-failure" and not failed:
            return
        if job.mail_output == "always" and not run.output_bytes:
            return  # cron mails only what was printed
        kind = "failure" if failed else "output"
        self.outbox.notify(job.mail_to, event_for(kind, run, timezone=job.timezone))
        if failed:
            self.mailed[run.id] = job.mail_to
            while len(self.mailed) > MAX_REMEMBERED:
                del self.mailed[next(iter(self.mailed))]

    def _save(self, state: AlertState) -> None:
        self.store.set_alert_state(state)
        job = self.jobs.get(state.job)
        if state.failing_since is not None or (job is not None and job.no_success_within):
            self.watched.add(state.job)
        else:
            self.watched.discard(state.job)
        self._stale = True


def _since(state: AlertState) -> Optional[float]:
    """Since when a job has had no success: its last one, or when the watch began."""
    known = [t for t in (state.last_success, state.watched_since) if t is not None]
    return max(known) if known else None
