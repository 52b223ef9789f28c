"""Calendar intervals and the bounds of a schedule: pure date arithmetic.

`every: 2w` with `on: mon` and `at: "09:00"` runs at 09:00 on the Monday of every
other week, counted from the week of `start:`; `every: 3mo` with `on_day: 15` (or
`last`) on that day of every third month, counted from the month of `start:`;
`every: 2d` with `at:` on every other day from the day of `start:`.  Each run is
a nominal wall time in the job's zone, run once (the rule is fixed-time): a time
that occurs twice runs at its first occurrence, a time that never occurs runs at
the instant the clocks jump, and times that land on one instant run once.

APScheduler's CalendarIntervalTrigger was weighed for this and not used: it drops
a date whose time falls in a daylight saving gap (the design runs it at the
jump), has no set of weekdays or last day of the month, and its version 3 reads
the wall clock; the arithmetic below is short, and shares `walltime` with cron.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Optional

from .clock import zone
from .errors import ScheduleError
from .model import LAST_DAY
from .walltime import first_instant, local_wall

UTC = timezone.utc
UNITS = {"d": "days", "w": "weeks", "mo": "months"}
# Periods (days, weeks or months) searched for the next run before giving up: a rule
# the config accepts runs in every period; this bounds one the config never checked.
MAX_PERIODS = 5000
# What date arithmetic raises past 9999-12-31 or before year 1
PAST_THE_CALENDAR = (OverflowError, ValueError)
# An anchor for rules counted one period at a time, where the start does not matter.
_ANY_MONDAY = date(2001, 1, 1)
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_time_of_day(text: str) -> time:
    """`09:00` or `09:00:30`; raises ScheduleError."""
    match = _TIME_OF_DAY.fullmatch(text.strip())
    if match is not None:
        hour, minute, second = (int(part or 0) for part in match.groups())
        if hour <= 23 and minute <= 59 and second <= 59:
            return time(hour, minute, second)
    raise ScheduleError(f'"{text}" is not a time of day, expected one such as "09:00" or "17:30"')


def parse_moment(text: str) -> datetime | date:
    """An ISO date, local date and time, or instant with a UTC offset; raises ScheduleError."""
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip())
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(
            f'"{text}" is not a date, expected one such as 2026-01-05 or 2026-01-05T09:00'
        ) from None


@lru_cache(maxsize=4096)
def bound_instant(text: str, zone_name: str, end: bool = False) -> datetime:
    """The instant a `start:` (or `end:`) names in the job's zone.

    A date starts at its first instant; as an end it includes its whole day.  A
    wall time that never occurs is the instant the clocks jump.
    """
    moment = parse_moment(text)
    try:
        if isinstance(moment, datetime):
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
            return first_instant(moment, zone(zone_name))
        day = moment + timedelta(days=1) if end else moment
        instant = first_instant(datetime.combine(day, time()), zone(zone_name))
        return instant - timedelta(microseconds=1) if end else instant
    except PAST_THE_CALENDAR:
        raise ScheduleError(
            f'"{text}" is beyond the dates cronplus can keep, expected one from year 1 to 9999'
        ) from None


def anchor_date(text: str, zone_name: str) -> date:
    """The local date of a `start:`, from which calendar intervals count."""
    moment = parse_moment(text)
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(zone(zone_name))
        return moment.date()
    return moment


def month_length(year: int, month: int) -> int:
    if month == 12:
        return 31  # and no date(10000, 1, 1) asked for
    return (date(year, month + 1, 1) - timedelta(days=1)).day


def skipped_months(count: int, start_month: int, days: Sequence[int]) -> list[int]:
    """The months (1-12) an `every: Nmo` rule visits that lack one of `days`.

    February counts as lacking the 29th, since it does in three years of four.
    """
    visited = sorted({(start_month - 1 + k * count) % 12 + 1 for k in range(12)})
    longest = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return [m for m in visited if any(d != LAST_DAY and d > longest[m - 1] for d in days)]


class CalendarRule:
    """Every `count` days, weeks or months, at wall times, counted from an anchor date."""

    fixed = True  # nominal wall times, each run once

    def __init__(
        self,
        count: int,
        unit: str,
        times: Sequence[time],
        zone_name: str,
        anchor: Optional[date] = None,
        weekdays: Sequence[int] = (),
        month_days: Sequence[int] = (),
    ) -> None:
        if unit not in UNITS or count < 1 or not times:
            raise ScheduleError(f"every {count}{unit}: expected days (d), weeks (w) or months (mo)")
        if unit == "w" and not weekdays:
            raise ScheduleError(f"every {count}w needs the weekdays it falls on")
        if unit == "mo" and not month_days:
            raise ScheduleError(f"every {count}mo needs the days of the month it falls on")
        self.count = count
        self.unit = unit
        self.times = sorted(set(times))
        self.zone = zone(zone_name)
        self.anchor = anchor or _ANY_MONDAY
        self.weekdays = sorted(set(weekdays))
        self.month_days = sorted(set(month_days))

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        try:
            return self._next_after(after.astimezone(UTC))
        except PAST_THE_CALENDAR:
            return None  # the next run would be after 9999-12-31

    def _next_after(self, after: datetime) -> Optional[datetime]:
        local = local_wall(after, self.zone)
        for day in self._days_from(local.date()):
            for of_day in self.times:
                wall = datetime.combine(day, of_day)
                if wall <= local:
                    continue
                instant = first_instant(wall, self.zone)
                if instant > after:  # else its first occurrence has passed: a repeated hour
                    return instant
        return None

    def _days_from(self, day: date) -> Iterator[date]:
        """The days the rule runs on, from `day` on, in order."""
        if self.unit == "d":
            behind = (day - self.anchor).days % self.count
            current = day + timedelta(days=(self.count - behind) % self.count)
            for _ in range(MAX_PERIODS):
                yield current
                current += timedelta(days=self.count)
        elif self.unit == "w":
            yield from self._weeks_from(day)
        else:
            yield from self._months_from(day)

    def _weeks_from(self, day: date) -> Iterator[date]:
        monday = day - timedelta(days=day.weekday())
        first = self.anchor - timedelta(days=self.anchor.weekday())
        weeks = (monday - first).days // 7
        monday += timedelta(weeks=(-weeks) % self.count)
        for _ in range(MAX_PERIODS):
            for weekday in self.weekdays:
                candidate = monday + timedelta(days=weekday)
                if candidate >= day:
                    yield candidate
            monday += timedelta(weeks=self.count)

    def _months_from(self, day: date) -> Iterator[date]:
        index = day.year * 12 + day.month - 1
        index += (self.anchor.year * 12 + self.anchor.month - 1 - index) % self.count
        for _ in range(MAX_PERIODS):
            year, month = divmod(index, 12)
            length = month_length(year, month + 1)
            days = sorted({length if d == LAST_DAY else d for d in self.month_days})
            for number in days:
                if number <= length and date(year, month + 1, number) >= day:
                    yield date(year, month + 1, number)
            index += self.count
