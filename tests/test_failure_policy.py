"""Retries, catch-up, crash recovery and notifications, driven through the daemon's steps.

The clock is the test's and the runner is the fake of test_daemon_steps; config,
schedule, dispatch and the SQLite history are real.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from helpers import history_file, make_job
from test_daemon_steps import T0, FakeRunner, make_daemon

from cronplus.clock import FakeClock
from cronplus.daemon import Daemon
from cronplus.dispatch import retry_delay
from cronplus.model import Outcome, RunState, Trigger
from cronplus.schedule import stable_jitter

RETRYING = """
notifiers:
  pager: {type: command, command: [/bin/true]}
jobs:
  flaky:
    schedule: "0 * * * *"
    command: "false"
    retries: 2
    retry_backoff: 10s
    retry_backoff_max: 15s
    on_failure: [pager]
    on_retry: [pager]
"""


def rows(daemon: object, job: str) -> list[tuple[int, str, str, int, object]]:
    history = daemon.history  # type: ignore[attr-defined]
    return [
        (r.id, r.trigger, r.state, r.attempt, r.first_run)
        for r in reversed(history.runs(job, limit=50))
    ]


def sent(runner: FakeRunner) -> list[tuple[str, str, str, str]]:
    """(notifier, event, run id, attempt) of every notifier command started."""
    return [
        (j.name, j.env["CRONPLUS_EVENT"], j.env["CRONPLUS_RUN_ID"], j.env["CRONPLUS_ATTEMPT"])
        for j in runner.notified
    ]


def test_backoff_doubles_up_to_its_cap() -> None:
    job = make_job(retries=5, retry_backoff=10.0, retry_backoff_max=60.0)
    assert [retry_delay(job, a, "exit-code") for a in range(1, 7)] == [10, 20, 40, 60, 60, None]
    narrow = make_job(retries=5, retry_on=frozenset({"timeout"}))
    assert retry_delay(narrow, 1, "exit-code") is None
    assert retry_delay(narrow, 1, "timeout") == 30.0


def first_run_fails(tmp_path: Path, text: str = RETRYING) -> tuple[Daemon, FakeClock, FakeRunner]:
    """The hourly job fires once and its run 1 exits 1."""
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.set(T0 + timedelta(hours=1))
    daemon.step(clock.now())
    runner.finish(1, Outcome.EXIT_CODE, code=1)
    daemon.step(clock.now())
    return daemon, clock, runner


def test_a_failing_run_is_retried_after_the_backoff_then_reported(tmp_path: Path) -> None:
    daemon, clock, runner = first_run_fails(tmp_path)
    assert rows(daemon, "flaky") == [
        (1, "schedule", "failed", 1, None),
        (2, "retry", "pending", 2, 1),
    ]
    assert sent(runner) == [("notifier:pager", "retry", "1", "1")]
    assert daemon.seconds_to_deadline(clock.now()) == 10.0

    clock.advance(9.9)
    daemon.step(clock.now())
    assert [r for r, _ in runner.started] == [1]
    clock.advance(0.1)
    daemon.step(clock.now())
    assert [r for r, _ in runner.started] == [1, 2]
    runner.finish(2, Outcome.EXIT_CODE, code=1)
    daemon.step(clock.now())
    assert daemon.seconds_to_deadline(clock.now()) == 15.0  # 20 s, capped by retry_backoff_max

    clock.advance(15)
    daemon.step(clock.now())
    runner.finish(3, Outcome.EXIT_CODE, code=1)
    daemon.step(clock.now())
    assert rows(daemon, "flaky") == [
        (1, "schedule", "failed", 1, None),
        (2, "retry", "failed", 2, 1),
        (3, "retry", "failed", 3, 1),
    ]
    assert sent(runner) == [
        ("notifier:pager", "retry", "1", "1"),
        ("notifier:pager", "retry", "2", "2"),
        ("notifier:pager", "failure", "3", "3"),
    ]
    assert runner.notified[0].command == ("/bin/true",)


def test_a_retry_waiting_for_its_backoff_survives_a_restart(tmp_path: Path) -> None:
    daemon, clock, _ = first_run_fails(tmp_path)
    assert daemon.history is not None
    daemon.history.close()
    again, clock2, runner2 = make_daemon(
        tmp_path, RETRYING, start=clock.now() + timedelta(seconds=3)
    )
    assert again.retry_timer.next_of("2") == T0 + timedelta(hours=1, seconds=10)
    clock2.advance(7)
    again.step(clock2.now())
    assert runner2.started == [(2, "flaky")]


def test_success_notifies_and_does_not_retry(tmp_path: Path) -> None:
    text = RETRYING.replace("on_retry: [pager]", "on_success: [pager]")
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.set(T0 + timedelta(hours=1))
    daemon.step(clock.now())
    runner.finish(1)
    daemon.step(clock.now())
    assert rows(daemon, "flaky") == [(1, "schedule", "succeeded", 1, None)]
    assert sent(runner) == [("notifier:pager", "success", "1", "1")]


def test_a_replaced_run_is_stopped_with_the_reason(tmp_path: Path) -> None:
    text = 'jobs:\n  r: {schedule: "* * * * * */10", command: "true", overlap: replace}\n'
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.advance(10)
    daemon.step(clock.now())
    clock.advance(10)
    daemon.step(clock.now())
    assert runner.stopped == [(1, Outcome.INTERRUPTED)]
    runner.finish(1, Outcome.INTERRUPTED, code=-15)
    daemon.step(clock.now())
    assert runner.started == [(1, "r"), (2, "r")]


HOURLY = 'jobs:\n  h: {{schedule: "0 * * * *", command: "true", catch_up: {policy}, catch_up_limit: 2}}\n'


def _with_last_run(tmp_path: Path, hours_ago: float) -> None:
    with history_file(tmp_path / "state" / "history.db") as history:
        history.set_last_scheduled("h", (T0 - timedelta(hours=hours_ago)).timestamp())


def _after_downtime(tmp_path: Path, policy: str) -> tuple[list[tuple[str, str, float]], FakeRunner]:
    """The daemon starts 10 minutes after T0, the hourly job last ran 5 hours before T0."""
    _with_last_run(tmp_path, 5)
    daemon, clock, runner = make_daemon(
        tmp_path, HOURLY.format(policy=policy), start=T0 + timedelta(minutes=10)
    )
    daemon.step(clock.now())
    assert daemon.history is not None
    assert daemon.history.job_states()["h"].last_scheduled == T0.timestamp()
    assert daemon.timer.next_of("h") == T0 + timedelta(hours=1)
    runs = reversed(daemon.history.runs("h"))
    return [(r.trigger, r.state, (r.scheduled or 0) - T0.timestamp()) for r in runs], runner


MISSED = ("schedule", "missed")


def test_catch_up_once_runs_the_latest_missed_instant(tmp_path: Path) -> None:
    rows, runner = _after_downtime(tmp_path, "once")
    assert rows == [(*MISSED, -h * 3600.0) for h in (4, 3, 2, 1)] + [("catch-up", "running", 0.0)]
    assert len(runner.started) == 1


def test_catch_up_all_is_bounded_by_the_limit(tmp_path: Path) -> None:
    rows, _ = _after_downtime(tmp_path, "all")
    assert rows == [(*MISSED, -h * 3600.0) for h in (4, 3, 2)] + [
        ("catch-up", "running", -3600.0),
        ("catch-up", "skipped", 0.0),  # overlap: the first catch-up run is still running
    ]


def test_catch_up_skip_records_every_instant_missed(tmp_path: Path) -> None:
    rows, runner = _after_downtime(tmp_path, "skip")
    assert rows == [(*MISSED, -h * 3600.0) for h in (4, 3, 2, 1, 0)]
    assert runner.started == []


def test_an_instant_reached_soon_after_a_restart_still_runs(tmp_path: Path) -> None:
    _with_last_run(tmp_path, 1)
    daemon, clock, _ = make_daemon(
        tmp_path, HOURLY.format(policy="skip"), start=T0 + timedelta(seconds=30)
    )
    daemon.step(clock.now())
    assert daemon.history is not None
    [run] = daemon.history.runs("h")
    assert (run.trigger, run.state, run.scheduled) == ("schedule", "running", T0.timestamp())


def test_a_lost_run_is_retried_by_policy(tmp_path: Path) -> None:
    with history_file(tmp_path / "state" / "history.db") as history:
        lost = history.create_run("flaky", 1.0, Trigger.SCHEDULE, now=1.0)
        history.transition(lost, RunState.RUNNING, (RunState.PENDING,), pid=2_000_000_000)
    daemon, clock, runner = make_daemon(tmp_path, RETRYING)
    assert rows(daemon, "flaky") == [
        (lost, "schedule", "lost", 1, None),
        (lost + 1, "retry", "pending", 2, lost),
    ]
    clock.advance(10)
    daemon.step(clock.now())
    assert runner.started == [(lost + 1, "flaky")]


def test_jitter_delays_by_the_jobs_stable_amount(tmp_path: Path) -> None:
    text = 'jobs:\n  j: {schedule: "0 * * * *", command: "true", jitter: 5m}\n'
    daemon, clock, runner = make_daemon(tmp_path, text)
    delay = stable_jitter("j", 300)
    assert 0 < delay < 300
    assert daemon.seconds_to_deadline(clock.now()) == 300.0  # capped sleep; the hour is further
    clock.set(T0 + timedelta(hours=1, seconds=delay - 0.01))
    daemon.step(clock.now())
    assert runner.started == []
    clock.set(T0 + timedelta(hours=1, seconds=delay))
    daemon.step(clock.now())
    assert len(runner.started) == 1
    assert daemon.history is not None
    assert daemon.history.runs("j")[0].scheduled == (T0 + timedelta(hours=1)).timestamp()
