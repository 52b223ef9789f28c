"""Wall times and the instants they name in a zone, across changes of UTC offset.

A local wall time names no instant when the clocks jump over it (a gap), two when
they are turned back over it (a repeat), else one.  Every schedule maps the wall
times it produces to instants through these functions, so all of them follow the
same daylight saving rules.  Pure: nothing here reads the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

UTC = timezone.utc
# How far ahead to look for a backward clock change that makes wall times repeat.
LOOKAHEAD = timedelta(hours=48)


def all_instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every instant whose wall time in `tz` is `wall`: none in a gap, two in a repeat."""
    out: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in out:
            out.append(instant)
    out.sort()
    return out


def first_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a fixed-time run for `wall` fires: its first occurrence, or the jump."""
    instants = all_instants(wall, tz)
    if instants:
        return instants[0]
    # a gap: fold=1 gives an instant before the jump, fold=0 one after it
    low = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    high = int(wall.replace(tzinfo=tz, fold=0).timestamp())
    return datetime.fromtimestamp(change_between(low, high, tz), UTC)


def offset(epoch: int, tz: ZoneInfo) -> Optional[timedelta]:
    return datetime.fromtimestamp(epoch, tz).utcoffset()


def change_between(low: int, high: int, tz: ZoneInfo) -> int:
    """The first second (epoch) in (low, high] with the offset in force at `high`."""
    target = offset(high, tz)
    while high - low > 1:
        middle = (low + high) // 2
        if offset(middle, tz) == target:
            high = middle
        else:
            low = middle
    return high


def earliest_repeated_wall(after: datetime, tz: ZoneInfo) -> datetime:
    """The earliest wall time of any instant after `after` within the lookahead.

    Wall times go backwards only when the clocks are turned back; this finds
    the wall time just after such a change, or a time after the lookahead.
    """
    end = after + LOOKAHEAD
    low, high = int(after.timestamp()), int(end.timestamp())
    before, later = offset(low, tz), offset(high, tz)
    assert before is not None and later is not None
    if later >= before:
        return end.astimezone(tz).replace(tzinfo=None)
    return datetime.fromtimestamp(change_between(low, high, tz), tz).replace(tzinfo=None)


def local_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall time of `instant` in `tz`."""
    return instant.astimezone(tz).replace(tzinfo=None)
