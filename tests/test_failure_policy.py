"""Retries, catch-up, crash recovery and notifications, driven through the daemon's steps.

The clock is the test's and the runner is the fake of test_daemon_steps; config,
schedule, dispatch and the SQLite history are real.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from helpers import make_job
from test_daemon_steps import T0, FakeRunner, make_daemon

from cronplus.clock import FakeClock
from cronplus.daemon import Daemon
from cronplus.dispatch import retry_delay
from cronplus.history import History
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
    history = History(str(tmp_path / "state" / "history.db"))
    history.set_last_scheduled("h", (T0 - timedelta(hours=hours_ago)).timestamp())
    history.close()


def test_catch_up_once_runs_the_latest_missed_instant(tmp_path: Path) -> None:
    _with_last_run(tmp_path, 5)
    daemon, clock, runner = make_daemon(tmp_path, HOURLY.format(policy="once"))
    daemon.step(clock.now())
    assert daemon.history is not None
    runs = daemon.history.runs("h")
    assert [(r.trigger, r.scheduled) for r in runs] == [("catch-up", T0.timestamp())]
    assert runner.started == [(runs[0].id, "h")]
    assert daemon.history.job_states()["h"].last_scheduled == T0.timestamp()


def test_catch_up_all_is_bounded_by_the_limit(tmp_path: Path) -> None:
    _with_last_run(tmp_path, 5)
    daemon, _, _ = make_daemon(tmp_path, HOURLY.format(policy="all"))
    assert daemon.history is not None
    scheduled = sorted(r.scheduled or 0 for r in daemon.history.runs("h"))
    assert scheduled == [(T0 - timedelta(hours=1)).timestamp(), T0.timestamp()]


def test_catch_up_skip_runs_nothing(tmp_path: Path) -> None:
    _with_last_run(tmp_path, 5)
    daemon, _, _ = make_daemon(tmp_path, HOURLY.format(policy="skip"))
    assert daemon.history is not None
    assert daemon.history.runs("h") == []
    assert daemon.timer.next_of("h") == T0 + timedelta(hours=1)


def test_a_lost_run_is_retried_by_policy(tmp_path: Path) -> None:
    history = History(str(tmp_path / "state" / "history.db"))
    lost = history.create_run("flaky", 1.0, Trigger.SCHEDULE, now=1.0)
    history.transition(lost, RunState.RUNNING, (RunState.PENDING,), pid=2_000_000_000)
    history.close()
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
