"""What a change of the clocks does to a job's upcoming runs, in words.

Pure: a zone and instants in, notes out.  The schedule rules themselves live in
`schedule`; this module only explains their effect on the instants it is given:
a fixed-time run moved to the instant the clocks jump, nominal times merged into
one run, a repeated wall time run once or twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

from croniter import croniter

from ..schedule import days_either, is_fixed_time, normalize_expression
from ..walltime import all_instants

UTC = timezone.utc
STEP = timedelta(hours=1)  # offsets change at most once within an hour in every zone


@dataclass(frozen=True)
class Change:
    """The clocks of a zone change at `at`: local time jumps from `before` to `after`."""

    zone: str
    at: datetime  # the first instant with the new offset, UTC
    before: datetime  # the local wall time the clocks show just before
    after: datetime  # the local wall time they show from `at`

    @property
    def forward(self) -> bool:
        return self.after.replace(tzinfo=None) > self.before

    def describe(self) -> str:
        shift = abs(self.after.replace(tzinfo=None) - self.before)
        minutes = int(shift.total_seconds() // 60)
        amount = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
        way = "forward" if self.forward else "back"
        name = self.after.tzname() or ""
        return (
            f"{self.zone}: clocks go {way} {amount} at {self.before:%H:%M} local time,"
            f" to {self.after:%H:%M} {name}".rstrip()
        )


def changes(zone_name: str, start: datetime, end: datetime) -> list[Change]:
    """The changes of a zone's UTC offset between two instants."""
    tz = ZoneInfo(zone_name)
    found: list[Change] = []
    low = start.astimezone(UTC)
    while low < end:
        high = min(low + STEP, end)
        if low.astimezone(tz).utcoffset() != high.astimezone(tz).utcoffset():
            at = _first_with_offset(low, high, tz)
            before = (at - timedelta(seconds=1)).astimezone(tz) + timedelta(seconds=1)
            found.append(Change(zone_name, at, before.replace(tzinfo=None), at.astimezone(tz)))
        low = high
    return found


def _first_with_offset(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    target = high.astimezone(tz).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == target:
            hi = middle
        else:
            lo = middle
    return datetime.fromtimestamp(hi, UTC)


def note(
    expressions: Sequence[str], zone_name: str, instant: datetime, nearby: Sequence[Change]
) -> Optional[str]:
    """What a clock change in `nearby` does to this run of a cron job, or None."""
    if not nearby or not expressions:
        return None
    tz = ZoneInfo(zone_name)
    wall = instant.astimezone(tz).replace(tzinfo=None)
    for change in nearby:
        if change.forward and change.at == instant.astimezone(UTC):
            skipped = _walls_in_gap(expressions, change)
            if skipped:
                shown = ", ".join(f"{w:%H:%M}" for w in skipped[:3])
                if any(_matches(e, wall) for e in expressions):
                    return f"merged: {shown} (skipped by the clocks) and {wall:%H:%M} run once"
                if len(skipped) > 1:
                    return f"merged: {shown} fall in the skipped hour and run once, at the jump"
                return f"moved: {shown} falls in the skipped hour and runs when the clocks jump"
    if len(all_instants(wall, tz)) == 2:
        fixed = all(is_fixed_time(normalize_expression(e)) for e in expressions)
        if fixed:
            return f"{wall:%H:%M} happens twice as the clocks go back: it runs once, the first time"
        first = all_instants(wall, tz)[0]
        which = "first" if instant.astimezone(UTC) == first else "second"
        return f"{wall:%H:%M} happens twice as the clocks go back: this is the {which} run"
    return None


def _matches(expression: str, wall: datetime) -> bool:
    text = normalize_expression(expression)
    return bool(croniter.match(text, wall, day_or=days_either(text)))


def _walls_in_gap(expressions: Sequence[str], change: Change) -> list[datetime]:
    """The wall times of fixed-time expressions that the jump of `change` skips."""
    out: list[datetime] = []
    for expression in expressions:
        text = normalize_expression(expression)
        if not is_fixed_time(text):
            continue  # interval-like: a skipped wall time is not run at all
        walls = croniter(text, change.before - timedelta(seconds=1), day_or=days_either(text))
        for _ in range(1000):
            wall = walls.get_next(datetime)
            if wall >= change.after.replace(tzinfo=None):
                break
            out.append(wall)
    return sorted(set(out))
