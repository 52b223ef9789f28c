"""A run's processes cannot leave its limits by setsid or a double fork.

Each test runs on every containment mechanism: cgroup v2 (a delegated tree, or
where this host has no v2 memory controller a scratch v2 tree without one, the
memory tests then skipped), the cgroup v1 memory controller, and the subreaper
that `daemon.cgroups: off` chooses.  Every process of a test carries a marker in
its environment; after the run none may be alive.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from helpers import INSTANCE, MECHANISMS, contained, make_job, marked, run_job
from test_end_to_end import DaemonProcess, daemon_factory

from cronplus.containment import Containment
from cronplus.containment.cgroup import Cgroup, read_int
from cronplus.containment.cgroup_v1 import CgroupV1
from cronplus.model import Job, Outcome
from cronplus.runner import Runner, Spawned

__all__ = ["daemon_factory"]  # a fixture

MiB = 1024 * 1024
ALLOCATE = (
    "import time; x = bytearray({mb} * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]);"
    " print('ready', flush=True); time.sleep(30)"
)
# the leader forks, the child leaves the session and forks again, the middle one exits
DOUBLE_FORK = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
os.wait()
time.sleep(float(sys.argv[1]))
"""


@pytest.fixture
def marker() -> Iterator[str]:
    """A fresh marker; whatever carries it is killed after the test, pass or fail."""
    value = f"escape-{secrets.token_hex(6)}"
    yield value
    for pid in marked(value):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=MECHANISMS)
def mechanism(request: pytest.FixtureRequest) -> Iterator[Containment]:
    with contained(request.param) as containment:
        yield containment


@pytest.fixture(params=MECHANISMS)
def limiting(request: pytest.FixtureRequest) -> Iterator[Containment]:
    """A mechanism that can hold memory limits."""
    with contained(request.param, memory=True) as containment:
        yield containment


def job(marker: str, command: Any, **values: Any) -> Job:
    return make_job(command=command, env={"ESCAPE_MARKER": marker}, **values)


