"""The rows the history keeps, as the daemon, the control socket and the CLI see them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

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
    node: str = ""  # in a cluster, the node that runs or ran it
    scope: str = ""  # in a cluster, the node a `run_on: each` instant belongs to ("" for `one`)
    caused_by: Optional[int] = None  # a chained run: the run whose end started it
    starts_followers: int = 1  # 1: its final outcome starts the runs that follow its job

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


def upsert_alert(mark: str, key: tuple[str, ...] = ("job",)) -> str:
    """The statement that writes one AlertState, with the driver's placeholder `mark`;
    the columns of `key` beyond `job` come first in the values."""
    columns = (*key[1:], *ALERT_COLUMNS)
    return (
        f"INSERT INTO alerts ({', '.join(columns)})"
        f" VALUES ({', '.join(mark for _ in columns)}) ON CONFLICT({', '.join(key)})"
        " DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in ALERT_COLUMNS if c != "job")
    )


def alert_row(state: AlertState) -> tuple[Any, ...]:
    return tuple(getattr(state, column) for column in ALERT_COLUMNS)


OPEN_STATES = (RunState.PENDING.value, RunState.RUNNING.value)
FAILED_STATES = tuple(s.value for s in RunState if s.failed)


@dataclass
class Changes:
    """Everything the daemon changed since its last write, applied as one transaction."""

    runs: dict[int, Run] = field(default_factory=dict)  # whole rows, newest version
    new: set[int] = field(default_factory=set)  # of `runs`, those never written before
    jobs: dict[str, JobState] = field(default_factory=dict)
    notes: list[tuple[str, int]] = field(default_factory=list)  # (note, run id): rows not in memory
    prune: dict[str, int] = field(default_factory=dict)  # job -> finished runs to keep
    meta: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)

    def absorb(self, later: Changes) -> Changes:
        """These changes with `later` ones on top: for a write that failed and is tried again."""
        merged = Changes(
            {**self.runs, **later.runs},
            self.new | later.new,
            {**self.jobs, **later.jobs},
            self.notes + later.notes,
            {**self.prune, **later.prune},
            {**self.meta, **later.meta},
            {**self.alerts, **later.alerts},
        )
        return merged

    def __bool__(self) -> bool:
        return bool(self.runs or self.jobs or self.notes or self.prune or self.meta or self.alerts)
