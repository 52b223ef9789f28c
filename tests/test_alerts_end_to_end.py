"""Alarms from a real daemon: mail to a real SMTP server under a job failing every second,
and missed and no-success alarms across a stop and a restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from aiosmtpd.controller import Controller
from test_end_to_end import DaemonProcess, daemon_factory
from test_mail import Recorder, free_port, parse

__all__ = ["daemon_factory"]  # a fixture, used by name below


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield recorder, controller.port
    controller.stop()


def subjects(recorder: Recorder) -> list[str]:
    return [str(parse(raw)["Subject"]) for _, _, raw in recorder.messages]


def test_a_job_failing_every_second_mails_once_and_once_more_when_it_recovers(
    tmp_path: Path, smtp: tuple[Recorder, int], daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    recorder, port = smtp
    fixed = tmp_path / "fixed"
    daemon = daemon_factory(
        f"""
        notifiers:
          mail: {{type: email, host: 127.0.0.1, port: {port}, tls: none, to: ops@example.org}}
        jobs:
          flappy:
            schedule: "* * * * * *"
            command: "echo checking; test -e {fixed}"
            on_failure: [mail]
        """
    )
    daemon.start()
    daemon.wait_for(lambda: sum(r["state"] == "failed" for r in daemon.runs("flappy")) >= 5)
    daemon.wait_for(lambda: len(recorder.messages) >= 1)
    time.sleep(1)
    [subject] = subjects(recorder)
    assert subject.startswith("[cronplus] flappy failed on ")
    fixed.touch()
    daemon.wait_for(lambda: len(recorder.messages) >= 2)
    failures = sum(r["state"] == "failed" for r in daemon.runs("flappy"))
    time.sleep(2)  # successes after a success tell nobody
    assert len(recorder.messages) == 2 and failures >= 5
    recovery = parse(recorder.messages[1][2])
    assert str(recovery["Subject"]).startswith("[cronplus] flappy recovered on ")
    assert recovery["Auto-Submitted"] == "auto-generated"
    assert "flappy succeeded again (run " in recovery.get_content()


def test_missed_and_no_success_alarms_across_a_stop_and_a_restart(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    told = tmp_path / "told"
    fixed = tmp_path / "fixed"
    daemon = daemon_factory(
        f"""
        notifiers:
          note: {{type: command, command: 'echo "$CRONPLUS_EVENT: $CRONPLUS_REASON" >> {told}'}}
        jobs:
          sync:
            schedule: "* * * * * *"
            command: "test -e {fixed}"
            on_failure: [note]
            alerts: every-run
            no_success_within: 3s
        """
    )

    def events() -> list[str]:
        return told.read_text().splitlines() if told.exists() else []

    daemon.start()
    daemon.wait_for(lambda: any(e.startswith("no-success:") for e in events()))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    time.sleep(3)  # down for three seconds: three instants or so are missed
    daemon.start()
    daemon.wait_for(lambda: any(e.startswith("missed:") for e in events()))
    fixed.touch()
    daemon.wait_for(lambda: any(e.startswith("recovery:") for e in events()))
    said = events()
    assert sum(e.startswith("no-success:") for e in said) == 1  # not raised again after the restart
    [missed] = [e for e in said if e.startswith("missed:")]
    assert missed.endswith("(missed: the daemon was down)"), missed
    assert said[-1].startswith("recovery: sync succeeded again (run ")


def test_a_mail_server_that_is_down_is_noted_on_the_run_and_the_daemon_goes_on(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    port = free_port()  # nothing listens there
    daemon = daemon_factory(
        f"""
        notifiers:
          mail: {{type: email, host: 127.0.0.1, port: {port}, tls: none, to: ops@example.org, retry_for: 2s, timeout: 1s}}
        jobs:
          backup: {{schedule: "0 0 1 1 *", command: "exit 3", on_failure: [mail]}}
        """
    )
    daemon.start()
    from test_end_to_end import ctl

    assert ctl(tmp_path, "run", "backup").returncode == 0
    daemon.wait_for(lambda: any(r["notes"] for r in daemon.runs("backup")))
    [run] = daemon.runs("backup")
    assert run["state"] == "failed"
    assert run["notes"].startswith("notifier mail failed: exit code 1: attempt 1: 127.0.0.1:")
    assert "gave up after 2 attempts in 2s" in run["notes"]
    assert ctl(tmp_path, "status").returncode == 0  # the daemon goes on
