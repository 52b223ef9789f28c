"""The daemon's end of the control socket: it can never be used to stall the daemon.

Who is asking comes from the kernel.  Connections are limited per user, with room
kept for root and the daemon's own user, so one user holding or recycling
connections cannot lock an administrator out.  A slow, silent or greedy client
only ever waits on itself: requests have a deadline, answers are written in
slices, and any answer that takes real work (reading many runs, a large output,
many next instants, every job's status) is computed in a worker thread from a
snapshot the loop hands it, never on the scheduling loop.  Unprivileged callers
have a worker of their own, so their heavy requests queue behind each other, not
behind root's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .control import (
    MAX_REQUEST,
    READ_TIMEOUT,
    WRITE_TIMEOUT,
    Caller,
    Fault,
    FaultCode,
    Handler,
    parse_request,
    peer_credentials,
)

MAX_CONNECTIONS = 64  # at once, for everyone together
MAX_PER_USER = 8  # at once, for one user other than root and the daemon's own
RESERVED = 16  # of MAX_CONNECTIONS, for root and the daemon's own user only
SEND_SLICE = 1 << 20  # bytes written before waiting for the client to read


@dataclass(frozen=True)
class Offload:
    """An answer to compute in a worker thread; `work` must not touch the daemon's state.

    `large` names a bytes field of the result to be sent as text in slices (a run's
    output), so no single encoding step holds the interpreter for long.
    """

    work: Callable[[], Any]
    large: Optional[str] = None


class Admission:
    """Who may open another connection now."""

    def __init__(self) -> None:
        self.by_user: collections.Counter[int] = collections.Counter()

    def admit(self, caller: Caller) -> bool:
        total = sum(self.by_user.values())
        if privileged(caller):
            allowed = total < MAX_CONNECTIONS
        else:
            others = total - sum(n for uid, n in self.by_user.items() if uid in (0, os.geteuid()))
            allowed = (
                self.by_user[caller.uid] < MAX_PER_USER
                and others < MAX_CONNECTIONS - RESERVED
                and total < MAX_CONNECTIONS
            )
        if allowed:
            self.by_user[caller.uid] += 1
        return allowed

    def release(self, caller: Caller) -> None:
        self.by_user[caller.uid] -= 1
        if self.by_user[caller.uid] <= 0:
            del self.by_user[caller.uid]


def privileged(caller: Caller) -> bool:
    return caller.uid in (0, os.geteuid())


class ControlServer:
    def __init__(
        self, path: str, handler: Handler, on_error: Callable[[str, Exception], None]
    ) -> None:
        self.path = path
        self.handler = handler
        self.on_error = on_error
        self.server: Optional[asyncio.AbstractServer] = None
        self.connections: set[asyncio.Task[None]] = set()
        self.admission = Admission()
        self._workers = ThreadPoolExecutor(2, "control")
        self._others = ThreadPoolExecutor(1, "control-users")

    async def start(self, mode: int) -> None:
        """Listen at `path` (mode 0666 for a system daemon, 0600 per user)."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            if _someone_listens(self.path):
                raise OSError(f"{self.path}: another cronplus is already listening")
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path}: exists and is not a socket")
            os.unlink(self.path)
        self.server = await asyncio.start_unix_server(
            self._serve, self.path, limit=MAX_REQUEST, backlog=MAX_CONNECTIONS * 2
        )
        os.chmod(self.path, mode)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.connections):
                task.cancel()
            await self.server.wait_closed()
            self.server = None
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._others.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        caller: Optional[Caller] = None
        try:
            caller = peer_credentials(writer.get_extra_info("socket"))
            if not self.admission.admit(caller):
                who = "the daemon has" if privileged(caller) else "you have"
                caller = None  # not admitted: nothing to release
                refusal = Fault(
                    FaultCode.TOO_MANY_CONNECTIONS, f"{who} too many connections, try again"
                )
                await self._send(writer, _encode({"id": None, "fault": refusal.as_json()}))
                return
            self.connections.add(task)
            while True:
                line = await self._read_request(reader, writer)
                if line is None:
                    return
                await self._send(writer, await self._answer(line, caller))
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a bug must not take the daemon down with one client
            self.on_error("control connection failed", exc)
        finally:
            self.connections.discard(task)
            if caller is not None:
                self.admission.release(caller)
            writer.close()

    async def _answer(self, line: bytes, caller: Caller) -> Iterator[bytes]:
        try:
            request = parse_request(line)
        except Fault as fault:
            return _encode({"id": fault.request_id, "fault": fault.as_json()})
        try:
            result = self.handler(caller, request.method, request.params)
            if isinstance(result, Offload):
                workers = self._workers if privileged(caller) else self._others
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(workers, _offloaded, request.id, result)
            return _encode({"id": request.id, "result": result})
        except Fault as fault:
            return _encode({"id": request.id, "fault": fault.as_json()})
        except Exception as exc:
            self.on_error(f"control method {request.method.name} failed", exc)
            internal = Fault(FaultCode.INTERNAL, f"internal error: {exc}")
            return _encode({"id": request.id, "fault": internal.as_json()})

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Optional[bytes]:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            return None  # closed, or half-closed before a whole line
        except asyncio.LimitOverrunError:
            fault = Fault(FaultCode.REQUEST_TOO_LARGE, f"a request is at most {MAX_REQUEST} bytes")
            await self._send(writer, _encode({"id": None, "fault": fault.as_json()}))
            return None
        return line

    async def _send(self, writer: asyncio.StreamWriter, pieces: Iterator[bytes]) -> None:
        """Write an answer a slice at a time; a client that does not read loses its connection."""
        pending: list[bytes] = []
        size = 0
        for piece in pieces:
            pending.append(piece)
            size += len(piece)
            if size >= SEND_SLICE:
                writer.write(b"".join(pending))
                pending, size = [], 0
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        writer.write(b"".join(pending))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


def _encode(message: dict[str, Any]) -> Iterator[bytes]:
    yield json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _offloaded(request_id: Any, offload: Offload) -> Iterator[bytes]:
    """Run in a worker thread: compute the answer and encode it, large text in slices."""
    try:
        result = offload.work()
    except Fault as fault:
        return _encode({"id": request_id, "fault": fault.as_json()})
    if offload.large is None or not isinstance(result, dict):
        return iter([b"".join(_encode({"id": request_id, "result": result}))])
    raw = result.pop(offload.large, None) or b""
    head = json.dumps({"id": request_id, "result": result}, separators=(",", ":"))
    assert head.endswith("}}")
    body = head[:-2] + ("," if result else "") + json.dumps(offload.large) + ':"'
    pieces = [body.encode(), *_text_slices(raw), b'"}}\n']
    return iter(pieces)


def _text_slices(raw: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """`raw` as the inside of a JSON string, decoded as UTF-8 with replacement, in slices."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    view = memoryview(raw)
    for start in range(0, len(raw), size):
        last = start + size >= len(raw)
        text = decoder.decode(view[start : start + size], final=last)
        yield json.dumps(text)[1:-1].encode()


def _someone_listens(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
