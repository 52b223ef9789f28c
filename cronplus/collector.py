"""Python's cyclic garbage collector, run by the loop where it has room.

A collection holds the interpreter, and whichever thread crosses a threshold pays
for it: a worker thread reading a 10,000-job reload, or answering `status`,
triggered full collections of 200 to 400 ms while the loop waited to start a run.
So automatic collection is off in the daemon.  A configuration just applied (tens
of thousands of long-lived objects) is frozen out of the collector's sight at once;
the loop collects the young generation when the room before its next deadline is
long enough for it, and the whole heap, then freezes what survived, when a long
room comes (or, with instants every second, a shorter one after a while).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime

from .events import Watcher
from .model import Config

PER_OBJECT = 2e-6  # seconds a collection takes for each object it looks at, generously
YOUNG = 2000  # new objects before a young collection is worth it
ROOM = 0.02  # never collect with less than this before the next deadline
FULL_EVERY = 300.0  # seconds between whole-heap collections
FULL_ROOM = 0.25  # the room a whole-heap collection waits for...
FULL_LATEST = 3600.0  # ...unless none came for this long: then half of that will do


class Collector(Watcher):
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self.last_full = monotonic()
        self.active = False
        self.enabled = gc.isenabled()

    def start(self) -> None:
        """The loop runs: the collector is its to run from now on."""
        self.active = True
        gc.disable()
        gc.collect()
        gc.freeze()

    def config_applied(self, config: Config, now: datetime) -> None:
        if self.active:
            gc.freeze()  # long-lived: never looked at again by a collection

    def tick(self, room: float) -> None:
        """The loop is about to wait `room` seconds: collect what fits in part of it."""
        if not self.active or room < ROOM:
            return
        now = self.monotonic()
        since = now - self.last_full
        if since >= FULL_EVERY and (room >= FULL_ROOM or (since >= FULL_LATEST and room >= 0.1)):
            gc.collect()
            gc.freeze()  # what survived a whole collection lives long
            self.last_full = now
            return
        young = gc.get_count()[0]
        if young >= YOUNG and young * PER_OBJECT <= room / 2:
            gc.collect(0)

    def stopped(self, now: datetime) -> None:
        if self.active:
            self.active = False
            gc.unfreeze()
            if self.enabled:
                gc.enable()
