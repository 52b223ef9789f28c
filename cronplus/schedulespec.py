"""A job's schedule keys, converted one by one, checked together into a ScheduleSpec.

The keys are `schedule` (cron), `every` (an interval, or with `at`, `on` or
`on_day` a calendar interval), `at` (one instant, or the times of day of a
calendar interval), `on` (weekdays), `on_day` (days of the month), `start` and
`end` (bounds for any of them).  The config reader and `cronplusctl next
--schedule` both check them here; each problem names the key it is about
(or none, for the job as a whole) and says what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from . import cronfields
from .calendarrule import anchor_date, bound_instant, parse_time_of_day, skipped_months
from .errors import ScheduleError
from .model import LAST_DAY, ScheduleKind, ScheduleSpec
from .schedule import build_rule

SCHEDULE_KEYS = ("schedule", "every", "at", "on", "on_day", "start", "end")
MAIN_KEYS = ("schedule", "every", "at")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
UNIT_WORDS = {"d": "days", "w": "weeks", "mo": "months"}

Problem = tuple[str, str]  # (the key it is about, or "" for the job; the message)


@dataclass(frozen=True)
class Period:
    """What `every:` says: `count` calendar `unit`s, or a plain number of seconds (or both)."""

    count: int = 0  # 0: not a calendar period (30s, 1h30m)
    unit: str = ""  # d, w or mo
    seconds: Optional[float] = None  # None for months: they have no one length


def build_spec(
    values: Mapping[str, Any],
    present: Sequence[str],
    name: Optional[str],
    zone_name: str,
    follows: bool = False,
) -> tuple[Optional[ScheduleSpec], list[Problem]]:
    """The spec from the converted `values`; `present` also names keys given but rejected.

    `name` is the job's, which hashed (H) values are chosen from (None: H is refused);
    `follows`: the job has `after:`, so it needs no schedule of its own.
    """
    problems: list[Problem] = []
    main = [k for k in MAIN_KEYS if k in present]
    calendar = "every" in present and any(k in present for k in ("at", "on", "on_day"))
    if main == ["every", "at"] or (main == ["every"] and calendar):
        main = ["every"]
    if len(main) > 1 or (not main and not follows):
        found = " and ".join(main) if main else "none"
        problems.append(
            ("", f"found {found}, expected exactly one of schedule, every or at (or after:)")
        )
    for key in ("on", "on_day"):
        if key in present and "every" not in present:
            problems.append((key, f"{key} goes with every: (every: 2w, on: mon)"))
    if problems or any(k not in values for k in present):
        return None, problems  # the rejected values were told of where they were read

    try:
        start, end = _bounds(values, zone_name)
    except _KeyProblem as exc:
        return None, [(exc.key, exc.message)]
    if start and end and bound_instant(end, zone_name, True) < bound_instant(start, zone_name):
        return None, [("end", f"found end {end} before start {start}, expected it after start")]

    kind = main[0] if main else ""
    try:
        if kind == "schedule":
            spec = _cron(values["schedule"], name, start, end)
        elif kind == "every" and calendar:
            spec = _calendar(values, start, end, zone_name)
        elif kind == "every":
            spec = _every(values["every"], start, end)
        elif kind == "at":
            spec = _at(values["at"], start, end)
        else:
            spec = ScheduleSpec(ScheduleKind.NONE, start=start, end=end)
        build_rule(spec, zone_name)  # the loop's thread, or cronplusctl's: shared rules
    except _KeyProblem as exc:
        return None, [(exc.key, exc.message)]
    except ScheduleError as exc:
        return None, [(kind, str(exc))]
    return spec, []


class _KeyProblem(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _bounds(values: Mapping[str, Any], zone_name: str) -> tuple[str, str]:
    out = []
    for key in ("start", "end"):
        text = values.get(key, "")
        if text:
            try:
                bound_instant(text, zone_name, end=key == "end")
            except ScheduleError as exc:
                raise _KeyProblem(key, str(exc)) from None
        out.append(text)
    return out[0], out[1]


def _cron(expressions: tuple[str, ...], name: Optional[str], start: str, end: str) -> ScheduleSpec:
    """The expressions as written, and with their hashed values chosen from the job's name."""
    resolved = []
    for expression in expressions:
        try:
            resolved.append(cronfields.expand_hashed(" ".join(expression.split()), name))
        except ScheduleError as exc:
            raise _KeyProblem("schedule", str(exc)) from None
        if not cronfields.has_hashed(expression):
            resolved[-1] = expression
    return ScheduleSpec(
        ScheduleKind.CRON,
        expressions=expressions,
        resolved=tuple(resolved),
        start=start,
        end=end,
    )


