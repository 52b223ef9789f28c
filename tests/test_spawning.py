"""Runs started by the spawner keep every guarantee of a run started by the daemon itself.

Each run is still born in its own cgroup, as its user, with its environment, input,
output, timeout and memory limit; the daemon still learns how it ended.  When the
spawner dies its runs are the daemon's, and new runs start in-process until a new
spawner is up; when the daemon dies, the spawner leaves and the next daemon finds
the runs as it always did.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from helpers import INSTANCE, contained, make_job, run_job
from test_end_to_end import DaemonProcess, ctl, daemon_factory

from cronplus.clock import SystemClock
from cronplus.containment import Containment
from cronplus.containment.cgroup import own_path
from cronplus.model import Job, Outcome
from cronplus.runner import Prepared, Runner, RunResult, Spawned
from cronplus.spawning import client
from cronplus.spawning.client import Spawners, spawner_for

__all__ = ["daemon_factory"]  # the fixture, used by name below

AS_ROOT = os.geteuid() == 0
CGROUPS = ["cgroup-v2", "cgroup-v1"]


@pytest.fixture(params=CGROUPS)
def cgroups(request: pytest.FixtureRequest) -> Iterator[Containment]:
    with contained(request.param) as containment:
        yield containment


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_a_run_from_the_spawner_is_born_in_its_group_with_its_environment_and_input(
    cgroups: Containment,
) -> None:
    parents: list[int] = []
    controller = "memory" if cgroups.kind == "cgroup-v1" else ""
    expected_group = own_path(controller) or ""

    async def look(runner: Runner, spawned: Spawned) -> None:
        parents.append(_parent(spawned.pid))
        assert runner.spawners is not None
        parents.extend(runner.spawners.pids)

    line = (
        f"sed -n 's/^[0-9]*:{controller}:/group /p' /proc/self/cgroup; cat;"
        ' echo "$CRONPLUS_RUN_ID $GREETING"; exit 7'
    )
    job = make_job(command=line, stdin="fed in\n", env={"GREETING": "hello"})
    result = run_job(job, containment=cgroups, meanwhile=look, spawner=True)
    assert result.outcome is Outcome.EXIT_CODE and result.exit_code == 7
    group, *rest = result.output.decode().splitlines()
    assert group.startswith("group /") and group.endswith("/run-1")  # born inside
    assert group != f"group {expected_group}"
    assert rest == ["fed in", "1 hello"]
    parent, *spawners = parents
    assert parent in spawners and parent != os.getpid()


def test_a_run_from_the_spawner_times_out_as_a_whole(cgroups: Containment) -> None:
    job = make_job(command="sleep 30 & sleep 30", timeout=0.5)
    result = run_job(job, containment=cgroups, spawner=True)
    assert result.outcome is Outcome.TIMEOUT
    assert result.signal == signal.SIGTERM and result.duration < 10


@pytest.mark.parametrize("kind", CGROUPS)
def test_the_kernel_holds_a_run_from_the_spawner_to_its_memory_limit(kind: str) -> None:
    allocate = "x = bytearray(200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    job = make_job(command=(sys.executable, "-c", allocate), memory_limit=64 * 1024 * 1024)
    with contained(kind, memory=True) as containment:
        result = run_job(job, containment=containment, spawner=True)
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert result.reason == "memory-limit: killed by the kernel at its limit of 64 MiB"


@pytest.mark.skipif(not AS_ROOT, reason="switching users needs root")
def test_a_run_from_the_spawner_runs_as_its_user(cgroups: Containment, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    os.chmod(tmp_path, 0o755)
    job = make_job(command="id -u; id -g; pwd", user="nobody", workdir=str(tmp_path))
    result = run_job(job, containment=cgroups, spawner=True)
    assert result.output.decode().splitlines() == [
        str(nobody.pw_uid),
        str(nobody.pw_gid),
        str(tmp_path),
    ]


def test_a_run_too_big_for_the_socket_starts_from_the_daemon(cgroups: Containment) -> None:
    parents: list[int] = []

    async def look(runner: Runner, spawned: Spawned) -> None:
        parents.append(_parent(spawned.pid))

    big = {"BIG1": "x" * 60_000, "BIG2": "y" * 60_000}  # each under the kernel's 128 KiB
    job = make_job(command='echo "${#BIG1} ${#BIG2}"; sleep 0.2', env=big)
    result = run_job(job, containment=cgroups, meanwhile=look, spawner=True)
    assert result.outcome is Outcome.SUCCEEDED and result.output == b"60000 60000\n"
    assert parents == [os.getpid()]


def test_a_command_the_spawner_cannot_start_is_a_failed_run(cgroups: Containment) -> None:
    result = run_job(make_job(command=["/nonexistent/command"]), containment=cgroups, spawner=True)
    assert result.outcome is Outcome.SPAWN_FAILED
    assert result.reason == "spawn-failed: No such file or directory: /nonexistent/command"


def test_orphans_of_a_run_are_reaped_by_the_spawner(cgroups: Containment) -> None:
    zombies: list[list[int]] = []

    async def after(runner: Runner, spawned: Spawned) -> None:
        assert runner.spawners is not None
        await asyncio.sleep(1.0)  # the orphan ends at 0.3 s; the spawner looks within 0.5 s
        zombies.append([z for pid in runner.spawners.pids for z in _zombies_of(pid)])

    job = make_job(command="(setsid sleep 0.3 &) ; sleep 1.2")
    result = run_job(job, containment=cgroups, meanwhile=after, spawner=True)
    assert result.outcome is Outcome.SUCCEEDED
    assert zombies == [[]]


def _zombies_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == parent:
                found.append(int(entry))
    return found


def test_when_the_spawners_die_their_runs_end_as_they_should_and_new_runs_still_start(
    cgroups: Containment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with runs going: the daemon adopts them and records their exit codes;
    the next burst starts in-process, and new spawners start after the pause."""
    monkeypatch.setattr(client, "RESTART_PAUSE", 0.5)

    async def main() -> tuple[list[RunResult], list[int], list[int], list[int]]:
        loop = asyncio.get_running_loop()
        results: list[RunResult] = []
        spawners = spawner_for("auto", cgroups, loop, lambda _: None)
        assert spawners is not None
        runner = Runner(loop, SystemClock(), results.append, cgroups, INSTANCE, spawners)
        first = spawners.pids
        try:
            early = runner.start_all([(1, _job("sleep 0.2; exit 3"), None)])
            slow = runner.start_all([(2, _job("sleep 1; exit 4"), None)])
            await _until(lambda: len(results) == 1)  # run 1 reaped through its spawner
            for pid in first:
                os.kill(pid, signal.SIGKILL)
            await _until(lambda: not spawners.pids)
            here = runner.start_all([(3, _job("exit 5"), None)])  # during the pause
            await asyncio.sleep(0.6)
            again = runner.start_all([(4, _job("exit 6"), None)])
            await _until(lambda: len(results) == 4, 15)
            leaders = [s.pid for s in (*early, *slow, *here, *again) if s is not None]
            return results, leaders, first, spawners.pids
        finally:
            runner.close()

    results, leaders, first, second = asyncio.run(main())
    codes = {r.run_id: (r.outcome, r.exit_code) for r in results}
    assert codes == {
        1: (Outcome.EXIT_CODE, 3),
        2: (Outcome.EXIT_CODE, 4),  # adopted by the daemon: its status is not lost
        3: (Outcome.EXIT_CODE, 5),
        4: (Outcome.EXIT_CODE, 6),
    }
    assert len(leaders) == 4
    assert second and not set(second) & set(first)  # new spawners


