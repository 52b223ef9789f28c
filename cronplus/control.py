"""The control socket: one method table shared by server, client, --help and the man page.

Newline-delimited JSON over a unix stream socket.  A request is
`{"id": 1, "method": "status", "params": {...}}`; the answer carries the same id
and either `result` or `fault` (a number, a name and a message).  Who is asking
comes from the kernel (SO_PEERCRED, or LOCAL_PEERCRED on macOS), never from the
request.  A client that is slow, sends too much or sends garbage gets a fault or
is disconnected; it can never stall the daemon's loop.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import asyncio

MAX_REQUEST = 64 * 1024  # bytes in one request line
READ_TIMEOUT = 10.0  # seconds a client may take to send a whole request
WRITE_TIMEOUT = 10.0  # seconds a client may take to read an answer
MAX_CONNECTIONS = 64


class Access(enum.Enum):
    ANYONE = "anyone"  # answers are limited to the caller's own jobs
    JOB_OWNER = "job owner"  # root, the daemon's user, or the user the job runs as
    ADMIN = "admin"  # root or the daemon's own user


class FaultCode(enum.IntEnum):
    BAD_REQUEST = 1
    REQUEST_TOO_LARGE = 2
    UNKNOWN_METHOD = 3
    BAD_ARGUMENTS = 4
    NOT_ALLOWED = 5
    NO_SUCH_JOB = 6
    NO_SUCH_RUN = 7
    NOTHING_TO_RETRY = 8
    CONFIG_REJECTED = 9
    STOPPING = 10
    TOO_MANY_CONNECTIONS = 11
    INTERNAL = 99


class Fault(Exception):
    def __init__(self, code: FaultCode, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        fault: dict[str, Any] = {
            "code": int(self.code),
            "name": self.code.name,
            "message": self.message,
        }
        if self.data is not None:
            fault["data"] = self.data
        return fault


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    params: tuple[Param, ...]
    access: Access
    help: str
    reads: bool = True  # answerable from the history file when the daemon is down


JOB = Param("job", str, True, "a job name")
METHODS: tuple[Method, ...] = (
    Method("version", (), Access.ANYONE, "the daemon's version, pid, config and start time"),
    Method(
        "health",
        (),
        Access.ANYONE,
        "whether the daemon writes its history, and the last jump of the wall clock",
        reads=False,
    ),
    Method(
        "status",
        (Param("job", str, False, "one job only"),),
        Access.ANYONE,
        "every job you may see: schedule, zone, next run, last outcome, running now",
    ),
    Method(
        "history",
        (
            JOB,
            Param("limit", int, False, "how many runs, newest first (default 20)"),
            Param("failed", bool, False, "only runs that did not succeed"),
        ),
        Access.JOB_OWNER,
        "the runs of a job, newest first",
    ),
    Method(
        "logs",
        (Param("run_id", int, True, "a run id from history"),),
        Access.JOB_OWNER,
        "the captured end of a run's output",
    ),
    Method(
        "next",
        (JOB, Param("count", int, False, "how many (default 5)")),
        Access.JOB_OWNER,
        "the next fire instants of a job",
    ),
    Method("run", (JOB,), Access.JOB_OWNER, "start a job now (trigger: manual)", reads=False),
    Method(
        "retry",
        (JOB, Param("run_id", int, False, "the run to retry (default: the last failed one)")),
        Access.JOB_OWNER,
        "start a new attempt of a failed run now",
        reads=False,
    ),
    Method(
        "pause",
        (Param("job", str, False), Param("all", bool, False, "every job you may act on")),
        Access.JOB_OWNER,
        "stop scheduling a job; running runs go on",
        reads=False,
    ),
    Method(
        "resume",
        (Param("job", str, False), Param("all", bool, False, "every job you may act on")),
        Access.JOB_OWNER,
        "schedule a paused job again",
        reads=False,
    ),
    Method(
        "reload",
        (),
        Access.ADMIN,
        "re-read the config; a rejected file leaves the running config in place",
        reads=False,
    ),
)
METHOD_BY_NAME = {m.name: m for m in METHODS}


@dataclass(frozen=True)
class Caller:
    uid: int
    gid: int
    pid: int
    name: str

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def peer_credentials(sock: socket.socket) -> Caller:
    """Who is at the other end, as the kernel says."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
    else:  # macOS: struct xucred from LOCAL_PEERCRED (SOL_LOCAL = 0, LOCAL_PEERCRED = 1)
        raw = sock.getsockopt(0, 1, struct.calcsize("IIh16I"))
        _, uid, _, gid = struct.unpack("IIh16I", raw)[:4]
        pid = 0
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    return Caller(uid=uid, gid=gid, pid=pid, name=name)


