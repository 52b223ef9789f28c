"""Pure schedule math: (rule, zone, after) → the next fire instant.

Cron expressions are evaluated by croniter on naive local wall time; this
module maps wall times to instants with zoneinfo and applies the daylight
saving rules of the design:

* interval-like expressions (hour field `*` or any step) fire at every real
  instant whose wall time matches: gap times never run, repeated times run twice;
* fixed-time expressions run each nominal wall time once: a repeated time at its
  first occurrence, a skipped time at the instant the clocks jump, and nominal
  times that land on one instant merge into one run.

Nothing here reads the clock: every function takes the instant it works from.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Optional, Protocol

from croniter import croniter
from croniter.croniter import CroniterBadDateError

from . import cronfields
from .calendarrule import CalendarRule, anchor_date, bound_instant, parse_time_of_day
from .clock import zone
from .errors import ScheduleError
from .model import ScheduleKind, ScheduleSpec
from .walltime import all_instants, earliest_repeated_wall, first_instant

UTC = timezone.utc
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Wall times examined before a search gives up.
_MAX_CANDIDATES = 10_000
# The longest `every:` interval.
MAX_INTERVAL_SECONDS = 366 * 86400
# What croniter raises for expressions it cannot read, besides its own errors (ValueErrors)
_CRONITER_ERRORS = (ValueError, KeyError, IndexError, OverflowError, TypeError, AttributeError)
# What datetime arithmetic raises past 9999-12-31, the end of its calendar (and croniter's
# CroniterBadDateError, a ValueError, when no time is left to match)
_PAST_THE_CALENDAR = (OverflowError, ValueError)


class Rule(Protocol):
    # True when instants are nominal wall times that run once each (fixed-time cron
    # expressions, `at:`): a wall clock set back must not run them again.
    fixed: bool

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        """The first fire instant strictly after `after`, or None when there is none.

        `previous` is the last instant the job fired for; only rules measured
        from the last run use it.
        """


def normalize_expression(text: str) -> str:
    """Expand @names, validate the field count and the extensions; raises ScheduleError.

    Hashed (H) values must have been chosen already (`cronfields.expand_hashed`).
    """
    expression = " ".join(text.split())
    if expression.startswith("@"):
        if expression.lower() == "@reboot":
            raise ScheduleError('"@reboot" is not a schedule; use a job started by the service')
        try:
            return ALIASES[expression.lower()]
        except KeyError:
            raise ScheduleError(f'unknown schedule name "{expression}"') from None
    count = len(expression.split())
    if count not in (5, 6):
        raise ScheduleError(
            f'"{expression}" has {count} fields, expected 5 (minute hour day month weekday) '
            "or 6 (the same plus seconds last)"
        )
    cronfields.refuse_random(expression)
    cronfields.expand_hashed(expression, None)  # raises for an H: no name to choose it from
    return cronfields.check_extensions(expression)


def is_fixed_time(expression: str) -> bool:
    """The hour field alone decides: `*` or any step makes a job interval-like."""
    hour = expression.split()[1]
    return hour != "*" and "/" not in hour


def days_either(expression: str) -> bool:
    """Whether a day must match the day of month OR the weekday, as cron(8) decides it.

    cron runs on days matching either field only when both are restricted, that
    is when neither starts with `*`; `0 0 */2 * 1` runs on odd days that are Mondays.
    """
    fields = expression.split()
    return not (fields[2].startswith("*") or fields[4].startswith("*"))


class CronRule:
    """One cron expression in one zone, with the daylight saving rules applied."""

    def __init__(self, expression: str, zone_name: str) -> None:
        """Raises ScheduleError, and nothing else, for any expression and zone name."""
        self.expression = normalize_expression(expression)
        self.zone = zone(zone_name)
        self.fixed = is_fixed_time(self.expression)
        try:
            day_or = days_either(self.expression)
            self._walls = croniter(self.expression, datetime(2000, 1, 1), day_or=day_or)
            self._walls.get_next(datetime)
        except CroniterBadDateError:
            raise ScheduleError(f'cron expression "{expression}" never matches a date') from None
        except _CRONITER_ERRORS as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ScheduleError(f'bad cron expression "{expression}": {detail}') from None

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        try:
            return self._next_after(after)
        except _PAST_THE_CALENDAR:
            return None  # the next run would be after 9999-12-31

    def _next_after(self, after: datetime) -> Optional[datetime]:
        after = after.astimezone(UTC)
        local = after.astimezone(self.zone).replace(tzinfo=None)
        if self.fixed:
            for wall in self._walls_from(local):
                instant = first_instant(wall, self.zone)
                if instant > after:
                    return instant
            return None
        found = self._first_real_after(local, after)
        repeat_start = earliest_repeated_wall(after, self.zone)
        if repeat_start <= local:
            # `after` is in the first pass of a repeated stretch: its walls come again later
            repeated = self._next_wall(repeat_start - timedelta(seconds=1))
            instants = all_instants(repeated, self.zone) if repeated is not None else []
            if instants and instants[-1] > after and (found is None or instants[-1] < found):
                found = instants[-1]
        return found

    def _first_real_after(self, local: datetime, after: datetime) -> Optional[datetime]:
        """The earliest instant after `after` of a wall time later than `local`."""
        start = local
        for _ in range(_MAX_CANDIDATES):
            wall = self._next_wall(start)
            if wall is None:
                return None
            instants = all_instants(wall, self.zone)
            later = [i for i in instants if i > after]
            if later:
                return later[0]
            start = wall
            if not instants:  # a gap: go on from the wall time the clocks jump to
                jump = first_instant(wall, self.zone).astimezone(self.zone).replace(tzinfo=None)
                start = max(wall, jump - timedelta(seconds=1))
        return None

    def _next_wall(self, start: datetime) -> Optional[datetime]:
        self._walls.set_current(start, force=True)
        try:
            wall: datetime = self._walls.get_next(datetime)
        except CroniterBadDateError:
            return None
        return wall

    def _walls_from(self, start: datetime) -> Iterator[datetime]:
        self._walls.set_current(start, force=True)
        for _ in range(_MAX_CANDIDATES):
            try:
                yield self._walls.get_next(datetime)
            except CroniterBadDateError:
                return


class EveryRule:
    """`every: 20m`: one interval after the last run, or after `after` when there was none.

    With an `anchor` (the job's `start:`) a job that has not run yet runs at the anchor
    and one interval after another from there.
    """

    fixed = False

    def __init__(self, seconds: float, anchor: Optional[datetime] = None) -> None:
        if not 0 < seconds <= MAX_INTERVAL_SECONDS:  # NaN too
            raise ScheduleError(
                f"an interval of {seconds}s, expected one longer than zero and at most 366 days"
            )
        self.interval = timedelta(seconds=seconds)
        self.anchor = anchor

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        try:
            base = previous if previous is not None else self.anchor
            if base is None:
                return after + self.interval
            if base > after:
                return base
            # keep the phase of the last run, strictly after `after`
            steps = (after - base) // self.interval + 1
            return base + self.interval * steps
        except _PAST_THE_CALENDAR:
            return None  # the next run would be after 9999-12-31


class AtRule:
    """`at:` a single wall time in the job's zone; none after it has passed."""

    fixed = True

    def __init__(self, local: str, zone_name: str) -> None:
        try:
            wall = datetime.fromisoformat(local)
        except ValueError:
            raise ScheduleError(
                f'"{local}" is not a date and time, expected ISO 8601 such as 2027-01-01T09:00'
            ) from None
        try:
            if wall.tzinfo is not None:
                self.instant = wall.astimezone(UTC)
            else:
                self.instant = first_instant(wall, zone(zone_name))
        except _PAST_THE_CALENDAR:
            raise ScheduleError(
                f'"{local}" is beyond the dates cronplus can keep, expected an instant '
                "from year 1 to 9999 in UTC"
            ) from None

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        return self.instant if self.instant > after else None


class AnyRule:
    """Several rules for one job; runs on one instant merge into one."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.fixed = all(rule.fixed for rule in self.rules)

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        found = [r.next_after(after, previous) for r in self.rules]
        candidates = [f for f in found if f is not None]
        return min(candidates) if candidates else None


class NeverRule:
    """No instants: a job that runs only after others (`after:`), by hand, or not at all."""

    fixed = True

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        return None


class BoundedRule:
    """Another rule's instants from `start` to `end` (both included), none outside."""

    def __init__(self, rule: Rule, start: Optional[datetime], end: Optional[datetime]) -> None:
        self.rule = rule
        self.fixed = rule.fixed
        self.start = start
        self.end = end

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        if self.start is not None and after < self.start:
            # the start itself may run; a start at the first instant of year 1 has no before
            with contextlib.suppress(*_PAST_THE_CALENDAR):
                after = self.start - timedelta(microseconds=1)
        found = self.rule.next_after(after, previous)
        if found is None or (self.end is not None and found > self.end):
            return None
        return found


def bounds(spec: ScheduleSpec, zone_name: str) -> tuple[Optional[datetime], Optional[datetime]]:
    """The first and last instants a job is active (`start:`, `end:`); None for no bound."""
    start = bound_instant(spec.start, zone_name) if spec.start else None
    end = bound_instant(spec.end, zone_name, end=True) if spec.end else None
    return start, end


def build_rule(spec: ScheduleSpec, zone_name: str, shared: bool = True) -> Rule:
    """The rule for a job's schedule; raises ScheduleError, and nothing else, for any spec.

    `shared` rules are cached and may be used by one thread only (the loop's); a
    worker thread asks for its own.
    """
    start, end = bounds(spec, zone_name)
    rule: Rule
    if spec.kind is ScheduleKind.EVERY:
        rule = EveryRule(spec.every_seconds, start)
    elif spec.kind is ScheduleKind.AT:
        rule = AtRule(spec.at_local, zone_name)
    elif spec.kind is ScheduleKind.CALENDAR:
        rule = calendar_rule(spec, zone_name)
    elif spec.kind is ScheduleKind.NONE:
        rule = NeverRule()
    else:
        make = cron_rule if shared else CronRule
        rules = [make(e, zone_name) for e in spec.resolved or spec.expressions]
        rule = rules[0] if len(rules) == 1 else AnyRule(rules)
    if start is None and end is None:
        return rule
    return BoundedRule(rule, start, end)


def calendar_rule(spec: ScheduleSpec, zone_name: str) -> CalendarRule:
    return CalendarRule(
        spec.count,
        spec.unit,
        [parse_time_of_day(t) for t in spec.times],
        zone_name,
        anchor_date(spec.start, zone_name) if spec.start else None,
        spec.weekdays,
        spec.month_days,
    )


@lru_cache(maxsize=8192)
def cron_rule(expression: str, zone_name: str) -> CronRule:
    """One rule per (expression, zone): jobs that share a schedule share its parsed form.

    Safe to share: a rule's answers depend only on its arguments, and the daemon is
    one thread.
    """
    return CronRule(expression, zone_name)


def next_instants(
    rule: Rule, after: datetime, count: int, previous: Optional[datetime] = None
) -> list[datetime]:
    """The next `count` fire instants strictly after `after`."""
    out: list[datetime] = []
    while len(out) < count:
        found = rule.next_after(after, previous)
        if found is None:
            break
        out.append(found)
        after = previous = found
    return out


def upcoming(rule: Rule, now: datetime, last_fired: Optional[float]) -> Optional[datetime]:
    """The next run of a job that last fired for `last_fired` (epoch seconds), after `now`."""
    previous = datetime.fromtimestamp(last_fired, UTC) if last_fired is not None else None
    if previous is not None and previous > now:  # the clock went back past the last run
        if rule.fixed:
            return rule.next_after(previous, previous)  # a nominal time never runs twice
        previous = None  # interval-like: go on from the new time
    return rule.next_after(now, previous)


def first_unaccounted(rule: Rule, now: datetime, mark: Optional[float]) -> Optional[datetime]:
    """The first instant with no row yet: the first after `mark`, the last one accounted for.

    With no mark (a job never scheduled) it is the first instant after `now`.
    """
    if mark is None:
        return rule.next_after(now)
    previous = datetime.fromtimestamp(mark, UTC)
    if previous > now and not rule.fixed:  # the clock went back: go on from the new time
        return rule.next_after(now)
    return rule.next_after(previous, previous)


def upcoming_instants(
    rule: Rule, now: datetime, last_fired: Optional[float], count: int
) -> list[datetime]:
    """The next `count` runs of a job that last fired for `last_fired`, after `now`."""
    first = upcoming(rule, now, last_fired)
    if first is None:
        return []
    return [first, *next_instants(rule, first, count - 1, first)]


def instants_between(
    rule: Rule,
    start: datetime,
    end: datetime,
    previous: Optional[datetime] = None,
    limit: int = 1000,
) -> list[datetime]:
    """Fire instants in (start, end], at most `limit` of them (the latest kept)."""
    out: list[datetime] = []
    found = rule.next_after(start, previous)
    while found is not None and found <= end:
        out.append(found)
        if len(out) > limit:
            out.pop(0)
        found = rule.next_after(found, found)
    return out


def stable_jitter(job_name: str, max_seconds: float) -> float:
    """A delay in [0, max_seconds) that is the same for a job on every start and host."""
    if max_seconds <= 0:
        return 0.0
    digest = hashlib.sha256(job_name.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * max_seconds


def catch_up_instants(policy: str, missed: Sequence[datetime]) -> list[datetime]:
    """Which missed instants to run now: none (`skip`), the latest (`once`) or each (`all`)."""
    if policy == "once":
        return list(missed[-1:])
    if policy == "all":
        return list(missed)
    return []
