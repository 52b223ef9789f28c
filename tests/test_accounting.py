"""What happens to each due instant: started, caught up, missed, folded — a pure plan."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cronplus import accounting
from cronplus.accounting import LATE_LIMIT, MAX_MISSED_ROWS, plan
from cronplus.model import CatchUp
from cronplus.schedule import CronRule, EveryRule, next_instants

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINUTELY = CronRule("* * * * *", "UTC")


def minutes(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in offsets]


def test_the_late_limit_is_a_minute() -> None:
    assert LATE_LIMIT == 60.0  # the README promises it
    result = plan(MINUTELY, T0, T0 + timedelta(seconds=59))
    assert result.start == T0


def test_an_instant_reached_on_time_is_started_and_nothing_searched() -> None:
    result = plan(MINUTELY, T0, T0 + timedelta(milliseconds=3))
    assert (result.start, result.missed, result.catch_up, result.folded) == (T0, [], [], None)
    assert (result.last, result.following) == (T0, None)


def test_after_a_stall_the_latest_starts_and_the_others_are_missed() -> None:
    result = plan(MINUTELY, T0, T0 + timedelta(minutes=5, seconds=2))
    assert result.start == T0 + timedelta(minutes=5)
    assert result.missed == minutes(0, 1, 2, 3, 4)
    assert result.following == T0 + timedelta(minutes=6)
    assert result.instants == 6


def test_an_instant_reached_too_late_is_missed_and_catch_up_decides() -> None:
    late = T0 + timedelta(minutes=2, seconds=31)
    skip = plan(MINUTELY, T0, late, CatchUp.SKIP, late_limit=30)
    assert (skip.start, skip.missed, skip.catch_up) == (None, minutes(0, 1, 2), [])
    once = plan(MINUTELY, T0, late, CatchUp.ONCE, late_limit=30)
    assert (once.start, once.missed, once.catch_up) == (None, minutes(0, 1), minutes(2))
    every = plan(MINUTELY, T0, late, CatchUp.ALL, limit=2, late_limit=30)
    assert (every.start, every.missed, every.catch_up) == (None, minutes(0), minutes(1, 2))


def test_catch_up_once_adds_nothing_when_the_latest_starts() -> None:
    result = plan(MINUTELY, T0, T0 + timedelta(minutes=3, seconds=1), CatchUp.ONCE)
    assert (result.start, result.catch_up) == (T0 + timedelta(minutes=3), [])
    assert result.missed == minutes(0, 1, 2)


def test_a_paused_job_starts_nothing_and_catches_nothing_up() -> None:
    result = plan(MINUTELY, T0, T0 + timedelta(minutes=2), CatchUp.ALL, runnable=False)
    assert (result.start, result.catch_up, result.missed) == (None, [], minutes(0, 1, 2))


def test_a_long_gap_keeps_the_newest_rows_and_folds_the_rest_exactly() -> None:
    horizon = T0 + timedelta(minutes=499, seconds=30)  # 500 instants, the last too late to run
    result = plan(MINUTELY, T0, horizon, CatchUp.SKIP, late_limit=10)
    assert result.start is None
    assert len(result.missed) == MAX_MISSED_ROWS
    assert result.missed[-1] == T0 + timedelta(minutes=499)
    assert result.folded is not None
    assert (result.folded.first, result.folded.count, result.folded.exact) == (T0, 400, True)
    assert result.folded.last == T0 + timedelta(minutes=399)
    assert result.instants == 500


def test_a_gap_too_long_to_count_is_jumped_and_says_at_least(monkeypatch: object) -> None:
    import pytest

    patch = pytest.MonkeyPatch()
    patch.setattr(accounting, "COUNT_LIMIT", 1000)
    try:
        per_second = CronRule("* * * * * *", "UTC")
        horizon = T0 + timedelta(days=2)  # 172,801 instants
        result = plan(per_second, T0, horizon, CatchUp.ONCE)
    finally:
        patch.undo()
    assert result.start == horizon
    assert result.missed[-1] == horizon - timedelta(seconds=1)
    assert result.missed == [horizon - timedelta(seconds=s) for s in range(MAX_MISSED_ROWS, 0, -1)]
    folded = result.folded
    assert folded is not None and folded.first == T0 and not folded.exact
    assert 1000 <= folded.count < 172_801 - MAX_MISSED_ROWS
    assert folded.last < result.missed[0]
    assert result.following == horizon + timedelta(seconds=1)


def test_an_every_rule_keeps_its_phase_through_a_gap() -> None:
    every = EveryRule(20 * 60)
    first = T0 + timedelta(minutes=7)
    result = plan(every, first, first + timedelta(hours=2, minutes=1), CatchUp.SKIP)
    expected = next_instants(every, first, 6, first)
    assert result.missed == [first, *expected[:-1]]
    assert result.start == expected[-1]
    assert result.following == expected[-1] + timedelta(minutes=20)
