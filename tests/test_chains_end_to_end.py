"""Chains with a real daemon, real processes and cronplusctl: failures, retries, caps, cycles."""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from test_end_to_end import DaemonProcess, ctl, daemon_factory

__all__ = ["daemon_factory"]  # the fixture, used by name below

PY = repr(sys.executable)


def soon(seconds: float) -> str:
    """An `at:` a few seconds from now, as an instant with its offset."""
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=seconds + 1)
    return moment.isoformat()


def counting(counter: Path, succeed_from: int) -> str:
    """A command that counts its runs in a file and fails until run number `succeed_from`."""
    code = (
        f"import pathlib, sys; p = pathlib.Path({str(counter)!r});"
        " n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n));"
        f" sys.exit(0 if n >= {succeed_from} else 1)"
    )
    return f"[{PY}, -c, {json.dumps(code)}]"


def test_a_retried_run_starts_its_followers_once_when_it_finally_succeeds(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    marks = tmp_path / "marks"
    daemon = daemon_factory(
        f"""
        jobs:
          backup:
            at: "{soon(5)}"
            command: {counting(tmp_path / "count", succeed_from=3)}
            retries: 3
            retry_backoff: 1s
          report:
            after: backup
            command: "echo report >> {marks}"
          cleanup:
            after: {{job: backup, on: failure}}
            command: "echo cleanup >> {marks}"
        """
    ).start()
    daemon.wait_for(lambda: any(r["state"] == "succeeded" for r in daemon.runs("report")), 30)
    time.sleep(1.5)  # time enough for a second start, were there one
    backup = daemon.runs("backup")
    assert [(r["attempt"], r["state"]) for r in backup] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    report = daemon.runs("report")
    assert [(r["trigger"], r["caused_by"]) for r in report] == [("chain", backup[-1]["id"])]
    assert marks.read_text() == "report\n"

    history = ctl(tmp_path, "history", "report")
    assert history.returncode == 0, history.stderr
    assert f"chain after backup run {backup[-1]['id']}" in history.stdout
    status = ctl(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    chains = status.stdout.split("\n\n")[1].splitlines()
    assert chains[0].split() == ["AFTER", "RUNS", "ON", "WITHIN"]
    assert sorted(line.split() for line in chains[1:]) == [
        ["backup", "cleanup", "failure", "-"],
        ["backup", "report", "success", "-"],
    ]
    assert f"(chain after backup run {backup[-1]['id']})" in status.stdout

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    offline = ctl(tmp_path, "history", "report")  # read from the file: the same link
    assert offline.returncode == 0 and "not running" in offline.stderr
    assert f"chain after backup run {backup[-1]['id']}" in offline.stdout


def test_a_run_that_fails_for_good_starts_the_failure_followers(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    marks = tmp_path / "marks"
    daemon = daemon_factory(
        f"""
        jobs:
          backup: {{at: "{soon(5)}", command: "exit 3", retries: 1, retry_backoff: 1s}}
          report: {{after: backup, command: "echo report >> {marks}"}}
          cleanup:
            after: {{job: backup, on: failure, within: 1h}}
            command: "echo cleanup $CRONPLUS_RUN_ID >> {marks}"
          page: {{after: {{job: cleanup, on: any}}, command: "echo page >> {marks}"}}
        """
    ).start()
    daemon.wait_for(lambda: any(r["state"] == "succeeded" for r in daemon.runs("page")), 30)
    time.sleep(1)
    (cleanup,) = daemon.runs("cleanup")
    last_backup = daemon.runs("backup")[-1]
    assert (last_backup["attempt"], last_backup["exit_code"]) == (2, 3)
    assert (cleanup["trigger"], cleanup["caused_by"]) == ("chain", last_backup["id"])
    assert marks.read_text().splitlines() == [f"cleanup {cleanup['id']}", "page"]
    assert daemon.runs("report") == []


def test_run_with_chain_and_caps(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        jobs:
          load: {schedule: "0 0 1 1 *", command: "true", max_concurrent: 4}
          report: {after: load, command: "sleep 3", overlap: skip}
        """
    ).start()
    alone = ctl(tmp_path, "run", "load")
    assert alone.returncode == 0, alone.stderr
    daemon.wait_for(lambda: [r["state"] for r in daemon.runs("load")] == ["succeeded"])
    first = ctl(tmp_path, "run", "load", "--chain", "--json")
    assert first.returncode == 0, first.stderr
    daemon.wait_for(lambda: any(r["state"] == "running" for r in daemon.runs("report")))
    second = json.loads(ctl(tmp_path, "run", "load", "--chain", "--json").stdout)
    daemon.wait_for(lambda: len(daemon.runs("report")) == 2)
    report = daemon.runs("report")
    assert [(r["caused_by"], r["state"]) for r in report] == [
        (json.loads(first.stdout)["run_id"], "running"),
        (second["run_id"], "skipped"),
    ]
    assert report[1]["reason"] == "skipped: overlap: 1 run(s) already running"
    assert [r["starts_followers"] for r in daemon.runs("load")] == [0, 1, 1]


def test_a_cycle_is_a_config_problem_with_its_path(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        'jobs:\n  a: {schedule: "* * * * * *", command: "true"}\n  b: {after: a, command: "true"}\n'
    ).start()
    daemon.write(
        'jobs:\n  a: {schedule: "* * * * * *", command: "true", after: b}\n'
        '  b: {after: a, command: "true"}\n'
    )
    check = ctl(tmp_path, "check")
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        f"{daemon.config}:2:56: jobs.a.after: a chain that comes back to where it started:"
        " a -> b -> a (each follows the next), expected no cycle",
        f"{daemon.config}: 1 problem, configuration rejected",
    ]
    reload = ctl(tmp_path, "reload")
    assert reload.returncode == 1 and "a -> b -> a" in reload.stderr
    count = len(daemon.runs("b"))
    daemon.wait_for(lambda: len(daemon.runs("b")) >= count + 2)  # the old chain runs on
