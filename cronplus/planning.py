"""Which instant each job fires for next, and how a reload or a clock step moves it.

Every job's next instant is the first one with no row yet: the first after its
mark (the last instant accounted for), so that an instant missed while the
daemon was down, stalled or jumped over is still found and accounted for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from .model import Config, Job
from .schedule import EveryRule, Rule, build_rule, first_unaccounted, stable_jitter
from .store import RunStore
from .timer import Timer


def same_schedule(old: Job, new: Job) -> bool:
    return (old.schedule, old.timezone, old.jitter) == (new.schedule, new.timezone, new.jitter)


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
