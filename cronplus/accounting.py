"""Every scheduled instant gets exactly one row.

When the loop reaches a job, every instant of its schedule since the last one
accounted for is due.  Normally that is one instant, reached on time, and it is
started.  After a stall, a forward clock step, a resume from suspend or a
daemon that was down, there may be many: the latest is started if it was
reached at most LATE_LIMIT after its time, the others are missed, and the job's
`catch_up` policy picks which missed ones run after all.  A paused job's
instants are skipped.  Pure: the daemon records the plan this module makes.

A long gap is bounded: the newest MAX_MISSED_ROWS missed instants get a row
each, the older ones share one row that records their first and last instant
and how many they were (exactly when there were at most COUNT_LIMIT, else at
least that many).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from .model import CatchUp
from .schedule import Rule

LATE_LIMIT = 60.0  # seconds: an instant reached later than this is missed, not started
MAX_MISSED_ROWS = 100  # per gap, missed instants with a row of their own
COUNT_LIMIT = 10_000  # instants counted one by one before the rest of a gap is jumped
# The shortest time between two instants of any schedule (croniter's seconds field,
# `every:` at least 1s): an instant reached sooner than this after the previous
# one can have no other instant between them.
MIN_PERIOD = timedelta(seconds=1)


@dataclass(frozen=True)
class Folded:
    """Old missed instants of a long gap, recorded as one row."""

    first: datetime
    last: datetime  # the last instant it stands for, or where counting stopped
    count: int
    exact: bool  # False: at least `count` instants


@dataclass(frozen=True)
class Plan:
    """What to do with the instants of one job that are due now."""

    start: Optional[datetime] = None  # run now, as scheduled
    catch_up: list[datetime] = field(default_factory=list)  # missed, but run now by policy
    missed: list[datetime] = field(default_factory=list)  # a row each: missed (or skipped)
    folded: Optional[Folded] = None  # older missed instants, one row
    last: Optional[datetime] = None  # the newest instant handled: the job's new mark
    following: Optional[datetime] = None  # the next instant after these, when it was found

    @property
    def instants(self) -> int:
        folded = self.folded.count if self.folded else 0
        return folded + len(self.missed) + len(self.catch_up) + (self.start is not None)


def plan(
    rule: Rule,
    first: datetime,
    horizon: datetime,
    policy: CatchUp = CatchUp.SKIP,
    limit: int = 10,
    runnable: bool = True,
    late_limit: float = LATE_LIMIT,
) -> Plan:
    """The plan for the instants from `first` (due) up to `horizon` (now less any jitter).

    `runnable` is False for a paused job: nothing starts, every instant is skipped.
    """
    if horizon < first + MIN_PERIOD:  # the usual case: one instant, nothing to search
        due, folded, following = [first], None, None
    else:
        due, folded, following = _due(rule, first, horizon, keep=MAX_MISSED_ROWS + limit + 1)
    latest = due[-1]
    start = None
    if runnable and (horizon - latest).total_seconds() <= late_limit:
        start, due = latest, due[:-1]
    catch_up: list[datetime] = []
    if runnable and policy is CatchUp.ALL:
        catch_up = due[-limit:]
    elif runnable and policy is CatchUp.ONCE and start is None and due:
        catch_up = due[-1:]
    missed = due[: len(due) - len(catch_up)]
    if len(missed) > MAX_MISSED_ROWS:
        older, missed = missed[:-MAX_MISSED_ROWS], missed[-MAX_MISSED_ROWS:]
        folded = _merge(folded, Folded(older[0], older[-1], len(older), True))
    return Plan(start, catch_up, missed, folded, latest, following)


def _due(
    rule: Rule, first: datetime, horizon: datetime, keep: int
) -> tuple[list[datetime], Optional[Folded], Optional[datetime]]:
    """(the newest `keep` instants up to `horizon`, the older ones folded, the one after)."""
    newest: collections.deque[datetime] = collections.deque(maxlen=keep)
    folded: Optional[Folded] = None
    instant: Optional[datetime] = first
    counted = 0
    while instant is not None and instant <= horizon:
        if counted == COUNT_LIMIT:
            return _jump(rule, list(newest), folded, horizon, keep)
        if len(newest) == keep:
            folded = _merge(folded, Folded(newest[0], newest[0], 1, True))
        newest.append(instant)
        counted += 1
        instant = rule.next_after(instant, instant)
    return list(newest), folded, instant


def _jump(
    rule: Rule,
    counted: list[datetime],
    folded: Optional[Folded],
    horizon: datetime,
    keep: int,
) -> tuple[list[datetime], Optional[Folded], Optional[datetime]]:
    """A gap too long to count: find its newest instants from the end, fold the middle.

    `counted` are the newest instants counted so far; more lie between them and `horizon`.
    """
    window = max(counted[-1] - counted[0], MIN_PERIOD)
    while True:
        start = horizon - window
        newest: list[datetime] = []
        instant = rule.next_after(start, counted[-1])  # an `every:` rule keeps its phase
        while instant is not None and instant <= horizon:
            newest.append(instant)
            instant = rule.next_after(instant, instant)
        if len(newest) >= keep or start <= counted[-1]:
            break
        window *= 2
    contiguous = start <= counted[-1]  # nothing left uncounted between the two stretches
    later = [i for i in newest if i > counted[-1]]
    kept, dropped = later[-keep:], later[:-keep]
    if contiguous:
        middle = Folded(counted[0], (dropped or counted)[-1], len(counted) + len(dropped), True)
    else:
        middle = Folded(counted[0], kept[0] - MIN_PERIOD, len(counted) + len(dropped), False)
    return kept, _merge(folded, middle), instant


def _merge(older: Optional[Folded], newer: Folded) -> Folded:
    if older is None:
        return newer
    return Folded(older.first, newer.last, older.count + newer.count, older.exact and newer.exact)
