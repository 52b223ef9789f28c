"""Memory limits on a run's whole process tree.

Where the daemon owns a writable, delegated cgroup v2 with the memory
controller (systemd `Delegate=yes`), each limited run gets a child cgroup with
`memory.max`, and the kernel enforces it.  Elsewhere a watchdog samples the
resident memory of every process in the run's session and stops the run when
the sum passes the limit.  Both report the peak they saw.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Optional

CGROUP_ROOT = "/sys/fs/cgroup"
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SAMPLE_SECONDS = 0.25


def _processes() -> Iterator[tuple[int, int]]:
    """(pid, session id) of every process, from /proc; ones that end meanwhile are skipped."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            yield int(entry), int(fields[3])  # field 6 of stat, the session id
        except (OSError, IndexError, ValueError):
            continue


def sessions_rss(sessions: Collection[int]) -> dict[int, int]:
    """Resident bytes of every process in each of `sessions` (a run is its own session)."""
    totals = dict.fromkeys(sessions, 0)
    for pid, session in _processes():
        if session in totals:
            totals[session] += _resident(pid)
    return totals


def _resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0  # it ended while we looked


@dataclass
class Cgroups:
    """A delegated cgroup v2 subtree: the daemon moves itself to a leaf, runs get siblings."""

    base: str

    @classmethod
    def detect(cls) -> Optional[Cgroups]:
        """The daemon's own cgroup, if it is v2, writable and offers the memory controller."""
        try:
            with open("/proc/self/cgroup") as own:
                lines = own.read().splitlines()
        except OSError:
            return None
        unified = [line[3:] for line in lines if line.startswith("0::")]
        if not unified or len(lines) != 1:  # a hybrid v1/v2 host gives the memory controller to v1
            return None
        base = os.path.join(CGROUP_ROOT, unified[0].lstrip("/"))
        try:
            with open(os.path.join(base, "cgroup.controllers")) as controllers:
                if "memory" not in controllers.read().split():
                    return None
        except OSError:
            return None
        if not os.access(os.path.join(base, "cgroup.subtree_control"), os.W_OK):
            return None
        return cls(base)

    def prepare(self) -> None:
        """Move the daemon to a leaf (no process may sit beside child groups); delegate memory."""
        leaf = os.path.join(self.base, "daemon")
        os.makedirs(leaf, exist_ok=True)
        with open(os.path.join(self.base, "cgroup.procs")) as procs:
            pids = procs.read().split()
        for pid in pids:
            try:
                _write(os.path.join(leaf, "cgroup.procs"), pid)
            except OSError:
                continue  # a process that ended or cannot move stays
        _write(os.path.join(self.base, "cgroup.subtree_control"), "+memory")

    def create(self, run_id: int, limit: int) -> str:
        path = os.path.join(self.base, f"run-{run_id}")
        os.makedirs(path, exist_ok=True)
        _write(os.path.join(path, "memory.max"), str(limit))
        with contextlib.suppress(OSError):  # no swap accounting on this kernel
            _write(os.path.join(path, "memory.swap.max"), "0")
        return path

    def add(self, path: str, pid: int) -> None:
        _write(os.path.join(path, "cgroup.procs"), str(pid))

    def oom_killed(self, path: str) -> bool:
        return _read_key(os.path.join(path, "memory.events"), "oom_kill") > 0

    def peak(self, path: str) -> Optional[int]:
        try:
            with open(os.path.join(path, "memory.peak")) as peak:
                return int(peak.read())
        except (OSError, ValueError):
            return None

    def remove(self, path: str) -> None:
        with contextlib.suppress(OSError):  # cgroup.kill needs Linux 5.14
            _write(os.path.join(path, "cgroup.kill"), "1")
        with contextlib.suppress(OSError):  # members still leaving: the group stays empty behind
            os.rmdir(path)


def _write(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _read_key(path: str, key: str) -> int:
    try:
        with open(path) as handle:
            for line in handle:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class LostRun:
    """What the history knows of a run a dead daemon left, to find its processes by."""

    run_id: int
    pid: Optional[int]
    start_ticks: Optional[int]
    boot_id: Optional[str]
    cgroup: Optional[str]


def boot_id() -> Optional[str]:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> Optional[int]:
    """When a process started, in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def leftover_processes(runs: Collection[LostRun], instance: str) -> dict[int, list[int]]:
    """Pids that are provably these runs' processes, of this instance, and no others.

    A process qualifies only in the same boot, started no earlier than its run, with
    `CRONPLUS_INSTANCE` and `CRONPLUS_RUN_ID` of the run in its environment.
    """
    found: dict[int, list[int]] = {run.run_id: [] for run in runs}
    current_boot = boot_id()
    eligible = {
        f"CRONPLUS_RUN_ID={run.run_id}".encode(): run
        for run in runs
        if run.boot_id is not None and run.boot_id == current_boot and run.start_ticks is not None
    }
    if not eligible:
        return found
    marker = f"CRONPLUS_INSTANCE={instance}".encode()
    for pid, _ in _processes():
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        if marker not in variables:
            continue
        for variable in variables:
            run = eligible.get(variable)
            started = process_start_ticks(pid)
            if run is not None and started is not None and started >= (run.start_ticks or 0):
                found[run.run_id].append(pid)
    return found
