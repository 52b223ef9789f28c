"""What the dashboard asks the daemon: runs over a window, the event feed, each job's latest runs."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from test_control import as_user, shared_dir, users
from test_end_to_end import DaemonProcess, ctl, daemon_factory

from cronplus.activity import MAX_EVENTS, Activity
from cronplus.clock import FakeClock
from cronplus.model import RunState, ScheduleKind
from cronplus.report import spec_from_record, spec_record
from cronplus.store import Run

__all__ = ["daemon_factory", "shared_dir", "users"]


def test_runs_events_and_recent_from_a_real_daemon(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        jobs:
          ok: {schedule: "* * * * * *", command: "true"}
          bad: {schedule: "* * * * * *", command: "exit 3"}
          yearly: {schedule: "0 0 1 1 *", command: "true"}
        """
    ).start()
    daemon.wait_for(lambda: sum(r["state"] == "failed" for r in daemon.runs("bad")) >= 5)

    window = ctl(tmp_path, "runs", "--hours", "1", "--json")
    assert window.returncode == 0, window.stderr
    runs = json.loads(window.stdout)
    ids = [r["id"] for r in runs]
    assert ids == sorted(ids, reverse=True)
    by_id = {r["id"]: r for r in runs}
    for row in daemon.runs():
        if row["state"] not in ("pending", "running") and row["id"] <= max(ids):
            assert by_id[row["id"]]["state"] == row["state"]  # every run that ended is there
    one = json.loads(ctl(tmp_path, "runs", "--job", "bad", "-n", "2", "--json").stdout)
    assert {r["job"] for r in one} == {"bad"} and len(one) <= 3  # 2 ended, and one maybe open

    feed = json.loads(
        ctl(tmp_path, "events", "--json").stdout.splitlines()[-1]
    )  # one JSON object a line
    assert set(feed) == {"seq", "at", "what", "job", "run_id", "state"}
    lines = ctl(tmp_path, "events").stdout.splitlines()
    assert lines[0].endswith("reloaded: the configuration")
    assert any(" ended failed: bad run " in line for line in lines)
    assert any(" started: ok run " in line for line in lines)

    from cronplus.control import Client

    client = Client(str(daemon.state / "control.sock"))
    first = client.call("events")
    later = client.call("events", after=first["seq"])
    assert later["complete"] and all(e["seq"] > first["seq"] for e in later["events"])
    status = client.call("status", recent=5)
    strip = {r["job"]: [run["state"] for run in r["recent"]] for r in status}
    assert strip["yearly"] == [] and set(strip["bad"]) <= {"failed", "running"}
    assert len(strip["bad"]) == 5
    spec = {r["job"]: r["spec"] for r in status}["ok"]
    schedule = spec_from_record(spec)  # the whole schedule, read back as the daemon holds it
    assert (schedule.kind, schedule.expressions) == (ScheduleKind.CRON, ("* * * * * *",))
    assert json.loads(json.dumps(spec_record(schedule))) == spec

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    offline = ctl(tmp_path, "runs", "--json")
    assert offline.returncode == 0 and "cronplus is not running" in offline.stderr
    db = sqlite3.connect(daemon.runs_file)
    (count,) = db.execute("SELECT COUNT(*) FROM runs").fetchone()
    db.close()
    assert len(json.loads(offline.stdout)) == count
    gone = ctl(tmp_path, "events")
    assert gone.returncode == 7 and "cronplus is not running" in gone.stderr
    assert ctl(tmp_path, "runs", "--hours", "0").returncode == 2


def test_each_user_follows_only_their_own_jobs(
    shared_dir: Path, users: Callable[[str], str]
) -> None:
    alice = users("cpalice")
    process = DaemonProcess(
        shared_dir,
        f"""
        jobs:
          alice-job: {{schedule: "* * * * * *", command: "true", user: {alice}, workdir: /}}
          root-job: {{schedule: "* * * * * *", command: "true"}}
        """,
    ).start()
    try:
        process.state.chmod(0o755)
        path = process.state / "control.sock"
        process.wait_for(lambda: len(process.runs("alice-job")) >= 2)
        feed = as_user(alice, path, "events")["result"]
        assert {e["job"] for e in feed["events"]} == {None, "alice-job"}
        window = as_user(alice, path, "runs", hours=1)["result"]
        assert {r["job"] for r in window["runs"]} == {"alice-job"}
        assert list(window["timezones"]) == ["alice-job"]
        assert as_user(alice, path, "runs", job="root-job")["fault"]["name"] == "NOT_ALLOWED"
    finally:
        process.stop()


def _run(run_id: int, state: str) -> Run:
    return Run(
        run_id, "a", None, "manual", 1, None, state, "", None, 0.0, None, None, None, None,
        None, None, 0, None, None, "",
    )  # fmt: skip


def test_the_feed_says_when_events_were_dropped_or_the_daemon_restarted() -> None:
    activity = Activity()
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=timezone.utc))
    for run_id in range(1, MAX_EVENTS + 11):
        activity.run_ended(None, _run(run_id, RunState.SUCCEEDED.value), clock.now())
    seq, events, complete = activity.after(5)
    assert (seq, len(events), complete) == (MAX_EVENTS + 10, MAX_EVENTS, False)
    assert activity.after(10)[2] and activity.after(seq)[1] == []
    assert not activity.after(seq + 1)[2]  # a number from before a restart
