"""The daemon as a child process under failure: floods, kill -9, notifiers that really run."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable, ClassVar

import pytest
from test_end_to_end import DaemonProcess, ctl, daemon_factory

__all__ = ["daemon_factory"]  # the fixture, used by name below


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_job_that_floods_its_output_keeps_the_daemon_and_history_small(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    gigabytes = 2
    daemon = daemon_factory(
        f"""
        jobs:
          flood: {{schedule: "0 0 1 1 *", command: "head -c {gigabytes}G /dev/zero; echo THE-END"}}
        """
    ).start()
    assert daemon.process is not None
    before = resident_kib(daemon.process.pid)
    assert ctl(tmp_path, "run", "flood").returncode == 0
    peak = before
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        peak = max(peak, resident_kib(daemon.process.pid))
        if any(r["state"] == "succeeded" for r in daemon.runs("flood")):
            break
        time.sleep(0.05)
    run = daemon.runs("flood")[-1]
    assert run["state"] == "succeeded"
    assert run["output_bytes"] == gigabytes * 2**30 + len("THE-END\n")
    assert len(run["output"]) == 64 * 1024 and run["output"].endswith(b"THE-END\n")
    assert peak - before < 20 * 1024, f"daemon grew from {before} KiB to {peak} KiB"
    assert (daemon.state / "history.db").stat().st_size < 2 * 2**20


def test_kill_9_again_and_again_loses_no_history(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        jobs:
          quick: {schedule: "* * * * * *", command: "true"}
          slow: {schedule: "* * * * * *", command: "sleep 0.7", max_concurrent: 2, overlap: queue}
          flaky: {schedule: "* * * * * *", command: "exit 1", retries: 1, retry_backoff: 1s}
        """
    )
    rng = random.Random(7)
    for _ in range(8):
        daemon.start()
        time.sleep(rng.uniform(0.4, 1.6))
        daemon.signal(signal.SIGKILL)
        daemon.wait_exit()
    daemon.start()
    time.sleep(1.5)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0

    db = sqlite3.connect(daemon.state / "history.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    states = dict(db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall())
    assert "running" not in states
    started_open = db.execute(
        "SELECT COUNT(*) FROM runs WHERE started IS NOT NULL AND state IN ('pending', 'running')"
    ).fetchone()[0]
    assert started_open == 0
    # only retries still waiting for their backoff may be pending
    assert (
        db.execute(
            "SELECT COUNT(*) FROM runs WHERE state = 'pending' AND (trigger != 'retry' OR due IS NULL)"
        ).fetchone()[0]
        == 0
    )
    assert states.get("lost", 0) >= 1 and states.get("succeeded", 0) >= 1
    # a lost run of a job with retries got its retry, linked to it
    linked = db.execute(
        "SELECT COUNT(*) FROM runs r JOIN runs f ON r.first_run = f.id WHERE f.job = 'flaky'"
    ).fetchone()[0]
    assert linked >= 1
    # every second from the first run to the last one accounted for has exactly one row:
    # started, skipped, or missed while the daemon was dead
    for job in ("quick", "slow", "flaky"):
        covered: list[int] = []
        for first, until in db.execute(
            "SELECT scheduled, COALESCE(scheduled_until, scheduled) FROM runs"
            " WHERE job = ? AND trigger IN ('schedule', 'catch-up') ORDER BY scheduled",
            (job,),
        ):
            covered += range(int(first), int(until) + 1)
        assert covered == list(range(covered[0], covered[0] + len(covered))), job


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hooks.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hooks)
    _Hooks.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_failure_notifiers_run_with_the_runs_facts(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess], webhook_server: str
) -> None:
    facts = tmp_path / "facts"
    daemon = daemon_factory(
        f"""
        notifiers:
          record: {{type: command, command: "env | grep ^CRONPLUS_ | sort > {facts}"}}
          hook: {{type: webhook, url: "{webhook_server}", timeout: 5s}}
        jobs:
          broken:
            schedule: "0 0 1 1 *"
            command: "echo partial output; exit 3"
            on_failure: [record, hook]
        """
    ).start()
    run_id = json.loads(ctl(tmp_path, "run", "broken", "--json").stdout)["run_id"]
    daemon.wait_for(lambda: facts.exists() and facts.stat().st_size > 0 and bool(_Hooks.received))
    lines = dict(line.split("=", 1) for line in facts.read_text().splitlines())
    assert lines["CRONPLUS_EVENT"] == "failure"
    assert lines["CRONPLUS_JOB"] == "broken"
    assert lines["CRONPLUS_RUN_ID"] == str(run_id)
    assert (lines["CRONPLUS_STATE"], lines["CRONPLUS_EXIT_CODE"]) == ("failed", "3")
    assert lines["CRONPLUS_REASON"] == "exit code 3"
    hook = _Hooks.received[0]
    assert (hook["event"], hook["job"], hook["run_id"], hook["reason"]) == (
        "failure",
        "broken",
        str(run_id),
        "exit code 3",
    )


def test_a_dead_webhook_is_logged_and_the_daemon_goes_on(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        notifiers:
          hook: {type: webhook, url: "http://127.0.0.1:9/nothing-listens", timeout: 1s, retries: 0}
        jobs:
          broken: {schedule: "0 0 1 1 *", command: "exit 1", on_failure: [hook]}
        """
    ).start()
    assert ctl(tmp_path, "run", "broken").returncode == 0
    daemon.wait_for(lambda: "notifier failed" in daemon.events())
    assert ctl(tmp_path, "status").returncode == 0
