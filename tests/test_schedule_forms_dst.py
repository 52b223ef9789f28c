"""Daylight saving for the schedule forms cron cannot write, zone by zone.

The last day (`L`), the nearest weekday (`15W`), the nth weekday (`2#2`), the last
weekday (`L5`, `5L`), hashed values (`H`), calendar intervals (`every: 2w` with
`on:` and `at:`) and `start:`/`end:` bounds follow the same rules as every other
schedule: fixed-time rules run each nominal time once (a repeated time at its first
occurrence, a skipped time at the jump), interval-like ones every real instant whose
wall time matches.  Each table opens with the transitions of its zone, as zoneinfo
reports them; expectations are local ISO times with the offset in force.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import pytest

from cronplus.clock import zone
from cronplus.configkeys import JOB_KEYS
from cronplus.schedule import build_rule, next_instants
from cronplus.schedulespec import build_spec


def fires(
    keys: dict[str, Any], zone_name: str, after: str, count: int, name: Optional[str] = None
) -> list[str]:
    """The next `count` instants of a job with these schedule keys, read as a config reads them."""
    values = {key: JOB_KEYS[key](value) for key, value in keys.items()}
    spec, problems = build_spec(values, list(values), name, zone_name)
    assert spec is not None, problems
    rule = build_rule(spec, zone_name)
    start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    tz = zone(zone_name)
    return [i.astimezone(tz).isoformat() for i in next_instants(rule, start, count)]


def cron(expression: str) -> dict[str, Any]:
    return {"schedule": expression}


# Europe/Berlin, 2024 and 2021 (the changes fall on the last Sunday, in these years the
# last day of the month):
#   spring 2024-03-31 01:00Z: 01:59:59 CET (+01:00) -> 03:00 CEST (+02:00); 02:00-02:59 never
#   autumn 2024-10-27 01:00Z: 02:59:59 CEST (+02:00) -> 02:00 CET (+01:00); 02:00-02:59 twice
#   autumn 2021-10-31 01:00Z: 02:59:59 CEST (+02:00) -> 02:00 CET (+01:00); 02:00-02:59 twice
BERLIN = [
    # the last day's 02:30 never happens: it runs at the jump
    (
        cron("30 2 L * *"),
        "2024-03-30T12:00Z",
        ["2024-03-31T03:00:00+02:00", "2024-04-30T02:30:00+02:00"],
    ),
    # the last day's 02:30 happens twice: it runs at the first
    (
        cron("30 2 L * *"),
        "2021-10-30T12:00Z",
        ["2021-10-31T02:30:00+02:00", "2021-11-30T02:30:00+01:00"],
    ),
    # interval-like on the last day of March: every real hour, 02:00 does not happen
    (
        cron("0 * L 3 *"),
        "2024-03-30T22:30Z",
        ["2024-03-31T00:00:00+01:00", "2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00"],
    ),
    # the last Sunday, written L0 and as Quartz writes it, 0L
    (
        cron("30 2 * * L0"),
        "2024-03-01T00:00Z",
        ["2024-03-31T03:00:00+02:00", "2024-04-28T02:30:00+02:00"],
    ),
    (
        cron("30 2 * * 0L"),
        "2024-10-01T00:00Z",
        ["2024-10-27T02:30:00+02:00", "2024-11-24T02:30:00+01:00"],
    ),
    # the fifth Sunday: March and June 2024 have one
    (
        cron("30 2 * * sun#5"),
        "2024-03-01T00:00Z",
        ["2024-03-31T03:00:00+02:00", "2024-06-30T02:30:00+02:00"],
    ),
    # the calendar form of the last day
    (
        {"every": "1mo", "on_day": "last", "at": "02:30"},
        "2024-03-01T00:00Z",
        ["2024-03-31T03:00:00+02:00", "2024-04-30T02:30:00+02:00"],
    ),
    (
        {"every": "1mo", "on_day": "last", "at": "02:30"},
        "2021-10-01T00:00Z",
        ["2021-10-31T02:30:00+02:00", "2021-11-30T02:30:00+01:00"],
    ),
]

# America/New_York, 2026 (the changes fall on the second Sunday of March and the first
# of November):
#   spring 2026-03-08 07:00Z: 01:59:59 EST (-05:00) -> 03:00 EDT (-04:00); 02:00-02:59 never
#   autumn 2026-11-01 06:00Z: 01:59:59 EDT (-04:00) -> 01:00 EST (-05:00); 01:00-01:59 twice
NEW_YORK = [
    (
        cron("30 2 * * 0#2"),
        "2026-03-01T00:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-04-12T02:30:00-04:00"],
    ),
    (
        cron("30 1 * * sun#1"),
        "2026-10-31T12:00Z",
        ["2026-11-01T01:30:00-04:00", "2026-12-06T01:30:00-05:00"],
    ),
    # interval-like on the first Sunday: both passes of the repeated hour
    (
        cron("*/30 * * * 0#1"),
        "2026-11-01T05:10Z",
        [
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # every other Sunday at 02:30 from the day of the change: at the jump, then two weeks on
    (
        {"every": "2w", "on": "sun", "at": "02:30", "start": "2026-03-08"},
        "2026-03-01T00:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-22T02:30:00-04:00", "2026-04-05T02:30:00-04:00"],
    ),
    # 02:00 never happens and lands on 03:00's instant: one run
    (
        {"every": "1d", "at": ["02:00", "03:00"]},
        "2026-03-07T12:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"],
    ),
    # 01:30 happens twice and runs at the first; 02:30 once
    (
        {"every": "1d", "at": ["01:30", "02:30"]},
        "2026-10-31T12:00Z",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T02:30:00-05:00", "2026-11-02T01:30:00-05:00"],
    ),
    # a start in the gap is the instant of the jump, and runs; an end date keeps its whole day
    (
        {"schedule": "30 2 * * *", "start": "2026-03-08T02:30", "end": "2026-03-09"},
        "2026-03-01T00:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    # hashed: the minute is the job's, the daylight saving rules are the hour field's
    (
        cron("H 2 * * *"),
        "2026-03-07T12:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:{m}:00-04:00"],
    ),
    (
        cron("H(0-29) 1 * * *"),
        "2026-10-31T12:00Z",
        ["2026-11-01T01:{m}:00-04:00", "2026-11-02T01:{m}:00-05:00"],
    ),
]

# Africa/Cairo, 2026 (the changes fall on a Friday and a Thursday, so W and L5 meet them):
#   spring 2026-04-23 22:00Z: 23:59:59 EET (+02:00) Thu -> 01:00 EEST (+03:00) Fri 24; 00:00-00:59 never
#   autumn 2026-10-29 21:00Z: 23:59:59 EEST (+03:00) -> 23:00 EET (+02:00) Thu 29; 23:00-23:59 twice
CAIRO = [
    # the 24th is a Friday, a weekday: 00:30 never happens and runs at the jump; May 24 is a
    # Sunday, so the nearest weekday is Monday the 25th
    (
        cron("30 0 24W * *"),
        "2026-04-01T00:00Z",
        ["2026-04-24T01:00:00+03:00", "2026-05-25T00:30:00+03:00"],
    ),
    # the last Friday of April is the day of the change, whichever way L is written
    (
        cron("30 0 * * L5"),
        "2026-04-01T00:00Z",
        ["2026-04-24T01:00:00+03:00", "2026-05-29T00:30:00+03:00"],
    ),
    (
        cron("30 0 * * friL"),
        "2026-04-01T00:00Z",
        ["2026-04-24T01:00:00+03:00", "2026-05-29T00:30:00+03:00"],
    ),
    # the last Thursday of October: 23:30 happens twice and runs at the first
    (
        cron("30 23 * * L4"),
        "2026-10-01T00:00Z",
        ["2026-10-29T23:30:00+03:00", "2026-11-26T23:30:00+02:00"],
    ),
    # interval-like on the fifth Thursday: 23:00 in both passes
    (
        cron("0 * * * 4#5"),
        "2026-10-29T19:30Z",
        ["2026-10-29T23:00:00+03:00", "2026-10-29T23:00:00+02:00"],
    ),
    (
        {"every": "1d", "at": "00:30", "start": "2026-04-20"},
        "2026-04-23T12:00Z",
        ["2026-04-24T01:00:00+03:00", "2026-04-25T00:30:00+03:00"],
    ),
]

# Australia/Sydney, 2026 (southern hemisphere: the changes fall on the first Sunday of April
# and of October):
#   autumn 2026-04-04 16:00Z: 02:59:59 AEDT (+11:00) -> 02:00 AEST (+10:00); 02:00-02:59 twice
#   spring 2026-10-03 16:00Z: 01:59:59 AEST (+10:00) -> 03:00 AEDT (+11:00); 02:00-02:59 never
SYDNEY = [
    (
        cron("30 2 * * 0#1"),
        "2026-04-01T00:00Z",
        ["2026-04-05T02:30:00+11:00", "2026-05-03T02:30:00+10:00"],
    ),
    (
        cron("30 2 * * 0#1"),
        "2026-10-01T00:00Z",
        ["2026-10-04T03:00:00+11:00", "2026-11-01T02:30:00+11:00"],
    ),
    (
        {"every": "1w", "on": "sunday", "at": "02:30"},
        "2026-04-01T00:00Z",
        ["2026-04-05T02:30:00+11:00", "2026-04-12T02:30:00+10:00"],
    ),
    # interval-like and hashed: every 20 minutes from the chosen minute, in both passes
    (
        cron("H/20 * * * *"),
        "2026-04-04T15:00Z",
        [
            "2026-04-05T02:{m}:00+11:00",
            "2026-04-05T02:{m20}:00+11:00",
            "2026-04-05T02:{m40}:00+11:00",
            "2026-04-05T02:{m}:00+10:00",
            "2026-04-05T02:{m20}:00+10:00",
        ],
    ),
]

# Australia/Lord_Howe, 2026 (a 30-minute shift, on the first Sundays of April and October):
#   autumn 2026-04-04 15:00Z: 01:59:59 (+11:00) -> 01:30 (+10:30); 01:30-01:59 twice
#   spring 2026-10-03 15:30Z: 01:59:59 (+10:30) -> 02:30 (+11:00); 02:00-02:29 never
LORD_HOWE = [
    (
        cron("45 1 * * sun#1"),
        "2026-04-01T00:00Z",
        ["2026-04-05T01:45:00+11:00", "2026-05-03T01:45:00+10:30"],
    ),
    (
        cron("15 2 * * 7#1"),
        "2026-10-01T00:00Z",
        ["2026-10-04T02:30:00+11:00", "2026-11-01T02:15:00+11:00"],
    ),
    # interval-like: the quarter hours in the gap never happen
    (
        cron("*/15 * * * 0#1"),
        "2026-10-03T15:20Z",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"],
    ),
    (
        {"every": "1w", "on": "sun", "at": "02:15"},
        "2026-10-01T00:00Z",
        ["2026-10-04T02:30:00+11:00", "2026-10-11T02:15:00+11:00"],
    ),
    (
        {"every": "1w", "on": "sun", "at": "01:45"},
        "2026-04-01T00:00Z",
        ["2026-04-05T01:45:00+11:00", "2026-04-12T01:45:00+10:30"],
    ),
]

TABLES = [
    ("Europe/Berlin", BERLIN),
    ("America/New_York", NEW_YORK),
    ("Africa/Cairo", CAIRO),
    ("Australia/Sydney", SYDNEY),
    ("Australia/Lord_Howe", LORD_HOWE),
]
CASES = [(z, k, a, x) for z, rows in TABLES for k, a, x in rows]
NAME = "nightly-backup"  # the job name hashed values are chosen from


def chosen_minute(keys: dict[str, Any], zone_name: str) -> str:
    """The minute a hashed expression chose for NAME, read from the spec the config makes."""
    values = {key: JOB_KEYS[key](value) for key, value in keys.items()}
    spec, _ = build_spec(values, list(values), NAME, zone_name)
    assert spec is not None and spec.resolved != spec.expressions
    minute = spec.resolved[0].split()[0]
    start = int(minute.split("-")[0])
    return f"{start:02d}"


@pytest.mark.parametrize(("zone_name", "keys", "after", "expected"), CASES)
def test_transition_tables(
    zone_name: str, keys: dict[str, Any], after: str, expected: list[str]
) -> None:
    if any("{m}" in e for e in expected):
        minute = int(chosen_minute(keys, zone_name))
        shifted = {"m": minute, "m20": minute + 20, "m40": minute + 40}
        expected = [e.format(**{k: f"{v:02d}" for k, v in shifted.items()}) for e in expected]
    assert fires(keys, zone_name, after, len(expected), NAME) == expected


def test_the_hashed_tables_choose_minutes_inside_the_hour_that_matters() -> None:
    # the tables above are only meaningful if the chosen minutes land where they test
    assert int(chosen_minute(cron("H(0-29) 1 * * *"), "UTC")) <= 29
    step = chosen_minute(cron("H/20 * * * *"), "UTC")
    assert int(step) < 20
