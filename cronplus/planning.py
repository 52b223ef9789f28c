"""Which instant each job fires for next, and how a reload or a clock step moves it.

Every job's next instant is the first one with no row yet: the first after its
mark (the last instant accounted for), so that an instant missed while the
daemon was down, stalled or jumped over is still found and accounted for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from .model import Config, Job
from .schedule import (
    EveryRule,
    Rule,
    build_rule,
    cron_rule,
    first_unaccounted,
    stable_jitter,
)
from .store import RunStore
from .timer import Timer


def same_schedule(old: Job, new: Job) -> bool:
    return (old.schedule, old.timezone, old.jitter) == (new.schedule, new.timezone, new.jitter)


def forget_stale_rules(in_use: int) -> None:
    """The shared rules are kept for reloads to find again; when more than twice as many
    are kept as the configuration uses (schedules changed reload after reload), they
    are let go: the configuration's own stay, held by the planner."""
    if cron_rule.cache_info().currsize > 2 * in_use + 1024:
        cron_rule.cache_clear()


@dataclass(frozen=True)
class Plan:
    """A configuration with its rules and first instants, ready to swap in at once."""

    config: Config
    base: Optional[Config]  # the configuration it was compared with
    rules: dict[str, Rule]
    changed: frozenset[str]  # jobs it adds or reschedules
    # theirs: (instant after `asked`, jitter, when it fires in epoch seconds)
    first: dict[str, tuple[Optional[datetime], float, float]]
    asked: datetime


def prepare(
    new: Config,
    base: Optional[Config],
    rules: Mapping[str, Rule],
    asked: datetime,
    pause: Optional[Callable[[], None]] = None,
) -> Plan:
    """What swapping `new` in for `base` takes; pure work, fit for a thread of its own.

    Unchanged jobs keep their rules (`rules` is only read); jobs added or rescheduled
    get a rule and their first instant after `asked`, as if the reload were then.
    """
    built: dict[str, Rule] = {}
    changed = []
    first: dict[str, tuple[Optional[datetime], float, float]] = {}
    mark = asked.timestamp()
    for name, job in new.jobs.items():
        if pause is not None:
            pause()
        old = base.jobs.get(name) if base is not None else None
        kept = rules.get(name) if old is not None and same_schedule(old, job) else None
        if kept is not None:
            built[name] = kept
            continue
        built[name] = rule = build_rule(job.schedule, job.timezone)
        changed.append(name)
        instant = first_unaccounted(rule, asked, mark)
        delay = stable_jitter(name, job.jitter)
        first[name] = (instant, delay, instant.timestamp() + delay if instant else 0.0)
    return Plan(new, base, built, frozenset(changed), first, asked)


class Planner:
    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self.timer = Timer()

    def changed(self, old: Config, new: Config) -> list[str]:
        """Jobs of `new` whose schedule differs from `old`, or that `old` did not have."""
        return [
            name
            for name, job in new.jobs.items()
            if name not in old.jobs or not same_schedule(old.jobs[name], job)
        ]

    def apply(self, old: Optional[Config], new: Config, store: RunStore, now: datetime) -> None:
        """Take the schedules of `new`; unchanged jobs keep their next instant.

        A job a reload adds or reschedules starts from the reload: its mark moves to
        `now`, so instants of the new schedule before the reload are not taken as missed.
        """
        states = store.job_states()
        changed = set(self.changed(old, new)) if old is not None else set()
        rules: dict[str, Rule] = {}
        for name, job in new.jobs.items():
            keep = old is not None and name not in changed and name in self.rules
            rules[name] = self.rules[name] if keep else build_rule(job.schedule, job.timezone)
            if keep and self.timer.next_of(name) is not None:
                continue
            if name in changed:
                store.set_last_scheduled(name, now.timestamp())
                mark: Optional[float] = now.timestamp()
            else:
                state = states.get(name)
                mark = state.last_scheduled if state else None
            self.schedule(job, rules[name], now, mark)
        for name in set(self.rules) - set(new.jobs):
            self.timer.remove(name)
        self.rules = rules
        forget_stale_rules(len(self.rules))

    def swap(self, plan: Plan, store: RunStore, now: datetime) -> None:
        """Take the schedules of a prepared plan, on the loop, in O(jobs changed).

        As `apply`: unchanged jobs keep their next instant; jobs added or rescheduled
        start from the swap (their mark moves to `now`), so an instant of theirs
        between the reload's request and its swap is not run.
        """
        entries = dict(plan.first)
        moment = now.timestamp()
        for name, (instant, delay, fires) in plan.first.items():
            rule = plan.rules[name]
            # an instant that came before the swap, or one counted from the request (every:)
            if instant is not None and (fires - delay <= moment or isinstance(rule, EveryRule)):
                later = first_unaccounted(rule, now, moment)
                entries[name] = (later, delay, later.timestamp() + delay if later else 0.0)
        store.set_marks(plan.changed, now.timestamp())
        removed = self.rules.keys() - plan.config.jobs.keys()
        self.timer.set_many(entries, removed)
        unplanned = plan.config.jobs.keys() - plan.changed - self.timer.scheduled()
        if unplanned:  # no next instant (an `at:` past): asked again, from the job's mark
            states = store.job_states()
            for name in unplanned:
                state = states.get(name)
                mark = state.last_scheduled if state else None
                self.schedule(plan.config.jobs[name], plan.rules[name], now, mark)
        self.rules = plan.rules
        forget_stale_rules(len(self.rules))

    def schedule(self, job: Job, rule: Rule, now: datetime, mark: Optional[float]) -> None:
        """Set the job's timer to its first instant after `mark`."""
        instant = first_unaccounted(rule, now, mark)
        self.timer.set(job.name, instant, stable_jitter(job.name, job.jitter))

    def after_step_back(
        self, config: Config, store: RunStore, now: datetime, stepped: float
    ) -> None:
        """The wall clock went back: no job waits for its old time to come again.

        Interval-like jobs go on from the new time; `every:` jobs keep their real
        cadence (their mark moves back with the clock); fixed-time jobs do not run a
        nominal time they already ran.
        """
        states = store.job_states()
        for name, job in config.jobs.items():
            rule = self.rules[name]
            state = states.get(name)
            mark = state.last_scheduled if state else None
            if mark is not None and isinstance(rule, EveryRule):
                mark += stepped
                store.set_last_scheduled(name, mark)
            self.schedule(job, rule, now, mark)
