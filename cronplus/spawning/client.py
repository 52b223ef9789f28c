"""The daemon's side of the spawner: start it, send it runs, ask it for exit statuses."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import itertools
import marshal
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional, Union

from ..containment.subreaper import set_subreaper

RECEIVE = 4096
ANSWER_WITHIN = 30.0  # seconds: a spawner silent for this long is stuck, and stopped
RESTART_PAUSE = 5.0  # seconds between two starts of a spawner that keeps dying


@dataclass(frozen=True)
class Request:
    """One run, prepared by the daemon: everything the spawner needs to start it."""

    run_id: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: Optional[int]
    gid: Optional[int]
    groups: Optional[list[int]]
    stdin_pipe: bool
    join: Optional[str]  # the run's cgroup file the spawner joins for the fork

    def fields(self, home: Optional[str]) -> tuple[Any, ...]:
        """As the spawner's `spawn` takes them, after the token; `home`: the file that
        spawner joins again right after the fork."""
        return (
            *(self.argv, self.env, self.cwd, self.uid, self.gid, self.groups),
            *(self.stdin_pipe, self.join, home),
        )


class Child:
    """A run's leader started by the spawner, as the runner uses a Popen."""

    __slots__ = ("pid", "returncode", "stdin", "stdout")

    def __init__(self, pid: int, stdout: BinaryIO, stdin: Optional[BinaryIO]) -> None:
        self.pid = pid
        self.stdout: Optional[BinaryIO] = stdout
        self.stdin: Optional[BinaryIO] = stdin
        self.returncode: Optional[int] = None


@dataclass(frozen=True)
class Usage:
    ru_maxrss: int  # KiB, as getrusage gives it


Reaped = Callable[[int, Optional[int], Optional[Usage]], None]  # (pid, status, usage)


