"""What each page shows, computed from the records the daemon (or the history file) gives.

Pure functions from records to small view models; the templates only lay them out.
Times are shown in the job's zone with its offset, and in UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

from ..model import ScheduleKind, format_seconds
from ..report import spec_from_record
from ..schedule import build_rule
from . import daylight

UTC = timezone.utc
Record = dict[str, Any]
FAILED = ("failed", "timed-out", "memory-limit", "interrupted", "lost")
# states that say whether a job works: a skipped or missed instant says nothing of the job
COUNTED = ("succeeded", *FAILED)
MAX_UPCOMING_PER_JOB = 50


def parse(stamp: Optional[str]) -> Optional[datetime]:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def local(stamp: Optional[str], zone_name: str) -> str:
    """An instant in a zone, with its offset and abbreviation: `2026-03-08 03:00 -04:00 EDT`."""
    moment = parse(stamp)
    if moment is None:
        return "—"
    shown = moment.astimezone(ZoneInfo(zone_name))
    name = shown.tzname() or ""
    abbreviation = "" if name[:1] in "+-" else f" {name}"  # "+0545" would repeat the offset
    offset = f"{shown:%z}"
    return f"{shown:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}{abbreviation}"


def utc(stamp: Optional[str]) -> str:
    moment = parse(stamp)
    return "—" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


def cron_expressions(spec: Record) -> list[str]:
    """A cron schedule's expressions with any hashed (H) value chosen; none for the others."""
    if spec.get("kind") != ScheduleKind.CRON.value:
        return []
    return list(spec.get("resolved") or spec.get("expressions") or [])


def words(spec: Record, described: str = "") -> str:
    """A schedule in words: `At 02:30`, `Every 20 minutes`, `Once, at 2027-01-01 00:00`;
    calendar intervals and chained jobs as cronplus writes them (`described`)."""
    kind = spec.get("kind")
    if kind == ScheduleKind.EVERY.value:
        return f"Every {format_seconds(float(spec['every_seconds']))}, counted from the last run"
    if kind == ScheduleKind.AT.value:
        return f"Once, at {str(spec['at_local']).replace('T', ' ')}"
    if kind != ScheduleKind.CRON.value:
        return described[:1].upper() + described[1:] if described else "Only after other jobs"
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    parts = []
    for expression in cron_expressions(spec):
        fields = expression.split()
        if len(fields) == 6:  # cronplus writes seconds last; the describer reads them first
            expression = " ".join([fields[5], *fields[:5]])
        try:
            parts.append(get_description(expression, options))
        except Exception:  # an expression the describer cannot put in words: as written
            parts.append(expression)
    return "; and ".join(parts)


@dataclass
class JobRow:
    name: str
    description: str
    schedule: str
    words: str
    zone: str
    next_local: str
    next_utc: str
    paused: bool
    running: list[int]
    last_state: Optional[str]
    last_local: str
    strip: list[Record]
    success_rate: Optional[int]  # percent of the strip's runs that said anything
    missed: int


def job_row(record: Record) -> JobRow:
    zone = record["timezone"]
    last = record.get("last")
    recent = list(reversed(record.get("recent", [])))  # oldest first, left to right
    counted = [r for r in recent if r["state"] in COUNTED]
    rate = None
    if counted:
        rate = round(100 * sum(r["state"] == "succeeded" for r in counted) / len(counted))
    return JobRow(
        name=record["job"],
        description=record.get("description", ""),
        schedule=record["schedule"],
        words=words(record.get("spec", {}), record.get("schedule", "")),
        zone=zone,
        next_local="paused" if record["paused"] else local(record.get("next"), zone),
        next_utc="" if record["paused"] else utc(record.get("next")),
        paused=record["paused"],
        running=record.get("running", []),
        last_state=last["state"] if last else None,
        last_local=local(last.get("ended") or last.get("created"), zone) if last else "",
        strip=[
            {**r, "shown": local(r["at"], zone), "failed": r["state"] in FAILED} for r in recent
        ],
        success_rate=rate,
        missed=record.get("missed_last_day", 0),
    )


# --- a job's durations, as a chart ---------------------------------------------------------


@dataclass
class Point:
    x: float
    y: float
    run_id: int
    state: str
    failed: bool
    label: str


@dataclass
class Chart:
    width: int
    height: int
    points: list[Point]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    line: str  # an SVG path through the points, oldest to newest


