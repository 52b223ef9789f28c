"""The only code that reads time, and the zones time is shown in.

Everything else is handed `now` or a `Clock`, so tests drive schedules,
the timer and the daemon's steps with a clock they set by hand.
"""

from __future__ import annotations

import sys
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
        """Seconds on a clock that never steps and stops while the machine sleeps."""

    def boottime(self) -> float:
        """Seconds on a clock that never steps and counts the time the machine slept."""


# Linux counts sleep in CLOCK_BOOTTIME; macOS in CLOCK_MONOTONIC, where time.monotonic()
# does not.  Elsewhere suspends are not told apart (the monotonic clock stands in).
_BOOT_CLOCK = getattr(
    time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC if sys.platform == "darwin" else None
)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def boottime(self) -> float:
        if _BOOT_CLOCK is None:
            return time.monotonic()
        return time.clock_gettime(_BOOT_CLOCK)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._mono = 1000.0
        self._boot = 2000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def boottime(self) -> float:
        return self._boot

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        self._boot += seconds

    def step(self, seconds: float) -> None:
        """Set the wall clock forward (or back, when negative), as NTP or `date -s` would."""
        self._now += timedelta(seconds=seconds)

    def suspend(self, seconds: float) -> None:
        """Sleep the machine: the wall and boot-time clocks move, the monotonic one stands."""
        self._now += timedelta(seconds=seconds)
        self._boot += seconds

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
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "America" is a directory
        raise ScheduleError(f'unknown zone "{name}"') from exc