class Spawner:
    """A `cronplus.spawning.server` process beside the daemon; see the package's docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, warn: Callable[[str], None]) -> None:
        self.loop = loop
        self.warn = warn
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.channel: Optional[socket.socket] = None
        self.reaping: dict[int, Reaped] = {}
        self._last_start = -RESTART_PAUSE
        self._outbox: collections.deque[bytes] = collections.deque()
        self._writing = False  # the loop waits for room to send the outbox

    @property
    def alive(self) -> bool:
        return self.channel is not None

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    def ensure(self) -> bool:
        """Running, or started now; False while one that died is not due to start again."""
        if self.channel is not None:
            return True
        now = time.monotonic()
        if now - self._last_start < RESTART_PAUSE:
            return False
        self._last_start = now
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            set_subreaper(True)  # its runs come to the daemon if it dies
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cronplus.spawning.server", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=_server_environment(),
                close_fds=True,
            )
        except OSError as exc:
            mine.close()
            self.warn(f"the spawner could not start: {exc.strerror or exc}; runs start in-process")
            return False
        finally:
            theirs.close()
        self.channel = mine
        self.loop.add_reader(mine.fileno(), self._answers)
        return True

    def send_queued(self, queue: collections.deque[bytes]) -> None:
        """Send what the socket takes now from `queue`; OSError when the spawner is gone."""
        channel = self.channel
        if channel is None:
            raise ConnectionError("the spawner ended")
        channel.setblocking(False)
        while queue:
            try:
                channel.send(queue[0])
            except BlockingIOError:
                return
            queue.popleft()

    def receive(self, answers: dict[int, Union[Child, OSError]], expected: set[int]) -> None:
        """Take the answers that are there; OSError when the spawner is gone."""
        channel = self.channel
        if channel is None:
            raise ConnectionError("the spawner ended")
        channel.setblocking(False)
        self._receive(channel, answers, expected)

    def _receive(
        self,
        channel: socket.socket,
        answers: dict[int, Union[Child, OSError]],
        expected: set[int],
    ) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(channel, RECEIVE, 2, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            if not data:
                raise ConnectionError("the spawner ended")
            answer = marshal.loads(data)
            if answer[0] == "reaped":
                self._reaped(answer)
            elif answer[1] in expected:
                expected.discard(answer[1])
                answers[answer[1]] = _child(answer, fds)
            else:
                for fd in fds:
                    os.close(fd)

    def reap(self, pid: int, then: Reaped) -> bool:
        """Ask for the exit status of a leader that has exited; False without a spawner.

        Never blocks: what the socket does not take now goes when it has room (the
        spawner may be busy sending answers the daemon has not read yet).
        """
        if self.channel is None:
            return False
        self.reaping[pid] = then
        self._outbox.append(marshal.dumps(("reap", pid)))
        if len(self._outbox) == 1:
            self._flush()
        return True

    def _flush(self) -> None:
        channel = self.channel
        if channel is None:
            return
        channel.setblocking(False)
        try:
            while self._outbox:
                channel.send(self._outbox[0])
                self._outbox.popleft()
        except BlockingIOError:
            if not self._writing:
                self.loop.add_writer(channel.fileno(), self._flush)
                self._writing = True
            return
        except OSError:
            self._died()
            return
        if self._writing:
            self.loop.remove_writer(channel.fileno())
            self._writing = False

    def _answers(self) -> None:
        """Answers that arrive between bursts: exit statuses, or the spawner's end."""
        channel = self.channel
        if channel is None:
            return
        channel.setblocking(False)
        try:
            self._receive(channel, {}, set())
        except OSError:
            self._died()

    def _reaped(self, answer: tuple[Any, ...]) -> None:
        _, pid, status, maxrss = answer
        then = self.reaping.pop(pid, None)
        if then is not None:  # from the loop, never from inside a burst's start
            self.loop.call_soon(then, pid, status, Usage(maxrss) if status is not None else None)

    def _died(self) -> None:
        """The spawner ended: wait for it, so that its runs are ours before they are reaped."""
        channel, self.channel = self.channel, None
        if channel is None:
            return
        self.loop.remove_reader(channel.fileno())
        if self._writing:
            self.loop.remove_writer(channel.fileno())
            self._writing = False
        self._outbox.clear()
        channel.close()
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()  # after this the kernel has given its children to the daemon
        self.warn("the spawner ended; its runs are the daemon's now, new runs start in-process")
        waiting, self.reaping = self.reaping, {}
        for pid, then in waiting.items():  # asked, never answered: the daemon reaps it itself
            self.loop.call_soon(then, pid, None, None)

    def close(self) -> None:
        channel, self.channel = self.channel, None
        if channel is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(channel.fileno())
                self.loop.remove_writer(channel.fileno())
            channel.close()  # the spawner reads the end and leaves; runs go on
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        set_subreaper(False)


def _child(answer: tuple[Any, ...], fds: list[int]) -> Union[Child, OSError]:
    if answer[0] == "failed":
        for fd in fds:
            os.close(fd)
        _, _, number, text, filename = answer
        return (
            OSError(number or errno.EIO, text, filename)
            if filename
            else OSError(number or errno.EIO, text)
        )
    stdout = os.fdopen(fds[0], "rb", buffering=0)
    stdin = os.fdopen(fds[1], "wb", buffering=0) if len(fds) > 1 else None
    return Child(answer[2], stdout, stdin)


