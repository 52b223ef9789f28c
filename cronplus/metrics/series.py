"""Every series cronplus exports, and how each event of the loop changes them.

Names follow Prometheus's conventions: a `cronplus_` prefix, base units
(`_seconds`), `_total` on counters, `_timestamp_seconds` on gauges that hold an
instant.  The only labels are `job`, `state` and `notifier`, all bounded by the
configuration: a job's series go away when a reload removes the job.  The loop
changes the values where the events happen; a scrape only reads them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

NAMESPACE = "cronplus"
# Runs last from milliseconds to hours; lateness is milliseconds when all is well.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60)
# Counted from the start for every job, so that rate() and increase() see them from zero.
INITIAL_STATES = ("succeeded", "failed")
FAILED = ("failed", "timed-out", "memory-limit", "interrupted", "lost")


@dataclass(frozen=True)
class Described:
    name: str
    kind: str
    labels: str
    help: str


# The exported series, as the README lists them (a test keeps the two the same).
SERIES: tuple[Described, ...] = (
    Described("cronplus_up", "gauge", "", "1 while the daemon runs; 0 in the textfile it leaves"),
    Described("cronplus_jobs", "gauge", "", "jobs configured"),
    Described(
        "cronplus_job_runs_total",
        "counter",
        "job, state",
        "runs that reached a final state: succeeded, failed, timed-out, memory-limit,"
        " interrupted, lost, skipped",
    ),
    Described(
        "cronplus_job_run_duration_seconds",
        "histogram",
        "job",
        "how long runs took, from the start of the process to the end of the last one",
    ),
    Described(
        "cronplus_job_lateness_seconds",
        "histogram",
        "job",
        "from the scheduled instant (plus the job's jitter) or a retry's due time to the start",
    ),
    Described(
        "cronplus_job_last_start_timestamp_seconds", "gauge", "job", "when the last run started"
    ),
    Described(
        "cronplus_job_last_success_timestamp_seconds",
        "gauge",
        "job",
        "when the last successful run ended",
    ),
    Described(
        "cronplus_job_last_failure_timestamp_seconds",
        "gauge",
        "job",
        "when the last failed run ended (failed, timed-out, memory-limit, interrupted, lost)",
    ),
    Described(
        "cronplus_job_next_run_timestamp_seconds",
        "gauge",
        "job",
        "when the next run is due (jitter included); absent when none is",
    ),
    Described(
        "cronplus_job_period_seconds",
        "gauge",
        "job",
        "the time between the job's last two scheduled instants (an `every:` job's interval),"
        " for alerts on a job with no success within a few periods",
    ),
    Described("cronplus_job_running", "gauge", "job", "runs of the job running now"),
    Described(
        "cronplus_job_missed_runs_total",
        "counter",
        "job",
        "scheduled instants recorded missed (daemon down, loop stalled, clock stepped, suspend)",
    ),
    Described("cronplus_config_reloads_total", "counter", "", "configurations applied by a reload"),
    Described(
        "cronplus_config_reload_rejections_total",
        "counter",
        "",
        "reloads refused: the file had problems, the running configuration stayed",
    ),
    Described(
        "cronplus_config_last_reload_timestamp_seconds",
        "gauge",
        "",
        "when a configuration was last applied, at start or by a reload",
    ),
    Described(
        "cronplus_config_last_reload_successful",
        "gauge",
        "",
        "1 when the last reload was applied, 0 when it was refused",
    ),
    Described(
        "cronplus_history_write_failures_total",
        "counter",
        "",
        "times the history file stopped taking writes (records are held in memory meanwhile)",
    ),
    Described(
        "cronplus_history_written", "gauge", "", "1 while the history file takes writes, else 0"
    ),
    Described(
        "cronplus_notifier_failures_total",
        "counter",
        "notifier",
        "deliveries a notifier failed (logged and noted on the run; the job is not failed)",
    ),
    Described(
        "cronplus_runs_waiting", "gauge", "", "runs waiting for a free worker (max_workers, pools)"
    ),
    Described(
        "cronplus_process_*",
        "",
        "",
        "the daemon's CPU seconds, resident memory, open descriptors and start time",
    ),
)


def _bare(name: str) -> str:
    """The name prometheus_client is given: it adds `_total` to counters itself."""
    return name[: -len("_total")] if name.endswith("_total") else name


def _help(name: str) -> str:
    return next(s.help for s in SERIES if s.name == name)


def _gauge(name: str, registry: CollectorRegistry, labels: Iterable[str] = ()) -> Gauge:
    return Gauge(name, _help(name), tuple(labels), registry=registry)


def _counter(name: str, registry: CollectorRegistry, labels: Iterable[str] = ()) -> Counter:
    return Counter(_bare(name), _help(name), tuple(labels), registry=registry)


class Series:
    """The metric objects; changed from the loop's thread, read by scrapes and the textfile."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.up = _gauge("cronplus_up", registry)
        self.jobs = _gauge("cronplus_jobs", registry)
        self.runs = _counter("cronplus_job_runs_total", registry, ("job", "state"))
        self.duration = Histogram(
            "cronplus_job_run_duration_seconds",
            _help("cronplus_job_run_duration_seconds"),
            ("job",),
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.lateness = Histogram(
            "cronplus_job_lateness_seconds",
            _help("cronplus_job_lateness_seconds"),
            ("job",),
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        self.last_start = _gauge("cronplus_job_last_start_timestamp_seconds", registry, ("job",))
        self.last_success = _gauge(
            "cronplus_job_last_success_timestamp_seconds", registry, ("job",)
        )
        self.last_failure = _gauge(
            "cronplus_job_last_failure_timestamp_seconds", registry, ("job",)
        )
        self.next_run = _gauge("cronplus_job_next_run_timestamp_seconds", registry, ("job",))
        self.period = _gauge("cronplus_job_period_seconds", registry, ("job",))
        self.running = _gauge("cronplus_job_running", registry, ("job",))
        self.missed = _counter("cronplus_job_missed_runs_total", registry, ("job",))
        self.reloads = _counter("cronplus_config_reloads_total", registry)
        self.rejections = _counter("cronplus_config_reload_rejections_total", registry)
        self.last_reload = _gauge("cronplus_config_last_reload_timestamp_seconds", registry)
        self.reload_ok = _gauge("cronplus_config_last_reload_successful", registry)
        self.history_failures = _counter("cronplus_history_write_failures_total", registry)
        self.history_written = _gauge("cronplus_history_written", registry)
        self.waiting = _gauge("cronplus_runs_waiting", registry)
        self.notifier_failures = _counter(
            "cronplus_notifier_failures_total", registry, ("notifier",)
        )
        ProcessCollector(namespace=NAMESPACE, registry=registry)
        self.up.set(1)
        self.history_written.set(1)
        self.reload_ok.set(1)
        self.known: set[str] = set()
        self.notifiers: set[str] = set()
        # the instants a seed from the history and the loop both set: the later one wins
        self._latest: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # --- jobs come and go with the configuration -----------------------------------------

    def configure(self, jobs: Iterable[str], notifiers: Iterable[str] = ()) -> None:
        """Series for every configured job and notifier; those no longer configured go away."""
        told = set(notifiers)
        for gone in self.notifiers - told:
            _remove(self.notifier_failures, gone)
        for name in told - self.notifiers:
            self.notifier_failures.labels(name)
        self.notifiers = told
        names = set(jobs)
        for gone in self.known - names:
            self._forget(gone)
        for name in names - self.known:
            for state in INITIAL_STATES:
                self.runs.labels(name, state)
            self.missed.labels(name)
            self.running.labels(name).set(0)
        self.known = names
        self.jobs.set(len(names))

    def _forget(self, job: str) -> None:
        for state in {*INITIAL_STATES, *FAILED, "succeeded", "skipped"}:
            _remove(self.runs, job, state)
        for metric in (
            self.duration,
            self.lateness,
            self.last_start,
            self.last_success,
            self.last_failure,
            self.next_run,
            self.period,
            self.running,
            self.missed,
        ):
            _remove(metric, job)
        self.forget_instants(job)

    def forget_instants(self, job: str) -> None:
        with self._lock:
            for key in [k for k in self._latest if k[0] == job]:
                del self._latest[key]

    # --- instants: the latest one wins ----------------------------------------------------

    def later(self, job: str, which: str, value: Optional[float]) -> None:
        """Set a job's last-start, -success or -failure instant unless a later one is known."""
        if value is None or job not in self.known:
            return
        with self._lock:
            if self._latest.get((job, which), float("-inf")) >= value:
                return
            self._latest[(job, which)] = value
            gauge = {
                "start": self.last_start,
                "success": self.last_success,
                "failure": self.last_failure,
            }[which]
            gauge.labels(job).set(value)

    def no_next_run(self, job: str) -> None:
        _remove(self.next_run, job)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never made
        metric.remove(*labels)
