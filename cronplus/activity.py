"""The latest things that happened to runs and the configuration, numbered, for followers.

A watcher of the loop keeps the newest MAX_EVENTS events in memory, each with a
sequence number.  A follower (the dashboard, `cronplusctl events --follow`) asks
for what came after the last number it saw; an answer says when older events
were dropped in between, so the follower knows to look again from scratch.
Nothing is written anywhere: the history file is the record, this is a feed.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from .clock import iso_utc
from .events import Watcher
from .model import Config, Job
from .store import Run

MAX_EVENTS = 1000


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    what: str  # started, ended, missed, reloaded, rejected
    job: Optional[str]  # None: about the daemon, for everyone
    run_id: Optional[int] = None
    state: Optional[str] = None

    def record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": iso_utc(self.at),
            "what": self.what,
            "job": self.job,
            "run_id": self.run_id,
            "state": self.state,
        }


class Activity(Watcher):
    def __init__(self) -> None:
        self.events: collections.deque[Event] = collections.deque(maxlen=MAX_EVENTS)
        self.seq = 0

    def _add(
        self,
        now: datetime,
        what: str,
        job: Optional[str],
        run: Optional[Run] = None,
    ) -> None:
        self.seq += 1
        run_id, state = (run.id, run.state) if run is not None else (None, None)
        self.events.append(Event(self.seq, now.timestamp(), what, job, run_id, state))

    def after(self, seq: int) -> tuple[int, list[Event], bool]:
        """(the newest number, the events after `seq`, whether none between were lost).

        A number above the newest comes from before a restart of the daemon: lost too.
        """
        events = [e for e in self.events if e.seq > seq]
        oldest = self.events[0].seq if self.events else self.seq + 1
        complete = oldest - 1 <= seq <= self.seq
        return self.seq, events, complete

    def config_applied(self, config: Config, now: datetime) -> None:
        self._add(now, "reloaded", None)

    def reload_rejected(self, problems: Sequence[str], now: datetime) -> None:
        self._add(now, "rejected", None)

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        self._add(now, "started", job.name, run)

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        what = "missed" if run.state == "missed" else "ended"
        self._add(now, what, run.job, run)
