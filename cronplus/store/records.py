"""The rows the history keeps, as the daemon, the control socket and the CLI see them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from ..model import RunState


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    scheduled: Optional[float]
    trigger: str
    attempt: int
    first_run: Optional[int]
    state: str
    reason: str
    pid: Optional[int]
    created: float
    started: Optional[float]
    ended: Optional[float]
    exit_code: Optional[int]
    signal: Optional[int]
    duration: Optional[float]
    output: Optional[bytes]
    output_bytes: int
    peak_rss: Optional[int]
    due: Optional[float]
    notes: str
    instants: int = 1  # scheduled instants this row stands for: more than 1 on a folded missed row
    scheduled_until: Optional[float] = None  # the last instant a folded row stands for
    start_ticks: Optional[int] = None  # the process's start time, clock ticks since boot
    boot_id: Optional[str] = None  # the boot the process started in
    cgroup: Optional[str] = None  # the control group holding the run's processes

    @property
    def open(self) -> bool:
        return not RunState(self.state).final


@dataclass(frozen=True)
class JobState:
    name: str
    last_scheduled: Optional[float]  # every instant up to this one has its row
    last_run: Optional[int]  # the newest finished run
    paused: bool


@dataclass(frozen=True)
class AlertState:
    """What a job's alarms remember across restarts (see `alerts`)."""

    job: str
    failing_since: Optional[float] = None  # failing or missing runs since then; None: fine
    told: Optional[float] = None  # when its notifiers last heard of it (the start, a digest)
    untold: int = 0  # failures and missed instants since then
    last_success: Optional[float] = None  # when a run of it last succeeded
    watched_since: Optional[float] = None  # when no_success_within began to watch it
    overdue: Optional[float] = None  # when the no-success alarm was raised; None: not raised


ALERT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AlertState))
RUN_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Run))
OPEN_STATES = (RunState.PENDING.value, RunState.RUNNING.value)
FAILED_STATES = tuple(s.value for s in RunState if s.failed)
