"""The fence keeper: a small process beside a cluster node that stops its `run_on: one`
runs when the node's lease may be gone.

Another node may declare this one dead once its lease expires, and run its
runs again; two copies of a run must never overlap.  The daemon tells the
keeper, on a pipe, how long its lease surely holds (a deadline on the
monotonic clock, which every process of the machine shares) and which runs to
stop (a cgroup directory or a process group).  Past the deadline the keeper
kills them all.  It is a process of its own so that it keeps that promise
when the daemon is stopped (SIGSTOP), stalled or killed: on a closed pipe it
waits for the deadline, kills what it holds, and exits.

    python -m cronplus.cluster.fence        (lines on standard input:)
    valid SECONDS          the lease holds until this monotonic time
    add RUN CGROUP|- PGID  a run to stop if the lease goes
    drop RUN               a run that ended
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from typing import Optional

KILL_ROUNDS = 20  # a group member may fork while it is killed


def kill_run(cgroup: Optional[str], pgid: int) -> None:
    for _ in range(KILL_ROUNDS):
        members: list[int] = []
        if cgroup:
            with (
                contextlib.suppress(OSError, ValueError),
                open(os.path.join(cgroup, "cgroup.procs")) as procs,
            ):
                members = [int(p) for p in procs.read().split()]
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        if not members:
            return
        time.sleep(0.01)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon
    deadline = time.monotonic() + 3600.0
    runs: dict[str, tuple[Optional[str], int]] = {}
    buffer = b""
    stdin = sys.stdin.fileno()
    open_pipe = True
    while True:
        wait: Optional[float] = max(0.0, deadline - time.monotonic())
        if wait == 0 and not runs:
            wait = None  # past the deadline with nothing to stop: wait for the daemon's word
        if open_pipe:
            ready, _, _ = select.select([stdin], [], [], wait)
        else:
            time.sleep(wait or 0.0)
            ready = []
        if time.monotonic() >= deadline and runs:
            for cgroup, pgid in runs.values():
                kill_run(cgroup, pgid)
            runs.clear()
        if not open_pipe:
            return 0
        if not ready:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            if not runs:
                return 0  # the daemon is gone and left nothing to stop
            open_pipe = False  # the daemon is gone: keep the promise until the deadline
            continue
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            words = line.decode(errors="replace").split()
            if words[:1] == ["valid"] and len(words) == 2:
                deadline = float(words[1])
            elif words[:1] == ["add"] and len(words) == 4:
                runs[words[1]] = (None if words[2] == "-" else words[2], int(words[3]))
            elif words[:1] == ["drop"] and len(words) == 2:
                runs.pop(words[1], None)


if __name__ == "__main__":
    sys.exit(main())
