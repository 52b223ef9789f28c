"""The machine's wall clock stepped for real under a running daemon.

These tests set the system clock (CLOCK_REALTIME) back and forward, as NTP or
`date -s` would, and put it right again afterwards from the monotonic clock.
Because that moves the clock of the whole machine, they run only as root and
only where asked to: in CI (CI=true) or with CRONPLUS_TEST_STEP_CLOCK=1.
Suspend and resume cannot be done to a test machine; the injected-clock tests
in test_every_instant cover them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from test_end_to_end import DaemonProcess, daemon_factory

__all__ = ["daemon_factory"]

ALLOWED = os.environ.get("CI") == "true" or os.environ.get("CRONPLUS_TEST_STEP_CLOCK") == "1"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not ALLOWED,
    reason="steps the machine's clock: root, and CI=true or CRONPLUS_TEST_STEP_CLOCK=1",
)

Step = Callable[[float], float]


@pytest.fixture
def step_clock() -> Iterator[Step]:
    """Set the wall clock by some seconds; the true time is restored at the end."""
    wall, mono = time.time(), time.monotonic()

    def step(seconds: float) -> float:
        time.clock_settime(time.CLOCK_REALTIME, time.time() + seconds)
        return time.monotonic()

    try:
        yield step
    finally:
        time.clock_settime(time.CLOCK_REALTIME, wall + (time.monotonic() - mono))


def seconds_of(daemon: DaemonProcess, job: str) -> list[int]:
    return [int(r["scheduled"]) for r in daemon.runs(job) if r["trigger"] == "schedule"]


def test_a_clock_set_back_an_hour_does_not_stall_jobs(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess], step_clock: Step
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n').start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 3)
    stepped_at = step_clock(-3600)
    daemon.wait_for(lambda: "clock jumped" in daemon.events(), timeout=5)
    noticed = time.monotonic() - stepped_at
    [jump] = daemon.records("clock jumped")
    assert jump["what"] == "the clock was stepped back by 1h"
    count = len(daemon.runs("tick"))
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= count + 3, timeout=6)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert noticed < 1.5
    seconds = seconds_of(daemon, "tick")
    after = [s for s in seconds if s < seconds[0]]  # the instants of the new, earlier time
    assert len(after) >= 3
    assert after == list(range(after[0], after[0] + len(after)))


def test_a_step_is_noticed_at_once_though_the_daemon_sleeps_for_a_minute(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess], step_clock: Step
) -> None:
    daemon = daemon_factory('jobs:\n  minutely: {schedule: "* * * * *", command: "true"}\n').start()
    time.sleep(0.5)
    stepped_at = step_clock(-600)
    daemon.wait_for(lambda: "clock jumped" in daemon.events(), timeout=10)
    assert time.monotonic() - stepped_at < 1.0  # the kernel told the daemon: no polling
    daemon.stop()


def test_a_clock_stepped_forward_records_the_instants_it_jumped_over(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess], step_clock: Step
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n').start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 3)
    step_clock(120)
    daemon.wait_for(lambda: any(r["state"] == "missed" for r in daemon.runs("tick")), timeout=5)
    count = len(daemon.runs("tick"))
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= count + 2, timeout=6)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    runs = daemon.runs("tick")
    missed = [r for r in runs if r["state"] == "missed"]
    cause = "missed: the clock was stepped forward by 2m"
    assert all(str(r["reason"]).startswith(cause) for r in missed)
    assert 115 <= sum(int(r["instants"]) for r in missed) <= 121
    covered: list[int] = []
    for run in runs:
        first = int(run["scheduled"])
        last = int(run["scheduled_until"] or run["scheduled"])
        covered += range(first, last + 1)
    assert covered == list(range(covered[0], covered[0] + len(covered)))  # one row a second
