"""Which live processes provably belong to a run a dead daemon left behind.

After a crash the next start stops a lost run's processes, and must stop no
others: several instances (the system one, one per user) each number their runs
from 1, pids are reused, and a run's processes may have changed session, lost
their parent or their environment.  A process counts only when all of this
holds: the machine has not rebooted since the run was recorded (same boot id),
it started no earlier than the run's leader, and at least one of

- it is in the run's recorded cgroup, which still exists;
- its environment names this instance and this run (`CRONPLUS_INSTANCE`,
  `CRONPLUS_RUN_ID`);
- its session is the one the run's leader made, and that leader is still
  alive with the recorded start time, so the session id was not reused.

A run recorded without its start time or boot id proves nothing, and gets no kills.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .procfs import boot_id, environment, process, processes


@dataclass(frozen=True)
class LostRun:
    """What the history recorded about a run when it started."""

    run_id: int
    pid: Optional[int]  # its leader, which led its own session
    start_ticks: Optional[int]  # the leader's start time, clock ticks since boot
    boot_id: Optional[str]
    cgroup: Optional[str]  # the run's cgroup directory, if it had one


def leftover_processes(runs: Sequence[LostRun], instance: str) -> dict[int, list[int]]:
    """For each run, the pids that are provably its processes (one walk of /proc for all)."""
    found: dict[int, list[int]] = {run.run_id: [] for run in runs}
    booted = boot_id()
    provable = [
        run
        for run in runs
        if booted is not None and run.boot_id == booted and run.start_ticks is not None
    ]
    if not provable:
        return found
    members = {run.run_id: _cgroup_members(run.cgroup) for run in provable}
    live_leader = {run.run_id: _alive_since(run.pid, run.start_ticks) for run in provable}
    earliest = min(run.start_ticks or 0 for run in provable)
    me = os.getpid()
    for candidate in processes():
        if candidate.pid == me or not candidate.alive or candidate.start_ticks < earliest:
            continue
        env: Optional[dict[bytes, bytes]] = None
        for run in provable:
            assert run.start_ticks is not None
            if candidate.start_ticks < run.start_ticks:
                continue
            if candidate.pid in members[run.run_id] or (
                live_leader[run.run_id] and candidate.session == run.pid
            ):
                found[run.run_id].append(candidate.pid)
                continue
            if env is None:
                env = environment(candidate.pid)
            if _names(env, instance, run.run_id):
                found[run.run_id].append(candidate.pid)
    return found


def _alive_since(pid: Optional[int], start_ticks: Optional[int]) -> bool:
    """`pid` is still the process that started at `start_ticks`, and not a zombie."""
    leader = process(pid) if pid is not None else None
    return leader is not None and leader.alive and leader.start_ticks == start_ticks


def _names(env: dict[bytes, bytes], instance: str, run_id: int) -> bool:
    return (
        env.get(b"CRONPLUS_INSTANCE") == instance.encode()
        and env.get(b"CRONPLUS_RUN_ID") == str(run_id).encode()
    )


def _cgroup_members(path: Optional[str]) -> set[int]:
    if not path:
        return set()
    with (
        contextlib.suppress(OSError, ValueError),
        open(os.path.join(path, "cgroup.procs")) as procs,
    ):
        return {int(pid) for pid in procs.read().split()}
    return set()
