"""Every scheduled instant leaves exactly one row, whatever happens to the loop and the clock.

Driven through the daemon's steps with a clock the test sets: stalls, wall-clock
steps forward and back, suspends, restarts after a crash, pauses and reloads.  The
runner is the fake of test_daemon_steps; config, schedule, accounting and the
SQLite history are real.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_daemon_steps import T0, FakeRunner, make_daemon

from cronplus.clock import FakeClock
from cronplus.daemon import Daemon
from cronplus.model import Outcome
from cronplus.paths import resolve
from cronplus.schedule import build_rule, instants_between
from cronplus.store import Run

UTC = timezone.utc
TEN_SECONDS = 'jobs:\n  tick: {schedule: "* * * * * */10", command: "true", catch_up: %s}\n'


def rows(daemon: Daemon, job: str) -> list[Run]:
    assert daemon.history is not None
    return list(reversed(daemon.history.runs(job, limit=100_000)))


def scheduled_rows(daemon: Daemon, job: str) -> list[tuple[str, str, float]]:
    """(trigger, state, seconds after T0) of the rows that stand for instants."""
    return [
        (r.trigger, r.state, (r.scheduled or 0) - T0.timestamp())
        for r in rows(daemon, job)
        if r.trigger in ("schedule", "catch-up")
    ]


def finish_all(runner: FakeRunner) -> None:
    for run_id in list(runner.active):
        runner.finish(run_id)


def assert_every_instant_once(daemon: Daemon, job: str, start: datetime) -> None:
    """Each instant of the job's schedule after `start`, up to its mark, has exactly one row."""
    assert daemon.history is not None and daemon.config is not None
    state = daemon.history.job_states().get(job)
    if state is None or state.last_scheduled is None:
        assert not [r for r in rows(daemon, job) if r.trigger in ("schedule", "catch-up")]
        return
    mark = state.last_scheduled
    spec = daemon.config.jobs[job]
    rule = build_rule(spec.schedule, spec.timezone)
    end = datetime.fromtimestamp(mark, UTC)
    expected = [i.timestamp() for i in instants_between(rule, start, end, limit=100_000)]
    singles: dict[float, int] = {}
    folded: list[Run] = []
    for run in rows(daemon, job):
        if run.trigger not in ("schedule", "catch-up"):
            continue
        if run.instants > 1:
            folded.append(run)
        else:
            assert run.scheduled is not None
            singles[run.scheduled] = singles.get(run.scheduled, 0) + 1
    covered = 0
    for instant in expected:
        in_folds = [f for f in folded if (f.scheduled or 0) <= instant <= (f.scheduled_until or 0)]
        count = singles.pop(instant, 0) + len(in_folds)
        assert count == 1, f"instant {instant - T0.timestamp():+} has {count} rows"
        covered += bool(in_folds)
    assert not singles, f"rows for instants that are not in the schedule: {singles}"
    assert covered == sum(f.instants for f in folded)


def test_a_stalled_loop_starts_the_latest_instant_and_records_the_others_missed(
    tmp_path: Path,
) -> None:
    daemon, clock, runner = make_daemon(tmp_path, TEN_SECONDS % "skip")
    clock.advance(10)
    daemon.step(clock.now())
    finish_all(runner)
    clock.advance(35)  # the loop was stuck: the instants at 20, 30 and 40 s passed
    daemon.step(clock.now())
    assert scheduled_rows(daemon, "tick") == [
        ("schedule", "succeeded", 10.0),
        ("schedule", "missed", 20.0),
        ("schedule", "missed", 30.0),
        ("schedule", "running", 40.0),
    ]
    assert rows(daemon, "tick")[1].reason == "missed: the daemon's loop stalled for 25.0s"
    assert daemon.timer.next_of("tick") == T0 + timedelta(seconds=50)


