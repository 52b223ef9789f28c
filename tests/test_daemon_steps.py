"""The daemon's loop steps, driven by a clock the test sets and a runner the test finishes.

The runner is the only fake here: it is the one seam where processes start, and it
has its own tests with real processes.  Config, schedule, timer, dispatch and the
SQLite history are real.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from helpers import history_file

from cronplus.clock import FakeClock
from cronplus.daemon import MAX_SLEEP, Daemon
from cronplus.model import Job, Outcome, RunState, Trigger
from cronplus.paths import resolve
from cronplus.runner import RunResult, Spawned
from cronplus.store import open_readonly

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeRunner:
    def __init__(self, on_exit: Callable[[RunResult], None], clock: FakeClock) -> None:
        self.on_exit = on_exit
        self.clock = clock
        self.active: dict[int, Job] = {}
        self.started: list[tuple[int, str]] = []
        self.stopped: list[tuple[int, Outcome]] = []
        self.killed: list[int] = []
        self.notified: list[Job] = []

    def start(
        self, run_id: int, job: Job, on_exit: Callable[[RunResult], None] | None = None
    ) -> Spawned:
        if on_exit is not None:  # a notifier: kept apart from the runs
            self.notified.append(job)
            return Spawned(20_000 - run_id, None)
        self.active[run_id] = job
        self.started.append((run_id, job.name))
        return Spawned(10_000 + run_id, None)

    def start_all(
        self, runs: list[tuple[int, Job, Callable[[RunResult], None] | None]]
    ) -> list[Spawned | None]:
        return [self.start(run_id, job, on_exit) for run_id, job, on_exit in runs]

    def stop(self, run_id: int, reason: Outcome, detail: str = "") -> None:
        self.stopped.append((run_id, reason))

    def kill(self, run_id: int, reason: Outcome, detail: str = "") -> None:
        self.killed.append(run_id)

    def finish(self, run_id: int, outcome: Outcome = Outcome.SUCCEEDED, code: int = 0) -> None:
        del self.active[run_id]
        now = self.clock.now().timestamp()
        self.on_exit(
            RunResult(
                run_id, outcome, now - 1, now, 1.0, exit_code=code, output=b"done\n", output_bytes=5
            )
        )


def make_daemon(
    tmp_path: Path, text: str, start: datetime = T0
) -> tuple[Daemon, FakeClock, FakeRunner]:
    config = tmp_path / "cronplus.yaml"
    config.write_text(textwrap.dedent(text))
    clock = FakeClock(start)
    daemon = Daemon(resolve(False, str(config), str(tmp_path / "state")), clock, default_zone="UTC")
    daemon.load()
    runner = FakeRunner(daemon._on_exit, clock)
    daemon.runner = runner  # type: ignore[assignment]
    return daemon, clock, runner


EVERY_TEN_SECONDS = """
daemon: {shutdown_grace: 30s}
jobs:
  tick: {schedule: "* * * * * */10", command: "true"}
