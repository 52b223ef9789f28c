"""Alarms without floods, driven through the daemon's steps with the injected clock.

Config, schedule, timer, dispatch and the SQLite history are real; the runner is
the fake of test_daemon_steps, which records every notifier it is asked to start
(with the event in its environment and, for mail, the message on its stdin).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from test_daemon_steps import FakeRunner, make_daemon

from cronplus.daemon import Daemon
from cronplus.model import Outcome

PAGER = "notifiers:\n  pager: {type: command, command: [/bin/true]}\n"


def told(runner: FakeRunner) -> list[str]:
    return [f"{j.name.split(':')[1]}:{j.env['CRONPLUS_EVENT']}" for j in runner.notified]


def reasons(runner: FakeRunner) -> list[str]:
    return [j.env["CRONPLUS_REASON"] for j in runner.notified]


def finish_all(runner: FakeRunner, outcome: Outcome = Outcome.SUCCEEDED) -> None:
    for run_id in list(runner.active):
        runner.finish(run_id, outcome, 0 if outcome is Outcome.SUCCEEDED else 1)


def seconds(daemon: Daemon, runner: FakeRunner, count: int, outcome: Outcome) -> None:
    """`count` seconds of a per-second job, each run ending with `outcome`."""
    clock = daemon.clock
    for _ in range(count):
        clock.advance(1)  # type: ignore[attr-defined]
        daemon.step(clock.now())
        finish_all(runner, outcome)
        daemon.step(clock.now())


FLAPPING = (
    """
jobs:
  backup: {schedule: "* * * * * *", command: "exit 1", on_failure: [pager], alert_digest: 1m}
"""
    + PAGER
)


def test_a_job_failing_every_second_alerts_once_then_a_digest_then_recovers(tmp_path: Path) -> None:
    daemon, _, runner = make_daemon(tmp_path, FLAPPING)
    seconds(daemon, runner, 590, Outcome.EXIT_CODE)
    assert told(runner) == ["pager:failure"] + ["pager:digest"] * 9  # 590 failures
    assert reasons(runner)[1] == (
        "backup is still failing: 59 more failures or missed runs since 2026-06-01 12:00:01 UTC;"
        " in trouble since 2026-06-01 12:00:01 UTC"
    )
    seconds(daemon, runner, 1, Outcome.SUCCEEDED)
    assert told(runner)[10:] == ["pager:recovery"]
    assert reasons(runner)[10].startswith(
        "backup succeeded again (run 591); in trouble since 2026-06-01 12:00:01 UTC, "
    )
    seconds(daemon, runner, 5, Outcome.SUCCEEDED)  # success after success: nothing
    seconds(daemon, runner, 3, Outcome.EXIT_CODE)  # trouble again: told again, once
    assert told(runner)[11:] == ["pager:failure"]


def test_every_run_mode_tells_each_failure_and_recovery_goes_to_on_recovery(tmp_path: Path) -> None:
    text = FLAPPING.replace("alert_digest: 1m}", "alerts: every-run, on_recovery: [desk]}")
    text += "  desk: {type: command, command: [/bin/echo]}\n"
    daemon, _, runner = make_daemon(tmp_path, text)
    seconds(daemon, runner, 4, Outcome.EXIT_CODE)
    seconds(daemon, runner, 1, Outcome.SUCCEEDED)
    assert told(runner) == ["pager:failure"] * 4 + ["desk:recovery"]


def test_a_failure_retried_is_not_told_until_its_attempts_are_used_up(tmp_path: Path) -> None:
    text = FLAPPING.replace("alert_digest: 1m}", "retries: 2, retry_backoff: 1s}").replace(
        '"* * * * * *"', '"0 * * * *"'
    )
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.advance(3600)
    daemon.step(clock.now())
    for _ in range(3):  # attempts 1, 2 and 3 fail
        finish_all(runner, Outcome.EXIT_CODE)
        daemon.step(clock.now())
        clock.advance(2)
        daemon.step(clock.now())
    assert told(runner) == ["pager:failure"]
    assert runner.notified[0].env["CRONPLUS_ATTEMPT"] == "3"


def test_instants_missed_while_the_daemon_was_down_are_told_once(tmp_path: Path) -> None:
    text = 'jobs:\n  tick: {schedule: "* * * * *", command: "true", on_failure: [pager]}\n' + PAGER
    daemon, clock, runner = make_daemon(tmp_path, text)
    clock.advance(60)
    daemon.step(clock.now())
    finish_all(runner)
    daemon.step(clock.now())
    assert daemon.history is not None
    daemon.history.close()
    clock.advance(3600)  # an hour down
    again, _, runner2 = make_daemon(tmp_path, text, start=clock.now())
    again.step(again.clock.now())
    assert told(runner2) == ["pager:missed"]
    [reason] = reasons(runner2)
    assert reason == (
        "tick did not run at 2026-06-01 12:56:00 UTC, 2026-06-01 12:57:00 UTC,"
        " 2026-06-01 12:58:00 UTC, 2026-06-01 12:59:00 UTC, 2026-06-01 13:00:00 UTC"
        " and 54 earlier (missed: the daemon was down)"
    )
    missed_row = int(runner2.notified[0].env["CRONPLUS_RUN_ID"])
    assert again.history is not None and again.history.run(missed_row).state == "missed"  # type: ignore[union-attr]


def test_a_paused_job_and_a_run_that_waits_past_its_grace_are_missed(tmp_path: Path) -> None:
    text = (
        """