def test_a_forward_clock_step_is_handled_like_downtime(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(tmp_path, TEN_SECONDS % "once")
    clock.advance(5)
    daemon.step(clock.now())
    clock.step(3600 + 70)  # the wall clock jumps 1h1m10s: 366 instants jumped over
    daemon.step(clock.now())
    found = rows(daemon, "tick")
    assert found[-1].trigger == "schedule" and found[-1].state == "running"
    assert found[-1].scheduled == (T0 + timedelta(seconds=3670)).timestamp()
    assert {r.reason for r in found[:-1] if r.instants == 1} == {
        "missed: the clock was stepped forward by 1h1m10s"
    }
    assert sum(r.instants for r in found) == 367
    assert_every_instant_once(daemon, "tick", T0)


def test_a_resume_from_suspend_is_handled_like_downtime(tmp_path: Path) -> None:
    text = 'jobs:\n  hourly: {schedule: "0 * * * *", command: "true", catch_up: once}\n'
    daemon, clock, _ = make_daemon(tmp_path, text)
    clock.advance(5)
    daemon.step(clock.now())
    clock.suspend(2 * 3600 + 300)  # wakes at 14:05:05: 13:00 and 14:00 passed in its sleep
    daemon.step(clock.now())
    assert scheduled_rows(daemon, "hourly") == [
        ("schedule", "missed", 3600.0),
        ("catch-up", "running", 7200.0),  # catch_up: once runs the latest missed instant
    ]
    assert rows(daemon, "hourly")[0].reason == "missed: the machine was suspended for 2h5m"
    assert_every_instant_once(daemon, "hourly", T0)


def test_a_clock_set_back_does_not_stall_interval_jobs(tmp_path: Path) -> None:
    text = """
    jobs:
      tick: {schedule: "* * * * * */10", command: "true"}
      stretch: {every: 5m, command: "true"}
      lunch: {schedule: "30 12 * * *", command: "true"}
    """
    daemon, clock, runner = make_daemon(tmp_path, textwrap.dedent(text))
    clock.set(T0 + timedelta(minutes=30))
    for _ in range(2):
        daemon.step(clock.now())
        finish_all(runner)
        daemon.step(clock.now())
    assert [r.state for r in rows(daemon, "lunch")] == ["succeeded"]  # 12:30 ran
    stretch_next = daemon.timer.next_of("stretch")
    assert stretch_next is not None
    real_wait = (stretch_next - clock.now()).total_seconds()
    clock.step(-3600)  # NTP (or `date -s`) sets the clock back an hour, to 11:30
    daemon.step(clock.now())
    assert daemon.timer.next_of("tick") == clock.now() + timedelta(seconds=10)
    stretch_after = daemon.timer.next_of("stretch")
    assert stretch_after is not None
    assert (stretch_after - clock.now()).total_seconds() == real_wait  # the real cadence
    assert daemon.timer.next_of("lunch") == datetime(2026, 6, 2, 12, 30, tzinfo=UTC)
    for _ in range(200):  # the next hour of the new time, 10 s at a time
        clock.advance(20)
        daemon.step(clock.now())
        finish_all(runner)
    assert [r.state for r in rows(daemon, "lunch")] == ["succeeded"]  # 12:30 did not run again
    ticks = [r for r in rows(daemon, "tick") if r.state == "succeeded"]
    assert len(ticks) > 190  # it never waited for the old time to come back


def test_a_waiting_retry_keeps_its_real_backoff_when_the_clock_goes_back(tmp_path: Path) -> None:
    text = 'jobs:\n  f: {schedule: "0 * * * *", command: "false", retries: 1, retry_backoff: 10m}\n'
    daemon, clock, runner = make_daemon(tmp_path, text, start=T0 - timedelta(seconds=1))
    clock.advance(1)
    daemon.step(clock.now())
    runner.finish(1, Outcome.EXIT_CODE, code=1)
    daemon.step(clock.now())
    clock.advance(60)
    clock.step(-1800)
    daemon.step(clock.now())
    assert daemon.retry_timer.deadline() == clock.now() + timedelta(minutes=9)


def test_a_reload_at_the_instant_a_job_is_due_loses_no_run(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(tmp_path, TEN_SECONDS % "skip")
    clock.advance(10)  # the instant at 10 s is due, and the reload comes first
    (tmp_path / "cronplus.yaml").write_text(
        'jobs:\n  tick: {schedule: "* * * * * */15", command: "true"}\n'
    )
    assert daemon.reload(clock.now()) is None
    daemon.step(clock.now())
    assert scheduled_rows(daemon, "tick") == [("schedule", "running", 10.0)]
    assert daemon.timer.next_of("tick") == T0 + timedelta(seconds=15)


def test_a_reload_while_an_instant_waits_for_its_jitter_loses_no_run(tmp_path: Path) -> None:
    text = 'jobs:\n  j: {schedule: "0 * * * *", command: "true", jitter: 5m}\n'
    daemon, clock, _ = make_daemon(tmp_path, text, start=T0 - timedelta(seconds=1))
    clock.advance(2)  # 12:00 has come; its run waits for the job's jitter
    (tmp_path / "cronplus.yaml").write_text(
        'jobs:\n  j: {schedule: "30 * * * *", command: "true"}\n'
    )
    assert daemon.reload(clock.now()) is None
    daemon.step(clock.now())
    assert scheduled_rows(daemon, "j") == [("schedule", "running", 0.0)]
    assert daemon.timer.next_of("j") == T0 + timedelta(minutes=30)


EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 15)),
        st.tuples(st.just("stall"), st.integers(11, 400)),
        st.tuples(st.just("step"), st.integers(2, 5000)),
        st.tuples(st.just("suspend"), st.integers(2, 5000)),
        st.tuples(st.just("pause"), st.booleans()),
        st.tuples(st.just("crash"), st.just(0)),
        st.tuples(st.just("finish"), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS, policy=st.sampled_from(["skip", "once", "all"]))
def test_any_sequence_of_faults_leaves_one_row_per_instant(
    tmp_path_factory: object, events: list[tuple[str, object]], policy: str
) -> None:
    import pytest

    assert isinstance(tmp_path_factory, pytest.TempPathFactory)
    tmp_path = tmp_path_factory.mktemp("faults")
    daemon, clock, runner = make_daemon(tmp_path, TEN_SECONDS % policy)
    for kind, value in events:
        if kind in ("advance", "stall"):  # a stall: the loop woke long after its deadline
            clock.advance(float(value))  # type: ignore[arg-type]
        elif kind == "step":
            clock.step(float(value))  # type: ignore[arg-type]
        elif kind == "suspend":
            clock.suspend(float(value))  # type: ignore[arg-type]
        elif kind == "pause":
            assert daemon.config is not None
            daemon.set_paused(daemon.config.jobs["tick"], bool(value))
        elif kind == "finish":
            finish_all(runner)
        elif kind == "crash":
            assert daemon.history is not None
            daemon.history.flush(clock.now())
            daemon.history.close()
            daemon = restart(tmp_path, clock)
            runner = FakeRunner(daemon._on_exit, clock)
            daemon.runner = runner  # type: ignore[assignment]
        daemon.step(clock.now())
    assert_every_instant_once(daemon, "tick", T0)


def restart(tmp_path: Path, clock: FakeClock) -> Daemon:
    daemon = Daemon(
        resolve(False, str(tmp_path / "cronplus.yaml"), str(tmp_path / "state")), clock, "UTC"
    )
    daemon.load()
    return daemon
