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


@dataclass(frozen=True)
class ScheduleSpec:
    """A job's schedule as written; `schedule.build_rule` turns it into a rule."""

    kind: ScheduleKind
    expressions: tuple[str, ...] = ()
    every_seconds: float = 0.0
    at_local: str = ""  # ISO local wall time, in the job's zone

    def describe(self) -> str:
        if self.kind is ScheduleKind.CRON:
            return " | ".join(self.expressions)
        if self.kind is ScheduleKind.EVERY:
            return f"every {format_seconds(self.every_seconds)}"
        return f"at {self.at_local}"


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
    output_limit: int = 64 * 1024
    description: str = ""
    source: str = ""  # file:line where the job is defined


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
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


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
