"""Schedule kinds other than the DST tables: every, at, lists, names, jitter, bad input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cronplus.errors import ScheduleError
from cronplus.model import ScheduleKind, ScheduleSpec
from cronplus.schedule import (
    AtRule,
    CronRule,
    EveryRule,
    build_rule,
    instants_between,
    is_fixed_time,
    next_instants,
    stable_jitter,
    upcoming,
)

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_six_fields_put_seconds_last() -> None:
    rule = CronRule("*/10 * * * * 15", "UTC")
    assert next_instants(rule, T0, 2) == [
        T0 + timedelta(seconds=15),
        T0 + timedelta(minutes=10, seconds=15),
    ]


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("@hourly", datetime(2026, 6, 1, 13, 0, tzinfo=UTC)),
        ("@daily", datetime(2026, 6, 2, 0, 0, tzinfo=UTC)),
        ("@midnight", datetime(2026, 6, 2, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 6, 7, 0, 0, tzinfo=UTC)),  # a Sunday
        ("@monthly", datetime(2026, 7, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("@annually", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_named_schedules(name: str, first: datetime) -> None:
    assert CronRule(name, "UTC").next_after(T0) == first


def test_day_fields_combine_as_cron_does() -> None:
    # both restricted: either may match (the 1st and 15th, and every Monday)
    either = next_instants(CronRule("0 0 1,15 * 1", "UTC"), datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert [d.day for d in either] == [5, 12, 15, 19]
    # a field starting with * makes both necessary: odd days that are Mondays
    both = next_instants(CronRule("0 0 */2 * 1", "UTC"), datetime(2026, 1, 1, tzinfo=UTC), 3)
    assert [(d.month, d.day) for d in both] == [(1, 5), (1, 19), (2, 9)]


def test_hour_field_decides_the_kind() -> None:
    assert is_fixed_time("30 2 * * *")
    assert is_fixed_time("0 1-5 * * *")
    assert is_fixed_time("0 1,13 * * *")
    assert not is_fixed_time("0 * * * *")
    assert not is_fixed_time("0 */2 * * *")
    assert not is_fixed_time("0 0-23/3 * * *")
    assert not CronRule("@hourly", "UTC").fixed


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "bad cron expression"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("0 0 30 2 *", "never matches a date"),
        ("0 0 31 4,6,9,11 *", "never matches a date"),
        ("@fortnightly", 'unknown schedule name "@fortnightly"'),
        ("@reboot", "not a schedule"),
        ("0 25 * * *", "bad cron expression"),
    ],
)
def test_bad_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        CronRule(expression, "UTC")


def test_unknown_zone() -> None:
    with pytest.raises(ScheduleError, match='unknown zone "Mars/Olympus"'):
        CronRule("* * * * *", "Mars/Olympus")


def test_every_is_measured_from_the_last_run() -> None:
    rule = EveryRule(20 * 60)
    assert rule.next_after(T0) == T0 + timedelta(minutes=20)
    last = T0 - timedelta(minutes=5)
    assert rule.next_after(T0, last) == T0 + timedelta(minutes=15)
    # after a long absence the phase of the last run is kept, strictly after T0
    assert rule.next_after(T0, T0 - timedelta(minutes=45)) == T0 + timedelta(minutes=15)
    assert rule.next_after(T0, T0 - timedelta(minutes=40)) == T0 + timedelta(minutes=20)


def test_at_fires_once_in_its_zone() -> None:
    rule = AtRule("2027-01-01T00:00", "Pacific/Auckland")
    expected = datetime(2026, 12, 31, 11, 0, tzinfo=UTC)  # NZDT is +13:00
    assert rule.next_after(T0) == expected
    assert rule.next_after(expected) is None
    # a wall time that never happens runs at the jump, as fixed-time cron jobs do
    gap = AtRule("2026-03-08T02:30", "America/New_York")
    assert gap.next_after(T0 - timedelta(days=200)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_at_rejects_what_is_not_a_time() -> None:
    with pytest.raises(ScheduleError, match="expected ISO 8601"):
        AtRule("next tuesday", "UTC")


def test_several_schedules_merge_runs_on_one_instant() -> None:
    spec = ScheduleSpec(ScheduleKind.CRON, expressions=("0 12 * * *", "0 */6 * * *"))
    rule = build_rule(spec, "UTC")
    runs = next_instants(rule, T0, 4)
    assert runs == [T0 + timedelta(hours=h) for h in (6, 12, 18, 24)]


def test_instants_between_keeps_the_latest() -> None:
    rule = CronRule("0 * * * *", "UTC")
    found = instants_between(rule, T0, T0 + timedelta(hours=10), limit=3)
    assert found == [T0 + timedelta(hours=h) for h in (8, 9, 10)]


def test_upcoming_ignores_a_last_run_in_the_future() -> None:
    rule = EveryRule(60)
    future = (T0 + timedelta(hours=1)).timestamp()
    assert upcoming(rule, T0, future) == T0 + timedelta(seconds=60)
    assert upcoming(rule, T0, (T0 - timedelta(seconds=30)).timestamp()) == T0 + timedelta(
        seconds=30
    )


def test_jitter_is_stable_and_bounded() -> None:
    values = {name: stable_jitter(name, 300) for name in ("backup", "report", "rotate")}
    assert values == {name: stable_jitter(name, 300) for name in values}
    assert all(0 <= v < 300 for v in values.values())
    assert len(set(values.values())) == 3
    assert stable_jitter("backup", 0) == 0


# --- the ends of the calendar and input croniter cannot read ---------------------------------

END = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("zone_name", ["UTC", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize(
    "expression", ["* * * * *", "* * * * * *", "0 * * * *", "30 2 * * *", "0 0 1 1 *", "0 0 29 2 *"]
)
@pytest.mark.parametrize(
    "after",
    [END, END - timedelta(hours=12), END - timedelta(days=2), END - timedelta(days=400)],
)
def test_a_cron_rule_has_no_next_run_past_the_calendar(
    zone_name: str, expression: str, after: datetime
) -> None:
    # datetime ends on 9999-12-31: what croniter and the DST lookahead reach past it raised
    # OverflowError or ValueError("year 10000 is out of range") before
    found = CronRule(expression, zone_name).next_after(after)
    assert found is None or after < found <= END


def test_an_every_rule_has_no_next_run_past_the_calendar() -> None:
    rule = EveryRule(366 * 86400)
    assert rule.next_after(END - timedelta(days=1)) is None
    assert rule.next_after(END - timedelta(days=1), END - timedelta(days=2)) is None
    assert rule.next_after(END - timedelta(days=400)) == END - timedelta(days=34)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 366 * 86400 + 1, 1e300])
def test_every_refuses_intervals_that_are_not_positive_or_longer_than_366_days(
    seconds: float,
) -> None:
    with pytest.raises(ScheduleError, match="expected one longer than zero and at most 366 days"):
        EveryRule(seconds)


@pytest.mark.parametrize(
    ("local", "zone_name"),
    [
        ("9999-12-31T23:59", "America/New_York"),  # UTC is 10000-01-01
        ("9999-12-31T23:59-05:00", "UTC"),
        ("0001-01-01T00:00+05:00", "UTC"),  # UTC is year 0
        ("0001-01-01T00:00", "Asia/Tokyo"),
    ],
)
def test_at_beyond_the_calendar_is_a_schedule_error(local: str, zone_name: str) -> None:
    with pytest.raises(ScheduleError, match="expected an instant from year 1 to 9999 in UTC"):
        AtRule(local, zone_name)


def test_at_at_the_ends_of_the_calendar_that_fit_are_kept() -> None:
    assert AtRule("0001-01-01T00:00", "America/New_York").next_after(T0) is None
    last = AtRule("9999-12-31T18:00", "America/New_York")
    assert last.instant == datetime(9999, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["R 2 * * *", "0 R(0-5) * * *", "r * * * *", "H R * * *"])
def test_random_values_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match=r"random \(R\) values are not supported"):
        CronRule(expression, "UTC")


@pytest.mark.parametrize("expression", ["H H * * *", "0 H(0-5) * * *", "h/15 * * * *"])
def test_a_rule_takes_hashed_values_only_once_chosen_from_a_name(expression: str) -> None:
    # a job's expressions are given to the rule with their H chosen (cronfields.expand_hashed)
    with pytest.raises(ScheduleError, match=r"hashed \(H\) values are chosen from a job's name"):
        CronRule(expression, "UTC")


def test_names_of_months_and_days_are_not_taken_for_hashed_values() -> None:
    assert CronRule("0 0 * mar thu", "UTC").next_after(T0) == datetime(2027, 3, 4, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("error", [KeyError, IndexError, OverflowError, TypeError, AttributeError])
def test_whatever_croniter_raises_for_an_expression_is_a_schedule_error(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def choke(*args: object, **kwargs: object) -> None:
        raise error("deep inside croniter")

    monkeypatch.setattr("cronplus.schedule.croniter", choke)
    with pytest.raises(ScheduleError, match=r'bad cron expression "1 2 3 4 5": .?deep inside'):
        CronRule("1 2 3 4 5", "UTC")


@pytest.mark.parametrize("name", ["America", "Europe", "a" * 5000, "UTC\0"])
def test_zone_names_that_are_directories_or_too_long_are_unknown(name: str) -> None:
    # "America" raised IsADirectoryError and a long name OSError ENAMETOOLONG
    with pytest.raises(ScheduleError, match="unknown zone"):
        CronRule("@daily", name)
