"""`cronplusctl web` as a real process in front of a real daemon, spoken to over HTTP.

The browser tests (test_browser.py) drive the same pages in Chromium; these check what a
browser hides: status codes, the token, CSRF, the pages of errors, and the schedule notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Union

import pytest
from test_end_to_end import DaemonProcess, child_env, daemon_factory

from cronplus.control import Fault, FaultCode
from cronplus.model import ScheduleKind, ScheduleSpec
from cronplus.report import spec_record
from cronplus.web.app import csrf_token
from cronplus.web.live import Live
from cronplus.web.views import duration_chart, timeline, upcoming, words

__all__ = ["daemon_factory"]
UTC = timezone.utc


class Dashboard:
    """`cronplusctl web` on a free loopback port, as a child process."""

    def __init__(self, daemon: DaemonProcess, argv_prefix: Optional[list[str]] = None) -> None:
        prefix = argv_prefix or [sys.executable]
        argv = [*prefix, "-m", "cronplus.ctl", "-c", str(daemon.config)]
        argv += ["--state-dir", str(daemon.state), "web", "--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env() if argv_prefix is None else None,
            start_new_session=True,  # stopped as a group: runuser does not pass signals on
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        found = re.search(r"(http://[^/]+)/jobs\?token=(\S+)", line)
        if found is None:
            self.stop()
            errors = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"no URL from cronplusctl web: {line!r} {errors}")
        self.base, self.token = found.group(1), found.group(2)
        self.url = f"{self.base}/jobs?token={self.token}"
        self.csrf = csrf_token(self.token)

    def stop(self) -> None:
        group = self.process.pid  # its own session and process group
        for signum in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(group, signum)
            except ProcessLookupError:
                break
            try:
                self.process.wait(10)
                time.sleep(0.2)  # the children of runuser
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()


class Browser:
    """A urllib client that keeps cookies and never follows redirects by itself."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        return self._open(urllib.request.Request(self.dashboard.base + path))

    def post(
        self, path: str, fields: dict[str, str], headers: Optional[dict[str, str]] = None
    ) -> tuple[int, str, dict[str, str]]:
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(
            self.dashboard.base + path, data=data, headers=headers or {}, method="POST"
        )
        return self._open(request)

    def _open(self, request: urllib.request.Request) -> tuple[int, str, dict[str, str]]:
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    def log_in(self) -> None:
        code, _, headers = self.get(f"/jobs?token={self.dashboard.token}")
        assert code == 303 and headers["Location"] == "/jobs"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def dashboard_factory() -> Iterator[Callable[[DaemonProcess], Dashboard]]:
    made: list[Dashboard] = []

    def make(daemon: DaemonProcess) -> Dashboard:
        made.append(Dashboard(daemon))
        return made[-1]

    yield make
    for each in made:
        each.stop()


JOBS = """
jobs:
  greet: {schedule: "0 0 1 1 *", command: "echo hello", description: "says hello"}
  backup: {schedule: "30 2 * * *", timezone: America/New_York, command: "true"}
"""


