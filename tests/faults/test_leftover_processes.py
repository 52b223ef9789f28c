"""After a crash, only processes provably a lost run's own are stopped.

Several instances number their runs from 1, pids and sessions are reused, and
a run's processes may leave its session: `leftover_processes` must name exactly
the run's processes of this instance, and nothing when it cannot prove it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Callable, Optional

import pytest
from helpers import INSTANCE, contained

from cronplus.containment import LostRun, boot_id, leftover_processes, process_start_ticks

Start = Callable[..., subprocess.Popen[bytes]]
BOOT = boot_id()


@pytest.fixture
def start() -> Iterator[Start]:
    """`start(command, **env)`: a shell in its own session; killed with its session after."""
    started: list[subprocess.Popen[bytes]] = []

    def run(command: str, **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            env={"PATH": "/usr/bin:/bin", **env},
            start_new_session=True,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ticks_now() -> int:
    """A run's start time as the history would record it: clock ticks since boot, now."""
    time.sleep(0.03)  # apart from what started before, by more than a tick
    with open("/proc/uptime") as uptime:
        now = int(float(uptime.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    time.sleep(0.03)
    return now


def lost(
    run_id: int, since: int, pid: Optional[int] = None, cgroup: Optional[str] = None
) -> LostRun:
    return LostRun(run_id, pid, since, BOOT, cgroup)


def session_of(leader: int, count: int) -> list[int]:
    """The pids of `leader`'s session, once it has `count` processes."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[3]) == leader:
                        found.append(int(entry))
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found)
        time.sleep(0.02)


def ours(run_id: int) -> dict[str, str]:
    return {"CRONPLUS_INSTANCE": INSTANCE, "CRONPLUS_RUN_ID": str(run_id)}


def test_the_same_run_id_of_another_instance_is_never_returned(start: Start) -> None:
    since = ticks_now()
    mine = start("exec sleep 60", **ours(7))
    foreign = start("exec sleep 60", CRONPLUS_INSTANCE="other", CRONPLUS_RUN_ID="7")
    next_run = start("exec sleep 60", **ours(8))
    no_instance = start("exec sleep 60", CRONPLUS_RUN_ID="7")
    found = leftover_processes([lost(7, since), lost(8, since)], INSTANCE)
    assert found == {7: [mine.pid], 8: [next_run.pid]}
    assert foreign.pid not in found[7] and no_instance.pid not in found[7]


def test_a_process_older_than_the_run_is_not_its_own(start: Start) -> None:
    older = start("exec sleep 60", **ours(7))
    since = ticks_now()
    assert leftover_processes([lost(7, since)], INSTANCE) == {7: []}
    started = process_start_ticks(older.pid)
    assert started is not None  # the same process, with the start time it has: it counts
    assert leftover_processes([lost(7, started)], INSTANCE) == {7: [older.pid]}


def test_the_session_of_a_leader_still_alive_with_its_start_time(start: Start) -> None:
    leader = start("sleep 60 & sleep 60")  # no environment to tell them by
    session = session_of(leader.pid, 3)
    started = process_start_ticks(leader.pid)
    assert started is not None and len(session) == 3
    found = leftover_processes([lost(5, started, pid=leader.pid)], INSTANCE)
    assert sorted(found[5]) == session
    # a leader whose start time differs is another process with a reused pid: nothing
    assert leftover_processes([lost(5, started - 1, pid=leader.pid)], INSTANCE) == {5: []}


def test_a_session_whose_leader_is_gone_proves_nothing(start: Start) -> None:
    since = ticks_now()
    leader = start("sleep 60 & exit 0")
    leader.wait()
    assert len(session_of(leader.pid, 1)) == 1  # its child, still in the session
    assert leftover_processes([lost(5, since, pid=leader.pid)], INSTANCE) == {5: []}


def test_another_boot_or_no_recorded_facts_return_nothing(start: Start) -> None:
    since = ticks_now()
    start("exec sleep 60", **ours(7))
    rebooted = LostRun(7, None, since, "another-boot", None)
    unrecorded = LostRun(7, None, None, None, None)  # what a history without the facts gives
    no_start = LostRun(7, None, None, BOOT, None)
    assert leftover_processes([rebooted, unrecorded, no_start], INSTANCE) == {7: []}
    assert len(leftover_processes([lost(7, since)], INSTANCE)[7]) == 1


def test_a_process_in_the_runs_recorded_cgroup_counts() -> None:
    since = ticks_now()
    with contained("cgroup-v1") as cgroups:
        process, group = cgroups.spawn(
            9,
            lambda: subprocess.Popen(["sleep", "60"], env={}, start_new_session=True),
        )
        try:
            assert group.path is not None
            assert leftover_processes([lost(9, since, cgroup=group.path)], INSTANCE) == {
                9: [process.pid]
            }
        finally:
            process.kill()
            process.wait()
            group.release()
        assert leftover_processes([lost(9, since, cgroup=group.path)], INSTANCE) == {9: []}
