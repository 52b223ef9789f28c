"""What cgroup v1 and v2 share: a run's group, and a birth inside it.

A run's group is a directory; its members are the pids in `cgroup.procs`.
Stopping it means signalling every member, again and again until none is
left, because a member may fork while it is being killed (v2's `cgroup.kill`
does that in one write where the kernel has it).  Each pid is checked to be
still in the group while a pidfd pins it, so a reused pid is never hit, and
the daemon's own pid is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .base import OverLimit
from .procfs import send_signal


@dataclass(frozen=True)
class Dialect:
    """The file names one cgroup version speaks."""

    version: str  # "v1" or "v2"
    controller: str  # the v1 hierarchy's controller; "" for the unified one
    join_file: str  # v1 `tasks` moves one thread; v2 `cgroup.procs` moves the process
    limit_files: tuple[str, ...]  # written in this order with the limit
    limit_extras: tuple[tuple[str, str], ...]  # optional settings beside the limit
    oom_file: str  # a flat keyed file with an `oom_kill` counter
    peak_file: str
    kill_file: Optional[str]  # one write kills every member


def write(path: str, value: str) -> None:
    """One write(2): cgroup files report errors on the write, which buffered I/O would defer."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_key(path: str, key: str) -> Optional[int]:
    """The value of `key` in a flat keyed file (`oom_kill 3`); None when absent."""
    try:
        with open(path) as handle:
            for line in handle:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def read_int(path: str) -> Optional[int]:
    try:
        with open(path) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def own_path(controller: str, whose: str = "self") -> Optional[str]:
    """The cgroup of /proc/<whose> in the hierarchy of `controller` ("" for the unified one)."""
    try:
        with open(f"/proc/{whose}/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",") if controllers else []
        if (controller and controller in names) or (not controller and not controllers):
            return path
    return None


def mount_point(fstype: str, controller: str) -> Optional[str]:
    """Where the hierarchy of `controller` (any for cgroup2) is mounted, from mountinfo."""
    try:
        with open("/proc/self/mountinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        mount, _, tail = line.partition(" - ")
        fields, extra = mount.split(), tail.split()
        if len(fields) < 5 or len(extra) < 3 or extra[0] != fstype or fields[3] != "/":
            continue  # a bind mount of a subtree cannot be matched with /proc/self/cgroup
        if fstype == "cgroup2" or controller in extra[2].split(","):
            return fields[4]
    return None


def discard_group(path: str, seconds: float = 1.0) -> bool:
    """Remove a lost run's group once its killed members are gone, and its instance's if empty.

    The members were just sent SIGKILL: give them `seconds` to end.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
    parent = os.path.dirname(path)
    if os.path.basename(parent).startswith("cronplus-"):
        with contextlib.suppress(OSError):  # other runs of that instance are still there
            os.rmdir(parent)
    return True


class Cgroup:
    """One run's cgroup."""

    __slots__ = ("dialect", "directory", "relative")

    def __init__(self, path: str, relative: str, dialect: Dialect) -> None:
        self.directory = path
        self.relative = relative  # as /proc/<pid>/cgroup names it
        self.dialect = dialect

    @property
    def path(self) -> Optional[str]:
        return self.directory

    def members(self) -> list[int]:
        try:
            with open(os.path.join(self.directory, "cgroup.procs")) as procs:
                return [int(pid) for pid in procs.read().split()]
        except (OSError, ValueError):
            return []

    def holds(self, pid: int) -> bool:
        return own_path(self.dialect.controller, str(pid)) == self.relative

    def limit(self, limit: int) -> None:
        for name in self.dialect.limit_files:
            try:
                write(os.path.join(self.directory, name), str(limit))
            except FileNotFoundError:
                if name == self.dialect.limit_files[0]:
                    raise
            except OSError as exc:  # v1 refuses a limit below what the group holds
                if exc.errno == errno.EBUSY:
                    raise OverLimit(f"usage above {limit} bytes") from exc
                raise
        for name, value in self.dialect.limit_extras:
            with contextlib.suppress(OSError):  # not on every kernel; the limit holds without it
                write(os.path.join(self.directory, name), value)

    def signal(self, signum: int) -> None:
        if signum == signal.SIGKILL and self.dialect.kill_file:
            with contextlib.suppress(OSError):
                write(os.path.join(self.directory, self.dialect.kill_file), "1")
                return
        me = os.getpid()
        for pid in self.members():
            if pid != me:
                send_signal(pid, signum, functools.partial(self.holds, pid))

    def empty(self) -> bool:
        return not self.members()

    def usage(self) -> int:
        return 0  # the kernel enforces the limit; the watchdog has nothing to add

    def oom_kills(self) -> int:
        count = read_key(os.path.join(self.directory, self.dialect.oom_file), "oom_kill")
        if count is not None:
            return count
        # a v1 kernel before 4.13 counts no kills: a limit that was hit is the next best sign
        return read_int(os.path.join(self.directory, "memory.failcnt")) or 0

    def peak(self) -> Optional[int]:
        return read_int(os.path.join(self.directory, self.dialect.peak_file))

    def release(self) -> None:
        with contextlib.suppress(OSError):  # members still leaving: an empty group stays behind
            os.rmdir(self.directory)


class CgroupTree:
    """A directory where each run gets a group it is born in (shared by v1 and v2)."""

    kernel_limits = True
    polled = False

    def __init__(self, mount: str, runs: str, dialect: Dialect) -> None:
        self.mount = mount
        self.runs = runs  # run-<id> groups are made here
        self.dialect = dialect
        self.kind = f"cgroup-{dialect.version}"
        self._lock = threading.Lock()  # one birth at a time: v2 moves the whole daemon
        self._made = False  # the runs' directory exists
        self._home_path: Optional[str] = None
        self._spawner_homes: dict[int, str] = {}

    def spawn(
        self, run_id: int, start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[subprocess.Popen[bytes], Cgroup]:
        group = self._make(f"run-{run_id}")
        process: Optional[subprocess.Popen[bytes]] = None
        try:
            with self._lock:
                home = self._home()
                try:
                    self._join(group.directory)
                except OSError:
                    self._home_path = None  # moved by whoever manages the host? look again
                    raise
                try:
                    process = start()
                finally:
                    self._join(home)  # before any limit is set: the daemon is never held by it
        except BaseException:
            if process is not None:  # started, but the daemon could not step out: do not keep it
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            group.release()
            raise
        return process, group

    def _make(self, name: str) -> Cgroup:
        """A fresh group: one left by an earlier daemon is replaced, its counters are stale."""
        if not self._made:  # made on the first run: nothing to leave behind before
            os.makedirs(self.runs, exist_ok=True)
            self._made = True
        path = os.path.join(self.runs, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            os.rmdir(path)  # fails, and so the run, if processes are still in it
            os.mkdir(path)
        return Cgroup(path, "/" + os.path.relpath(path, self.mount), self.dialect)

    def birth(self, run_id: int) -> tuple[Cgroup, str]:
        """A run another process forks (a spawner): (its group, the file that process
        writes "0" to to join the group).  The spawner makes the directory itself,
        off the daemon's thread.
        """
        if not self._made:
            os.makedirs(self.runs, exist_ok=True)
            self._made = True
        path = os.path.join(self.runs, f"run-{run_id}")
        group = Cgroup(path, "/" + os.path.relpath(path, self.mount), self.dialect)
        return group, os.path.join(path, self.dialect.join_file)

    def home_of(self, pid: int) -> str:
        """The file process `pid` (a spawner) writes "0" to to go back to its own group."""
        home = self._spawner_homes.get(pid)
        if home is None:
            relative = own_path(self.dialect.controller, str(pid))
            if relative is None:
                raise OSError(errno.ENOENT, f"cannot read the cgroup of process {pid}")
            home = os.path.join(self.mount, relative.lstrip("/"), self.dialect.join_file)
            self._spawner_homes[pid] = home
        return home

    def check(self) -> None:
        """Raise OSError unless a group can be made, joined and left here."""
        group = self._make(f"check-{os.getpid()}")
        try:
            with self._lock:
                home = self._home()
                self._join(group.directory)
                self._join(home)
        finally:
            group.release()

    def _home(self) -> str:
        """The group the spawning thread lives in, to go back to after a birth.

        Kept between births (reading it costs a tenth of a millisecond each); read
        again after a join fails, as whoever manages the host may move the daemon.
        """
        if self._home_path is not None:
            return self._home_path
        whose = "thread-self" if self.dialect.join_file == "tasks" else "self"
        relative = own_path(self.dialect.controller, whose)
        if relative is None:
            raise OSError(errno.ENOENT, "cannot read the daemon's own cgroup")
        self._home_path = os.path.join(self.mount, relative.lstrip("/"))
        return self._home_path

    def _join(self, path: str) -> None:
        # "0" is the writer itself: the calling thread in v1's `tasks`, the process in v2's
        # `cgroup.procs`.  A thread moving itself skips the kernel's thread-group lock,
        # whose writer waits for an RCU grace period: a pid here cost 5 to 10 ms a birth.
        write(os.path.join(path, self.dialect.join_file), "0")

    def refresh(self) -> None:
        pass  # the kernel keeps the groups

    def describe(self) -> dict[str, str]:
        return {"mechanism": self.kind, "memory_limits": "kernel", "cgroup": self.runs}

    def close(self) -> None:
        pass
