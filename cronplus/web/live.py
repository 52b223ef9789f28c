"""Live updates: one poller of the daemon's event feed for every open page.

While at least one page follows, the dashboard asks the daemon for new events
every POLL seconds (one cheap call, whatever the number of pages) and sends each
page a server-sent `change` event when a run of a job its user may see started or
ended, or the configuration changed (its data names the jobs, `*` for all);
`down` once the daemon is not running (not while it is stopping: it then refuses
the feed but still answers the pages).  Pages then fetch themselves again.  A
comment every KEEPALIVE seconds keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional

POLL = 1.0
KEEPALIVE = 15.0

Poll = Callable[[int], Awaitable[Optional[dict[str, Any]]]]


class Live:
    def __init__(self, poll: Poll, every: float = POLL) -> None:
        self.poll = poll
        self.every = every
        self.followers: set[asyncio.Queue[bytes]] = set()
        self.task: Optional[asyncio.Task[None]] = None
        self.closed = False

    async def follow(self) -> AsyncIterator[bytes]:
        """The events one page receives, until it goes away or the dashboard stops."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
        self.followers.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield b"retry: 3000\n\n"
            while not self.closed:
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield b": still here\n\n"
        finally:
            self.followers.discard(queue)

    def _send(self, event: bytes) -> None:
        for queue in list(self.followers):
            with contextlib.suppress(asyncio.QueueFull):  # a page that does not read: it is behind
                queue.put_nowait(event)

    async def _run(self) -> None:
        seq: Optional[int] = None
        down = False
        while self.followers and not self.closed:
            try:
                answer = await self.poll(seq or 0)
            except Exception:  # a refusal or a hiccup: try again at the next poll
                # not "down": a stopping daemon refuses the feed while it still answers the
                # pages, so a page refreshed now would stay live; down comes when it is gone
                await asyncio.sleep(self.every)
                continue
            if answer is None:
                if not down:
                    self._send(b"event: down\ndata: the daemon is not running\n\n")
                down, seq = True, None
            else:
                if seq is None:  # the first answer, or the daemon is back: just the number
                    if down:
                        self._send(b"event: change\ndata: up\n\n")
                elif answer["events"] or not answer["complete"]:
                    jobs = sorted({e["job"] or "*" for e in answer["events"]})
                    if not answer["complete"]:
                        jobs = ["*"]
                    data = json.dumps({"seq": answer["seq"], "jobs": jobs})
                    self._send(f"event: change\ndata: {data}\n\n".encode())
                down, seq = False, answer["seq"]
            await asyncio.sleep(self.every)

    async def close(self) -> None:
        self.closed = True
        for queue in list(self.followers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(b"")
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
