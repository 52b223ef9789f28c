"""The daemon as a child process: real schedules, signals, the history file and cronplusctl.

Schedules here are per second, so each test waits a few real seconds, never minutes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from helpers import remove_cgroup_tree

ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class DaemonProcess:
    def __init__(self, tmp_path: Path, text: str) -> None:
        self.dir = tmp_path
        self.config = tmp_path / "cronplus.yaml"
        self.state = tmp_path / "state"
        self.log = tmp_path / "daemon.log"
        self.write(text)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra_env: dict[str, str] = {}
        self.python = sys.executable
        self.runs_file = self.state / "history.db"

    def write(self, text: str) -> None:
        self.config.write_text(textwrap.dedent(text))

    def start(self) -> DaemonProcess:
        argv = [self.python, "-m", "cronplus.daemon", "-c", str(self.config)]
        argv += ["--state-dir", str(self.state), "--log-format", "json"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=log, env={**child_env(), **self.extra_env}, cwd=self.dir
            )
        self.wait_for(lambda: self.events().count("listening") > self.starts)
        self.starts += 1
        return self

    def events(self) -> list[str]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line)["event"])
            except (ValueError, KeyError):
                out.append(line)
        return out

    def records(self, event: str) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                found.append(record)
        return found

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 15) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; log:\n{self.log.read_text()}")

    def runs(self, job: str | None = None) -> list[sqlite3.Row]:
        db = sqlite3.connect(f"file:{self.runs_file}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        query, args = "SELECT * FROM runs ORDER BY id", ()
        if job:
            query, args = "SELECT * FROM runs WHERE job = ? ORDER BY id", (job,)  # type: ignore[assignment]
        rows = db.execute(query, args).fetchall()
        db.close()
        return rows

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.log.exists():
            for record in self.records("runs contained"):  # a daemon killed outright leaves them
                remove_cgroup_tree(str(record.get("cgroup", "")))


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[str], DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(text: str) -> DaemonProcess:
        made.append(DaemonProcess(tmp_path, text))
        return made[-1]

    yield make
    for daemon in made:
        daemon.stop()


def ctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "cronplus.ctl", "-c", str(tmp_path / "cronplus.yaml")]
    argv += ["--state-dir", str(tmp_path / "state"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=30)


def test_jobs_fire_on_the_second_and_are_recorded(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    stamps = tmp_path / "stamps"
    daemon = daemon_factory(
        f"""
        jobs:
          stamp:
            schedule: "* * * * * *"
            command: [{sys.executable!r}, -c, "import time; open({str(stamps)!r}, 'a').write(repr(time.time()) + chr(10))"]
          fail:
            schedule: "* * * * * *"
            command: "echo about to fail; exit 7"
        """
    ).start()
    daemon.wait_for(lambda: stamps.exists() and len(stamps.read_text().splitlines()) >= 3)
    daemon.wait_for(lambda: any(r["state"] == "failed" for r in daemon.runs("fail")))
    live = ctl(tmp_path, "status", "--json")
    assert live.returncode == 0, live.stderr
    assert {s["job"] for s in json.loads(live.stdout)} == {"stamp", "fail"}
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    times = [float(t) for t in stamps.read_text().split()]
    # each run starts within a second of its whole-second instant, one run per second
    assert all(t - int(t) < 0.5 for t in times), times
    assert len({int(t) for t in times}) == len(times)
    failed = next(r for r in daemon.runs("fail") if r["state"] == "failed")
    assert (failed["exit_code"], failed["reason"], failed["output"]) == (
        7,
        "exit code 7",
        b"about to fail\n",
    )
    assert failed["trigger"] == "schedule" and failed["attempt"] == 1
    assert all(r["state"] not in ("pending", "running") for r in daemon.runs())

    status = ctl(tmp_path, "status", "--json")  # the daemon is gone: read from the file
    assert status.returncode == 3, status.stderr
    assert "cronplus is not running" in status.stderr
    by_job = {s["job"]: s for s in json.loads(status.stdout)}
    assert by_job["fail"]["last"]["state"] == "failed"
    assert by_job["stamp"]["last"]["state"] == "succeeded"
    history = ctl(tmp_path, "history", "fail", "-n", "1")
    assert history.returncode == 0
    assert "exit code 7" in history.stdout and "failed" in history.stdout


def test_sighup_with_a_bad_file_keeps_the_old_config(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory('jobs:\n  old: {schedule: "* * * * * *", command: "true"}\n').start()
    daemon.write('jobs:\n  old: {schedule: "* * * * * *", command: "true", timezone: Mars/Base}\n')
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: "reload rejected" in daemon.events())
    daemon.wait_for(lambda: bool(daemon.records("config problem")))  # logged just after
    problem = daemon.records("config problem")[0]["problem"]
    assert f'{daemon.config}:2:61: jobs.old.timezone: unknown zone "Mars/Base"' in str(problem)
    count = len(daemon.runs("old"))
    daemon.wait_for(lambda: len(daemon.runs("old")) >= count + 2)  # still running the old config

    daemon.write('jobs:\n  new: {schedule: "* * * * * *", command: "true"}\n')
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: "reloaded" in daemon.events())
    daemon.wait_for(lambda: len(daemon.runs("new")) >= 1)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0


def test_sigterm_waits_for_the_grace_then_interrupts(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        daemon: {shutdown_grace: 1s}
        jobs:
          long: {schedule: "* * * * * *", command: "sleep 60", kill_grace: 1s}
        """
    ).start()
    daemon.wait_for(lambda: any(r["state"] == "running" for r in daemon.runs("long")))
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert 0.9 <= time.monotonic() - started < 10
    states = [r["state"] for r in daemon.runs("long")]
    assert states.count("interrupted") == 1 and "running" not in states


