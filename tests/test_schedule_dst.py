"""Daylight saving, zone by zone.

Each table opens with the zone's 2026 transitions, as zoneinfo reports them.
Expectations are written as local ISO times with the offset in force, so each
row reads as the wall clock a user would see.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cronplus.clock import zone
from cronplus.schedule import CronRule, next_instants

UTC = timezone.utc


def fires(expression: str, zone_name: str, after: str, count: int) -> list[str]:
    rule = CronRule(expression, zone_name)
    start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    tz = zone(zone_name)
    return [i.astimezone(tz).isoformat() for i in next_instants(rule, start, count)]


# America/New_York, 2026:
#   spring 2026-03-08 07:00Z: 01:59:59 EST (-05:00) -> 03:00 EDT (-04:00); 02:00-02:59 never happen
#   autumn 2026-11-01 06:00Z: 01:59:59 EDT (-04:00) -> 01:00 EST (-05:00); 01:00-01:59 happen twice
NEW_YORK = [
    # fixed-time in the gap runs at the jump
    ("30 2 * * *", "2026-03-07T12:00Z", ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    # 02:00 (gap, so the jump) and 03:00 land on one instant: one run
    (
        "0 2,3 * * *",
        "2026-03-07T12:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"],
    ),
    # a fixed range: 02:15 is in the gap and runs at the jump
    (
        "15 1-3 * * *",
        "2026-03-08T05:00Z",
        ["2026-03-08T01:15:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"],
    ),
    # interval-like: every 60 real minutes through the change, 02:00 does not happen
    (
        "0 * * * *",
        "2026-03-08T05:30Z",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
    ),
    (
        "*/30 * * * *",
        "2026-03-08T06:10Z",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    # an hour step is interval-like: the 02:00 slot is not moved onto the jump
    (
        "0 */2 * * *",
        "2026-03-08T04:30Z",
        ["2026-03-08T00:00:00-05:00", "2026-03-08T04:00:00-04:00"],
    ),
    # fixed-time in the repeated hour runs once, at the first 01:30
    ("30 1 * * *", "2026-10-31T12:00Z", ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    # T in the second pass, after the first occurrence: the next day's run
    ("30 1 * * *", "2026-11-01T06:10Z", ["2026-11-02T01:30:00-05:00"]),
    # T in the first pass after 01:30 EDT: not again at 01:30 EST
    ("30 1 * * *", "2026-11-01T05:40Z", ["2026-11-02T01:30:00-05:00"]),
    # interval-like runs in both passes
    (
        "0 * * * *",
        "2026-11-01T03:30Z",
        [
            "2026-11-01T00:00:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    (
        "*/20 * * * *",
        "2026-11-01T05:30Z",
        [
            "2026-11-01T01:40:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:20:00-05:00",
            "2026-11-01T01:40:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # seconds field: every second, straight through the change
    (
        "* * * * * *",
        "2026-11-01T05:59:58Z",
        ["2026-11-01T01:59:59-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:00:01-05:00"],
    ),
]

# Australia/Sydney, 2026 (southern hemisphere: summer time over the new year):
#   autumn 2026-04-04 16:00Z: 02:59:59 AEDT (+11:00) -> 02:00 AEST (+10:00); 02:00-02:59 twice
#   spring 2026-10-03 16:00Z: 01:59:59 AEST (+10:00) -> 03:00 AEDT (+11:00); 02:00-02:59 never
SYDNEY = [
    ("30 2 * * *", "2026-04-04T12:00Z", ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"]),
    (
        "0 * * * *",
        "2026-04-04T14:30Z",
        ["2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"],
    ),
    ("30 2 * * *", "2026-10-03T12:00Z", ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"]),
    (
        "0 */1 * * *",
        "2026-10-03T14:30Z",
        ["2026-10-04T01:00:00+10:00", "2026-10-04T03:00:00+11:00"],
    ),
]

# Australia/Lord_Howe, 2026 (a 30-minute shift):
#   autumn 2026-04-04 15:00Z: 01:59:59 (+11:00) -> 01:30 (+10:30); 01:30-01:59 twice
#   spring 2026-10-03 15:30Z: 01:59:59 (+10:30) -> 02:30 (+11:00); 02:00-02:29 never
LORD_HOWE = [
    ("45 1 * * *", "2026-04-04T12:00Z", ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    (
        "*/15 * * * *",
        "2026-04-04T14:20Z",
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    ),
    ("15 2 * * *", "2026-10-03T12:00Z", ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    # 02:00 is in the gap (so runs at the jump, 02:30) and 02:30 exists: they merge
    (
        "0,30 2 * * *",
        "2026-10-03T12:00Z",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00"],
    ),
    (
        "*/20 * * * *",
        "2026-10-03T15:10Z",
        ["2026-10-04T02:40:00+11:00", "2026-10-04T03:00:00+11:00"],
    ),
]

# Pacific/Chatham, 2026 (+12:45 standard, +13:45 summer):
#   autumn 2026-04-04 14:00Z: 03:44:59 (+13:45) -> 02:45 (+12:45); 02:45-03:44 twice
#   spring 2026-09-26 14:00Z: 02:44:59 (+12:45) -> 03:45 (+13:45); 02:45-03:44 never
CHATHAM = [
    ("0 3 * * *", "2026-04-04T12:00Z", ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"]),
    (
        "0 * * * *",
        "2026-04-04T12:00Z",
        [
            "2026-04-05T02:00:00+13:45",
            "2026-04-05T03:00:00+13:45",
            "2026-04-05T03:00:00+12:45",
            "2026-04-05T04:00:00+12:45",
        ],
    ),
    ("0 3 * * *", "2026-09-26T12:00Z", ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"]),
]

# Asia/Kathmandu: +05:45 all year, no transitions.
KATHMANDU = [
    ("30 2 * * *", "2026-03-07T12:00Z", ["2026-03-08T02:30:00+05:45", "2026-03-09T02:30:00+05:45"]),
    (
        "0 */6 * * *",
        "2026-11-01T00:00Z",
        ["2026-11-01T06:00:00+05:45", "2026-11-01T12:00:00+05:45"],
    ),
]

# Europe/Berlin, 2026:
#   spring 2026-03-29 01:00Z: 01:59:59 CET (+01:00) -> 03:00 CEST (+02:00)
#   autumn 2026-10-25 01:00Z: 02:59:59 CEST (+02:00) -> 02:00 CET (+01:00)
BERLIN = [
    ("30 2 * * *", "2026-03-28T12:00Z", ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("30 2 * * *", "2026-10-24T12:00Z", ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
]

TABLES = [
    ("America/New_York", NEW_YORK),
    ("Australia/Sydney", SYDNEY),
    ("Australia/Lord_Howe", LORD_HOWE),
    ("Pacific/Chatham", CHATHAM),
    ("Asia/Kathmandu", KATHMANDU),
    ("Europe/Berlin", BERLIN),
]
CASES = [(z, e, a, x) for z, rows in TABLES for e, a, x in rows]


@pytest.mark.parametrize(("zone_name", "expression", "after", "expected"), CASES)
def test_transition_tables(
    zone_name: str, expression: str, after: str, expected: list[str]
) -> None:
    assert fires(expression, zone_name, after, len(expected)) == expected


@pytest.mark.parametrize("zone_name", ["America/New_York", "Australia/Sydney", "Europe/Berlin"])
def test_hourly_job_runs_every_real_hour_of_the_year(zone_name: str) -> None:
    rule = CronRule("0 * * * *", zone_name)
    runs = next_instants(rule, datetime(2025, 12, 31, 23, 59, tzinfo=UTC), 8760)
    gaps = {b - a for a, b in zip(runs, runs[1:])}
    assert gaps == {timedelta(hours=1)}


@pytest.mark.parametrize(
    "zone_name", ["America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
)
@pytest.mark.parametrize("expression", ["30 2 * * *", "30 1 * * *", "0 3 * * *", "45 1 * * *"])
def test_fixed_time_job_runs_once_on_every_local_day(zone_name: str, expression: str) -> None:
    tz = zone(zone_name)
    start = datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(seconds=1)
    runs = next_instants(CronRule(expression, zone_name), start, 400)
    days = [r.astimezone(tz).date() for r in runs if r.astimezone(tz).year == 2026]
    assert len(days) == 365
    assert len(set(days)) == 365


def test_next_is_strictly_after_and_pure() -> None:
    rule = CronRule("30 1 * * *", "America/New_York")
    at_fire = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first occurrence
    assert rule.next_after(at_fire) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    just_before = at_fire - timedelta(microseconds=1)
    assert rule.next_after(just_before) == at_fire
    # the same question gives the same answer, whatever was asked in between
    assert rule.next_after(just_before) == rule.next_after(just_before)


def test_no_three_hour_limit() -> None:
    # cron(8) ignores changes of more than three hours; a large made-up jump is still exact:
    # Pacific/Apia skipped 2011-12-30 entirely (-10:00 -> +14:00 at 2011-12-30 10:00Z), so
    # that day's noon never happened and runs at the jump, midnight of the 31st.
    runs = fires("0 12 * * *", "Pacific/Apia", "2011-12-28T00:00Z", 4)
    assert runs == [
        "2011-12-28T12:00:00-10:00",
        "2011-12-29T12:00:00-10:00",
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T12:00:00+14:00",
    ]