def _job(command: str) -> Job:
    return make_job(command=command)


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.02)


def test_a_spawner_that_dies_in_a_burst_leaves_no_run_unrecorded_and_none_twice(
    cgroups: Containment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawner killed while a burst is dealt: runs it never took start in-process or
    from the other spawner; runs it took but never answered for are failed runs with
    the reason (retried by policy), anything of theirs that started is stopped."""
    ran = tmp_path / "ran"
    burst = 120

    async def main() -> tuple[list[Spawned | None], list[RunResult], int]:
        loop = asyncio.get_running_loop()
        results: list[RunResult] = []
        spawners = spawner_for("auto", cgroups, loop, lambda _: None)
        assert spawners is not None
        runner = Runner(loop, SystemClock(), results.append, cgroups, INSTANCE, spawners)
        victim = spawners.members[0].pid or 0
        prepare = runner._prepare

        def prepare_and_kill(run_id: int, job: Job) -> Prepared:
            if run_id == burst // 2:
                os.kill(victim, signal.SIGKILL)
            return prepare(run_id, job)

        monkeypatch.setattr(runner, "_prepare", prepare_and_kill)
        try:
            job = _job(f"echo $CRONPLUS_RUN_ID >> {ran}; sleep 0.2")
            spawned = runner.start_all([(i, job, None) for i in range(1, burst + 1)])
            await _until(lambda: len(results) == burst, 30)
            return spawned, results, victim
        finally:
            runner.close()

    _, results, victim = asyncio.run(main())
    assert sorted(r.run_id for r in results) == list(range(1, burst + 1))  # one result each
    outcomes = {r.outcome for r in results}
    assert outcomes <= {Outcome.SUCCEEDED, Outcome.SPAWN_FAILED}
    failed = {r.reason for r in results if r.outcome is Outcome.SPAWN_FAILED}
    assert failed <= {
        "spawn-failed: the spawner ended before it answered; anything it started was stopped"
    }
    lines = ran.read_text().split()
    assert len(lines) == len(set(lines))  # none ran twice
    succeeded = {str(r.run_id) for r in results if r.outcome is Outcome.SUCCEEDED}
    assert succeeded <= set(lines)
    assert len(succeeded) >= burst // 2  # the other spawner, and in-process starts, went on
    assert not os.path.exists(f"/proc/{victim}")


def test_spawner_off_or_without_cgroups_starts_runs_in_process() -> None:
    async def main() -> list[Spawners | None]:
        loop = asyncio.get_running_loop()
        with contained("subreaper") as tracking:
            return [
                spawner_for("off", object(), loop, print),
                spawner_for("auto", tracking, loop, print),
            ]

    assert asyncio.run(main()) == [None, None]


def _spawners_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    name = comm.read().strip()
                ppid = _parent(int(entry))
            except OSError:
                continue
            if name == "cronplus-spawn" and ppid == parent:
                found.append(int(entry))
    return found


def test_kill_9_of_the_daemon_the_spawner_leaves_and_its_runs_are_recovered(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    marker = tmp_path / "marker"
    daemon = daemon_factory(
        f"""
        jobs:
          long: {{schedule: "0 0 1 1 *", command: "touch {marker}; exec sleep 60"}}
        """
    ).start()
    assert daemon.process is not None
    pid = daemon.process.pid
    expected = min(2, os.cpu_count() or 1)  # one a core, at most two
    daemon.wait_for(lambda: len(_spawners_of(pid)) == expected)  # in ps once up
    spawners = _spawners_of(pid)
    assert ctl(tmp_path, "run", "long").returncode == 0
    daemon.wait_for(lambda: marker.exists() and bool(daemon.runs("long")))
    daemon.wait_for(lambda: daemon.runs("long")[-1]["state"] == "running")
    leader = daemon.runs("long")[-1]["pid"]
    assert _parent(leader) in spawners
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{s}") for s in spawners) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [s for s in spawners if os.path.exists(f"/proc/{s}")]  # they read the end
    assert os.path.exists(f"/proc/{leader}")  # the run lives on until a daemon finds it
    daemon.start()
    daemon.wait_for(lambda: daemon.runs("long")[-1]["state"] == "lost")
    daemon.wait_for(lambda: not os.path.exists(f"/proc/{leader}"))
