"""Prometheus metrics of the daemon, kept up to date by a watcher of its loop.

`Metrics` watches every daemon.  It keeps the little it needs to start exporting
at any moment (which runs are running, each job's next instant, how many runs
wait), and nothing more, until `daemon.metrics` asks for an HTTP endpoint or a
node_exporter textfile; only then is prometheus_client imported and are the
series made (`exporting`).  Scrapes and textfile writes happen in threads of
their own and only read what the loop set.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..controlserver import Gate
from ..events import Watcher
from ..model import Config, Job
from ..store import Run

if TYPE_CHECKING:
    from .exporting import Exporting, Opener


class Metrics(Watcher):
    def __init__(self, log: Any, gate: Gate, open_history: Callable[[Config], Opener]) -> None:
        self.log = log
        self.gate = gate
        self.open_history = open_history  # how to read the history a config names
        self.running: dict[int, str] = {}  # run id -> job, of runs started by this daemon
        self.next_runs: dict[str, datetime] = {}
        self.waiting = 0
        self.exporting: Optional[Exporting] = None
        self.applied = False

    def config_applied(self, config: Config, now: datetime) -> None:
        reload, self.applied = self.applied, True
        settings = config.settings.metrics
        if self.exporting is None and not settings.enabled:
            return
        first = self.exporting is None
        if self.exporting is None:
            from .exporting import Exporting

            self.exporting = Exporting(self.log, self.gate)
        exporting = self.exporting
        exporting.configure(config, now, reload, self.running, self.next_runs, self.waiting)
        if first:
            exporting.seed(self.open_history(config))
        exporting.apply(settings)

    def reload_rejected(self, problems: Sequence[str], now: datetime) -> None:
        if self.exporting is not None:
            self.exporting.rejected()

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        self.running[run.id] = job.name
        if self.exporting is not None:
            self.exporting.started(job, run)

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        was_running = self.running.pop(run.id, None) is not None
        if self.exporting is not None:
            self.exporting.ended(run, was_running)

    def next_run(self, job: str, fires: Optional[datetime]) -> None:
        if fires is None:
            self.next_runs.pop(job, None)
        else:
            self.next_runs[job] = fires
        if self.exporting is not None:
            self.exporting.next_run(job, fires)

    def runs_waiting(self, count: int, now: datetime) -> None:
        if count == self.waiting:
            return
        self.waiting = count
        if self.exporting is not None:
            self.exporting.waiting(count)

    def notifier_failed(self, notifier: str, now: datetime) -> None:
        if self.exporting is not None:
            self.exporting.notifier_failed(notifier)

    def history_health(self, written: bool, error: str, now: datetime) -> None:
        if self.exporting is not None:
            self.exporting.history_health(written)

    def stopped(self, now: datetime) -> None:
        if self.exporting is not None:
            self.exporting.close()
