"""What happens in the daemon, for the parts that watch it.

The loop tells a `Watchers` fan-out of each event where it happens; whoever
keeps count (metrics), raises alarms (notifications on state changes) or
starts work of its own (chained jobs) subclasses `Watcher` and overrides the
events it cares about.  A watcher that fails is logged and never stops the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Optional

from .model import Config, Job
from .store import Run


class Watcher:
    """Every event, doing nothing: override what you need."""

    def config_applied(self, config: Config, now: datetime) -> None:
        """A configuration is running: at start, and after each accepted reload."""

    def reload_rejected(self, problems: Sequence[str], now: datetime) -> None:
        """A reload was refused; the running configuration stays."""

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        """A run's process started."""

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        """A run reached a final state (including skipped and lost); `job` is None
        when it is no longer configured."""

    def run_concluded(self, job: Job, run: Run, now: datetime) -> None:
        """A run's outcome is final: it succeeded, or it failed and no retry follows.

        `run` is its last attempt; once for each first attempt, where run_ended comes
        for every attempt (and for skipped and interrupted runs, which conclude nothing).
        """

    def run_queued(self, job: Job, run: Run, now: datetime) -> None:
        """A run was handed to the caps to wait for room (it may start in this same turn)."""

    def run_failed(self, job: Job, run: Run, now: datetime) -> None:
        """A run failed for good: no retry follows it (after `run_ended`)."""

    def instants_missed(self, job: Job, runs: Sequence[Run], now: datetime) -> None:
        """Instants of `job` were recorded missed (or skipped while paused)."""

    def notifier_failed(self, notifier: str, now: datetime) -> None:
        """A notifier's delivery failed (it was logged and noted on its run)."""

    def history_health(self, written: bool, error: str, now: datetime) -> None:
        """The history stopped (`written` False) or started again taking writes."""

    def next_run(self, job: str, fires: Optional[datetime]) -> None:
        """The timer's next instant for `job` changed: when it fires (jitter included), or
        None when nothing is scheduled for it."""

    def next_runs_changed(self, changes: dict[str, Optional[datetime]]) -> None:
        """The next instants of many jobs changed at once (a reload): `next_run` of each."""
        if type(self).next_run is Watcher.next_run:
            return  # not watched: ten thousand calls that do nothing are not made
        for job, fires in changes.items():
            self.next_run(job, fires)

    def runs_waiting(self, count: int, now: datetime) -> None:
        """How many runs wait for a worker (a free slot in the caps), after a turn of the loop."""

    def stopped(self, now: datetime) -> None:
        """The loop has ended: the daemon is about to exit."""


class Watchers(Watcher):
    """Hands each event to every watcher; a watcher's failure is logged, never raised."""

    def __init__(self, log: Any, watchers: Sequence[Watcher] = ()) -> None:
        self.log = log
        self.watchers = list(watchers)

    def add(self, watcher: Watcher) -> None:
        self.watchers.append(watcher)

    def _each(self, event: str, *args: Any) -> None:
        for watcher in self.watchers:
            try:
                getattr(watcher, event)(*args)
            except Exception:  # a watcher's bug must not take the scheduler down
                self.log.exception("watcher failed", watcher=type(watcher).__name__, on=event)

    def config_applied(self, config: Config, now: datetime) -> None:
        self._each("config_applied", config, now)

    def reload_rejected(self, problems: Sequence[str], now: datetime) -> None:
        self._each("reload_rejected", problems, now)

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        self._each("run_started", job, run, now)

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        self._each("run_ended", job, run, now)

    def run_concluded(self, job: Job, run: Run, now: datetime) -> None:
        self._each("run_concluded", job, run, now)

    def run_queued(self, job: Job, run: Run, now: datetime) -> None:
        self._each("run_queued", job, run, now)

    def run_failed(self, job: Job, run: Run, now: datetime) -> None:
        self._each("run_failed", job, run, now)

    def instants_missed(self, job: Job, runs: Sequence[Run], now: datetime) -> None:
        self._each("instants_missed", job, runs, now)

    def notifier_failed(self, notifier: str, now: datetime) -> None:
        self._each("notifier_failed", notifier, now)

    def history_health(self, written: bool, error: str, now: datetime) -> None:
        self._each("history_health", written, error, now)

    def next_run(self, job: str, fires: Optional[datetime]) -> None:
        self._each("next_run", job, fires)

    def next_runs_changed(self, changes: dict[str, Optional[datetime]]) -> None:
        self._each("next_runs_changed", changes)

    def runs_waiting(self, count: int, now: datetime) -> None:
        self._each("runs_waiting", count, now)

    def stopped(self, now: datetime) -> None:
        self._each("stopped", now)
