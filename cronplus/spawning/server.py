"""The spawner process: start what the daemon asks, hand back pid and pipes, reap on request.

One request a datagram on a SOCK_SEQPACKET socket pair (its fd is the first argument),
marshalled tuples:

- ("spawn", token, argv, env, cwd, uid, gid, groups, stdin_pipe, join, home):
  answered ("spawned", token, pid) with the output pipe's read end (and the input
  pipe's write end) attached, or ("failed", token, errno, strerror, filename).
  `join` is the run's cgroup file to write "0" to before the fork (its directory
  is made first, afresh), `home` the one to go back to right after (both None
  without a cgroup).
- ("reap", pid): the leader has exited (the daemon's pidfd said so); answered
  ("reaped", pid, status, maxrss_kib), status None when it was not ours.

Nothing else is imported here: this process stays small, so that forking it is
cheap where a fork is needed (a run as another user).  It is single-threaded,
and a child subreaper: a run's orphans come here and are reaped at once, while
a leader's zombie waits for the daemon's "reap".  It ends when the daemon's
end of the socket closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Optional

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

RECEIVE = 1 << 18  # more than the largest request the daemon sends
SWEEP = 0.5  # seconds: orphans wait at most this long as zombies; a burst of exits is one look


def _prctl(option: int, value: Any) -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _write(path: str, value: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


def _make_group(path: str) -> None:
    """A fresh group: one left by an earlier daemon is replaced, its counters are stale."""
    try:
        os.mkdir(path)
    except FileExistsError:
        os.rmdir(path)  # fails, and so the run, if processes are still in it
        os.mkdir(path)


class Server:
    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.leaders: set[int] = set()  # pids whose zombies wait for the daemon's "reap"

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # orphans of runs: reaped below
        sweep_at: Optional[float] = None  # when to look for orphans, at most once a SWEEP
        buffer = bytearray(RECEIVE)  # one buffer for every request
        view = memoryview(buffer)
        while True:
            wait = None if sweep_at is None else max(0.0, sweep_at - time.monotonic())
            ready, _, _ = select.select([self.channel.fileno(), wake_r], [], [], wait)
            if wake_r in ready:
                _drain(wake_r)
                if sweep_at is None:
                    sweep_at = time.monotonic() + SWEEP
            if sweep_at is not None and time.monotonic() >= sweep_at:
                sweep_at = None
                self.reap_orphans()
            if self.channel.fileno() in ready:
                try:
                    size = self.channel.recv_into(buffer)
                except InterruptedError:
                    continue
                if not size:
                    return  # the daemon is gone: its runs live on, the next daemon finds them
                self.handle(marshal.loads(view[:size]))

    def handle(self, request: tuple[Any, ...]) -> None:
        if request[0] == "spawn":
            self.spawn(*request[1:])
        elif request[0] == "reap":
            self.reap(request[1])

    def spawn(
        self,
        token: int,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        uid: Optional[int],
        gid: Optional[int],
        groups: Optional[list[int]],
        stdin_pipe: bool,
        join: Optional[str],
        home: Optional[str],
    ) -> None:
        process: Optional[subprocess.Popen[bytes]] = None
        try:
            if join is not None:
                _make_group(os.path.dirname(join))
                _write(join, b"0")
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    user=uid,
                    group=gid,
                    extra_groups=groups,
                )
            finally:
                if join is not None and home is not None:
                    _write(home, b"0")  # before the daemon sets a limit: never held by it
        except OSError as exc:
            if process is not None:  # started, but could not step out of its group
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            answer = ("failed", token, exc.errno or 0, exc.strerror or str(exc), exc.filename)
            self.channel.send(marshal.dumps(answer))
            return
        except (ValueError, TypeError) as exc:
            self.channel.send(marshal.dumps(("failed", token, 0, str(exc), None)))
            return
        self.leaders.add(process.pid)
        assert process.stdout is not None
        fds = [process.stdout.fileno()]
        if process.stdin is not None:
            fds.append(process.stdin.fileno())
        socket.send_fds(self.channel, [marshal.dumps(("spawned", token, process.pid))], fds)
        process.stdout.close()
        if process.stdin is not None:
            process.stdin.close()
        process.returncode = 0  # the daemon asks for its status: subprocess must never reap it

    def reap(self, pid: int) -> None:
        status: Optional[int] = None
        maxrss = 0
        if pid in self.leaders:
            self.leaders.discard(pid)
            try:
                _, status, usage = os.wait4(pid, 0)
                maxrss = usage.ru_maxrss
            except ChildProcessError:
                status = None
        self.channel.send(marshal.dumps(("reaped", pid, status, maxrss)))

    def reap_orphans(self) -> None:
        """Reap every child that is not a leader: orphans of runs that came to us."""
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as handle:
                children = [int(pid) for pid in handle.read().split()]
        except OSError:
            return
        for pid in children:
            if pid not in self.leaders:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)


def main() -> int:
    _prctl(PR_SET_NAME, b"cronplus-spawn")
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C at the terminal is the daemon's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    channel = socket.socket(fileno=int(sys.argv[1]))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        Server(channel).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