def _server_environment() -> dict[str, str]:
    """The daemon's environment, with the package importable as the daemon imports it."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_root + (os.pathsep + path if path else "")
    return env


UNSENT = "unsent"  # an answer: the request never reached a spawner; nothing of it started
Answer = Union[Child, OSError, None, str]
WINDOW = 32  # requests prepared ahead of what the spawners have taken
STEP = 4  # requests prepared between two looks at the spawners
MAX_REQUEST = 100_000  # bytes: a datagram the socket pair always takes (and the spawner reads)


class Spawners:
    """One or more spawners; a burst is dealt among them, each run's status asked of its own."""

    def __init__(self, members: list[Spawner]) -> None:
        self.members = members
        self._tokens = itertools.count(1)

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members if m.alive and m.pid is not None]

    def ensure(self) -> list[Spawner]:
        """The members that are up (a dead one starts again after its pause)."""
        return [m for m in self.members if m.ensure()]

    def start_all(
        self, requests: Iterator[Optional[Request]], home_of: Callable[[int], str]
    ) -> list[tuple[Answer, Spawner]]:
        """Start each request (None: the caller could not prepare it), dealt in turn to the
        spawners that are up, while the next ones are prepared; `home_of(pid)` is the
        cgroup file a spawner joins again after a fork in a run's group.

        Answers in request order, with the spawner asked: a Child, the OSError that
        stopped it, None when that spawner died before it answered (it may have
        started), or UNSENT when no spawner took it (nothing of it started).
        """
        live = self.ensure()
        fallback = live[0] if live else self.members[0]
        owner: list[tuple[int, Spawner]] = []  # per request: (its token, 0 if unprepared)
        queues = {m: collections.deque[bytes]() for m in live}
        pending: dict[Spawner, set[int]] = {m: set() for m in live}  # sent or queued
        answers: dict[int, Union[Child, OSError]] = {}
        unsent: set[int] = set()
        exhausted, turn = False, 0

        def lost(spawner: Spawner) -> None:
            live.remove(spawner)
            unsent.update(_tokens_of(queues.pop(spawner)))
            spawner._died()

        while True:
            for _ in range(STEP):  # a few at a time: the first go out at once
                if exhausted or sum(len(q) for q in queues.values()) >= WINDOW:
                    break
                request = next(requests, UNSENT)
                if isinstance(request, str):
                    exhausted = True
                elif request is None:
                    owner.append((0, fallback))
                else:
                    token = next(self._tokens)
                    if not live:
                        unsent.add(token)
                        owner.append((token, fallback))
                        continue
                    spawner = live[turn % len(live)]
                    turn += 1
                    try:
                        home = home_of(spawner.pid or 0) if request.join else None
                    except OSError:  # gone, or moved where it cannot be followed
                        lost(spawner)
                        unsent.add(token)
                        owner.append((token, fallback))
                        continue
                    data = marshal.dumps(("spawn", token, *request.fields(home)))
                    if len(data) > MAX_REQUEST:  # an environment of that size: started here
                        unsent.add(token)
                        owner.append((token, fallback))
                        continue
                    queues[spawner].append(data)
                    pending[spawner].add(token)
                    owner.append((token, spawner))
            for spawner in list(live):
                try:
                    spawner.send_queued(queues[spawner])
                except OSError:
                    lost(spawner)
            if not live or (exhausted and not any(pending[m] for m in live)):
                if exhausted:
                    break
                continue
            more = not exhausted and any(len(q) < WINDOW // 2 for q in queues.values())
            channels = {m.channel: m for m in live if m.channel is not None}
            writing = [m.channel for m in live if m.channel is not None and queues[m]]
            readable, writable, _ = select.select(
                list(channels), writing, [], 0.0 if more else ANSWER_WITHIN
            )
            if not more and not readable and not writable:
                for spawner in list(live):  # silent for that long: stuck; stopped
                    lost(spawner)
                continue
            for channel in readable:
                spawner = channels[channel]
                try:
                    spawner.receive(answers, pending[spawner])
                except OSError:
                    lost(spawner)
        results: list[tuple[Answer, Spawner]] = []
        for token, spawner in owner:
            if token == 0:
                results.append((None, spawner))  # not prepared: the caller knows
            elif token in unsent:
                results.append((UNSENT, spawner))
            else:
                results.append((answers.get(token), spawner))
        return results

    def close(self) -> None:
        for member in self.members:
            member.close()


def _tokens_of(queue: collections.deque[bytes]) -> set[int]:
    return {int(marshal.loads(data)[1]) for data in queue}


def spawner_for(
    mode: str, containment: object, loop: asyncio.AbstractEventLoop, warn: Callable[[str], None]
) -> Optional[Spawners]:
    """Spawners where `daemon.spawner` allows them and they can keep every guarantee:
    each run born in a cgroup (which a spawner joins for the fork), and pidfds to
    watch leaders that are not the daemon's children.  One per core, at most two:
    on two cores the daemon and two spawners share the start of a burst."""
    if mode == "off" or not hasattr(os, "pidfd_open") or not hasattr(containment, "birth"):
        return None
    members = [Spawner(loop, warn) for _ in range(min(2, os.cpu_count() or 1))]
    pool = Spawners(members)
    return pool if pool.ensure() else None
