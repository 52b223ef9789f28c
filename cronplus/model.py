"""The records every other module speaks in.

A leaf module: it imports nothing of ours, so the config, the scheduler, the
runner and the history can all share these types without import cycles.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Union


class RunState(str, enum.Enum):
    """Where a run is in its life; the history stores the value."""

    PENDING = "pending"
    SKIPPED = "skipped"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    MEMORY_LIMIT = "memory-limit"
    INTERRUPTED = "interrupted"
    LOST = "lost"
    MISSED = "missed"  # never started: the daemon was down, stalled, or the clock jumped over it

    @property
    def final(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING)

    @property
    def failed(self) -> bool:
        """Ended without succeeding: what `history --failed` lists and `retry` retries."""
        return self.final and self not in (RunState.SUCCEEDED, RunState.SKIPPED, RunState.MISSED)


class Outcome(str, enum.Enum):
    """Why a run ended, as the runner saw it; `retry_on` speaks these names."""

    SUCCEEDED = "succeeded"
    EXIT_CODE = "exit-code"
    SIGNAL = "signal"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory-limit"
    SPAWN_FAILED = "spawn-failed"
    INTERRUPTED = "interrupted"

    @property
    def state(self) -> RunState:
        return _OUTCOME_STATE[self]


_OUTCOME_STATE = {
    Outcome.SUCCEEDED: RunState.SUCCEEDED,
    Outcome.EXIT_CODE: RunState.FAILED,
    Outcome.SIGNAL: RunState.FAILED,
    Outcome.TIMEOUT: RunState.TIMED_OUT,
    Outcome.MEMORY_LIMIT: RunState.MEMORY_LIMIT,
    Outcome.SPAWN_FAILED: RunState.FAILED,
    Outcome.INTERRUPTED: RunState.INTERRUPTED,
}

RETRYABLE = frozenset({"exit-code", "signal", "timeout", "memory-limit", "spawn-failed", "lost"})


class Trigger(str, enum.Enum):
    """What made a run happen."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    CATCH_UP = "catch-up"
    CHAIN = "chain"  # another job's run ended: `after:`


class Overlap(str, enum.Enum):
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


class CatchUp(str, enum.Enum):
    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


class ScheduleKind(str, enum.Enum):
    CRON = "cron"
    EVERY = "every"
    AT = "at"
    CALENDAR = "calendar"  # every N days, weeks or months at wall times
    NONE = "none"  # no instants of its own: a job that only follows others (`after:`)


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # 0 is Monday, as in datetime
LAST_DAY = -1  # `on_day: last`


@dataclass(frozen=True)
class ScheduleSpec:
    """A job's schedule as written; `schedule.build_rule` turns it into a rule."""

    kind: ScheduleKind
    expressions: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()  # the expressions with hashed (H) values chosen
    every_seconds: float = 0.0
    at_local: str = ""  # ISO local wall time, in the job's zone
    count: int = 0  # calendar: every `count` ...
    unit: str = ""  # ... days (d), weeks (w) or months (mo)
    times: tuple[str, ...] = ()  # calendar: wall times of day, "09:00" or "09:00:30"
    weekdays: tuple[int, ...] = ()  # calendar weeks: 0 is Monday
    month_days: tuple[int, ...] = ()  # calendar months: 1 to 31, or LAST_DAY
    start: str = ""  # ISO date or local date and time: no instant before it
    end: str = ""  # ISO date (the whole day) or local date and time: no instant after it

    def describe(self) -> str:
        if self.kind is ScheduleKind.CRON:
            shown = [
                written if written == chosen else f"{written} ({chosen})"
                for written, chosen in zip(self.expressions, self.resolved or self.expressions)
            ]
            text = " | ".join(shown)
        elif self.kind is ScheduleKind.EVERY:
            text = f"every {format_seconds(self.every_seconds)}"
        elif self.kind is ScheduleKind.AT:
            text = f"at {self.at_local}"
        elif self.kind is ScheduleKind.CALENDAR:
            text = self._describe_calendar()
        else:
            text = ""
        if self.start:
            text += f" from {self.start}"
        if self.end:
            text += f" until {self.end}"
        return text.strip()

    def _describe_calendar(self) -> str:
        text = f"every {self.count}{self.unit}"
        if self.weekdays:
            text += " on " + ",".join(WEEKDAY_NAMES[d] for d in self.weekdays)
        if self.month_days:
            days = ("last" if d == LAST_DAY else str(d) for d in self.month_days)
            text += " on day " + ",".join(days)
        return text + " at " + ",".join(self.times)


