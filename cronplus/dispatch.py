"""The caps: global pool, named pools, per-job overlap policy and the wait queue.

Pure decisions; nothing here starts or stops a process.  The daemon submits a
run, acts on the decision, and asks `startable()` which waiting runs now fit.
"""

from __future__ import annotations

import enum
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from .model import Job, Overlap

MAX_WAITING_PER_JOB = 100


class Decision(enum.Enum):
    WAIT = "wait"  # queued; start it when startable() returns it
    SKIP = "skip"  # record it skipped, with `reason`
    REPLACE = "replace"  # queued; stop `to_stop` first


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str = ""
    to_stop: tuple[int, ...] = ()


@dataclass(order=True)
class Waiting:
    sort_key: tuple[int, float, int]
    run_id: int = field(compare=False)
    job: Job = field(compare=False)
    due: float = field(compare=False)


class Dispatcher:
    def __init__(self, max_workers: int, pools: Mapping[str, int]) -> None:
        self.max_workers = max_workers
        self.pools = dict(pools)
        self.running: dict[int, Job] = {}
        self.waiting: list[Waiting] = []
        self._running_of: Counter[str] = Counter()  # job name -> runs running
        self._waiting_of: Counter[str] = Counter()  # job name -> runs waiting
        self._sequence = itertools.count()

    def reconfigure(self, max_workers: int, pools: Mapping[str, int]) -> None:
        """New caps apply to runs started from now on; nothing running is stopped."""
        self.max_workers = max_workers
        self.pools = dict(pools)

    def submit(self, run_id: int, job: Job, due: float) -> Verdict:
        running_count, waiting = self._running_of[job.name], self._waiting_of[job.name]
        full = running_count + waiting >= job.max_concurrent
        running = [rid for rid, j in self.running.items() if j.name == job.name] if full else []
        verdict = Verdict(Decision.WAIT)
        if full and job.overlap is Overlap.SKIP:
            busy = "running" if running else "waiting to run"
            return Verdict(
                Decision.SKIP, f"overlap: {len(running) + waiting} run(s) already {busy}"
            )
        if full and job.overlap is Overlap.QUEUE and waiting >= MAX_WAITING_PER_JOB:
            return Verdict(Decision.SKIP, f"overlap: {waiting} run(s) already queued")
        if full and job.overlap is Overlap.REPLACE:
            self.waiting = [w for w in self.waiting if w.job.name != job.name]
            self._waiting_of[job.name] = 0
            verdict = Verdict(Decision.REPLACE, "replaced by a newer run", tuple(running))
        key = (-job.priority, due, next(self._sequence))
        self.waiting.append(Waiting(key, run_id, job, due))
        self._waiting_of[job.name] += 1
        return verdict

    def startable(self) -> list[Waiting]:
        """Waiting runs that fit every cap now, moved to running; by priority, then due time."""
        started: list[Waiting] = []
        self.waiting.sort()
        per_job = Counter(j.name for j in self.running.values())
        per_pool = Counter(j.pool for j in self.running.values() if j.pool)
        keep: list[Waiting] = []
        for item in self.waiting:
            job = item.job
            fits = (
                len(self.running) < self.max_workers
                and per_job[job.name] < job.max_concurrent
                and (job.pool is None or per_pool[job.pool] < self.pools.get(job.pool, 1))
            )
            if not fits:
                keep.append(item)
                continue
            self.running[item.run_id] = job
            self._running_of[job.name] += 1
            self._waiting_of[job.name] -= 1
            per_job[job.name] += 1
            if job.pool:
                per_pool[job.pool] += 1
            started.append(item)
        self.waiting = keep
        return started

    def finished(self, run_id: int) -> None:
        job = self.running.pop(run_id, None)
        if job is not None:
            self._running_of[job.name] -= 1

    def drop_waiting(self) -> list[Waiting]:
        """Empty the queue, for a stopping daemon; returns what was waiting."""
        dropped, self.waiting = self.waiting, []
        self._waiting_of.clear()
        return dropped


def retry_delay(job: Job, attempt: int, outcome: str) -> Optional[float]:
    """Seconds before the next attempt of a run that ended with `outcome`, or None: no retry.

    Attempt 1 is the first run; `retries: 3` allows attempts 2, 3 and 4.  The wait
    starts at `retry_backoff` and doubles each attempt, up to `retry_backoff_max`.
    """
    if outcome not in job.retry_on or attempt > job.retries:
        return None
    return float(min(job.retry_backoff * 2 ** (attempt - 1), job.retry_backoff_max))
