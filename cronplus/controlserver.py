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
import functools
import json
import os
import socket
import stat
import threading
import time
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
BACKLOG = 1024  # connections the kernel queues before connect() waits or fails
MAX_RATE = 50  # new connections a second, for one user other than root and the daemon's own
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
    then: Optional[Callable[[Any], Any]] = None  # on the loop, with what `work` read: the answer


class Gate:
    """Worker threads pause at their next slice while the loop starts runs.

    Python threads share one interpreter lock: a worker busy encoding a large
    answer would take it back each time the loop waits on a system call, a
    millisecond at a time, while the loop forks and execs its runs.  The loop
    closes the gate just before an instant is due and opens it when it sleeps
    again; workers check it between slices of their work.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def wait(self) -> None:
        self._open.wait()


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


class ConnectionRate:
    """New connections per user and second: a flood is turned away at once, unread."""

    def __init__(self) -> None:
        self.second = 0
        self.counts: collections.Counter[int] = collections.Counter()

    def allow(self, caller: Caller) -> bool:
        if privileged(caller):
            return True
        second = int(time.monotonic())
        if second != self.second:
            self.second, self.counts = second, collections.Counter()
        self.counts[caller.uid] += 1
        return self.counts[caller.uid] <= MAX_RATE


def _refuse(connection: socket.socket, caller: Caller) -> None:
    """Say why, if the client listens at once, and close: never wait on a refused client."""
    who = "the daemon has" if privileged(caller) else "you have"
    refusal = Fault(FaultCode.TOO_MANY_CONNECTIONS, f"{who} too many connections, try again")
    connection.setblocking(False)
    with contextlib.suppress(OSError):
        connection.send(b"".join(_encode({"id": None, "fault": refusal.as_json()})))
    connection.close()


def privileged(caller: Caller) -> bool:
    return caller.uid in (0, os.geteuid())


class ControlServer:
    def __init__(
        self,
        path: str,
        handler: Handler,
        on_error: Callable[[str, Exception], None],
        gate: Optional[Gate] = None,
    ) -> None:
        self.path = path
        self.handler = handler
        self.on_error = on_error
        self.listener: Optional[socket.socket] = None
        self.connections: set[asyncio.Task[None]] = set()
        self.admission = Admission()
        self.rate = ConnectionRate()
        self.gate = gate or Gate()
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
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, mode)
        listener.listen(BACKLOG)
        listener.setblocking(False)
        self.listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    async def close(self) -> None:
        if self.listener is not None:
            asyncio.get_running_loop().remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for task in list(self.connections):
            task.cancel()
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._others.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self) -> None:
        """Take what waits in the backlog; a refused connection costs an accept and a close.

        Nothing is read from a connection before its user is known and admitted, so
        a flood of connections is turned away as fast as the kernel hands them over.
        """
        assert self.listener is not None
        for _ in range(BACKLOG):
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: refuse until some are closed
                self.on_error("control socket accept failed", exc)
                return
            try:
                caller = peer_credentials(connection)
            except OSError:
                connection.close()
                continue
            if not self.rate.allow(caller) or not self.admission.admit(caller):
                _refuse(connection, caller)
                continue
            connection.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._serve(connection, caller))
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)

    async def _serve(self, connection: socket.socket, caller: Caller) -> None:
        writer: Optional[asyncio.StreamWriter] = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection, limit=MAX_REQUEST)
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
            self.admission.release(caller)
            if writer is not None:
                writer.close()
            else:
                connection.close()

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
                if result.then is not None:  # read away from the loop, then act on it
                    read = await loop.run_in_executor(workers, result.work)
                    return _encode({"id": request.id, "result": result.then(read)})
                work = functools.partial(_offloaded, request.id, result, self.gate)
                return await loop.run_in_executor(workers, work)
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


def _offloaded(request_id: Any, offload: Offload, gate: Gate) -> Iterator[bytes]:
    """Run in a worker thread: compute the answer and encode it, large text in slices."""
    gate.wait()
    try:
        result = offload.work()
    except Fault as fault:
        return _encode({"id": request_id, "fault": fault.as_json()})
    except Exception as exc:  # the history could not be read: say so, keep the connection
        unread = Fault(FaultCode.INTERNAL, f"cannot read the history: {' '.join(str(exc).split())}")
        return _encode({"id": request_id, "fault": unread.as_json()})
    if offload.large is None or not isinstance(result, dict):
        return iter([b"".join(_encoded_in_slices(request_id, result, gate))])
    raw = result.pop(offload.large, None) or b""
    head = json.dumps({"id": request_id, "result": result}, separators=(",", ":"))
    assert head.endswith("}}")
    body = head[:-2] + ("," if result else "") + json.dumps(offload.large) + ':"'
    pieces = [body.encode(), *_text_slices(raw, gate), b'"}}\n']
    return iter(pieces)


ENCODE_SLICE = 100  # list items encoded between two looks at the gate


def _encoded_in_slices(request_id: Any, result: Any, gate: Gate) -> Iterator[bytes]:
    """The answer as one JSON line; a long list (every job's status) is encoded a
    slice of items at a time, so no single encoding step holds the interpreter long."""
    if not isinstance(result, list) or len(result) <= ENCODE_SLICE:
        yield from _encode({"id": request_id, "result": result})
        return
    head = json.dumps({"id": request_id, "result": None}, separators=(",", ":"))
    assert head.endswith("null}")
    yield head[: -len("null}")].encode() + b"["
    for start in range(0, len(result), ENCODE_SLICE):
        gate.wait()
        items = json.dumps(result[start : start + ENCODE_SLICE], separators=(",", ":"))
        yield ("," if start else "").encode() + items[1:-1].encode()
    yield b"]}\n"


def _text_slices(raw: bytes, gate: Gate, size: int = 256 * 1024) -> Iterator[bytes]:
    """`raw` as the inside of a JSON string, decoded as UTF-8 with replacement, in slices."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    view = memoryview(raw)
    for start in range(0, len(raw), size):
        gate.wait()
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
