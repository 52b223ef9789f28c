"""The thread that talks to a remote store, so that the scheduling loop never waits on it.

Requests run in the order they were given, against one connection the thread
owns; each answer goes back to the loop as a callback.  A connection that breaks
is dropped and made again on the next request, no sooner than a backoff that
doubles from half a second to half a minute while the store stays away.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from typing import Any, Callable, Generic, Optional, TypeVar

B = TypeVar("B")
Done = Callable[[Any, Optional[BaseException]], None]

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class StoreThread(Generic[B]):
    def __init__(
        self,
        connect: Callable[[], B],
        close: Callable[[B], None] = lambda _backend: None,
    ) -> None:
        self._connect = connect
        self._close = close
        self.loop: Optional[asyncio.AbstractEventLoop] = None  # answers wait for bind()
        self._early: list[tuple[Done, Any, Optional[BaseException]]] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Optional[tuple[Callable[[B], Any], Done]]] = (
            queue.SimpleQueue()
        )
        self._backend: Optional[B] = None
        self._backoff = FIRST_BACKOFF
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._serve, name="store", daemon=True)
        self._thread.start()

    @property
    def bound(self) -> bool:
        return self.loop is not None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answers go to this loop from now on, and those that came before it ran."""
        with self._lock:
            self.loop = loop
            early, self._early = self._early, []
        for done, result, error in early:
            loop.call_soon(done, result, error)

    def submit(self, work: Callable[[B], Any], done: Done) -> None:
        """Run `work(backend)` in the thread; `done(result, error)` is then called on the loop."""
        self._queue.put((work, done))

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            work, done = item
            try:
                result = work(self._connected())
            except Exception as exc:  # every failure goes back to the loop, which decides
                self._drop()
                self._answer(done, None, exc)
            else:
                self._backoff = FIRST_BACKOFF
                self._answer(done, result, None)
        self._drop()

    def _connected(self) -> B:
        if self._backend is not None:
            return self._backend
        if time.monotonic() < self._retry_at:
            raise ConnectionError("the store is unreachable; trying again shortly")
        try:
            self._backend = self._connect()
        except Exception:
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            raise
        return self._backend

    def _drop(self) -> None:
        if self._backend is not None:
            with contextlib.suppress(Exception):
                self._close(self._backend)
            self._backend = None

    def _answer(self, done: Done, result: Any, error: Optional[BaseException]) -> None:
        with self._lock:
            if self.loop is None:
                self._early.append((done, result, error))
                return
            loop = self.loop
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
            loop.call_soon_threadsafe(done, result, error)
