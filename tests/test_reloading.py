"""Reloads read in a thread and swapped in by the loop: racing due instants, superseded.

The steps run with the injected clock; the reload's build is captured and run by
the test at the moment it chooses (before, at or after a due instant), on the
test's thread, as the reload's own thread would.  A real daemon then takes many
reloads while a per-second job runs.
"""

from __future__ import annotations

import signal
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from test_daemon_steps import T0, FakeRunner, make_daemon
from test_end_to_end import DaemonProcess, ctl, daemon_factory

from cronplus.clock import FakeClock
from cronplus.daemon import Daemon
from cronplus.reloading import Reloads

__all__ = ["daemon_factory"]

BEFORE = """
jobs:
  tick: {schedule: "* * * * * */10", command: "true"}
  gone: {schedule: "* * * * * */10", command: "true"}
  moved: {schedule: "* * * * * */10", command: "true"}
"""
AFTER = """
jobs:
  tick: {schedule: "* * * * * */10", command: "true"}
  moved: {schedule: "* * * * * 5/10", command: "true"}
  added: {schedule: "* * * * * */10", command: "true"}
"""


class Builds:
    """Reload builds captured instead of started in a thread."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self.waiting.append(work)

    def run(self, index: int = 0) -> None:
        self.waiting.pop(index)()


def setup(tmp_path: Path) -> tuple[Daemon, FakeClock, FakeRunner, Builds]:
    daemon, clock, runner = make_daemon(tmp_path, BEFORE)
    builds = Builds()
    daemon.reloads = Reloads(daemon, spawn=builds)
    return daemon, clock, runner, builds


def write(tmp_path: Path, text: str) -> None:
    (tmp_path / "cronplus.yaml").write_text(textwrap.dedent(text))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def scheduled(daemon: Daemon, job: str) -> list[float]:
    """The instants of `job` that have a row, each as seconds after T0."""
    assert daemon.history is not None
    runs = daemon.history.runs(job, limit=1000)
    return sorted(r.scheduled - T0.timestamp() for r in runs if r.scheduled is not None)


def advance_to(daemon: Daemon, clock: FakeClock, runner: FakeRunner, seconds: float) -> None:
    clock.set(at(seconds))
    daemon.step(clock.now())
    for run_id in list(runner.active):
        runner.finish(run_id)
    daemon.step(clock.now())


def test_a_reload_read_while_an_instant_comes_loses_no_run_and_doubles_none(
    tmp_path: Path,
) -> None:
    daemon, clock, runner, builds = setup(tmp_path)
    clock.set(at(5))
    write(tmp_path, AFTER)
    waiter = daemon.reloads.request()
    advance_to(daemon, clock, runner, 10)  # due while the reload is read: the old config
    assert daemon.config is not None and "gone" in daemon.config.jobs
    builds.run()  # ready now, read as of 5 s
    advance_to(daemon, clock, runner, 12)  # swapped in
    assert waiter.done.is_set() and waiter.error is None and waiter.jobs == 3
    assert set(daemon.config.jobs) == {"tick", "moved", "added"}
    for second in (20, 25, 30, 35, 40):
        advance_to(daemon, clock, runner, second)
    assert scheduled(daemon, "tick") == [10, 20, 30, 40]
    assert scheduled(daemon, "gone") == [10]  # removed: never started after the swap
    assert scheduled(daemon, "moved") == [10, 15, 25, 35]  # the new schedule from the swap
    assert scheduled(daemon, "added") == [20, 30, 40]  # its 10 s came before the swap


def test_a_reload_ready_just_before_an_instant_is_swapped_in_right_after_it(
    tmp_path: Path,
) -> None:
    daemon, clock, runner, builds = setup(tmp_path)
    clock.set(at(9.98))
    write(tmp_path, AFTER)
    daemon.reloads.request()
    builds.run()
    before = daemon.config
    daemon.step(clock.now())  # 20 ms before tick, gone and moved are due: not yet
    assert daemon.config is before
    clock.set(at(10))
    daemon.step(clock.now())  # the instant fires under the old config, then the swap
    assert daemon.config is not before and daemon.config is not None
    assert "gone" not in daemon.config.jobs
    for second in (15, 20, 25, 30):
        advance_to(daemon, clock, runner, second)
    assert scheduled(daemon, "gone") == [10]
    assert scheduled(daemon, "tick") == [10, 20, 30]
    assert scheduled(daemon, "moved") == [10, 15, 25]
    assert scheduled(daemon, "added") == [20, 30]
    assert runner.started.count((1, "tick")) <= 1


def test_a_reload_superseded_by_another_stops_and_both_callers_hear_the_newest(
    tmp_path: Path,
) -> None:
    daemon, clock, runner, builds = setup(tmp_path)
    clock.set(at(3))
    write(tmp_path, AFTER)
    first = daemon.reloads.request()
    write(tmp_path, 'jobs:\n  only: {schedule: "* * * * * */10", command: "true"}\n')
    second = daemon.reloads.request()
    builds.run(0)  # the older read stops at its first pause: nothing to swap
    daemon.step(clock.now())
    assert not first.done.is_set()
    assert daemon.config is not None and "gone" in daemon.config.jobs
    builds.run(0)
    advance_to(daemon, clock, runner, 4)
    assert first.done.is_set() and second.done.is_set()
    assert (first.error, first.jobs) == (None, 1) and (second.error, second.jobs) == (None, 1)
    assert set(daemon.config.jobs) == {"only"}
    advance_to(daemon, clock, runner, 10)
    assert scheduled(daemon, "only") == [10] and scheduled(daemon, "tick") == []


def test_a_superseded_read_that_finishes_late_is_not_swapped_in(tmp_path: Path) -> None:
    daemon, clock, runner, builds = setup(tmp_path)
    write(tmp_path, AFTER)
    daemon.reloads.request()
    write(tmp_path, 'jobs:\n  only: {schedule: "* * * * * */10", command: "true"}\n')
    daemon.reloads.request()
    builds.run(1)  # the newer one first
    builds.run(0)  # the older one, superseded, changes nothing
    advance_to(daemon, clock, runner, 1)
    assert daemon.config is not None and set(daemon.config.jobs) == {"only"}


def test_a_rejected_reload_read_in_a_thread_keeps_the_config_and_says_why(
    tmp_path: Path,
) -> None:
    daemon, clock, runner, builds = setup(tmp_path)
    before = daemon.config
    write(tmp_path, 'jobs:\n  tick: {schedule: "61 * * * *", command: "true"}\n')
    waiter = daemon.reloads.request()
    builds.run()
    advance_to(daemon, clock, runner, 1)
    assert daemon.config is before
    assert waiter.error is not None and "61" in str(waiter.error.problems[0])
    advance_to(daemon, clock, runner, 10)
    assert scheduled(daemon, "gone") == [10]


def test_a_daemon_stopping_tells_the_callers_still_waiting(tmp_path: Path) -> None:
    daemon, _, _, _ = setup(tmp_path)
    write(tmp_path, AFTER)
    waiter = daemon.reloads.request()
    daemon.reloads.close()
    assert waiter.done.is_set() and waiter.stopped


def test_many_reloads_of_a_real_daemon_lose_and_double_no_instant(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    """A per-second job runs on through reloads that change every other job, by
    SIGHUP and by cronplusctl (which answers once the file is applied)."""

    def config(shift: int) -> str:
        others = "".join(
            f'  j{i}: {{schedule: "{(i + shift) % 60} {i % 24} * * *", command: "true"}}\n'
            for i in range(300)
        )
        return 'jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n' + others

    daemon = daemon_factory(config(0)).start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 1)
    for shift in range(1, 9):
        daemon.write(config(shift))
        if shift % 2:
            daemon.signal(signal.SIGHUP)
            time.sleep(0.3)
        else:
            done = ctl(tmp_path, "reload")
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "reloaded: 301 jobs"
    daemon.write('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n')
    done = ctl(tmp_path, "reload")
    assert done.returncode == 0 and "reloaded: 1 jobs" in done.stdout, done.stderr
    count = len(daemon.runs("tick"))
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= count + 2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    instants = [r["scheduled"] for r in daemon.runs("tick")]
    assert len(instants) == len(set(instants))  # none doubled
    assert instants == [instants[0] + k for k in range(len(instants))]  # none lost
    assert all(r["state"] == "succeeded" for r in daemon.runs("tick"))
    assert daemon.records("reloaded")[-1]["jobs"] == 1


def test_an_every_job_a_reload_adds_counts_from_the_swap_not_the_request(
    tmp_path: Path,
) -> None:
    daemon, clock, _, builds = setup(tmp_path)
    clock.set(at(3))
    write(tmp_path, BEFORE + '  pulse: {every: 30s, command: "true"}\n')
    daemon.reloads.request()
    builds.run()
    clock.set(at(7))  # four seconds to read it
    daemon.step(clock.now())
    assert daemon.config is not None and "pulse" in daemon.config.jobs
    assert daemon.timer.next_of("pulse") == at(37)
