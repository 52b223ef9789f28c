"""Schedule forms cron cannot write, apart from daylight saving: hashed values, L/W/#,
calendar intervals, start/end bounds, and the messages bad ones get."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from cronplus import config
from cronplus.calendarrule import CalendarRule, parse_time_of_day
from cronplus.clock import zone
from cronplus.configkeys import JOB_KEYS
from cronplus.cronfields import expand_hashed
from cronplus.errors import ConfigError, ScheduleError
from cronplus.schedule import CronRule, build_rule, is_fixed_time, next_instants
from cronplus.schedulespec import build_spec

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule_of(keys: dict[str, Any], zone_name: str = "UTC", name: Optional[str] = "job") -> Any:
    values = {key: JOB_KEYS[key](value) for key, value in keys.items()}
    spec, problems = build_spec(values, list(values), name, zone_name)
    assert spec is not None, problems
    return build_rule(spec, zone_name)


def local_dates(rule: Any, zone_name: str, after: datetime, count: int) -> list[str]:
    tz = zone(zone_name)
    return [
        i.astimezone(tz).strftime("%Y-%m-%d %a %H:%M") for i in next_instants(rule, after, count)
    ]


# --- hashed values -------------------------------------------------------------------------

# The minutes these names choose, written down once: a change of the hash would move every
# hashed job on every machine, and must show here first.
CHOSEN = [
    ("backup", "H 2 * * *", "34 2 * * *"),
    ("report", "H H * * *", "31 7 * * *"),
    ("rotate-logs", "H(0-29)/10 H(1-5) * * *", "8-29/10 4 * * *"),
    ("db-vacuum", "H H H * H", "35 10 13 * 6"),
    ("x", "* * * * * H/15", "* * * * * 11-59/15"),
]


@pytest.mark.parametrize(("name", "written", "chosen"), CHOSEN)
def test_hashed_values_are_the_same_on_every_machine(name: str, written: str, chosen: str) -> None:
    assert expand_hashed(written, name) == chosen


def test_the_hash_is_the_documented_one() -> None:
    # README: the first 8 bytes of SHA-256 of "<job name>\0<field name>", big-endian, modulo
    # the size of the range, added to its start
    for name in ("backup", "report", "a" * 100, "Zürich-Ω"):
        digest = hashlib.sha256(f"{name}\0minute".encode()).digest()
        minute = int.from_bytes(digest[:8], "big") % 60
        hour = int.from_bytes(hashlib.sha256(f"{name}\0hour".encode()).digest()[:8], "big") % 24
        assert expand_hashed("H H * * *", name) == f"{minute} {hour} * * *"


def test_hashed_values_do_not_depend_on_the_process(tmp_path: Path) -> None:
    names = [f"job-{i}" for i in range(50)]
    here = [expand_hashed("H H(0-5) H * H", n) for n in names]
    script = (
        "import json, sys; from cronplus.cronfields import expand_hashed;"
        " print(json.dumps([expand_hashed('H H(0-5) H * H', n) for n in json.load(sys.stdin)]))"
    )
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(names),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        assert json.loads(done.stdout) == here


def test_a_hundred_nightly_jobs_spread_over_the_hour() -> None:
    minutes = [int(expand_hashed("H 2 * * *", f"nightly-{i}").split()[0]) for i in range(100)]
    assert len(set(minutes)) >= 40  # not all at 02:00, as "0 2 * * *" would have them
    assert max(minutes.count(m) for m in set(minutes)) <= 6


def test_hashed_ranges_and_steps_stay_in_their_field() -> None:
    for i in range(200):
        name = f"n{i}"
        minute, hour, day, month, weekday = expand_hashed("H(10-19) H H H H", name).split()
        assert 10 <= int(minute) <= 19 and 0 <= int(hour) <= 23
        assert 1 <= int(day) <= 28  # a day every month has
        assert 1 <= int(month) <= 12 and 0 <= int(weekday) <= 6
        step = expand_hashed("H/15 * * * *", name).split()[0]
        runs = next_instants(CronRule(f"{step} * * * *", "UTC"), T0, 8)
        assert {r.minute for r in runs} == {int(step.split("-")[0]) + k for k in (0, 15, 30, 45)}


def test_a_hashed_hour_step_is_interval_like_and_a_hashed_hour_fixed() -> None:
    assert not is_fixed_time(expand_hashed("0 H/2 * * *", "job"))
    assert is_fixed_time(expand_hashed("0 H * * *", "job"))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("H#2 * * * *", '"H#2" in the minute field, expected H, H(a-b), H/n or H(a-b)/n'),
        ("0 0 HW * *", '"HW" in the day of month field, expected a day from 1 to 31 before W'),
        ("5-H * * * *", '"5-H" in the minute field'),
        ("H(30-20) * * * *", "expected a range within 0-59, its start first"),
        ("0 H(0-24) * * *", "expected a range within 0-23"),
        ("H/0 * * * *", "expected a step from 1 to 60"),
        ("0 0 H/29 * *", "expected a step from 1 to 28"),
        ("H R * * *", "random (R) values are not supported"),
    ],
)
def test_an_h_a_field_cannot_take_is_refused(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CronRule(expand_hashed(expression, "job"), "UTC")


# --- L, W and # ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 0 L * *", ["2026-01-31 Sat", "2026-02-28 Sat", "2026-03-31 Tue"]),
        ("0 0 L 2 *", ["2026-02-28 Sat", "2027-02-28 Sun", "2028-02-29 Tue"]),
        # the 15th of February 2026 is a Sunday: the Monday; of August a Saturday: the Friday
        ("0 0 15W 2,8 *", ["2026-02-16 Mon", "2026-08-14 Fri", "2027-02-15 Mon"]),
        # the 1st of August 2026 is a Saturday: W stays in the month, so Monday the 3rd
        ("0 0 1W 8 *", ["2026-08-03 Mon", "2027-08-02 Mon", "2028-08-01 Tue"]),
        ("0 0 * * 2#2", ["2026-01-13 Tue", "2026-02-10 Tue", "2026-03-10 Tue"]),
        ("0 0 * * fri#3", ["2026-01-16 Fri", "2026-02-20 Fri", "2026-03-20 Fri"]),
        ("0 0 * * 5L", ["2026-01-30 Fri", "2026-02-27 Fri", "2026-03-27 Fri"]),
        ("0 0 * * L5", ["2026-01-30 Fri", "2026-02-27 Fri", "2026-03-27 Fri"]),
        ("0 0 * * 1#2,L5", ["2026-01-12 Mon", "2026-01-30 Fri", "2026-02-09 Mon"]),
        # with the other day field starting with *, both must match: odd days that are L5
        ("0 0 */2 * L5", ["2026-02-27 Fri", "2026-03-27 Fri", "2026-05-29 Fri"]),
    ],
)
def test_extensions(expression: str, days: list[str]) -> None:
    found = local_dates(CronRule(expression, "UTC"), "UTC", T0, len(days))
    assert [d[:14] for d in found] == days


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 32W * *", '"32W" in the day of month field, expected a day from 1 to 31 before W'),
        ("0 0 W * *", '"W" in the day of month field, expected a day from 1 to 31 before W'),
        ("0 0 1,15W * *", '"15W" takes one day, expected it alone in the day of month field'),
        ("0 0 LW * *", '"LW" (the last weekday of the month) is not supported'),
        ("0 0 L-2 * *", '"L-2" in the day of month field, expected L alone'),
        ("0 0 2#2 * *", '"2#2" in the day of month field; # goes in the weekday field'),
        ("0 0 * * 5W", '"5W" in the weekday field; W goes in the day of month field'),
        ("0 0 * * 2#6", '"2#6", expected a number from 1 to 5 after #'),
        ("0 0 * * 8#2", '"8#2" in the weekday field, expected a weekday with # or L'),
        ("0 0 * * L", '"L" in the weekday field, expected a weekday with # or L'),
        ("0 0 * * 1,L5", "plain weekdays and ones with # or L cannot share the weekday field"),
        ("0 L * * *", '"L" in the hour field; L and W go in the day of month field'),
        ("0 0 * L *", '"L" in the month field'),
        ("0 0 L * 5", 'with L, W or # in a day field the other must be "*"'),
        ("0 0 15 * 2#2", 'with L, W or # in a day field the other must be "*"'),
    ],
)
def test_bad_extensions_say_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronRule(expression, "UTC")
    assert message in str(caught.value)


def test_month_names_with_an_l_are_not_taken_for_l() -> None:
    found = local_dates(CronRule("0 0 L jul,apr *", "UTC"), "UTC", T0, 2)
    assert [d[:10] for d in found] == ["2026-04-30", "2026-07-31"]


# --- calendar intervals ---------------------------------------------------------------------


def test_every_other_monday_at_nine_counted_from_start() -> None:
    rule = rule_of(
        {"every": "2w", "on": "mon", "at": "09:00", "start": "2026-01-05"}, "Europe/Berlin"
    )
    runs = next_instants(rule, T0, 60)
    local = [r.astimezone(zone("Europe/Berlin")) for r in runs if r.year == 2026]
    assert len(local) == 26
    assert all(d.weekday() == 0 and (d.hour, d.minute) == (9, 0) for d in local)
    assert {(b.date() - a.date()).days for a, b in zip(local, local[1:])} == {14}
    assert local[0].date() == date(2026, 1, 5)


def test_weeks_count_from_the_week_of_start() -> None:
    # start on a Wednesday: that week's Monday is before it, its Thursday is not
    rule = rule_of({"every": "2w", "on": ["mon", "thu"], "at": "09:00", "start": "2026-01-07"})
    assert local_dates(rule, "UTC", T0, 4) == [
        "2026-01-08 Thu 09:00",
        "2026-01-19 Mon 09:00",
        "2026-01-22 Thu 09:00",
        "2026-02-02 Mon 09:00",
    ]


def test_every_third_month_on_a_day_counted_from_the_month_of_start() -> None:
    rule = rule_of({"every": "3mo", "on_day": 15, "at": "08:30", "start": "2026-02-20"})
    # February's 15th is before the start: the first run is in May
    assert local_dates(rule, "UTC", T0, 3) == [
        "2026-05-15 Fri 08:30",
        "2026-08-15 Sat 08:30",
        "2026-11-15 Sun 08:30",
    ]


def test_the_last_day_of_each_month_through_a_leap_year() -> None:
    rule = rule_of({"every": "1mo", "on_day": "last", "at": "23:00"})
    found = local_dates(rule, "UTC", datetime(2028, 1, 15, tzinfo=UTC), 3)
    assert found == ["2028-01-31 Mon 23:00", "2028-02-29 Tue 23:00", "2028-03-31 Fri 23:00"]


def test_every_other_day_and_several_times_a_day() -> None:
    rule = rule_of({"every": "2d", "at": ["18:00", "06:00"], "start": "2026-01-02"})
    assert local_dates(rule, "UTC", T0, 4) == [
        "2026-01-02 Fri 06:00",
        "2026-01-02 Fri 18:00",
        "2026-01-04 Sun 06:00",
        "2026-01-04 Sun 18:00",
    ]


def test_a_calendar_rule_is_fixed_time_pure_and_strictly_after() -> None:
    rule = CalendarRule(1, "w", [parse_time_of_day("09:00")], "UTC", weekdays=[0])
    assert rule.fixed
    monday = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert rule.next_after(monday) == monday + timedelta(weeks=1)
    assert rule.next_after(monday - timedelta(microseconds=1)) == monday
    assert rule.next_after(monday) == rule.next_after(monday)


def test_a_calendar_rule_has_no_run_past_the_calendar() -> None:
    rule = CalendarRule(1, "mo", [parse_time_of_day("09:00")], "UTC", month_days=[-1])
    assert rule.next_after(datetime(9999, 12, 31, 10, tzinfo=UTC)) is None
    assert rule.next_after(datetime(9999, 12, 1, tzinfo=UTC)) == datetime(
        9999, 12, 31, 9, tzinfo=UTC
    )


# --- start and end ----------------------------------------------------------------------------


def test_start_and_end_bound_a_cron_schedule() -> None:
    rule = rule_of({"schedule": "0 9 * * 1", "start": "2026-07-01", "end": "2026-07-20T09:00"})
    assert local_dates(rule, "UTC", T0, 10) == [
        "2026-07-06 Mon 09:00",
        "2026-07-13 Mon 09:00",
        "2026-07-20 Mon 09:00",  # an end with a time includes that instant
    ]


def test_an_end_date_keeps_its_whole_day_in_the_job_zone() -> None:
    rule = rule_of({"schedule": "30 23 * * *", "end": "2026-03-02"}, "Asia/Tokyo")
    found = local_dates(rule, "Asia/Tokyo", datetime(2026, 3, 1, tzinfo=UTC), 5)
    assert found == ["2026-03-01 Sun 23:30", "2026-03-02 Mon 23:30"]


def test_an_every_rule_with_a_start_runs_from_it() -> None:
    start = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    rule = rule_of({"every": "20m", "start": "2026-07-01T09:00"})
    assert next_instants(rule, T0, 3) == [start + timedelta(minutes=m) for m in (0, 20, 40)]
    # once it has run, the phase of its last run goes on
    assert rule.next_after(
        start + timedelta(hours=2), start + timedelta(minutes=40)
    ) == start + timedelta(hours=2, minutes=20)


def test_an_at_outside_its_bounds_never_runs() -> None:
    rule = rule_of({"at": "2026-05-01T09:00", "end": "2026-04-30"})
    assert rule.next_after(T0) is None


# --- the messages a config gets --------------------------------------------------------------

BAD = [
    (
        "schedule: 'H#2 2 * * *'",
        'jobs.a.schedule: bad cron expression "H#2 2 * * *": "H#2" in the minute field',
    ),
    (
        "every: 2w\n    at: '09:00'",
        "jobs.a.every: every 2w needs on:, the weekdays it falls on (on: mon)",
    ),
    (
        "every: 2w\n    on: mon",
        "jobs.a.every: every 2w counts weeks from start:, expected a start: date",
    ),
    ("every: 3mo", "jobs.a.every: every 3mo runs on a day of the month, expected on_day:"),
    (
        "every: 1mo\n    on_day: 31",
        "jobs.a.on_day: on_day 31 with every 1mo would skip February, April, June, September"
        " and November, expected a day every month it falls in has, or on_day: last",
    ),
    (
        "every: 12mo\n    on_day: 29\n    start: 2026-02-01",
        "jobs.a.on_day: on_day 29 with every 12mo would skip February (but in leap years)",
    ),
    (
        "every: 20m\n    at: '09:00'",
        "jobs.a.every: found an interval, expected days, weeks or months",
    ),
    (
        "every: 1w\n    on: [mon, moonday]\n    at: '09:00'",
        'jobs.a.on: found "moonday", expected weekday names',
    ),
    (
        "every: 1d\n    at: 9:30",
        'jobs.a.at: found 570, expected a date and time such as 2027-01-01T09:00, or with every: a time such as "09:00" (quote it: at: "9:30")',
    ),
    (
        "every: 1d\n    at: '25:00'",
        'jobs.a.at: found "25:00", expected a time of day such as "09:00" with every:',
    ),
    (
        "every: 1w\n    on_day: 3",
        "jobs.a.on_day: found on_day: with every weeks, expected it with months",
    ),
    ("schedule: '@daily'\n    on: mon", "jobs.a.on: on goes with every: (every: 2w, on: mon)"),
    (
        "schedule: '@daily'\n    start: 2026-05-01\n    end: 2026-04-01",
        "jobs.a.end: found end 2026-04-01 before start 2026-05-01, expected it after start",
    ),
    (
        "schedule: '@daily'\n    start: next week",
        'jobs.a.start: found "next week", expected a date',
    ),
    (
        "schedule: '@daily'\n    every: 2w\n    on: mon",
        "jobs.a: found schedule and every, expected exactly one of",
    ),
    (
        "every: 400d\n    at: '09:00'",
        'jobs.a.every: found "400d", expected a duration of at most 366d',
    ),
    ("every: 121mo\n    on_day: 1", 'jobs.a.every: found "121mo", expected from 1mo to 120mo'),
]


@pytest.mark.parametrize(("keys", "message"), BAD)
def test_bad_schedules_are_told_with_their_place(tmp_path: Path, keys: str, message: str) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(f"jobs:\n  a:\n    {keys}\n    command: x\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), "UTC")
    problems = [str(p) for p in caught.value.problems]
    assert any(message in p for p in problems), problems
    assert all(p.startswith(f"{file}:") and p.split(":")[1].isdigit() for p in problems)