"""


def states(daemon: Daemon, job: str) -> list[str]:
    assert daemon.history is not None
    return [r.state for r in reversed(daemon.history.runs(job, limit=100))]


def test_a_due_job_starts_and_its_result_is_recorded(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    assert daemon.seconds_to_deadline(clock.now()) == 10.0
    daemon.step(clock.now())
    assert runner.started == []
    clock.advance(10)
    daemon.step(clock.now())
    assert runner.started == [(1, "tick")]
    assert daemon.history is not None
    run = daemon.history.run(1)
    assert run is not None and (run.state, run.scheduled, run.pid) == (
        "running",
        (T0 + timedelta(seconds=10)).timestamp(),
        10_001,
    )
    runner.finish(1)
    daemon.step(clock.now())
    assert states(daemon, "tick") == ["succeeded"]
    assert daemon.history.job_states()["tick"].last_scheduled == run.scheduled


def test_an_overlapping_run_is_skipped_with_the_reason(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    for _ in range(2):
        clock.advance(10)
        daemon.step(clock.now())
    assert daemon.history is not None
    assert states(daemon, "tick") == ["running", "skipped"]
    assert (
        daemon.history.runs("tick", limit=1)[0].reason
        == "skipped: overlap: 1 run(s) already running"
    )


def test_the_loop_sleeps_until_the_next_run_not_every_minute(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(
        tmp_path, 'jobs:\n  d: {schedule: "0 3 * * *", command: "true"}\n'
    )
    assert daemon.seconds_to_deadline(clock.now()) == MAX_SLEEP  # 15 h away: one bounded sleep
    clock.set(datetime(2026, 6, 2, 2, 59, 58, tzinfo=UTC))
    assert daemon.seconds_to_deadline(clock.now()) == 2.0


def test_fixed_time_job_fires_once_through_the_autumn_change(tmp_path: Path) -> None:
    text = (
        'jobs:\n  nightly: {schedule: "30 1 * * *", timezone: America/New_York, command: "true"}\n'
    )
    daemon, clock, runner = make_daemon(
        tmp_path, text, start=datetime(2026, 10, 31, 4, 0, tzinfo=UTC)
    )
    fired: list[datetime] = []
    end = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    while True:
        deadline = daemon.timer.deadline()
        assert deadline is not None
        if deadline > end:
            break
        clock.set(deadline)
        daemon.step(clock.now())
        fired.append(clock.now())
        for run_id in list(runner.active):
            runner.finish(run_id)
        daemon.step(clock.now())
    assert fired == [
        datetime(2026, 10, 31, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, the first of two 01:30s
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
    ]


def test_a_bad_reload_keeps_the_running_config(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    before = daemon.config
    (tmp_path / "cronplus.yaml").write_text(
        'jobs:\n  tick: {schedule: "61 * * * *", command: "true"}\n'
    )
    assert daemon.reload(clock.now()) is not None
    assert daemon.config is before
    assert daemon.timer.next_of("tick") == T0 + timedelta(seconds=10)


def test_a_good_reload_adds_jobs_and_keeps_unchanged_ones(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    clock.advance(3)
    (tmp_path / "cronplus.yaml").write_text(
        textwrap.dedent(EVERY_TEN_SECONDS) + '  new: {schedule: "* * * * * */4", command: "true"}\n'
    )
    assert daemon.reload(clock.now()) is None
    assert daemon.config is not None and set(daemon.config.jobs) == {"tick", "new"}
    assert daemon.timer.next_of("tick") == T0 + timedelta(seconds=10)
    assert daemon.timer.next_of("new") == T0 + timedelta(seconds=4)
    (tmp_path / "cronplus.yaml").write_text(
        'jobs:\n  new: {schedule: "* * * * * */4", command: "true"}\n'
    )
    daemon.reload(clock.now())
    assert daemon.timer.next_of("tick") is None


def test_stop_gives_running_jobs_the_grace_then_interrupts_them(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    clock.advance(10)
    daemon.step(clock.now())
    daemon.begin_stop(clock.now())
    clock.advance(29)
    assert daemon.step(clock.now()) is True
    assert runner.stopped == []
    assert daemon.seconds_to_deadline(clock.now()) == pytest.approx(1.0)
    clock.advance(1)
    daemon.step(clock.now())
    assert runner.stopped == [(1, Outcome.INTERRUPTED)]
    runner.finish(1, Outcome.INTERRUPTED, code=-15)
    assert daemon.step(clock.now()) is False
    assert states(daemon, "tick") == ["interrupted"]


def test_a_second_stop_kills_at_once(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    clock.advance(10)
    daemon.step(clock.now())
    daemon.begin_stop(clock.now())
    daemon.begin_stop(clock.now())
    assert runner.killed == [1]


def test_no_run_starts_while_stopping(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    daemon.begin_stop(clock.now())
    clock.advance(10)
    assert daemon.step(clock.now()) is False
    assert runner.started == []


def test_runs_left_open_by_a_dead_daemon_are_recorded_lost(tmp_path: Path) -> None:
    with history_file(tmp_path / "state" / "history.db") as history:
        running = history.create_run("tick", 1.0, Trigger.SCHEDULE, now=1.0)
        history.transition(running, RunState.RUNNING, (RunState.PENDING,), pid=999_999)
        pending = history.create_run("tick", 2.0, Trigger.SCHEDULE, now=2.0)
    daemon, _, _ = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    assert daemon.history is not None
    lost = [daemon.history.run(i) for i in (running, pending)]
    assert [(r.state, r.reason) for r in lost if r] == [
        ("lost", "lost: the daemon stopped while it was running"),
        ("lost", "lost: the daemon stopped before it started"),
    ]


def test_every_job_continues_from_the_last_run_in_the_history(tmp_path: Path) -> None:
    text = 'jobs:\n  stretch: {every: 20m, command: "true"}\n'
    with history_file(tmp_path / "state" / "history.db") as history:
        history.set_last_scheduled("stretch", (T0 - timedelta(minutes=5)).timestamp())
    daemon, _, _ = make_daemon(tmp_path, text)
    assert daemon.timer.next_of("stretch") == T0 + timedelta(minutes=15)


def test_a_paused_job_runs_nothing_and_each_instant_is_recorded_skipped(tmp_path: Path) -> None:
    with history_file(tmp_path / "state" / "history.db") as history:
        history.set_paused("tick", True)
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    for _ in range(3):
        clock.advance(10)
        daemon.step(clock.now())
    assert runner.started == []
    assert daemon.history is not None
    runs = daemon.history.runs("tick")
    assert [(r.state, r.reason) for r in runs] == [("skipped", "skipped: paused")] * 3
    assert [r.scheduled for r in runs] == [
        (T0 + timedelta(seconds=s)).timestamp() for s in (30, 20, 10)
    ]


def test_a_history_that_cannot_be_written_is_said_in_the_status_line_and_to_notifiers(
    tmp_path: Path,
) -> None:
    text = (
        EVERY_TEN_SECONDS.replace('command: "true"}', 'command: "true", on_failure: [pager]}')
        + "notifiers:\n  pager: {type: command, command: [/bin/true]}\n"
    )
    daemon, clock, runner = make_daemon(tmp_path, text)
    assert daemon.history is not None and daemon.history.backend is not None
    daemon.history.backend.db.close()  # every write now fails, as on a broken disk
    for _ in range(3):
        clock.advance(10)
        daemon.step(clock.now())
        for run_id in list(runner.active):
            runner.finish(run_id)
        daemon.step(clock.now())
    assert "HISTORY NOT WRITTEN since 2026-06-01 12:00:10 UTC" in daemon.status_line()
    assert "records held in memory" in daemon.status_line()
    told = [j.env["CRONPLUS_EVENT"] for j in runner.notified]
    assert told == ["history-unwritten"]  # once, not once a run
    daemon.history.backend = None  # the disk is back: the file is opened again
    clock.advance(10)
    daemon.step(clock.now())
    assert "HISTORY" not in daemon.status_line()
    assert [j.env["CRONPLUS_EVENT"] for j in runner.notified] == [
        "history-unwritten",
        "history-written",
    ]
    reader = open_readonly(str(tmp_path / "state" / "history.db"))
    assert [r.state for r in reversed(reader.runs("tick"))] == ["succeeded"] * 3 + ["running"]


def test_a_run_that_ended_behind_a_burst_of_endings_is_not_taken_for_running(
    tmp_path: Path,
) -> None:
    """Endings are recorded a slice a turn; a job whose run ended behind 200 others is
    free at its next instant, not skipped as an overlap of a run that is over."""
    burst = "".join(
        f'  b{i:03d}: {{schedule: "* * * * * 5", command: "true"}}\n' for i in range(200)
    )
    text = EVERY_TEN_SECONDS.replace("shutdown_grace: 30s", "max_workers: 500") + burst
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.advance(5)
    daemon.step(clock.now())
    assert len(runner.started) == 200
    clock.advance(5)
    daemon.step(clock.now())  # tick's first instant
    tick = next(run_id for run_id, job in runner.started if job == "tick")
    for run_id, job in runner.started:
        if job != "tick":
            runner.finish(run_id)
    runner.finish(tick)  # it ended last, behind the 200
    clock.advance(10)
    daemon.step(clock.now())  # tick's next instant, with endings still being recorded
    for _ in range(10):
        daemon.step(clock.now())
    assert states(daemon, "tick") == ["succeeded", "running"]
