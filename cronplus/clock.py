"""The only code that reads time, and the zones time is shown in.

Everything else is handed `now` or a `Clock`, so tests drive schedules,
the timer and the daemon's steps with a clock they set by hand.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Optional, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ScheduleError

UTC = timezone.utc


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware in UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps, for measuring durations."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, instant: datetime) -> None:
        self.advance((instant.astimezone(UTC) - self._now).total_seconds())


def iso_utc(epoch: Optional[float]) -> Optional[str]:
    """An instant as the JSON of the control socket and the CLI write it: ISO 8601, Z."""
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC)
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(".000000Z", "Z")
    )


@cache
def zone(name: str) -> ZoneInfo:
    """The zone called `name`; raises ScheduleError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f'unknown zone "{name}"') from exc