def test_token_csrf_and_pages_of_errors(
    daemon_factory: Callable[[str], DaemonProcess],
    dashboard_factory: Callable[[DaemonProcess], Dashboard],
) -> None:
    daemon = daemon_factory(JOBS).start()
    dashboard = dashboard_factory(daemon)
    browser = Browser(dashboard)
    code, page, headers = browser.get("/jobs")
    assert code == 403 and "Token needed" in page and "Traceback" not in page
    assert browser.get("/jobs?token=not-the-token")[0] == 403
    assert browser.get("/static/style.css")[0] == 200  # no secret in a stylesheet
    browser.log_in()
    code, page, headers = browser.get("/jobs")
    assert code == 200 and "greet" in page and "says hello" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"
    cookie = next(iter(browser.jar))
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.value == dashboard.token

    for path, expected in [
        ("/nowhere", 404),
        ("/jobs/nosuch", 404),
        ("/jobs/greet?n=many", 400),
        ("/jobs/greet?n=0", 400),
        ("/jobs/greet?state=exploded", 400),
        ("/timeline?range=1y", 400),
        ("/upcoming?days=15", 400),
        ("/upcoming?from=yesterday", 400),
        ("/upcoming?from=2020-01-01", 400),
        ("/jobs/greet?run=999999", 404),
        ("/jobs/greet/runs/x/output", 400),
    ]:
        code, page, _ = browser.get(path)
        assert code == expected, (path, code)
        assert f"<h1>{expected} · " in page and "Traceback" not in page

    assert browser.get("/timeline?range=1h")[0] == 200

    # an action without the form's CSRF token, or from another site, changes nothing
    assert browser.post("/jobs/greet/run", {})[0] == 403
    assert browser.post("/jobs/greet/run", {"csrf": "0" * 32})[0] == 403
    foreign = {"Origin": "http://evil.example"}
    assert browser.post("/jobs/greet/run", {"csrf": dashboard.csrf}, foreign)[0] == 403
    assert daemon.runs("greet") == []
    code, _, headers = browser.post("/jobs/greet/run", {"csrf": dashboard.csrf})
    assert code == 303 and headers["Location"].startswith("/jobs/greet?done=run")
    daemon.wait_for(lambda: [r["state"] for r in daemon.runs("greet")] == ["succeeded"])
    run_id = daemon.runs("greet")[0]["id"]
    code, page, _ = browser.get(f"/jobs/greet?run={run_id}")
    assert code == 200 and "hello" in page
    code, text, headers = browser.get(f"/jobs/greet/runs/{run_id}/output")
    assert (code, text) == (200, "hello\n") and headers["Content-Type"].startswith("text/plain")
    assert browser.get(f"/jobs/backup/runs/{run_id}/output")[0] == 404  # not backup's run
    code, page, _ = browser.post("/jobs/nosuch/run", {"csrf": dashboard.csrf})
    assert code == 403 and "You may not act on a job named &#34;nosuch&#34;" in page
    code, page, _ = browser.post("/jobs/greet/retry", {"csrf": dashboard.csrf})
    assert code == 409 and "no failed run to retry" in page

    # the daemon stops: the history is read, nothing can be done
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    code, page, _ = browser.get("/jobs/greet")
    assert (
        code == 200 and "cronplus is not running" in page and 'action="/jobs/greet/run"' not in page
    )
    assert f'data-run="{run_id}"' in page
    code, page, _ = browser.post("/jobs/greet/run", {"csrf": dashboard.csrf})
    assert code == 503 and "Actions need the daemon" in page


def test_a_dashboard_that_cannot_listen_says_why(
    daemon_factory: Callable[[str], DaemonProcess],
) -> None:
    daemon = daemon_factory(JOBS)
    argv = [sys.executable, "-m", "cronplus.ctl", "-c", str(daemon.config), "web", "--listen"]
    for listen, code, message in [
        ("nowhere", 2, "expected HOST:PORT such as 127.0.0.1:8080"),
        ("127.0.0.1:99999", 2, "expected HOST:PORT"),
        ("192.0.2.1:8080", 1, "cannot listen on 192.0.2.1:8080"),
    ]:
        done = subprocess.run(
            [*argv, listen], capture_output=True, text=True, env=child_env(), timeout=30
        )
        assert done.returncode == code, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


# --- what the pages compute, without a browser ---------------------------------------------


