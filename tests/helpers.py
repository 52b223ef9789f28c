"""Shared builders for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from cronplus.clock import SystemClock
from cronplus.containment import Containment, choose
from cronplus.containment.cgroup import mount_point, own_path, write
from cronplus.containment.cgroup_v1 import CgroupV1
from cronplus.containment.cgroup_v2 import CgroupV2
from cronplus.containment.subreaper import Subreaper
from cronplus.model import Job, Outcome, ScheduleKind, ScheduleSpec
from cronplus.runner import Runner, RunResult, Spawned
from cronplus.spawning.client import spawner_for
from cronplus.store import RunStore, open_store

INSTANCE = f"test{secrets.token_hex(3)}"  # this test session, as CRONPLUS_INSTANCE

Meanwhile = Callable[[Runner, Spawned], Awaitable[None]]


@contextlib.contextmanager
def history_file(path: Path) -> Iterator[RunStore]:
    """A history file to fill before a daemon starts on it; written and closed on leaving."""
    store = open_store(str(path), datetime.now(timezone.utc), lambda *_, **__: None)
    yield store
    assert store.flush(datetime.now(timezone.utc))
    store.close()


def make_job(name: str = "job", **values: Any) -> Job:
    values.setdefault("schedule", ScheduleSpec(ScheduleKind.CRON, ("* * * * *",)))
    values.setdefault("timezone", "UTC")
    values.setdefault("command", "true")
    return Job(name=name, **values)


def run_job(
    job: Job,
    wait: float = 20.0,
    containment: Optional[Containment] = None,
    meanwhile: Optional[Meanwhile] = None,
    spawner: bool = False,
) -> RunResult:
    """Start `job` as run 1 through a real Runner and return its result.

    Without `containment`, the one the daemon would choose (and closed after).
    `meanwhile` runs once the run has started, e.g. to stop it.  `spawner`: the
    run starts from a spawner process, as the daemon's runs do where it can.
    """

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[RunResult] = loop.create_future()

        def finished(result: RunResult) -> None:
            if not done.done():
                done.set_result(result)

        contained = containment or choose("auto", INSTANCE)
        helper = spawner_for("auto", contained, loop, print) if spawner else None
        assert helper is not None or not spawner, "no spawner for this containment"
        runner = Runner(loop, SystemClock(), finished, contained, INSTANCE, helper)
        try:
            spawned = runner.start(1, job)
            if meanwhile is not None and spawned is not None:
                await meanwhile(runner, spawned)
            return await asyncio.wait_for(done, wait)
        finally:
            for run_id in list(runner.active):  # a test that failed leaves nothing running
                runner.kill(run_id, Outcome.INTERRUPTED)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_until(lambda: not runner.active), 15)
            if helper is not None:
                helper.close()
            if containment is None:
                contained.close()

    return asyncio.run(main())


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.02)


MECHANISMS = ("cgroup-v2", "cgroup-v1", "subreaper")
NO_V2_MEMORY = (
    "no cgroup v2 with the memory controller here (on a hybrid host memory belongs to v1;"
    " a v2 host must delegate it, systemd Delegate=yes)"
)


@contextlib.contextmanager
def contained(kind: str, memory: bool = False) -> Iterator[Containment]:
    """The containment `kind`, or a skip that says why this machine lacks it; undone after.

    On a host whose cgroup v2 tree has no memory controller, the v2 path still runs
    (without `memory`) in a scratch subtree this process moves into and back out of.
    """
    if kind == "subreaper":
        reaper = Subreaper(INSTANCE)
        try:
            yield reaper
        finally:
            reaper.close()
    elif kind == "cgroup-v1":
        v1 = CgroupV1.detect(INSTANCE)
        if v1 is None:
            pytest.skip("no writable cgroup v1 memory controller for this process")
        try:
            yield v1
        finally:
            v1.close()
            assert not os.path.exists(v1.runs), "a run's cgroup was left behind"
    else:
        v2 = CgroupV2.detect()
        if v2 is not None:
            v2.prepare()
            yield v2
        elif memory:
            pytest.skip(NO_V2_MEMORY)
        else:
            with _scratch_v2() as scratch:
                yield scratch


@contextlib.contextmanager
def _scratch_v2() -> Iterator[CgroupV2]:
    mount, own = mount_point("cgroup2", ""), own_path("")
    if mount is None or own is None or not os.access(mount, os.W_OK):
        pytest.skip("no writable cgroup v2 hierarchy for this process")
    home = os.path.join(mount, own.lstrip("/"))
    base = os.path.join(mount, f"cronplus-{INSTANCE}-v2")
    os.mkdir(base)
    try:
        write(os.path.join(base, "cgroup.procs"), str(os.getpid()))
        tree = CgroupV2(mount, base)
        tree.prepare()
        yield tree
    finally:
        write(os.path.join(home, "cgroup.procs"), str(os.getpid()))
        leftovers = [d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))]
        for name in leftovers:
            os.rmdir(os.path.join(base, name))
        os.rmdir(base)
        assert leftovers == ["daemon"], f"cgroups left behind: {leftovers}"


def marked(marker: str) -> list[int]:
    """Live processes that carry `marker` in their environment or argv."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
            with (
                open(f"/proc/{entry}/environ", "rb") as env,
                open(f"/proc/{entry}/cmdline", "rb") as cmdline,
            ):
                if needle in env.read() or needle in cmdline.read():
                    found.append(int(entry))
        except (OSError, IndexError):
            continue
    return found


def remove_cgroup_tree(path: str) -> None:
    """Kill what a daemon killed outright left in its cgroups, then remove them."""
    if not os.path.isdir(path):
        return
    groups = [os.path.join(path, d) for d in os.listdir(path) if d.startswith("run-")]
    deadline = time.monotonic() + 5
    for group in groups:
        while True:
            with open(os.path.join(group, "cgroup.procs")) as procs:
                pids = [int(pid) for pid in procs.read().split()]
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        os.rmdir(group)
    os.rmdir(path)
