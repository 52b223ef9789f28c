"""The earliest next run of every job.

The timer never sleeps: the daemon's loop waits on `deadline()`.  Entries are
kept in a heap with lazy deletion, so rescheduling one job out of 10,000 costs
a push, not a sort.  The heap orders epoch seconds, not datetimes: comparing two
instants in different zones asks each for its UTC offset, which made a reload's
10,000 pushes take most of a second.  A reload rescheduling many jobs at once
builds the heap afresh, which also drops the entries it made stale.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, KeysView
from datetime import datetime, timedelta
from typing import Callable, Optional

_Entry = tuple[float, int, str]  # (when it fires, in epoch seconds; generation; job)


class Timer:
    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        # job -> (fires, nominal, generation, fires in epoch seconds)
        self._due: dict[str, tuple[datetime, datetime, int, float]] = {}
        self._generation = 0
        # told (job, when it fires) at each change of a job's entry; None: nothing scheduled
        self.on_change: Optional[Callable[[str, Optional[datetime]], None]] = None
        # told of many changes at once (a reload); else on_change is told of each
        self.on_changes: Optional[Callable[[dict[str, Optional[datetime]]], None]] = None

    def set(self, job: str, nominal: Optional[datetime], delay_seconds: float = 0.0) -> None:
        """Schedule `job` for `nominal` (fired `delay_seconds` later), or unschedule it."""
        if nominal is None:
            self.remove(job)
            return
        fires = nominal + timedelta(seconds=delay_seconds)
        self._generation += 1
        epoch = fires.timestamp()
        self._due[job] = (fires, nominal, self._generation, epoch)
        heapq.heappush(self._heap, (epoch, self._generation, job))
        if self.on_change is not None:
            self.on_change(job, fires)

    def set_many(
        self,
        entries: dict[str, tuple[Optional[datetime], float, float]],
        removed: Iterable[str] = (),
    ) -> None:
        """Schedule each job of `entries` for (nominal, delay_seconds, when it fires in
        epoch seconds), and unschedule `removed`, telling the changes at once."""
        told: dict[str, Optional[datetime]] = {}
        for job in removed:
            if self._due.pop(job, None) is not None:
                told[job] = None
        for job, (nominal, delay_seconds, epoch) in entries.items():
            if nominal is None:
                self._due.pop(job, None)
                told[job] = None
                continue
            at = nominal + timedelta(seconds=delay_seconds) if delay_seconds else nominal
            self._generation += 1
            self._due[job] = (at, nominal, self._generation, epoch)
            told[job] = at
        if len(told) * 8 > len(self._heap):  # cheaper to build afresh than to push each
            self._heap = [(e[3], e[2], job) for job, e in self._due.items()]
            heapq.heapify(self._heap)
        else:
            for job, fires in told.items():
                if fires is not None:
                    entry = self._due[job]
                    heapq.heappush(self._heap, (entry[3], entry[2], job))
        if self.on_changes is not None:
            self.on_changes(told)
        elif self.on_change is not None:
            for job, fires in told.items():
                self.on_change(job, fires)

    def remove(self, job: str) -> None:
        self._due.pop(job, None)
        if self.on_change is not None:
            self.on_change(job, None)

    def entries(self) -> dict[str, tuple[datetime, datetime, int, float]]:
        """A copy of every job's (fires, nominal instant, generation, fires in epoch
        seconds), for another thread."""
        return dict(self._due)

    def scheduled(self) -> KeysView[str]:
        """The jobs with a next instant."""
        return self._due.keys()

    def next_of(self, job: str) -> Optional[datetime]:
        """The nominal instant `job` fires for next."""
        entry = self._due.get(job)
        return entry[1] if entry else None

    def peek(self) -> Optional[tuple[str, datetime]]:
        """(job, nominal instant) of the earliest entry, without removing it."""
        self._drop_stale()
        if not self._heap:
            return None
        job = self._heap[0][2]
        return job, self._due[job][1]

    def deadline(self) -> Optional[datetime]:
        """When the earliest job fires; None when nothing is scheduled."""
        self._drop_stale()
        return self._due[self._heap[0][2]][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[tuple[str, datetime]]:
        """(job, nominal instant) of every job whose time has come, earliest first."""
        out: list[tuple[str, datetime]] = []
        moment = now.timestamp()
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > moment:
                return out
            _, _, job = heapq.heappop(self._heap)
            nominal = self._due.pop(job)[1]
            out.append((job, nominal))  # no change told: the loop sets the next one at once

    def __len__(self) -> int:
        return len(self._due)

    def _drop_stale(self) -> None:
        while self._heap:
            _, generation, job = self._heap[0]
            current = self._due.get(job)
            if current is not None and current[2] == generation:
                return
            heapq.heappop(self._heap)
