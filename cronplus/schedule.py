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
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Optional, Protocol, cast
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError

from . import cronfields
from .calendarrule import CalendarRule, anchor_date, bound_instant, parse_time_of_day
from .clock import zone
from .convert import show
from .errors import ScheduleError
from .model import ScheduleKind, ScheduleSpec
from .walltime import all_instants, change_between, earliest_repeated_wall, first_instant, offset

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


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # a leap year's


def _surely_matches(walls: croniter, day_or: bool) -> bool:
    """Whether an expression matches some date, seen from its fields alone: every
    field but the day of month always matches some value, so it is enough that a day
    of month it names exists in a month it names (or that the weekday may decide).
    Half the time of checking a 100,000-job file went to finding a first date instead;
    anything unusual (L, W, #) is left to that."""
    days, months, weekdays = walls.expanded[2], walls.expanded[3], walls.expanded[4]
    if walls.nth_weekday_of_month or any(not isinstance(w, int) for w in weekdays if w != "*"):
        return False
    if days == ["*"]:
        return True
    if weekdays != ["*"] and day_or:
        return True  # a day matching either field: some weekday always comes
    if not all(isinstance(d, int) for d in days):
        return False
    wanted = range(1, 13) if months == ["*"] else months
    return any(isinstance(m, int) and min(days) <= _DAYS_IN_MONTH[m - 1] for m in wanted)


