"""The fields of a cron expression: hashed values chosen, extensions checked.

Hashed values (`H`, as Jenkins writes them) are chosen here, stably from a job's
name, and written out as plain numbers before croniter sees the expression, so
that the chosen times depend on nothing but the name: not on the process, the
machine, or croniter's version.  The extensions croniter reads (`L`, `15W`,
`2#2`, `L5`) are checked field by field so that a mistake is told in words, and
Quartz's `5L` is rewritten `L5`.  Random values (`R`) are refused: a job runs
at the same times on every start.  Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional

from .errors import ScheduleError


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    hashed_low: int  # the range a bare H chooses from
    hashed_high: int


MINUTE = Field("minute", 0, 59, 0, 59)
HOUR = Field("hour", 0, 23, 0, 23)
DAY = Field("day of month", 1, 31, 1, 28)  # a bare H picks a day every month has
MONTH = Field("month", 1, 12, 1, 12)
WEEKDAY = Field("weekday", 0, 7, 0, 6)
SECOND = Field("second", 0, 59, 0, 59)
FIVE = (MINUTE, HOUR, DAY, MONTH, WEEKDAY)
SIX = (*FIVE, SECOND)  # seconds last

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_HASHED = re.compile(r"h(?:\((\d{1,4})-(\d{1,4})\))?(?:/(\d{1,4}))?")
_LETTER_H_OR_R = re.compile(r"(?<![a-z])[hr](?![a-z])")
_NAMES = re.compile(r"[a-z]{3}")
_NTH = re.compile(r"([0-7]|[a-z]{3})#(\d+)")
_LAST_WEEKDAY = re.compile(r"l([0-7]|[a-z]{3})|([0-7]|[a-z]{3})l")
_NEAREST_WEEKDAY = re.compile(r"(\d{1,2})w")
_SPECIAL = re.compile(r"[lw#]")


def fields_of(expression: str) -> tuple[Field, ...]:
    return FIVE if len(expression.split()) == 5 else SIX


def _letters(item: str) -> list[str]:
    """The standalone h and r of an item: hashed and random values, not parts of names."""
    return _LETTER_H_OR_R.findall(item.lower())


def has_hashed(expression: str) -> bool:
    if "h" not in expression and "H" not in expression:
        return False  # most expressions: no item to look at (a 100,000-job file)
    return any("h" in _letters(item) for item in _items(expression))


def refuse_random(expression: str) -> None:
    if "r" not in expression and "R" not in expression:
        return
    if any("r" in _letters(item) for item in _items(expression)):
        raise ScheduleError(
            f'bad cron expression "{expression}": random (R) values are not supported, '
            "expected the same times on every start (H chooses a time from the job's name)"
        )


def _items(expression: str) -> list[str]:
    return [item for text in expression.lower().split() for item in text.split(",")]


def hash_value(seed: str, field: Field) -> int:
    """A number the same for (seed, field) on every start and every machine."""
    digest = hashlib.sha256(f"{seed}\0{field.name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def expand_hashed(expression: str, seed: Optional[str]) -> str:
    """`expression` with each H chosen from `seed` (a job's name); unchanged without H.

    `H` is one value of the field (a day of month from 1 to 28), `H(a-b)` one value
    from a to b, `H/n` every n-th value from a chosen start, `H(a-b)/n` the same
    within a to b.  Raises ScheduleError for an H a field cannot take.
    """
    if not has_hashed(expression):
        return expression
    written = expression.split()
    if seed is None:
        raise ScheduleError(
            f'"{expression}": hashed (H) values are chosen from a job\'s name, expected them in'
            " a job's schedule (or a name to hash with --name)"
        )
    fields = fields_of(expression)
    if len(written) != len(fields):
        return expression  # the field count is checked by the caller, with its own message
    out = []
    for text, field in zip(written, fields):
        items = [_expand_item(expression, item, field, seed) for item in text.split(",")]
        out.append(",".join(items))
    return " ".join(out)


def _expand_item(expression: str, item: str, field: Field, seed: str) -> str:
    if "h" not in _letters(item):
        return item
    match = _HASHED.fullmatch(item.lower())
    expected = "H, H(a-b), H/n or H(a-b)/n"
    if match is None:
        raise ScheduleError(
            f'bad cron expression "{expression}": "{item}" in the {field.name} field, '
            f"expected {expected}"
        )
    low, high = field.hashed_low, field.hashed_high
    if match.group(1) is not None:
        low, high = int(match.group(1)), int(match.group(2))
        if not field.low <= low <= high <= field.high:
            raise ScheduleError(
                f'bad cron expression "{expression}": "{item}" in the {field.name} field, '
                f"expected a range within {field.low}-{field.high}, its start first"
            )
    value = hash_value(seed, field)
    span = high - low + 1
    if match.group(3) is None:
        return str(low + value % span)
    step = int(match.group(3))
    if not 1 <= step <= span:
        raise ScheduleError(
            f'bad cron expression "{expression}": "{item}" in the {field.name} field, '
            f"expected a step from 1 to {span}"
        )
    start = low + value % step
    # croniter misreads a one-value range with a step ("59-59/15"): write the value alone
    return str(start) if start == high else f"{start}-{high}/{step}"


def check_extensions(expression: str) -> str:
    """Check L, W and # field by field; returns the expression with `5L` written `L5`.

    Raises ScheduleError naming the item and what its field takes.
    """
    fields = expression.split()
    if len(fields) not in (5, 6):
        return expression
    out = list(fields)
    for index, (text, field) in enumerate(zip(fields, fields_of(expression))):
        if field is DAY:
            _check_day_of_month(expression, text)
        elif field is WEEKDAY:
            out[index] = _weekday_field(expression, text)
        else:
            for item in text.split(","):
                names = _NAMES.sub("", item.lower()) if field is MONTH else item.lower()
                if _SPECIAL.search(names):
                    raise ScheduleError(
                        f'bad cron expression "{expression}": "{item}" in the {field.name}'
                        " field; L and W go in the day of month field (L, 15W), # and L in"
                        " the weekday field (2#2, L5)"
                    )
    _check_either(expression, out)
    return " ".join(out)


def _check_day_of_month(expression: str, text: str) -> None:
    items = text.split(",")
    for item in items:
        lowered = item.lower()
        if "#" in item:
            raise ScheduleError(
                f'bad cron expression "{expression}": "{item}" in the day of month field;'
                " # goes in the weekday field (2#2: the second Tuesday)"
            )
        if "w" in lowered:
            match = _NEAREST_WEEKDAY.fullmatch(lowered)
            if lowered == "lw":
                raise ScheduleError(
                    f'bad cron expression "{expression}": "LW" (the last weekday of the'
                    " month) is not supported, expected L or a day with W such as 15W"
                )
            if match is None or not 1 <= int(match.group(1)) <= 31:
                raise ScheduleError(
                    f'bad cron expression "{expression}": "{item}" in the day of month field,'
                    " expected a day from 1 to 31 before W (15W: the weekday nearest the 15th)"
                )
            if len(items) > 1:
                raise ScheduleError(
                    f'bad cron expression "{expression}": "{item}" takes one day, expected it'
                    " alone in the day of month field (a list of schedules runs on several)"
                )
        elif "l" in lowered and lowered != "l":
            raise ScheduleError(
                f'bad cron expression "{expression}": "{item}" in the day of month field,'
                " expected L alone (the last day of the month)"
            )


def _weekday_field(expression: str, text: str) -> str:
    """The weekday field with `5L` and `Lfri` written `L5`; # and L items checked."""
    out = []
    plain = special = False
    for item in text.split(","):
        lowered = item.lower()
        if "w" in _NAMES.sub("", lowered):
            raise ScheduleError(
                f'bad cron expression "{expression}": "{item}" in the weekday field;'
                " W goes in the day of month field (15W: the weekday nearest the 15th)"
            )
        nth = _NTH.fullmatch(lowered)
        last = _LAST_WEEKDAY.fullmatch(lowered)
        if nth is not None:
            day = _weekday_number(expression, item, nth.group(1))
            if not 1 <= int(nth.group(2)) <= 5:
                raise ScheduleError(
                    f'bad cron expression "{expression}": "{item}", expected a number from 1'
                    " to 5 after # (2#2: the second Tuesday of the month)"
                )
            out.append(f"{day}#{nth.group(2)}")
            special = True
        elif last is not None:
            out.append(f"L{_weekday_number(expression, item, last.group(1) or last.group(2))}")
            special = True
        elif "#" in item or "l" in _NAMES.sub("", lowered):
            raise ScheduleError(
                f'bad cron expression "{expression}": "{item}" in the weekday field, expected'
                " a weekday with # or L such as 2#2 (the second Tuesday) or L5 (the last Friday)"
            )
        else:
            out.append(item)
            plain = True
    if plain and special:
        raise ScheduleError(
            f'bad cron expression "{expression}": plain weekdays and ones with # or L cannot'
            " share the weekday field, expected them in two schedules (a list)"
        )
    return ",".join(out)


def _weekday_number(expression: str, item: str, day: str) -> int:
    if day.isdigit():
        return int(day) % 7
    if day in WEEKDAYS:
        return WEEKDAYS.index(day)
    raise ScheduleError(
        f'bad cron expression "{expression}": "{item}", expected a weekday 0-7 or sun-sat'
    )


def _check_either(expression: str, fields: list[str]) -> None:
    """cron runs on days matching either day field when both are restricted; with L, W or
    # in one of them croniter does not, so that is refused."""
    day, weekday = fields[2].lower(), fields[4].lower()
    if day.startswith("*") or weekday.startswith("*") or day == "?" or weekday == "?":
        return
    if _SPECIAL.search(day) or _SPECIAL.search(_NAMES.sub("", weekday)):
        raise ScheduleError(
            f'bad cron expression "{expression}": with L, W or # in a day field the other must'
            ' be "*"; for days matching either, expected two schedules (a list)'
        )
