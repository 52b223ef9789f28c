"""JSON records of jobs and runs, the same whether the daemon or the history file answers.

The daemon sends these over the control socket; when the daemon is down,
cronplusctl builds them from the history file read-only.  One shape, so one
renderer serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from .clock import iso_utc
from .model import Config, Job, ScheduleKind, ScheduleSpec
from .schedule import CronRule, build_rule, upcoming
from .store import HistoryReader, JobState, Run

UTC = timezone.utc
DAY = 86400.0
Record = dict[str, Any]


def run_record(run: Run, with_output: bool = False) -> Record:
    record: Record = {k: v for k, v in run.__dict__.items() if k != "output"}
    for key in ("scheduled", "created", "started", "ended"):
        record[key] = iso_utc(record[key])
    if with_output:
        output = run.output or b""
        record["output"] = output.decode("utf-8", errors="replace")
        record["truncated"] = run.output_bytes > len(output)
    return record


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ScheduleSpec))


def spec_record(spec: ScheduleSpec) -> Record:
    """A schedule as JSON, whole: `spec_from_record` makes it a ScheduleSpec again.

    Its fields are plain values and tuples of them: read one by one, not deep-copied
    (dataclasses.asdict took a tenth of a second for a thousand jobs)."""
    record: Record = {name: getattr(spec, name) for name in _SPEC_FIELDS}
    record["kind"] = spec.kind.value
    return record


def spec_from_record(record: Record) -> ScheduleSpec:
    known = {f.name for f in dataclasses.fields(ScheduleSpec)}
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in known
    }
    values["kind"] = ScheduleKind(record["kind"])
    return ScheduleSpec(**values)


def job_record(
    job: Job,
    now: datetime,
    state: Optional[JobState],
    last: Optional[Run],
    running: list[int],
    next_run: Optional[datetime] = None,
    missed: int = 0,
    found: Optional[dict[tuple[int, datetime], Optional[datetime]]] = None,
) -> Record:
    """A job's status; `next_run` is the daemon's own timer entry when it has one.

    `found` remembers next runs already computed for jobs of the same cron rule:
    its next run after `now` does not depend on when the job last ran."""
    paused = bool(state and state.paused)
    if next_run is None and not paused:
        rule = build_rule(job.schedule, job.timezone)
        mark = state.last_scheduled if state else None
        if found is not None and isinstance(rule, CronRule) and (mark or 0) <= now.timestamp():
            key = (id(rule), now)
            if key not in found:
                found[key] = upcoming(rule, now, mark)
            next_run = found[key]
        else:
            next_run = upcoming(rule, now, mark)
    return {
        "job": job.name,
        "schedule": job.schedule.describe(),
        "spec": spec_record(job.schedule),
        "jitter": job.jitter,
        "timezone": job.timezone,
        "user": job.user,
        "description": job.description,
        "next": None if paused or next_run is None else iso_utc(next_run.timestamp()),
        "paused": paused,
        "last": run_record(last) if last else None,
        "running": running,
        "missed_last_day": missed,
        "after": [{"job": a.job, "on": a.on, "within": a.within} for a in job.after],
    }


def name_causes(
    records: Iterable[Optional[Record]], job_of: Callable[[int], Optional[str]]
) -> None:
    """Add to each chained run's record the job of the run that caused it (`cause_job`)."""
    for record in records:
        if record is not None and record.get("caused_by") is not None:
            record["cause_job"] = job_of(record["caused_by"])


def recent_record(run: Run) -> Record:
    """A run as a status strip shows it."""
    return {
        "id": run.id,
        "state": run.state,
        "at": iso_utc(run.started or run.scheduled or run.created),
        "duration": run.duration,
    }


def status_from_history(
    config: Config,
    history: Optional[HistoryReader],
    now: datetime,
    names: list[str],
    recent: int = 0,
) -> list[Record]:
    """Job records from the history file alone (or none yet), for when the daemon is down."""
    states: dict[str, JobState] = {}
    last: dict[str, Run] = {}
    running: dict[str, list[int]] = {}
    missed: dict[str, int] = {}
    if history is not None:
        states, last = history.job_states(), history.last_runs()
        missed = history.misses_since(now.timestamp() - DAY)
        for run in history.open_runs():
            if run.state == "running":
                running.setdefault(run.job, []).append(run.id)
    found: dict[tuple[int, datetime], Optional[datetime]] = {}
    records = [
        job_record(
            config.jobs[name],
            now,
            states.get(name),
            last.get(name),
            running.get(name, []),
            missed=missed.get(name, 0),
            found=found,
        )
        for name in names
    ]
    if history is not None:
        name_causes((r["last"] for r in records), history.job_of)
    if recent:
        for record in records:
            runs = history.runs(record["job"], recent) if history is not None else []
            record["recent"] = [recent_record(r) for r in runs]
    return records