def check_params(method: Method, params: Any) -> dict[str, Any]:
    """The request's params checked against the table; raises Fault."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Fault(FaultCode.BAD_ARGUMENTS, "params must be an object")
    known = {p.name: p for p in method.params}
    for name in params:
        if name not in known:
            raise Fault(FaultCode.BAD_ARGUMENTS, f'{method.name}: unknown argument "{name}"')
    for param in method.params:
        value = params.get(param.name)
        if value is None:
            if param.required:
                raise Fault(FaultCode.BAD_ARGUMENTS, f'{method.name}: "{param.name}" is required')
            continue
        wrong = not isinstance(value, param.kind) or (param.kind is int and isinstance(value, bool))
        if wrong:
            raise Fault(
                FaultCode.BAD_ARGUMENTS,
                f'{method.name}: "{param.name}" must be {param.kind.__name__}, found {value!r}',
            )
    return dict(params)


Handler = Callable[[Caller, Method, dict[str, Any]], Any]


def answer(request_line: bytes, caller: Caller, handler: Handler) -> dict[str, Any]:
    """One request line in, one answer out; every failure becomes a fault."""
    request_id: Any = None
    try:
        try:
            request = json.loads(request_line)
        except (ValueError, UnicodeDecodeError):
            raise Fault(FaultCode.BAD_REQUEST, "not a JSON object") from None
        if not isinstance(request, dict):
            raise Fault(FaultCode.BAD_REQUEST, "not a JSON object")
        request_id = request.get("id")
        name = request.get("method")
        method = METHOD_BY_NAME.get(name) if isinstance(name, str) else None
        if method is None:
            raise Fault(FaultCode.UNKNOWN_METHOD, f"unknown method {name!r}")
        params = check_params(method, request.get("params"))
        return {"id": request_id, "result": handler(caller, method, params)}
    except Fault as fault:
        return {"id": request_id, "fault": fault.as_json()}


class ControlServer:
    def __init__(
        self, path: str, handler: Handler, on_error: Callable[[str, Exception], None]
    ) -> None:
        self.path = path
        self.handler = handler
        self.on_error = on_error
        self.server: Optional[asyncio.AbstractServer] = None
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self, mode: int) -> None:
        """Listen at `path` (mode 0666 for a system daemon, 0600 per user)."""
        import asyncio  # only the daemon serves: cronplusctl never pays for asyncio

        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            if _someone_listens(self.path):
                raise OSError(f"{self.path}: another cronplus is already listening")
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path}: exists and is not a socket")
            os.unlink(self.path)
        self.server = await asyncio.start_unix_server(self._serve, self.path, limit=MAX_REQUEST)
        os.chmod(self.path, mode)

    async def close(self) -> None:

        if self.server is not None:
            self.server.close()
            for task in list(self.connections):
                task.cancel()
            await self.server.wait_closed()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            if len(self.connections) > MAX_CONNECTIONS:
                fault = Fault(FaultCode.TOO_MANY_CONNECTIONS, "too many connections, try again")
                await self._send(writer, {"id": None, "fault": fault.as_json()})
                return
            caller = peer_credentials(writer.get_extra_info("socket"))
            while True:
                line = await self._read_request(reader, writer)
                if line is None:
                    return
                await self._send(writer, answer(line, caller, self._guarded))
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a bug must not take the daemon down with one client
            self.on_error("control connection failed", exc)
        finally:
            self.connections.discard(task)
            writer.close()

    def _guarded(self, caller: Caller, method: Method, params: dict[str, Any]) -> Any:
        try:
            return self.handler(caller, method, params)
        except Fault:
            raise
        except Exception as exc:
            self.on_error(f"control method {method.name} failed", exc)
            raise Fault(FaultCode.INTERNAL, f"internal error: {exc}") from exc

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Optional[bytes]:
        import asyncio

        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            return None  # closed, or half-closed before a whole line
        except asyncio.LimitOverrunError:
            fault = Fault(FaultCode.REQUEST_TOO_LARGE, f"a request is at most {MAX_REQUEST} bytes")
            await self._send(writer, {"id": None, "fault": fault.as_json()})
            return None
        return line

    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        import asyncio

        writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


def _someone_listens(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


class DaemonDown(Exception):
    """Nothing listens on the control socket."""


class Client:
    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout
        self._next_id = 0

    def call(self, method: str, **params: Any) -> Any:
        """Ask the daemon; returns the result or raises Fault, DaemonDown or PermissionError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonDown(self.path) from exc
            self._next_id += 1
            request = {"id": self._next_id, "method": method, "params": params}
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = _read_line(sock)
        finally:
            sock.close()
        message = json.loads(reply)
        if "fault" in message:
            fault = message["fault"]
            raise Fault(FaultCode(fault["code"]), fault["message"], fault.get("data"))
        return message["result"]


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection without answering")
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def describe_methods() -> str:
    """The method table as text, for --help."""
    lines = []
    for method in METHODS:
        args = " ".join(p.name.upper() if p.required else f"[{p.name}]" for p in method.params)
        lines.append(f"  {method.name} {args}".rstrip().ljust(28) + method.help)
    return "\n".join(lines)