def duration_chart(runs: Sequence[Record], zone: str, width: int = 720, height: int = 220) -> Chart:
    """Each run that started: x its start, y its duration; failures marked."""
    started = [r for r in runs if r.get("started") and r.get("duration") is not None]
    started.sort(key=lambda r: r["started"])
    left, right, top, bottom = 56, 12, 12, 28
    if not started:
        return Chart(width, height, [], [], [], "")
    times = [parse(r["started"]).timestamp() for r in started]  # type: ignore[union-attr]
    first, last = min(times), max(times)
    span = max(last - first, 1.0)
    longest = max(float(r["duration"]) for r in started) or 1.0
    top_value = _nice(longest)
    inner_w, inner_h = width - left - right, height - top - bottom

    def x_of(t: float) -> float:
        return round(left + (t - first) / span * inner_w, 1)

    def y_of(d: float) -> float:
        return round(top + inner_h - d / top_value * inner_h, 1)

    points = [
        Point(
            x_of(t),
            y_of(float(r["duration"])),
            r["id"],
            r["state"],
            r["state"] in FAILED,
            f"run {r['id']}: {r['state']}, {float(r['duration']):.3f}s,"
            f" started {local(r['started'], zone)}",
        )
        for t, r in zip(times, started)
    ]
    line = "M " + " L ".join(f"{p.x} {p.y}" for p in points)
    y_ticks = [(y_of(top_value * i / 4), _seconds(top_value * i / 4)) for i in range(5)]
    tz = ZoneInfo(zone)
    shown = "%H:%M:%S" if span < 600 else "%m-%d %H:%M"  # five different labels, always
    x_ticks = [
        (
            x_of(first + span * i / 4),
            datetime.fromtimestamp(first + span * i / 4, tz).strftime(shown),
        )
        for i in range(5)
    ]
    return Chart(width, height, points, y_ticks, x_ticks, line)


def _nice(value: float) -> float:
    """A round number at least `value` for the top of an axis."""
    for step in (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600):
        if value <= step:
            return float(step)
    hours = int(value // 3600) + 1
    return float(hours * 3600)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.3g}ms"  # a quarter of 10 ms is 2.5 ms, not 2
    if value < 120:
        return f"{value:g}s"
    return format_seconds(round(value))


# --- the timeline --------------------------------------------------------------------------


@dataclass
class Bar:
    x: float
    width: float
    y: float
    state: str
    failed: bool
    running: bool
    label: str
    run_id: int
    node: str = ""


@dataclass
class Mark:
    x: float
    y: float
    kind: str  # skipped or missed
    label: str


@dataclass
class Wait:
    x: float
    width: float
    y: float
    label: str


@dataclass
class Lane:
    job: str
    y: float
    height: float
    rows: int
    overlaps: int  # runs that started while another of the job ran
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)


@dataclass
class Timeline:
    width: int
    height: int
    left: int
    lanes: list[Lane]
    ticks: list[tuple[float, str]]
    zone: str
    counts: dict[str, int]


ROW = 14  # height of one row of bars in a lane
WAITED = 1.0  # seconds between due and start worth drawing as a wait


def timeline(
    answer: Record, jobs: Sequence[str], zone: str, width: int = 1000, left: int = 150
) -> Timeline:
    """One lane per job; overlapping runs of a job stack in rows of their lane."""
    since = parse(answer["since"]).timestamp()  # type: ignore[union-attr]
    until = parse(answer["until"]).timestamp()  # type: ignore[union-attr]
    span = max(until - since, 1.0)
    inner = width - left - 10

    def x_of(t: float) -> float:
        return round(left + (min(max(t, since), until) - since) / span * inner, 2)

    by_job: dict[str, list[Record]] = {name: [] for name in jobs}
    for run in answer["runs"]:
        by_job.setdefault(run["job"], []).append(run)
    lanes: list[Lane] = []
    y = 24.0
    counts: dict[str, int] = {}
    for name in sorted(by_job):
        runs = sorted(by_job[name], key=lambda r: r["id"])
        lane = Lane(name, y, ROW + 8, 1, 0)
        ends: list[float] = []  # per row: when its last bar ends
        for run in runs:
            counts[run["state"]] = counts.get(run["state"], 0) + run.get("instants", 1)
            start = _stamp(run.get("started"))
            when = _stamp(run.get("scheduled")) or _stamp(run.get("created")) or since
            if start is None:
                if run["state"] in ("skipped", "missed"):
                    lane.marks.append(Mark(x_of(when), 0, run["state"], _label(run, zone)))
                continue
            end = _stamp(run.get("ended")) or until
            row = next((i for i, e in enumerate(ends) if e <= start), len(ends))
            if row == len(ends):
                ends.append(end)
            else:
                ends[row] = end
            if row > 0:
                lane.overlaps += 1
            due = _stamp(run.get("due")) or _stamp(run.get("scheduled")) or _stamp(run["created"])
            if due is not None and start - due >= WAITED:
                lane.waits.append(
                    Wait(
                        x_of(due),
                        max(x_of(start) - x_of(due), 1.0),
                        row * ROW,
                        _wait(run, start - due),
                    )
                )
            lane.bars.append(
                Bar(
                    x_of(start),
                    max(x_of(end) - x_of(start), 2.0),
                    row * ROW,
                    run["state"],
                    run["state"] in FAILED,
                    run["state"] == "running",
                    _label(run, zone),
                    run["id"],
                    run.get("node", "") or "",
                )
            )
        lane.rows = max(len(ends), 1)
        lane.height = lane.rows * ROW + 8
        for bar in lane.bars:
            bar.y += lane.y + 4
        for wait in lane.waits:
            wait.y += lane.y + 4
        for mark in lane.marks:
            mark.y = lane.y + 4 + ROW / 2
        lanes.append(lane)
        y += lane.height
    ticks = _ticks(since, until, zone, x_of)
    return Timeline(width, int(y + 8), left, lanes, ticks, zone, counts)