def _every(period: Period, start: str, end: str) -> ScheduleSpec:
    if period.seconds is None:
        raise _KeyProblem(
            "every",
            f"every {period.count}{period.unit} runs on a day of the month, expected on_day: "
            '(15, or last) and at: (a time such as "09:00") with it',
        )
    return ScheduleSpec(ScheduleKind.EVERY, every_seconds=period.seconds, start=start, end=end)


def _at(value: Union[str, tuple[str, ...]], start: str, end: str) -> ScheduleSpec:
    if isinstance(value, tuple):
        raise _KeyProblem(
            "at", "found a list, expected one date and time (a list of times goes with every:)"
        )
    return ScheduleSpec(ScheduleKind.AT, at_local=value, start=start, end=end)


def _calendar(values: Mapping[str, Any], start: str, end: str, zone_name: str) -> ScheduleSpec:
    period: Period = values["every"]
    if not period.count:
        raise _KeyProblem(
            "every",
            "found an interval, expected days, weeks or months (2d, 2w, 3mo) with at:, on: or"
            " on_day:",
        )
    word = UNIT_WORDS[period.unit]
    weekdays: tuple[int, ...] = values.get("on", ())
    month_days: tuple[int, ...] = values.get("on_day", ())
    if weekdays and period.unit != "w":
        raise _KeyProblem("on", f"found on: with every {word}, expected it with weeks (2w)")
    if month_days and period.unit != "mo":
        raise _KeyProblem("on_day", f"found on_day: with every {word}, expected it with months")
    if period.unit == "w" and not weekdays:
        raise _KeyProblem(
            "every", f"every {period.count}w needs on:, the weekdays it falls on (on: mon)"
        )
    if period.unit == "mo" and not month_days:
        raise _KeyProblem(
            "every", f"every {period.count}mo needs on_day:, the day of the month (15, or last)"
        )
    if period.count > 1 and not start:
        raise _KeyProblem(
            "every",
            f"every {period.count}{period.unit} counts {word} from start:, expected a start:"
            " date such as 2026-01-05",
        )
    times = _times(values.get("at", ("00:00",)))
    if month_days:
        _check_month_days(period.count, start, zone_name, month_days)
    return ScheduleSpec(
        ScheduleKind.CALENDAR,
        count=period.count,
        unit=period.unit,
        times=times,
        weekdays=weekdays,
        month_days=month_days,
        start=start,
        end=end,
    )


def _times(value: Union[str, tuple[str, ...]]) -> tuple[str, ...]:
    texts = (value,) if isinstance(value, str) else value
    out = []
    for text in texts:
        try:
            of_day = parse_time_of_day(text)
        except ScheduleError:
            raise _KeyProblem(
                "at", f'found "{text}", expected a time of day such as "09:00" with every:'
            ) from None
        out.append(of_day.isoformat("seconds" if of_day.second else "minutes"))
    return tuple(sorted(set(out)))


def _check_month_days(count: int, start: str, zone_name: str, days: tuple[int, ...]) -> None:
    first = anchor_date(start, zone_name).month if start and count > 1 else 1
    skipped = skipped_months(count, first, days)
    if not skipped:
        return
    numbers = ", ".join(str(d) for d in days if d != LAST_DAY and d > 28)
    months = [MONTH_NAMES[m - 1] for m in skipped]
    listed = months[0] if len(months) == 1 else ", ".join(months[:-1]) + " and " + months[-1]
    note = " (but in leap years)" if skipped == [2] and max(days) == 29 else ""
    raise _KeyProblem(
        "on_day",
        f"on_day {numbers} with every {count}mo would skip {listed}{note}, expected a day"
        " every month it falls in has, or on_day: last",
    )