def test_schedules_in_words() -> None:
    def cron(*expressions: str) -> dict[str, object]:
        return spec_record(ScheduleSpec(ScheduleKind.CRON, expressions))

    assert words(cron("30 2 * * *")) == "At 02:30"
    assert words(cron("*/15 * * * *")) == "Every 15 minutes"
    assert words(cron("* * * * * */10")) == "Every 10 seconds"  # seconds are written last
    assert words(cron("30 2 * * *", "0 12 * * 6")) == "At 02:30; and At 12:00, only on Saturday"
    every = ScheduleSpec(ScheduleKind.EVERY, every_seconds=1200)
    assert words(spec_record(every)) == "Every 20m, counted from the last run"
    once = ScheduleSpec(ScheduleKind.AT, at_local="2027-01-01T00:00")
    assert words(spec_record(once)) == "Once, at 2027-01-01 00:00"
    hashed = ScheduleSpec(ScheduleKind.CRON, ("H 2 * * *",), resolved=("17 2 * * *",))
    assert words(spec_record(hashed)) == "At 02:17"  # the value chosen, not the H
    monthly = ScheduleSpec(ScheduleKind.CALENDAR, count=3, unit="mo", times=("17:00",))
    assert words(spec_record(monthly), monthly.describe()).startswith("Every 3mo")
    assert words(spec_record(ScheduleSpec(ScheduleKind.NONE))) == "Only after other jobs"


def record(job: str, expression: str, zone: str, next_run: str) -> dict[str, object]:
    return {
        "job": job,
        "timezone": zone,
        "paused": False,
        "next": next_run,
        "spec": spec_record(ScheduleSpec(ScheduleKind.CRON, (expression,))),
    }


def test_upcoming_marks_runs_moved_or_merged_by_the_clocks() -> None:
    # America/New_York: clocks go forward at 2026-03-08 02:00 EST (07:00Z) to 03:00 EDT
    now = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    records = [
        record("backup", "30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z"),
        record("both", "0 2,3 * * *", "America/New_York", "2026-03-08T07:00:00Z"),
        record("noon", "0 12 * * *", "America/New_York", "2026-03-07T17:00:00Z"),
    ]
    days, cut = upcoming(records, now, 2, "America/New_York")
    assert cut == []
    notes = {(u.job, u.utc): u.note for day in days for u in day.runs}
    assert notes[("backup", "2026-03-08 07:00:00Z")] == (
        "moved: 02:30 falls in the skipped hour and runs when the clocks jump"
    )
    assert notes[("both", "2026-03-08 07:00:00Z")] == (
        "merged: 02:00 (skipped by the clocks) and 03:00 run once"
    )
    assert notes[("backup", "2026-03-09 06:30:00Z")] is None
    assert notes[("noon", "2026-03-08 16:00:00Z")] is None
    sunday = next(d for d in days if d.title == "Sunday 2026-03-08")
    assert sunday.changes == [
        "America/New_York: clocks go forward 1h at 02:00 local time, to 03:00 EDT"
    ]
    # autumn: 2026-11-01 02:00 EDT (06:00Z) back to 01:00 EST
    autumn = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    hourly = record("hourly", "30 * * * *", "America/New_York", "2026-10-31T12:30:00Z")
    fixed = record("fixed", "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z")
    days, _ = upcoming([hourly, fixed], autumn, 2, "UTC")
    notes = {(u.job, u.utc): u.note for day in days for u in day.runs}
    assert notes[("hourly", "2026-11-01 05:30:00Z")].endswith("this is the first run")  # type: ignore[union-attr]
    assert notes[("hourly", "2026-11-01 06:30:00Z")].endswith("this is the second run")  # type: ignore[union-attr]
    assert notes[("fixed", "2026-11-01 05:30:00Z")] == (
        "01:30 happens twice as the clocks go back: it runs once, the first time"
    )
    assert ("fixed", "2026-11-01 06:30:00Z") not in notes


def test_the_duration_chart_labels_its_axes_apart() -> None:
    """Runs within one minute get five different times; quarters of 10 ms are not rounded."""
    start = datetime(2026, 11, 28, 9, 0, 5, tzinfo=UTC)
    runs = [
        {
            "id": i,
            "state": "succeeded",
            "duration": 0.002 * (i + 1),
            "started": f"{start + timedelta(seconds=10 * i):%Y-%m-%dT%H:%M:%S}Z",
        }
        for i in range(5)
    ]
    chart = duration_chart(runs, "Europe/Paris")
    assert [label for _, label in chart.x_ticks] == [
        "10:00:05",
        "10:00:15",
        "10:00:25",
        "10:00:35",
        "10:00:45",
    ]
    assert [label for _, label in chart.y_ticks] == ["0ms", "2.5ms", "5ms", "7.5ms", "10ms"]
    week = [
        {**r, "started": f"{start + timedelta(days=i):%Y-%m-%dT%H:%M:%S}Z"}
        for i, r in enumerate(runs)
    ]
    assert [label for _, label in duration_chart(week, "UTC").x_ticks][::4] == [
        "11-28 09:00",
        "12-02 09:00",
    ]