def _stamp(value: Optional[str]) -> Optional[float]:
    moment = parse(value)
    return None if moment is None else moment.timestamp()


def _label(run: Record, zone: str) -> str:
    when = run.get("started") or run.get("scheduled") or run.get("created")
    text = f"run {run['id']} of {run['job']}: {run['state']}, {local(when, zone)}"
    if run.get("duration") is not None:
        text += f", {float(run['duration']):.3f}s"
    if run.get("reason"):
        text += f" ({run['reason']})"
    if run.get("node"):
        text += f" on {run['node']}"
    return text


def _wait(run: Record, seconds: float) -> str:
    return f"run {run['id']} of {run['job']} waited {_seconds(seconds)} for a worker"


def _ticks(since: float, until: float, zone: str, x_of: Any) -> list[tuple[float, str]]:
    """Every 10 minutes of an hour's window, every third hour of a day's, every midnight of
    a week's, in `zone`."""
    tz = ZoneInfo(zone)
    span = until - since
    ticks: list[tuple[float, str]] = []
    stamp = math.ceil(since / 300) * 300  # 5 minutes: some zones are 30 or 45 minutes off
    while stamp <= until:
        moment = datetime.fromtimestamp(stamp, tz)
        if span <= 2 * 3600:
            wanted, shown = moment.minute % 10 == 0, f"{moment:%H:%M}"
        elif span <= 2 * 86400:
            wanted, shown = moment.minute == 0 and moment.hour % 3 == 0, f"{moment:%H:%M}"
        else:
            wanted, shown = moment.minute == 0 and moment.hour == 0, f"{moment:%a %d}"
        if wanted:
            ticks.append((x_of(stamp), shown))
        stamp += 300
    return ticks


# --- upcoming runs -------------------------------------------------------------------------


@dataclass
class Upcoming:
    at: datetime
    job: str
    zone: str
    local: str
    utc: str
    note: Optional[str]


@dataclass
class Day:
    title: str
    runs: list[Upcoming]
    changes: list[str]


def upcoming(
    records: Sequence[Record], now: datetime, days: int, zone: str
) -> tuple[list[Day], list[str]]:
    """The runs of `days` days from `now` (the present, or a later instant to look ahead
    to), by day in `zone`; and the jobs cut short."""
    end = now + timedelta(days=days)
    runs: list[Upcoming] = []
    cut: list[str] = []
    zones = {r["timezone"] for r in records}
    nearby = {z: daylight.changes(z, now, end) for z in zones}
    for record in records:
        first = parse(record.get("next"))
        if first is None or record["paused"]:
            continue
        spec = record["spec"]
        instants = _instants(spec, record["timezone"], first, now, end)
        if len(instants) > MAX_UPCOMING_PER_JOB:
            instants = instants[:MAX_UPCOMING_PER_JOB]
            cut.append(record["job"])
        expressions = cron_expressions(spec)
        for instant in instants:
            stamp = instant.astimezone(UTC).isoformat()
            runs.append(
                Upcoming(
                    instant,
                    record["job"],
                    record["timezone"],
                    local(stamp, record["timezone"]),
                    utc(stamp),
                    daylight.note(
                        expressions, record["timezone"], instant, nearby[record["timezone"]]
                    ),
                )
            )
    runs.sort(key=lambda u: (u.at, u.job))
    tz = ZoneInfo(zone)
    by_day: dict[str, Day] = {}
    for run in runs:
        title = f"{run.at.astimezone(tz):%A %Y-%m-%d}"
        by_day.setdefault(title, Day(title, [], [])).runs.append(run)
    for changes in nearby.values():
        for change in changes:
            title = f"{change.at.astimezone(tz):%A %Y-%m-%d}"
            by_day.setdefault(title, Day(title, [], [])).changes.append(change.describe())
    ordered = sorted(by_day.values(), key=lambda d: d.title.split(" ", 1)[1])
    return ordered, cut


def _instants(
    spec: Record, zone: str, first: datetime, start: datetime, end: datetime
) -> list[datetime]:
    """The instants in [start, end] of a job whose next run is `first` (the daemon's word);
    after it, the schedule's own (an `every:` job keeps the phase of `first`)."""
    rule = build_rule(spec_from_record(spec), zone, shared=False)
    if first < start:
        found = rule.next_after(start - timedelta(microseconds=1), first)
        if found is None:
            return []
        first = found
    out = [first] if first <= end else []
    after = first
    while out and len(out) <= MAX_UPCOMING_PER_JOB:
        found = rule.next_after(after, after)
        if found is None or found > end:
            break
        out.append(found)
        after = found
    return out