class CronRule:
    """One cron expression in one zone, with the daylight saving rules applied."""

    def __init__(self, expression: str, zone_name: str) -> None:
        """Raises ScheduleError, and nothing else, for any expression and zone name."""
        self.expression = normalize_expression(expression)
        self.zone = zone(zone_name)
        self.fixed = is_fixed_time(self.expression)
        # one rule serves every job of its (expression, zone), in the loop and in the
        # thread that prepares a reload: its croniter is moved under this lock
        self._lock = threading.Lock()
        try:
            day_or = days_either(self.expression)
            self._walls = croniter(self.expression, datetime(2000, 1, 1), day_or=day_or)
            if not _surely_matches(self._walls, day_or):
                self._walls.get_next(datetime)  # raises when no date ever matches
        except CroniterBadDateError:
            raise ScheduleError(f'cron expression "{expression}" never matches a date') from None
        except _CRONITER_ERRORS as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ScheduleError(f'bad cron expression "{expression}": {detail}') from None

    def next_after(
        self, after: datetime, previous: Optional[datetime] = None
    ) -> Optional[datetime]:
        try:
            with self._lock:
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
                f"{show(local)} is not a date and time, expected ISO 8601 such as 2027-01-01T09:00"
            ) from None
        self.zone = zone(zone_name)
        self.wall: Optional[datetime] = None  # the wall time written, when no offset was
        try:
            if wall.tzinfo is not None:
                self.instant = wall.astimezone(UTC)
            else:
                self.wall = wall
                self.instant = first_instant(wall, self.zone)
        except _PAST_THE_CALENDAR:
            raise ScheduleError(
                f"{show(local)} is beyond the dates cronplus can keep, expected an instant "
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

    `shared` rules are cached; their `next_after` is safe from any thread, the rest of
    their methods are the loop's: a control worker asks for a rule of its own.
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


@lru_cache(maxsize=1 << 17)
def cron_rule(expression: str, zone_name: str) -> CronRule:
    """One rule per (expression, zone): jobs that share a schedule share its parsed form.

    Safe to share: a rule's answers depend only on its arguments, and it moves its
    croniter under a lock of its own (the loop and a reload's thread may both ask).
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


# --- daylight saving: what a zone's changes do to a schedule -----------------------------

_PROBE = timedelta(hours=6)  # offsets are sampled this often, then a change is bisected


@dataclass(frozen=True)
class Transition:
    """A change of a zone's UTC offset."""

    at: datetime  # the first instant (UTC) of the new offset
    before: timedelta
    after: timedelta

    @property
    def skipped(self) -> tuple[datetime, datetime]:
        """The wall times [start, end) that never happen (empty when the clocks go back)."""
        start = (self.at + self.before).replace(tzinfo=None)
        return start, start + max(self.after - self.before, timedelta(0))

    @property
    def repeated(self) -> tuple[datetime, datetime]:
        """The wall times [start, end) that happen twice (empty when the clocks go forward)."""
        start = (self.at + self.after).replace(tzinfo=None)
        return start, start + max(self.before - self.after, timedelta(0))


@lru_cache(maxsize=2048)
def transitions(zone_name: str, start: datetime, end: datetime) -> tuple[Transition, ...]:
    """Every change of `zone_name`'s UTC offset in (start, end].

    Cached for more zones than the system has (about 600): jobs in every zone in turn
    made a smaller cache find nothing, a year of probing for each job."""
    tz = zone(zone_name)
    found: list[Transition] = []
    low = int(start.timestamp())
    last = int(end.timestamp())
    step = int(_PROBE.total_seconds())
    before = offset(low, tz)
    while low < last:
        high = min(low + step, last)
        after = offset(high, tz)  # and the next probe's `before`: one offset a probe
        if before != after:
            at = change_between(low, high, tz)
            assert before is not None and after is not None
            found.append(Transition(datetime.fromtimestamp(at, UTC), before, after))
            low, before = at, offset(at, tz)
            continue
        low, before = high, after
    return tuple(found)


@dataclass(frozen=True)
class DstNote:
    """What one offset change does to a schedule: a warning or, for more runs, a note."""

    kind: str  # moved, merged, repeated (fixed-time), more-often (interval-like)
    date: str  # the local date, ISO
    message: str

    @property
    def warning(self) -> bool:
        return self.kind != "more-often"


def _hm(wall: datetime) -> str:
    return f"{wall:%H:%M:%S}" if wall.second else f"{wall:%H:%M}"


def _local_name(instant: datetime, tz: ZoneInfo) -> str:
    local = instant.astimezone(tz)
    name = local.tzname() or ""
    return (
        f"{_hm(local.replace(tzinfo=None))} {name}"
        if name[:1] not in "+-"
        else _hm(local.replace(tzinfo=None)) + f" (UTC{name})"
    )


def _walls(rule: Rule, start: datetime, end: datetime) -> list[datetime]:
    """The nominal wall times of a fixed rule in [start, end), naive."""
    if isinstance(rule, CronRule):
        if end <= start or not _may_have_date(rule, start, end):
            return []
        hours = rule._walls.expanded[1]
        if hours != ["*"]:  # most rules have no hour in a stretch of an hour or two
            stretch, hour = set(), start.replace(minute=0, second=0)
            while hour < end:
                stretch.add(hour.hour)
                hour += timedelta(hours=1)
            if not stretch.intersection(int(h) for h in hours):
                return []
        out: list[datetime] = []
        wall = rule._next_wall(start - timedelta(seconds=1))
        while wall is not None and wall < end:
            out.append(wall)
            wall = rule._next_wall(wall)
        return out
    if isinstance(rule, AtRule) and rule.wall is not None and start <= rule.wall < end:
        return [rule.wall]
    return []


def _may_have_date(rule: CronRule, start: datetime, end: datetime) -> bool:
    """Whether a date of [start, end) (a stretch of an hour or two) may match the rule's
    month and day fields: most rules of a large file have none there, and croniter need
    not be asked (with the weekday in play, or L, W and #, it is asked)."""
    expanded = rule._walls.expanded
    months, days, weekdays = expanded[3], expanded[2], expanded[4]
    dates = {start.date(), (end - timedelta(microseconds=1)).date()}
    if months != ["*"] and not any(d.month in months for d in dates):
        return False
    if days == ["*"] or weekdays != ["*"] or not all(isinstance(d, int) for d in days):
        return True
    return any(d.day in days for d in dates)


def _zone_of(rule: Rule) -> Optional[ZoneInfo]:
    if isinstance(rule, CronRule):
        return rule.zone
    if isinstance(rule, AtRule):
        return rule.zone
    return None


def _plain_rules(rule: Rule) -> list[Rule]:
    """The cron and `at` rules inside `rule`; bounds only narrow when they apply."""
    if isinstance(rule, AnyRule):
        return [plain for one in rule.rules for plain in _plain_rules(one)]
    if isinstance(rule, BoundedRule):
        return _plain_rules(rule.rule)
    return [rule]


def dst_notes(rule: Rule, start: datetime, end: datetime) -> list[DstNote]:
    """What the offset changes of the rule's zone between `start` and `end` do to it.

    Fixed-time rules: a nominal time in a skipped stretch moves to the jump (or merges
    with others there); one in a repeated stretch runs once, at its first occurrence.
    Interval-like rules: a repeated stretch makes them run more often.
    """
    notes: list[DstNote] = []
    for one in _plain_rules(rule):
        tz = _zone_of(one)
        if tz is None:
            continue
        for change in transitions(tz.key, start, end):
            notes += _change_notes(cast(Hashable, one), tz, change)
    return notes


@lru_cache(maxsize=8192)
def _change_notes(rule: Hashable, tz: ZoneInfo, change: Transition) -> tuple[DstNote, ...]:
    """What one change does to one rule; rules are shared (`cron_rule`), and so is this."""
    return tuple(_notes_of_change(cast(Rule, rule), tz, change))


def _notes_of_change(rule: Rule, tz: ZoneInfo, change: Transition) -> list[DstNote]:
    gap_start, gap_end = change.skipped
    repeat_start, repeat_end = change.repeated
    zone_name = tz.key
    if rule.fixed:
        notes = []
        moved = _walls(rule, gap_start, gap_end)
        if moved:
            day = gap_start.date().isoformat()
            landing = _local_name(change.at, tz)
            merged = moved + _walls(rule, gap_end, gap_end + timedelta(seconds=1))
            times = " and ".join(_hm(w) for w in moved)
            verb = "does" if len(moved) == 1 else "do"
            if len(merged) > 1:
                text = (
                    f"{times} {verb} not exist in {zone_name} on {day};"
                    f" {' and '.join(_hm(w) for w in merged)} merge into one run at {landing}"
                )
                notes.append(DstNote("merged", day, text))
            else:
                text = (
                    f"{times} {verb} not exist in {zone_name} on {day}; the run moves to {landing}"
                )
                notes.append(DstNote("moved", day, text))
        twice = _walls(rule, repeat_start, repeat_end)
        if twice:
            day = repeat_start.date().isoformat()
            first = first_instant(twice[0], tz)
            times = " and ".join(_hm(w) for w in twice)
            notes.append(
                DstNote(
                    "repeated",
                    day,
                    f"{times} happen{'s' if len(twice) == 1 else ''} twice in {zone_name} on {day};"
                    f" the job runs once, at the first ({_local_name(first, tz)})",
                )
            )
        return notes
    if repeat_end <= repeat_start or not isinstance(rule, CronRule):
        return []
    extra = _walls(rule, repeat_start, repeat_end)
    if not extra:
        return []
    day = repeat_start.date().isoformat()
    times = "once more" if len(extra) == 1 else f"{len(extra)} more times"
    return [
        DstNote(
            "more-often",
            day,
            f"{_hm(repeat_start)} to {_hm(repeat_end)} happens twice in {zone_name} on {day};"
            f" the job runs {times} that day",
        )
    ]


def dst_mark(rule: Rule, instant: datetime) -> Optional[str]:
    """Whether a fire instant was moved by a skipped stretch (`moved`), stands for several
    nominal times one of which was (`merged`), or is the second pass of a repeated
    stretch (`repeated`); None for an ordinary instant."""
    rules = _plain_rules(rule)
    walls: list[tuple[datetime, bool]] = []  # (nominal time firing here, moved by a gap)
    repeated = False
    second = timedelta(seconds=1)
    for one in rules:
        tz = _zone_of(one)
        if tz is None:
            continue
        moment = instant.astimezone(tz)
        local = moment.replace(tzinfo=None)
        if one.fixed:
            change = transitions(tz.key, instant - second, instant)
            if change and change[0].at == instant:
                walls += [(w, True) for w in _walls(one, *change[0].skipped)]
            walls += [(w, False) for w in _walls(one, local, local + second)]
        elif moment.fold == 1 and len(all_instants(local, tz)) == 2:
            repeated = True
    if any(moved for _, moved in walls):
        return "merged" if len({w for w, _ in walls}) > 1 else "moved"
    return "repeated" if repeated else None
