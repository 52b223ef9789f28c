"""The control socket: one method table shared by server, client, --help and the man page.

Newline-delimited JSON over a unix stream socket.  A request is
`{"id": 1, "method": "status", "params": {...}}`; the answer carries the same id
and either `result` or `fault` (a number, a name and a message).  Who is asking
comes from the kernel (SO_PEERCRED, or LOCAL_PEERCRED on macOS), never from the
request.  A client that is slow, sends too much or sends garbage gets a fault or
is disconnected; it can never stall the daemon's loop.
"""

from __future__ import annotations

import enum
import json
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    pass

MAX_REQUEST = 64 * 1024  # bytes in one request line
READ_TIMEOUT = 10.0  # seconds a client may take to send a whole request
WRITE_TIMEOUT = 10.0  # seconds a client may take to read an answer
MAX_RUNS = 1000  # `history`: runs in one answer
MAX_NEXT = 1000  # `next`: instants in one answer
MAX_WINDOW_RUNS = 10_000  # `runs`: runs of a window of time in one answer
MAX_WINDOW_HOURS = 31 * 24  # `runs`: how far back a window may reach
MAX_RECENT = 50  # `status`: states of each job's latest runs


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
        self.request_id: Any = None

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
    maximum: Optional[int] = None  # for counts a caller chooses: at least 1, at most this


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
        "nodes",
        (),
        Access.ANYONE,
        "the nodes of the cluster: state, lease age, version, runs, config digest",
    ),
    Method(
        "health",
        (),
        Access.ANYONE,
        "whether the daemon writes its history, and the last jump of the wall clock",
        reads=False,
    ),
    Method(
        "status",
        (
            Param("job", str, False, "one job only"),
            Param(
                "recent",
                int,
                False,
                f"also each job's latest runs, newest first (at most {MAX_RECENT})",
                maximum=MAX_RECENT,
            ),
        ),
        Access.ANYONE,
        "every job you may see: schedule, zone, next run, last outcome, running now",
    ),
    Method(
        "runs",
        (
            Param(
                "hours",
                int,
                False,
                f"the window: the last HOURS hours (24; at most {MAX_WINDOW_HOURS})",
                maximum=MAX_WINDOW_HOURS,
            ),
            Param("job", str, False, "one job only"),
            Param(
                "limit",
                int,
                False,
                f"at most this many, the latest (1000; at most {MAX_WINDOW_RUNS})",
                maximum=MAX_WINDOW_RUNS,
            ),
        ),
        Access.ANYONE,
        "the runs of the jobs you may see over the last hours, for a timeline",
    ),
    Method(
        "events",
        (Param("after", int, False, "the number of the last event seen (0: all kept)"),),
        Access.ANYONE,
        "the latest runs started and ended, instants missed and reloads, numbered",
        reads=False,
    ),
    Method(
        "history",
        (
            JOB,
            Param(
                "limit",
                int,
                False,
                f"how many runs, newest first (20; at most {MAX_RUNS})",
                maximum=MAX_RUNS,
            ),
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
        (JOB, Param("count", int, False, f"how many (5; at most {MAX_NEXT})", maximum=MAX_NEXT)),
        Access.JOB_OWNER,
        "the next fire instants of a job",
    ),
    Method(
        "run",
        (JOB, Param("chain", bool, False, "and the jobs after it when it ends, as scheduled")),
        Access.JOB_OWNER,
        "start a job now (trigger: manual)",
        reads=False,
    ),
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
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            raise Fault(
                FaultCode.BAD_ARGUMENTS,
                f'{method.name}: "{param.name}" must be {param.kind.__name__}, found {shown}',
            )
        if param.maximum is not None and not 1 <= value <= param.maximum:
            raise Fault(
                FaultCode.BAD_ARGUMENTS,
                f'{method.name}: "{param.name}" must be from 1 to {param.maximum}, found {value}',
            )
    return dict(params)


Handler = Callable[[Caller, Method, dict[str, Any]], Any]


@dataclass(frozen=True)
class Request:
    id: Any
    method: Method
    params: dict[str, Any]


def parse_request(request_line: bytes) -> Request:
    """A request line checked against the method table; raises Fault (with the id when known)."""
    try:
        request = json.loads(request_line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Fault(FaultCode.BAD_REQUEST, "not a JSON object") from None
    if not isinstance(request, dict):
        raise Fault(FaultCode.BAD_REQUEST, "not a JSON object")
    request_id = request.get("id")
    try:
        name = request.get("method")
        method = METHOD_BY_NAME.get(name) if isinstance(name, str) else None
        if method is None:
            raise Fault(FaultCode.UNKNOWN_METHOD, f"unknown method {name!r}")
        return Request(request_id, method, check_params(method, request.get("params")))
    except Fault as fault:
        fault.request_id = request_id
        raise


def answer(request_line: bytes, caller: Caller, handler: Handler) -> dict[str, Any]:
    """One request line in, one answer out; every failure becomes a fault."""
    try:
        request = parse_request(request_line)
    except Fault as fault:
        return {"id": fault.request_id, "fault": fault.as_json()}
    try:
        return {"id": request.id, "result": handler(caller, request.method, request.params)}
    except Fault as fault:
        return {"id": request.id, "fault": fault.as_json()}


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
        # A blocking connect waits in the kernel while the daemon's backlog is full (a
        # timeout would turn that into EAGAIN at once); SO_SNDTIMEO bounds the wait.
        seconds = int(self.timeout)
        wait = struct.pack("ll", seconds, int((self.timeout - seconds) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, wait)
        try:
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonDown(self.path) from exc
            sock.settimeout(self.timeout)
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
