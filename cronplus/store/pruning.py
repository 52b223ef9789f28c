"""Pruning the history in a thread of its own, a bounded slice at a time.

Each finished run asks for its job's old runs to go (`keep_runs`).  Deleting is
done here, on a connection of this thread, in transactions of at most
PRUNE_SLICE rows: lowering `keep_runs` from a million to a hundred deletes its
rows a slice after another, and the loop's own writes wait at most one slice for
the file.  Before each slice the pruner calls `pause` (the loop's gate: it waits
while the loop starts runs).

A slice deletes only finished runs older than the job's `keep`-th newest run, as
the file holds them at that moment: a run written meanwhile is newer than all of
them, so no run that should stay is ever deleted.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Optional

from .records import OPEN_STATES

PRUNE_SLICE = 500  # rows deleted in one transaction
LINGER = 10.0  # seconds the thread waits for more work before it ends (the next request starts one)
BUSY_MS = 100

_DELETE_SLICE = (
    "DELETE FROM runs WHERE id IN ("
    " SELECT id FROM runs WHERE job = ?1 AND state NOT IN (?2, ?3) AND id < ("
    "  SELECT id FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?4)"
    " ORDER BY id LIMIT ?5)"
)


class Pruner:
    def __init__(
        self,
        path: str,
        pause: Callable[[], None] = lambda: None,
        slice_rows: int = PRUNE_SLICE,
    ) -> None:
        self.path = path
        self.pause = pause
        self.slice_rows = slice_rows
        # the last failure, for the store to report on the loop: the thread holds no
        # reference to the daemon, so a store let go is let go with its thread idle
        self.failure: Optional[str] = None
        self._wanted: dict[str, tuple[int, int]] = {}  # job -> (runs to keep, request number)
        self._asked = 0
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def request(self, job: str, keep: int) -> None:
        """Delete `job`'s finished runs beyond the newest `keep`, soon (any thread)."""
        with self._cond:
            if self._closed:
                return
            self._asked += 1
            self._wanted[job] = (keep, self._asked)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prune", daemon=True)
                self._thread.start()
            self._cond.notify()

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is left to delete; False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._wanted and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._wanted) or self._closed, LINGER)
                if self._closed or not self._wanted:
                    self._thread = None  # ended: it holds nothing alive while idle
                    return
                self._busy = True
            try:
                self._drain()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _drain(self) -> None:
        """Slices until nothing is left; the connection is closed when idle (the file
        may be moved aside and made afresh meanwhile)."""
        try:
            quoted = self.path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
            uri = f"file:{quoted}?mode=rw"  # never made here: it exists, or the prune waits
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            while not self._closed:
                with self._cond:
                    wanted = list(self._wanted.items())
                if not wanted:
                    return
                self.pause()
                self._slice(db, wanted)
        except sqlite3.Error as exc:
            self._failed(exc)  # the next finished run of the job asks again
        finally:
            db.close()

    def _slice(self, db: sqlite3.Connection, wanted: list[tuple[str, tuple[int, int]]]) -> None:
        """One transaction: at most `slice_rows` rows, from as many jobs as it takes."""
        left = self.slice_rows
        done = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for job, (keep, asked) in wanted:
                deleted = db.execute(_DELETE_SLICE, (job, *OPEN_STATES, keep - 1, left)).rowcount
                left -= max(0, deleted)
                if left <= 0:
                    break  # maybe more of this job: it stays asked for
                done.append((job, asked))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        with self._cond:
            for job, asked in done:
                if self._wanted[job][1] == asked:  # not asked again meanwhile
                    del self._wanted[job]

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self._wanted.clear()
            self.failure = " ".join(str(exc).split())

    def take_failure(self) -> Optional[str]:
        """The failure since the last asked, if any."""
        with self._cond:
            failure, self.failure = self.failure, None
        return failure