@dataclass(frozen=True)
class After:
    """`after:` one entry: run when `job`'s run ends `on` success, failure or either."""

    job: str
    on: str = "success"  # success | failure | any
    within: Optional[float] = None  # seconds: only for a run whose instant is this recent

    def describe(self) -> str:
        text = f"{self.job} on {self.on}"
        return text + (f" within {format_seconds(self.within)}" if self.within else "")


@dataclass(frozen=True)
class Notification:
    title: str
    message: str
    urgency: str = "normal"
    icon: str = ""


@dataclass(frozen=True)
class Job:
    name: str
    schedule: ScheduleSpec
    timezone: str
    command: Union[str, tuple[str, ...], None] = None
    notify: Optional[Notification] = None
    stdin: Optional[str] = None  # fed to the command through a pipe; None: /dev/null
    user: Optional[str] = None
    workdir: Optional[str] = None
    env: Mapping[str, str] = field(default_factory=dict)
    retries: int = 0
    retry_backoff: float = 30.0
    retry_backoff_max: float = 3600.0
    retry_on: frozenset[str] = RETRYABLE
    timeout: Optional[float] = None
    kill_grace: float = 10.0
    memory_limit: Optional[int] = None
    max_concurrent: int = 1
    overlap: Overlap = Overlap.SKIP
    pool: Optional[str] = None
    priority: int = 0
    catch_up: CatchUp = CatchUp.SKIP
    catch_up_limit: int = 10
    jitter: float = 0.0
    on_failure: tuple[str, ...] = ()
    on_success: tuple[str, ...] = ()
    on_retry: tuple[str, ...] = ()
    on_recovery: Optional[tuple[str, ...]] = None  # None: the on_failure notifiers
    alerts: str = (
        "changes"  # changes: on_failure hears a job start failing; every-run: each failure
    )
    alert_digest: float = 86400.0  # while failing, one digest per this many seconds (0: none)
    grace: float = 300.0  # an instant not started this long after its time is missed
    no_success_within: Optional[float] = None  # alarm when no run succeeded for this long
    mail_to: tuple[str, ...] = ()  # email notifiers that get a run's output
    mail_output: str = "always"  # always (when it printed anything), on-failure or never
    output_limit: int = 64 * 1024
    description: str = ""
    run_on: str = "one"  # in a cluster: "one" node per instant, or "each" node
    after: tuple[After, ...] = ()  # other jobs whose runs start this one when they end
    source: str = ""  # file:line where the job is defined
    schedule_at: str = ""  # file:line:column of its schedule (schedule, every or at)


@dataclass(frozen=True)
class Notifier:
    name: str
    type: str
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsSettings:
    """`daemon.metrics`: where the Prometheus metrics go; both off by default."""

    listen: Optional[tuple[str, int]] = None  # (host, port) of the HTTP endpoint
    textfile: str = ""  # a node_exporter textfile, written atomically

    @property
    def enabled(self) -> bool:
        return self.listen is not None or bool(self.textfile)


@dataclass(frozen=True)
class Settings:
    """The `daemon:` section."""

    max_workers: int = 16
    pools: Mapping[str, int] = field(default_factory=dict)
    history: str = ""  # empty: <state dir>/history.db
    keep_runs: int = 1000
    shutdown_grace: float = 30.0
    cgroups: str = "auto"  # auto: a cgroup per run where the kernel allows; off: subreaper tracking
    spawner: str = "auto"  # auto: runs start from the spawner process where it can; off: here
    cluster: Optional[ClusterSettings] = None
    cluster_pools: frozenset[str] = frozenset()  # pools counted across a cluster's nodes
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


@dataclass(frozen=True)
class ClusterSettings:
    """`daemon.cluster`: the shared store, this node's name, and how long a lease lasts."""

    store: str  # a postgresql:// URL, without a password
    node: str
    lease: float = 15.0
    password_file: Optional[str] = None  # else libpq's PGPASSFILE or ~/.pgpass


@dataclass(frozen=True)
class Config:
    settings: Settings
    jobs: Mapping[str, Job]
    notifiers: Mapping[str, Notifier]
    files: tuple[str, ...]  # every file read, main first


def format_seconds(seconds: float) -> str:
    """Render a duration the way the config writes it (`90s` → `1m30s`)."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