def test_the_timeline_stacks_overlapping_runs_and_draws_waits_and_marks() -> None:
    def run(run_id: int, job: str, state: str, **times: str) -> dict[str, object]:
        return {"id": run_id, "job": job, "state": state, "reason": "", "duration": None,
                "scheduled": None, "created": times.get("created", "2026-06-01T10:00:00Z"),
                "started": None, "ended": None, "due": None, **times}  # fmt: skip

    answer = {
        "since": "2026-06-01T00:00:00Z",
        "until": "2026-06-02T00:00:00Z",
        "runs": [
            run(1, "long", "succeeded", started="2026-06-01T10:00:00Z", ended="2026-06-01T12:00:00Z"),
            run(2, "long", "failed", started="2026-06-01T11:00:00Z", ended="2026-06-01T13:00:00Z"),
            run(3, "long", "succeeded", started="2026-06-01T12:30:00Z", ended="2026-06-01T12:40:00Z"),
            run(4, "pool", "succeeded", scheduled="2026-06-01T08:00:00Z",
                started="2026-06-01T08:10:00Z", ended="2026-06-01T08:20:00Z"),
            run(5, "pool", "missed", scheduled="2026-06-01T09:00:00Z"),
            run(6, "pool", "skipped", scheduled="2026-06-01T09:30:00Z"),
        ],
    }  # fmt: skip
    drawing = timeline(answer, ["long", "pool", "idle"], "UTC")
    lanes = {lane.job: lane for lane in drawing.lanes}
    assert [lane.job for lane in drawing.lanes] == ["idle", "long", "pool"]
    long = lanes["long"]
    assert (long.rows, long.overlaps) == (2, 1)  # run 2 overlapped run 1; run 3 took row 1
    rows = {bar.run_id: bar.y - long.y for bar in long.bars}
    assert rows[1] == rows[3] != rows[2]
    assert [b.failed for b in long.bars] == [False, True, False]
    pool = lanes["pool"]
    assert [w.label for w in pool.waits] == ["run 4 of pool waited 10m for a worker"]
    assert [(m.kind, m.label.split(":")[0]) for m in pool.marks] == [
        ("missed", "run 5 of pool"),
        ("skipped", "run 6 of pool"),
    ]
    assert drawing.counts == {"succeeded": 3, "failed": 1, "missed": 1, "skipped": 1}
    labels = [label for _, label in drawing.ticks]
    assert labels == [f"{h:02d}:00" for h in range(0, 24, 3)] + ["00:00"]


def test_the_live_feed_says_down_once_the_daemon_is_gone_not_while_it_stops() -> None:
    """A stopping daemon refuses the event feed but still answers the pages: a `down` then
    would have pages fetch themselves, get a live page, and never hear of the daemon again."""
    stopping = Fault(FaultCode.STOPPING, "the daemon is stopping")
    feed: dict[str, Any] = {"seq": 4, "complete": True, "events": []}
    answers: list[Union[dict[str, Any], Fault, None]] = [feed, stopping, stopping, None, None, feed]
    sent: list[tuple[str, int]] = []  # each event, with how many answers were still to come

    class Recorded(Live):
        def _send(self, event: bytes) -> None:
            sent.append((event.decode().split("\n")[0], len(answers)))

    async def poll(after: int) -> Optional[dict[str, Any]]:
        answer = answers.pop(0)
        live.closed = not answers
        if isinstance(answer, Exception):
            raise answer
        return answer

    live = Recorded(poll, every=0)
    live.followers.add(asyncio.Queue())
    asyncio.run(live._run())
    assert sent == [("event: down", 2), ("event: change", 0)]  # the change: "up"