daemon: {max_workers: 1}
jobs:
  long: {schedule: "0 * * * *", command: "sleep 1000"}
  report: {schedule: "1 * * * *", command: "true", on_failure: [pager], grace: 2m}
  paused: {schedule: "*/10 * * * *", command: "true", on_failure: [pager]}
"""
        + PAGER
    )
    daemon, clock, runner = make_daemon(tmp_path, text)
    daemon.set_paused(daemon.config.jobs["paused"], True)  # type: ignore[union-attr]
    for _ in range(61):  # minute by minute to 13:01; long holds the only worker from 13:00
        clock.advance(60)
        daemon.step(clock.now())
        for run_id, job in list(runner.active.items()):
            if job.name != "long":
                runner.finish(run_id)
        daemon.step(clock.now())
    assert told(runner) == ["pager:missed"]  # paused's 12:10 was skipped; the rest are counted
    assert reasons(runner)[0] == "paused did not run at 2026-06-01 12:10:00 UTC (skipped: paused)"
    assert daemon.alerts is not None
    assert daemon.alerts.deadline() == clock.now() + timedelta(minutes=2)  # report's grace ends
    clock.advance(119)
    daemon.step(clock.now())
    assert told(runner) == ["pager:missed"]
    clock.advance(1)
    daemon.step(clock.now())
    assert told(runner) == ["pager:missed", "pager:missed"]
    assert reasons(runner)[1] == (
        "report did not start within 2m of 2026-06-01 13:01:00 UTC: it waits for room"
        " (max_workers, its pool or max_concurrent)"
    )


NO_SUCCESS = (
    """
jobs:
  sync: {schedule: "*/10 * * * *", command: "true", on_failure: [pager], no_success_within: 1h, alerts: every-run}
"""
    + PAGER
)


def test_no_success_within_alarms_once_across_restarts_and_recovers(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, NO_SUCCESS.replace(", alerts: every-run", ""))
    for _ in range(5):  # 12:10 .. 12:50, each run fails
        clock.advance(600)
        daemon.step(clock.now())
        finish_all(runner, Outcome.EXIT_CODE)
        daemon.step(clock.now())
    assert told(runner) == ["pager:failure"]
    assert daemon.alerts is not None
    assert daemon.alerts.deadline() == clock.now() + timedelta(minutes=10)  # the alarm, at 13:00
    clock.advance(600)
    daemon.step(clock.now())
    assert told(runner) == ["pager:failure", "pager:no-success"]
    assert (
        reasons(runner)[1]
        == "sync has not succeeded for 1h (no success since 2026-06-01 12:00:00 UTC)"
    )
    finish_all(runner, Outcome.EXIT_CODE)
    daemon.step(clock.now())
    daemon.flush(clock.now())
    assert daemon.history is not None
    daemon.history.close()

    # down for three hours; the restarted daemon tells every miss (every-run) but not the alarm again
    again, clock2, runner2 = make_daemon(tmp_path, NO_SUCCESS, start=clock.now())
    clock2.advance(3600 * 3)
    again.step(clock2.now())
    assert told(runner2) == ["pager:missed"]  # raised once, remembered in the history
    finish_all(runner2, Outcome.SUCCEEDED)
    again.step(clock2.now())
    assert told(runner2) == ["pager:missed", "pager:recovery"]
    for _ in range(7):  # 16:10 .. 17:10: nothing succeeds for an hour, the alarm again
        clock2.advance(600)
        again.step(clock2.now())
        finish_all(runner2, Outcome.EXIT_CODE)
        again.step(clock2.now())
    assert told(runner2)[2:] == ["pager:failure"] * 5 + ["pager:no-success"] + ["pager:failure"] * 2


def test_mail_output_as_cron_does_and_a_failure_is_mailed_once(tmp_path: Path) -> None:
    text = """
notifiers:
  mail: {type: email, to: ops@example.org}
jobs:
  chatty: {schedule: "* * * * * *", command: "echo hi", mail_to: [mail], on_failure: [mail]}
"""
    daemon, _, runner = make_daemon(tmp_path, text)
    seconds(daemon, runner, 2, Outcome.SUCCEEDED)  # the fake run prints "done\n": mailed each time
    seconds(daemon, runner, 1, Outcome.EXIT_CODE)
    assert told(runner) == ["mail:output", "mail:output", "mail:failure"]  # not the failure twice
    message = runner.notified[2].stdin or ""
    assert "Subject: [cronplus] chatty failed on " in message
    assert "Auto-Submitted: auto-generated" in message
    assert message.rstrip().endswith("done")


def test_mail_output_on_failure_only(tmp_path: Path) -> None:
    text = """
notifiers:
  mail: {type: email, to: ops@example.org}
jobs:
  quiet: {schedule: "* * * * * *", command: "true", mail_to: [mail], mail_output: on-failure}
"""
    daemon, _, runner = make_daemon(tmp_path, text)
    seconds(daemon, runner, 3, Outcome.SUCCEEDED)
    assert told(runner) == []
    seconds(daemon, runner, 2, Outcome.EXIT_CODE)
    assert told(runner) == ["mail:failure", "mail:failure"]


def test_the_first_deadline_is_none_without_alarms(tmp_path: Path) -> None:
    daemon, _, _ = make_daemon(tmp_path, 'jobs:\n  a: {schedule: "0 0 1 1 *", command: "true"}\n')
    assert daemon.alerts is not None and daemon.alerts.deadline() is None