def test_a_second_sigterm_stops_at_once(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        daemon: {shutdown_grace: 1h}
        jobs:
          long: {schedule: "* * * * * *", command: "sleep 60"}
        """
    ).start()
    daemon.wait_for(lambda: any(r["state"] == "running" for r in daemon.runs("long")))
    daemon.signal(signal.SIGTERM)
    daemon.wait_for(lambda: "stopping" in daemon.events())
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert time.monotonic() - started < 10
    assert "interrupted" in [r["state"] for r in daemon.runs("long")]


def test_kill_9_leaves_no_run_open_after_the_next_start(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    text = 'jobs:\n  long: {schedule: "* * * * * *", command: "sleep 60"}\n'
    daemon = daemon_factory(text).start()
    daemon.wait_for(lambda: any(r["state"] == "running" for r in daemon.runs("long")))
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    daemon.start()
    daemon.wait_for(lambda: "run lost" in daemon.events())
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    states = [r["state"] for r in daemon.runs("long")]
    assert states[0] == "lost"
    assert "running" not in states and "pending" not in states


def start_once(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """The daemon started on `config`, for a start that must fail at once."""
    argv = [sys.executable, "-m", "cronplus.daemon", "-c", str(config), "--state-dir", str(state)]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=30)


def test_a_bad_config_at_start_exits_non_zero_with_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "cronplus.yaml"
    config.write_text(
        'jobs:\n  a: {schedule: "* * *", command: x}\n  b: {every: never, command: x}\n'
    )
    done = start_once(config, tmp_path / "s")
    assert done.returncode == 1
    assert f"{config}:2:17: jobs.a.schedule:" in done.stderr
    assert f"{config}:3:14: jobs.b.every:" in done.stderr
    assert not (tmp_path / "s" / "history.db").exists()


def test_a_state_directory_that_cannot_exist_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "cronplus.yaml"
    config.write_text('jobs:\n  a: {schedule: "@daily", command: "true"}\n')
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = start_once(config, blocker / "s")
    assert done.returncode == 1
    assert done.stderr.startswith(f"cronplus: {blocker / 's' / 'history.db'}: ")
    assert "Traceback" not in done.stderr
