"""Runs tracked without a cgroup: the daemon as child subreaper.

With PR_SET_CHILD_SUBREAPER, a process whose parent dies is handed to the
daemon instead of init, so every process a run ever starts stays below the
daemon however it forks or `setsid`s.  Each walk down from the daemon (four a
second while runs are active; through /proc/<pid>/task/<tid>/children where
the kernel has them, else over all of /proc) gives every process below a run's
leader to that run and remembers it by (pid, start time).  A process handed to
the daemon is the run's it was last seen under, else the run its environment
names (`CRONPLUS_INSTANCE` and `CRONPLUS_RUN_ID`), else the run whose live
leader leads its session.  A process that dropped its environment, left its
session and lost its parent between two walks cannot be placed, and stays alone.

Handed-over processes that exit become the daemon's zombies.  The walk reaps
each by pid, never with waitpid(-1), and never a run's leader, whose exit
status the runner collects itself: every other child of the daemon born since
it became subreaper was handed over (the runner is the only place processes
start).  Where there is no subreaper (macOS) nor /proc, a run is its leader's
process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import subprocess
import sys
from collections import defaultdict
from typing import Callable, Optional

from .procfs import Process, descendants, environment, process, processes, send_signal

PR_SET_CHILD_SUBREAPER = 36

Key = tuple[int, int]  # (pid, start ticks): a process, not a pid that may be reused


def set_subreaper(on: bool) -> bool:
    """Make this process the subreaper of its descendants; False where the kernel cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class TrackedRun:
    """One run's processes as the last walk of /proc found them."""

    def __init__(self, tracker: Subreaper, run_id: int, leader: Key) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.leader = leader
        self.members: dict[int, Process] = {}

    @property
    def path(self) -> Optional[str]:
        return None

    def limit(self, limit: int) -> None:
        pass  # the runner's watchdog compares usage() with the limit

    def signal(self, signum: int) -> None:
        for pid, member in list(self.members.items()):
            if member.alive:
                send_signal(pid, signum, functools.partial(_same, member))

    def empty(self) -> bool:
        # a zombie member counts: its children may still be on their way to the daemon
        return not self.members

    def usage(self) -> int:
        return sum(member.rss for member in self.members.values())

    def oom_kills(self) -> int:
        return 0

    def peak(self) -> Optional[int]:
        return None

    def release(self) -> None:
        self.tracker.runs.pop(self.run_id, None)


class Subreaper:
    """Every run's processes found by walking /proc below the daemon."""

    kernel_limits = False
    polled = True

    def __init__(self, instance: str) -> None:
        self.instance = instance.encode()
        self.runs: dict[int, TrackedRun] = {}
        self.seen: dict[Key, int] = {}  # every process placed in a run, by the last walk
        self.adopting = set_subreaper(True)
        self.kind = "subreaper" if self.adopting else "process-group"
        self.since = _now_ticks()  # zombies older than this are not ours to reap

    def spawn(
        self, run_id: int, start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[subprocess.Popen[bytes], TrackedRun]:
        started = start()
        leader = process(started.pid)
        run = TrackedRun(self, run_id, (started.pid, leader.start_ticks if leader else -1))
        if leader is not None:
            run.members[started.pid] = leader
        self.runs[run_id] = run
        return started, run

    def refresh(self) -> None:
        """One walk of /proc: place every process below the daemon, reap handed-over zombies."""
        below = descendants(os.getpid())
        everyone = {found.pid: found for found in (processes() if below is None else below)}
        for tracked in self.runs.values():
            tracked.members = {}
        if not everyone:
            return  # no /proc: the runner signals the leader's process group alone
        children: defaultdict[int, list[Process]] = defaultdict(list)
        for found in everyone.values():
            children[found.ppid].append(found)
        leaders = {run.leader: run for run in self.runs.values()}
        live = {key: run for key, run in leaders.items() if _key_of(everyone, key[0]) == key}
        seen: dict[Key, int] = {}
        for child in children.get(os.getpid(), []):
            owner = leaders.get(_key(child)) or self._place(child, live)
            if owner is not None:
                for member in _subtree(child, children):
                    owner.members[member.pid] = member
                    seen[_key(member)] = owner.run_id
            if not child.alive and _key(child) not in leaders and child.start_ticks >= self.since:
                self._reap(child)  # handed over and ended: no one else will wait for it
        self.seen = seen

    def _place(self, orphan: Process, live: dict[Key, TrackedRun]) -> Optional[TrackedRun]:
        """The run a process handed to the daemon belongs to, if that can be told."""
        if orphan.start_ticks < self.since:
            return None  # older than the runs: not one of theirs
        known = self.seen.get(_key(orphan))
        if known is not None:
            return self.runs.get(known)
        env = environment(orphan.pid)
        if env.get(b"CRONPLUS_INSTANCE") == self.instance:
            with contextlib.suppress(ValueError):
                found = self.runs.get(int(env.get(b"CRONPLUS_RUN_ID", b"")))
                if found is not None:
                    return found
        for (leader, started), run in live.items():  # a session whose leader still lives
            if orphan.session == leader and orphan.start_ticks >= started:
                return run
        return None

    def _reap(self, zombie: Process) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(zombie.pid, os.WNOHANG)

    def describe(self) -> dict[str, str]:
        return {"mechanism": self.kind, "memory_limits": "watchdog"}

    def close(self) -> None:
        self.refresh()  # reap what can be reaped
        if self.adopting:
            set_subreaper(False)


def _key(found: Process) -> Key:
    return (found.pid, found.start_ticks)


def _key_of(everyone: dict[int, Process], pid: int) -> Optional[Key]:
    found = everyone.get(pid)
    return _key(found) if found is not None else None


def _same(member: Process) -> bool:
    now = process(member.pid)
    return now is not None and now.start_ticks == member.start_ticks


def _subtree(top: Process, children: dict[int, list[Process]]) -> list[Process]:
    found, stack = [], [top]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current.pid, []))
    return found


def _now_ticks() -> int:
    """Clock ticks since boot, the unit of a process's start time."""
    try:
        with open("/proc/uptime") as uptime:
            return int(float(uptime.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0
