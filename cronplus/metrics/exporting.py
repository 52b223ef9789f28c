"""The metrics of a daemon whose configuration asks for them: series, endpoint, textfile.

Made by `Metrics` (the watcher in `__init__`) when `daemon.metrics` is set, and
told each event of the loop on the loop's thread; all it does there is change
values in memory.  The last-start, -success and -failure instants of each job
are read from the history once, in a thread of their own, so that they are
right after a restart too; a later event of the loop always wins over them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Callable, Optional, Protocol

from prometheus_client import disable_created_metrics, generate_latest

from ..controlserver import Gate
from ..model import Config, Job, MetricsSettings, ScheduleKind
from ..schedule import stable_jitter
from ..store import Run
from .exporter import Endpoint, GatedRegistry, Textfile
from .series import FAILED, Series


class TimesReader(Protocol):
    """What the series are seeded from: an SQLite history, or a cluster's store."""

    def job_times(self, failed: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]: ...

    def close(self) -> None: ...


Opener = Callable[[], TimesReader]

# Runs whose lateness means something: started for an instant or a due retry.
TIMELY_TRIGGERS = ("schedule", "retry")


class Exporting:
    def __init__(self, log: Any, gate: Gate) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
        self.log = log
        self.series = Series()
        self.registry = GatedRegistry(self.series.registry, gate)
        self.settings = MetricsSettings()
        self.endpoint: Optional[Endpoint] = None
        self.textfile: Optional[Textfile] = None
        self.jitter: dict[str, float] = {}
        self.fires: dict[str, datetime] = {}  # each job's next instant, for its period

    # --- where they go ---------------------------------------------------------------------

    def apply(self, settings: MetricsSettings) -> None:
        """Open, move or close the endpoint and the textfile as the configuration says."""
        if self.endpoint is not None and self.endpoint.address != settings.listen:
            self.endpoint.close()
            self.endpoint = None
            self.log.info("metrics endpoint closed")
        if settings.listen is not None and self.endpoint is None:
            host, port = settings.listen
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            try:
                self.endpoint = Endpoint(settings.listen, self.registry)
            except OSError as exc:  # a busy port must not stop the scheduler
                self.log.error("metrics endpoint not opened", listen=where, error=str(exc))
            else:
                self.log.info("metrics endpoint listening", listen=where)
        if self.textfile is not None and self.textfile.path != settings.textfile:
            self.textfile.close()
            self.textfile = None
        if settings.textfile and self.textfile is None:
            self.textfile = Textfile(settings.textfile, self.registry, self._textfile_error)
            self.log.info("metrics textfile", path=settings.textfile)
        self.settings = settings

    def _textfile_error(self, path: str, exc: Exception) -> None:
        self.log.error("metrics textfile not written", path=path, error=str(exc))

    def close(self) -> None:
        """The daemon stops: the textfile says so (`cronplus_up 0`), the endpoint closes."""
        self.series.up.set(0)
        if self.textfile is not None:
            self.textfile.close(last=generate_latest(self.registry))  # type: ignore[arg-type,unused-ignore]
            self.textfile = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None

    def changed(self) -> None:
        if self.textfile is not None:
            self.textfile.touch()

    # --- what the loop tells ---------------------------------------------------------------

    def configure(
        self,
        config: Config,
        now: datetime,
        reload: bool,
        running: Mapping[int, str],
        next_runs: Mapping[str, datetime],
        waiting: int,
    ) -> None:
        """A configuration is in force; `running`, `next_runs` and `waiting` are the loop's
        state at this moment, for metrics turned on by a reload."""
        series = self.series
        cluster = config.settings.cluster
        self.registry.labels = {"node": cluster.node} if cluster is not None else {}
        series.configure(config.jobs, config.notifiers)
        self.jitter = {name: stable_jitter(name, job.jitter) for name, job in config.jobs.items()}
        if reload:
            series.reloads.inc()
        series.last_reload.set(now.timestamp())
        series.reload_ok.set(1)
        for name, job in config.jobs.items():
            series.running.labels(name).set(sum(1 for each in running.values() if each == name))
            if job.schedule.kind is ScheduleKind.EVERY:
                series.period.labels(name).set(job.schedule.every_seconds)
            fires = next_runs.get(name)
            if fires is not None:
                series.next_run.labels(name).set(fires.timestamp())
                self.fires.setdefault(name, fires)
        series.waiting.set(waiting)
        self.changed()

    def rejected(self) -> None:
        self.series.rejections.inc()
        self.series.reload_ok.set(0)
        self.changed()

    def started(self, job: Job, run: Run) -> None:
        series, name = self.series, job.name
        if name not in series.known or run.started is None:
            return
        series.later(name, "start", run.started)
        series.running.labels(name).inc()
        due = run.due if run.trigger == "retry" else run.scheduled
        if run.trigger in TIMELY_TRIGGERS and due is not None:
            if run.trigger == "schedule":
                due += self.jitter.get(name, 0.0)
            series.lateness.labels(name).observe(max(0.0, run.started - due))
        self.changed()

    def ended(self, run: Run, was_running: bool) -> None:
        series, name = self.series, run.job
        if name not in series.known:
            return
        if was_running:
            series.running.labels(name).dec()
        if run.state == "missed":
            series.missed.labels(name).inc(run.instants)
        else:
            series.runs.labels(name, run.state).inc()
        if run.started is not None and run.duration is not None:
            series.duration.labels(name).observe(run.duration)
        if run.state == "succeeded":
            series.later(name, "success", run.ended)
        elif run.state in FAILED:
            series.later(name, "failure", run.ended)
        self.changed()

    def next_run(self, job: str, fires: Optional[datetime]) -> None:
        if job not in self.series.known:
            return
        if fires is None:
            self.series.no_next_run(job)
            self.fires.pop(job, None)
        else:
            self.series.next_run.labels(job).set(fires.timestamp())
            previous = self.fires.get(job)
            if previous is not None and fires > previous:
                self.series.period.labels(job).set((fires - previous).total_seconds())
            self.fires[job] = fires
        self.changed()

    def waiting(self, count: int) -> None:
        self.series.waiting.set(count)
        self.changed()

    def notifier_failed(self, notifier: str) -> None:
        if notifier in self.series.notifiers:  # not one a reload has removed since
            self.series.notifier_failures.labels(notifier).inc()
            self.changed()

    def history_health(self, written: bool) -> None:
        if not written:
            self.series.history_failures.inc()
        self.series.history_written.set(1 if written else 0)
        self.changed()

    # --- the history, once -----------------------------------------------------------------

    def seed(self, open_history: Opener) -> threading.Thread:
        """Read each job's last start, success and failure from the history, in a thread
        (in a cluster: of every node's runs)."""
        thread = threading.Thread(
            target=self._seed, args=(open_history,), name="metrics-seed", daemon=True
        )
        thread.start()
        return thread

    def _seed(self, open_history: Opener) -> None:
        try:
            reader = open_history()
        except Exception as exc:  # no file yet, or unreadable: the loop's events will do
            self.log.info("metrics: no history to start from", error=str(exc))
            return
        try:
            times = reader.job_times(FAILED)
        except Exception as exc:
            self.log.warning("metrics: history not read", error=str(exc))
            return
        finally:
            reader.close()
        for job, (start, success, failure) in times.items():
            self.series.later(job, "start", start)
            self.series.later(job, "success", success)
            self.series.later(job, "failure", failure)
        self.changed()