def none_left(marker: str, seconds: float = 3.0) -> bool:
    """SIGKILL is delivered asynchronously: give the kernel a moment to end the process."""
    deadline = time.monotonic() + seconds
    while marked(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def once_running(count: int, marker: str, then: Callable[[Runner], None]) -> object:
    """A `meanwhile` for run_job: wait until `count` marked processes live, then act."""

    async def act(runner: Runner, spawned: Spawned) -> None:
        deadline = time.monotonic() + 10
        while len(marked(marker)) < count:
            assert time.monotonic() < deadline, f"expected {count} processes: {marked(marker)}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the subreaper's walk has run at least once more
        then(runner)

    return act


def test_a_timeout_stops_a_setsid_child_the_leader_left_behind(
    mechanism: Containment, marker: str
) -> None:
    # the leader exits at once; the run lasts while its child does, and the timeout ends it
    result = run_job(
        job(marker, "setsid -f sleep 60", timeout=1.0, kill_grace=1.0), containment=mechanism
    )
    assert result.outcome is Outcome.TIMEOUT
    assert result.exit_code == 0  # the leader's own status is kept
    assert 1.0 <= result.duration < 5.0
    assert none_left(marker)


def test_a_timeout_stops_a_double_forked_grandchild(mechanism: Containment, marker: str) -> None:
    command = (sys.executable, "-c", DOUBLE_FORK, "60")
    result = run_job(job(marker, command, timeout=1.0, kill_grace=1.0), containment=mechanism)
    assert result.outcome is Outcome.TIMEOUT
    assert result.signal == signal.SIGTERM
    assert 1.0 <= result.duration < 5.0
    assert none_left(marker)


def test_a_replaced_run_is_stopped_with_everything_it_started(
    mechanism: Containment, marker: str
) -> None:
    # one escapee ignores SIGTERM: it is killed when kill_grace has passed
    command = f"setsid -f sh -c \"trap '' TERM; sleep 60\"; {sys.executable} -c '{DOUBLE_FORK}' 60"

    def replace(runner: Runner) -> None:
        runner.stop(1, Outcome.INTERRUPTED, "interrupted: replaced by run 2")

    result = run_job(
        job(marker, command, kill_grace=0.5),
        containment=mechanism,
        meanwhile=once_running(4, marker, replace),  # type: ignore[arg-type]
    )
    assert (result.outcome, result.reason) == (
        Outcome.INTERRUPTED,
        "interrupted: replaced by run 2",
    )
    assert result.duration < 8.0
    assert none_left(marker)


def test_a_fast_shutdown_kills_every_process_of_the_run(
    mechanism: Containment, marker: str
) -> None:
    command = f"setsid -f sleep 60; {sys.executable} -c '{DOUBLE_FORK}' 0"  # the leader exits

    def shut_down(runner: Runner) -> None:
        runner.kill(1, Outcome.INTERRUPTED)

    result = run_job(
        job(marker, command),
        containment=mechanism,
        meanwhile=once_running(2, marker, shut_down),  # type: ignore[arg-type]
    )
    assert result.outcome is Outcome.INTERRUPTED
    assert none_left(marker)


def test_a_setsid_grandchild_counts_against_the_memory_limit(
    limiting: Containment, marker: str
) -> None:
    allocate = f'{sys.executable} -c "{ALLOCATE.format(mb=200)}"'
    result = run_job(
        job(marker, f"setsid -f {allocate}; sleep 30", memory_limit=64 * MiB, timeout=20.0),
        containment=limiting,
    )
    assert result.outcome is Outcome.MEMORY_LIMIT
    if limiting.kernel_limits:
        assert result.reason == "memory-limit: killed by the kernel at its limit of 64 MiB"
    else:
        assert result.reason.startswith("memory-limit: the process tree used ")
    assert result.duration < 10
    assert none_left(marker)


def test_a_child_forked_in_the_first_instant_is_born_inside_the_group(
    mechanism: Containment, marker: str
) -> None:
    if mechanism.kind == "subreaper":
        pytest.skip("the subreaper has no group to be born in: its tree starts at the leader")
    controller = "memory" if mechanism.kind == "cgroup-v1" else ""
    seen: list[Spawned] = []

    async def keep(runner: Runner, spawned: Spawned) -> None:
        seen.append(spawned)

    probe = "grep '^[0-9]*:%s:' /proc/self/cgroup" % controller  # noqa: UP031
    result = run_job(
        job(marker, ("/bin/sh", "-c", f"{probe} & {probe}; wait")),
        containment=mechanism,
        meanwhile=keep,
    )
    (spawned,) = seen
    assert spawned.cgroup is not None
    assert not os.path.exists(spawned.cgroup)  # removed once empty
    relative = spawned.cgroup.split("/", 4)[-1] if controller else spawned.cgroup
    lines = result.output.decode().split()
    assert len(lines) == 2
    assert all(line.endswith("/" + os.path.basename(spawned.cgroup)) for line in lines), lines
    assert all(relative.endswith(line.split(":", 2)[2]) for line in lines), (relative, lines)


def test_the_spawning_thread_is_inside_for_the_fork_and_out_before_any_limit(
    mechanism: Containment,
) -> None:
    if mechanism.kind == "subreaper":
        pytest.skip("the subreaper moves nothing")
    controller = "memory" if mechanism.kind == "cgroup-v1" else ""
    whose = "thread-self" if controller else "self"

    def where() -> str:
        with open(f"/proc/{whose}/cgroup") as own:
            for line in own.read().splitlines():
                if line.split(":")[1] == controller:
                    return line.split(":", 2)[2]
        raise AssertionError("no such hierarchy")

    before = where()
    during: list[str] = []

    def start() -> subprocess.Popen[bytes]:
        during.append(where())
        return subprocess.Popen(["true"], stdout=subprocess.PIPE)

    process, group = mechanism.spawn(99, start)
    try:
        assert group.path is not None
        assert during[0].endswith("/run-99")
        assert where() == before
    finally:
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        group.release()
    assert not os.path.exists(group.path)


class _SlowV1(CgroupV1):
    """v1 with a pause after the birth: the run is over its limit before it is set."""

    def spawn(
        self, run_id: int, start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[subprocess.Popen[bytes], Cgroup]:
        process, group = super().spawn(run_id, start)
        assert group.path is not None
        deadline = time.monotonic() + 10
        while (read_int(os.path.join(group.path, "memory.usage_in_bytes")) or 0) < 40 * MiB:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return process, group


def test_a_run_already_over_its_limit_when_it_is_set_is_stopped(marker: str) -> None:
    with contained("cgroup-v1") as v1:
        assert isinstance(v1, CgroupV1)
        slow = _SlowV1(v1.mount, v1.runs)
        command = (sys.executable, "-c", ALLOCATE.format(mb=48))
        result = run_job(job(marker, command, memory_limit=16 * MiB), containment=slow)
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert result.reason == "memory-limit: over its limit of 16 MiB before it could be set"
    assert none_left(marker)


@pytest.mark.parametrize("cgroups", ["auto", "off"])
def test_the_daemon_contains_runs_as_daemon_cgroups_says(
    cgroups: str, daemon_factory: Callable[[str], DaemonProcess], marker: str
) -> None:
    text = f"""
        daemon: {{cgroups: {cgroups}}}
        jobs:
          escape:
            schedule: "* * * * * *"
            command: setsid -f sleep 60
            timeout: 1s
            kill_grace: 1s
            env: {{ESCAPE_MARKER: {marker}}}
        """
    daemon = daemon_factory(text).start()
    daemon.wait_for(lambda: any(r["state"] == "timed-out" for r in daemon.runs("escape")))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    (contained_by,) = daemon.records("runs contained")
    if cgroups == "off":
        assert contained_by["mechanism"] == "subreaper"
    elif CgroupV1.detect(INSTANCE) is not None:
        assert contained_by["mechanism"] in ("cgroup-v2", "cgroup-v1")
        assert contained_by["memory_limits"] == "kernel"
    assert none_left(marker)
