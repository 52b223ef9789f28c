"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, in front of a
real daemon with real runs.

Screenshots of each page go to test-artifacts/screenshots/ (or $CRONPLUS_TEST_ARTIFACTS).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from helpers import history_file
from test_control import importable_copy, shared_dir, users
from test_end_to_end import DaemonProcess, ctl, daemon_factory
from test_web import Dashboard, dashboard_factory

from cronplus.model import RunState, Trigger

__all__ = ["daemon_factory", "dashboard_factory", "shared_dir", "users"]
ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("CRONPLUS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
WEB_MODULES = (
    "aiohttp", "multidict", "yarl", "frozenlist", "aiosignal", "propcache", "aiohappyeyeballs",
    "attr", "attrs", "idna", "jinja2", "markupsafe", "cron_descriptor", "typing_extensions",
    "prometheus_client",
)  # fmt: skip

if importlib.util.find_spec("playwright") is None or not os.path.exists(CHROMIUM):
    pytest.skip("needs playwright and Debian's chromium", allow_module_level=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A Chromium of its own, with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


JOBS = """
jobs:
  report: {schedule: "0 * * * *", command: "true", description: "hourly report"}
  sync: {schedule: "15 */2 * * *", command: "true", max_concurrent: 2, overlap: queue}
  greet: {schedule: "0 0 1 1 *", command: "echo hello from greet", description: "says hello"}
  backup: {schedule: "30 2 * * *", timezone: America/New_York, command: "true"}
  both: {schedule: "0 2,3 * * *", timezone: America/New_York, command: "true"}
  flaky: {schedule: "* * * * * */2", command: "echo broken >&2; exit 3", description: "always fails"}
  slow: {schedule: "* * * * * *", command: "sleep 2.5", max_concurrent: 3, overlap: queue}
  tick: {schedule: "* * * * * */2", command: "sleep 0.2"}
  pooled: {schedule: "* * * * * */3", command: "sleep 1", pool: one}
  pooled2: {schedule: "* * * * * */3", command: "sleep 1", pool: one}
daemon:
  pools: {one: 1}
"""


def prefill_day(path: Path) -> dict[str, list[str]]:
    """The last day of two jobs, as a daemon would have recorded it: `report` every hour
    (every fifth run fails), `sync` every two hours running 2.5 h, so that runs overlap, and
    waiting a few minutes for a worker; one instant of each missed, one sync skipped."""
    now = time.time()
    hour = 3600.0
    first = (now // hour - 23) * hour
    states: dict[str, list[str]] = {"report": [], "sync": []}
    with history_file(path) as store:
        for index in range(23):
            due = first + index * hour
            if index == 7:
                store.create_run("report", due, Trigger.SCHEDULE, due + 600, RunState.MISSED,
                                 reason="missed: the daemon was down")  # fmt: skip
                states["report"].append("missed")
                continue
            ok = index % 5 != 3
            _finished(store, "report", due, due + 0.01, 240 + 60 * (index % 4), ok)
            states["report"].append("succeeded" if ok else "failed")
            if index % 2 == 0 and index != 12:
                _finished(store, "sync", due + 900, due + 900 + 60 * (index % 3), 9000, True)
                states["sync"].append("succeeded")
        store.create_run("sync", first + 12 * hour + 900, Trigger.SCHEDULE, first + 12 * hour,
                         RunState.SKIPPED, reason="skipped: overlap: 2 run(s) already running")  # fmt: skip
    return states


def _finished(store: Any, job: str, due: float, started: float, seconds: float, ok: bool) -> None:
    run_id = store.create_run(job, due, Trigger.SCHEDULE, due)
    store.transition(run_id, RunState.RUNNING, [RunState.PENDING], started=started, pid=1)
    store.transition(
        run_id,
        RunState.SUCCEEDED if ok else RunState.FAILED,
        [RunState.RUNNING],
        ended=started + seconds,
        duration=seconds,
        exit_code=0 if ok else 2,
        reason="" if ok else "exit code 2",
        output=b"report written\n" if ok else b"cannot reach the database\n",
        output_bytes=15 if ok else 26,
    )


def test_the_pages_in_chromium(
    tmp_path: Path,
    daemon_factory: Callable[[str], DaemonProcess],
    dashboard_factory: Callable[[DaemonProcess], Dashboard],
    browser: Any,
) -> None:
    daemon = daemon_factory(JOBS)
    day = prefill_day(daemon.state / "history.db")
    daemon.start()
    daemon.wait_for(lambda: sum(r["state"] == "failed" for r in daemon.runs("flaky")) >= 2)
    daemon.wait_for(lambda: sum(r["state"] == "succeeded" for r in daemon.runs("slow")) >= 2)
    dashboard = dashboard_factory(daemon)
    page = browser.new_page()
    page.goto(dashboard.url)
    assert page.url == f"{dashboard.base}/jobs"  # the token left the address

    # jobs: every job, with the next run the daemon has, in its zone and in UTC
    status = {r["job"]: r for r in json.loads(ctl(tmp_path, "status", "--json").stdout)}
    rows = page.locator("table.jobs tbody tr")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.job)")) == sorted(status)
    backup = page.locator('tr[data-job="backup"]')
    due = datetime.fromisoformat(status["backup"]["next"].replace("Z", "+00:00"))
    assert backup.locator(".utc").inner_text() == f"{due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    in_zone = due.astimezone(ZoneInfo("America/New_York"))
    assert backup.locator(".local").inner_text() == (
        f"{in_zone:%Y-%m-%d %H:%M:%S} {str(in_zone)[-6:]} {in_zone.tzname()}"
    )
    assert backup.get_by_text("At 02:30").count() == 1
    assert page.locator('tr[data-job="flaky"] .rate').inner_text() == "0%"
    assert page.locator('tr[data-job="flaky"] ol.strip li.s-failed').count() >= 2
    report = page.locator('tr[data-job="report"] ol.strip li')
    shown = report.evaluate_all("items => items.map(i => i.className.slice(2))")
    assert shown == day["report"][-20:]  # the latest 20, oldest first
    counted = [s for s in day["report"][-20:] if s != "missed"]
    rate = round(100 * counted.count("succeeded") / len(counted))
    assert page.locator('tr[data-job="report"] .rate').inner_text() == f"{rate}%"
    screenshot(page, "jobs")

    # a day of the timeline: the prefilled failures, sync's overlaps, the missed instant
    page.goto(f"{dashboard.base}/timeline")
    report_lane = page.locator('g.lane[data-job="report"]')
    assert report_lane.locator('rect.bar[data-state="failed"]').count() == day["report"].count(
        "failed"
    )
    assert report_lane.locator('path.mark[data-state="missed"]').count() == 1
    sync_lane = page.locator('g.lane[data-job="sync"]')
    assert int(sync_lane.get_attribute("data-overlaps") or 0) >= 1
    assert sync_lane.locator("rect.wait").count() >= 1  # started minutes after its instant
    assert sync_lane.locator('path.mark[data-state="skipped"]').count() == 1
    screenshot(page, "timeline-day")

    # timeline: a failed run drawn as failed, overlapping runs of `slow` stacked
    page.goto(f"{dashboard.base}/timeline?range=1h")
    failed = page.locator('g.lane[data-job="flaky"] rect.bar[data-state="failed"]')
    assert failed.count() >= 2
    assert ": failed," in (failed.first.locator("title").text_content() or "")
    assert failed.first.get_attribute("fill") == "url(#hatch-failed)"
    slow = page.locator('g.lane[data-job="slow"]')
    assert int(slow.get_attribute("data-overlaps") or 0) >= 1
    assert int(slow.get_attribute("data-rows") or 0) >= 2
    assert "(overlap)" in (slow.locator("text.lane-name").text_content() or "")
    assert page.locator('g.lane[data-job^="pooled"] rect.wait').count() >= 1  # one waited
    screenshot(page, "timeline-hour")

    # upcoming: backup's next runs; and across New York's spring change of 2027-03-14
    page.goto(f"{dashboard.base}/upcoming?days=3")
    assert page.locator('tr[data-job="backup"]').count() >= 2
    page.goto(f"{dashboard.base}/upcoming?from=2027-03-13&days=2")
    moved = page.locator('tr.dst-row[data-job="backup"]')
    assert moved.locator("td").nth(1).inner_text() == "2027-03-14 07:00:00Z"
    assert moved.locator(".dst-note").inner_text().startswith("moved: 02:30 falls in")
    merged = page.locator('tr.dst-row[data-job="both"] .dst-note').inner_text()
    assert merged == "merged: 02:00 (skipped by the clocks) and 03:00 run once"
    assert (
        page.locator("p.dst")
        .inner_text()
        .endswith("America/New_York: clocks go forward 1h at 02:00 local time, to 03:00 EDT")
    )
    # one step in the page, so a live refresh cannot swap the row out between two
    page.evaluate(
        "document.querySelector('tr.dst-row[data-job=\"backup\"]').scrollIntoView();"
        " window.scrollBy(0, 250)"
    )
    screenshot(page, "upcoming", full_page=False)

    # job: pressing "run" starts a run that appears in the history; its output can be read
    page.goto(f"{dashboard.base}/jobs/greet")
    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(lambda url: "/jobs/greet?done=" in url)
    done = page.locator(".done").inner_text()
    run_id = int(done.rsplit(" ", 1)[1])
    daemon.wait_for(lambda: any(r["id"] == run_id for r in daemon.runs("greet")))
    row = page.locator(f'tr[data-run="{run_id}"]')
    row.wait_for(timeout=10_000)  # there at once, or brought by the live update
    page.wait_for_selector(f'tr[data-run="{run_id}"][data-state="succeeded"]', timeout=15_000)
    page.locator(f'tr[data-run="{run_id}"] a').first.click()
    assert "hello from greet" in page.locator("pre.output").inner_text()
    screenshot(page, "job")

    # live: a run started elsewhere shows up without a reload
    page.goto(f"{dashboard.base}/jobs/greet")
    started = json.loads(ctl(tmp_path, "run", "greet", "--json").stdout)["run_id"]
    page.wait_for_selector(f'tr[data-run="{started}"]', timeout=15_000)
    assert page.evaluate("document.documentElement.dataset.updated") is not None

    # a failing job: crosses on its chart, failed rows
    page.goto(f"{dashboard.base}/jobs/flaky?state=failed")
    assert page.locator("svg path.point.failed").count() >= 2
    assert set(page.locator("table.runs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.state)"
    )) == {"failed"}  # fmt: skip
    screenshot(page, "job-failing")

    # keyboard: the first Tab reaches the skip link, Enter moves focus to the content
    page.goto(f"{dashboard.base}/jobs")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # a phone: nothing wider than the screen but the tables' own scrolling boxes
    phone = browser.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{dashboard.base}/jobs")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "jobs-phone")
    phone.close()

    # the daemon stops: the same pages from the history file, read-only, without buttons
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    page.goto(f"{dashboard.base}/jobs/greet")
    assert "cronplus is not running" in page.locator(".banner").inner_text()
    assert page.get_by_role("button", name="Run now").count() == 0
    assert page.locator(f'tr[data-run="{run_id}"]').count() == 1
    screenshot(page, "daemon-down")


def test_read_only_pages_work_without_javascript(
    tmp_path: Path,
    daemon_factory: Callable[[str], DaemonProcess],
    dashboard_factory: Callable[[DaemonProcess], Dashboard],
    browser: Any,
) -> None:
    daemon = daemon_factory(JOBS).start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 2)
    dashboard = dashboard_factory(daemon)
    page = browser.new_page()
    # the pages' one script is live.js (the CSP allows no other): without it, no JavaScript runs
    page.route("**/static/live.js", lambda route: route.abort())
    page.goto(dashboard.url)
    assert page.evaluate("typeof EventSource") == "function"  # the browser could, had it a script
    for path, text in [
        ("/jobs", "tick"),
        ("/jobs/tick", "Durations"),
        ("/timeline", "Counts"),
        ("/upcoming", "Upcoming"),
    ]:
        page.goto(dashboard.base + path)
        assert text in page.locator("main").inner_text()
    page.goto(f"{dashboard.base}/jobs/greet")
    page.get_by_role("button", name="Run now").click()  # a plain form post
    assert page.locator(".done").inner_text().startswith("run: run ")


# --- a user who may not act -----------------------------------------------------------------


def web_lib(target: Path) -> Path:
    """cronplus, its dependencies and the dashboard's, where another user can read them."""
    lib = importable_copy(target)
    for name in WEB_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            shutil.copytree(next(iter(spec.submodule_search_locations)), lib / name)
        elif spec.origin:
            shutil.copy(spec.origin, lib)
    for path in [lib, *lib.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return lib


def test_a_user_who_may_not_act_gets_no_button_and_a_403(
    shared_dir: Path, users: Callable[[str], str], browser: Any
) -> None:
    alice = users("cpalice")
    lib = web_lib(shared_dir)
    daemon = DaemonProcess(
        shared_dir,
        f"""
        jobs:
          alice-job: {{schedule: "0 0 1 1 *", command: "id -un", user: {alice}, workdir: /}}
          root-job: {{schedule: "0 0 1 1 *", command: "id -un"}}
        """,
    ).start()
    daemon.state.chmod(0o755)
    daemon.config.chmod(0o644)
    prefix = ["runuser", "-u", alice, "--", "env", f"PYTHONPATH={lib}", "/usr/bin/python3"]
    dashboard = Dashboard(daemon, prefix)
    try:
        page = browser.new_page()
        page.goto(dashboard.url)
        jobs = page.locator("table.jobs tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.job)"
        )
        assert jobs == ["alice-job"]
        answer = page.goto(f"{dashboard.base}/jobs/root-job")
        assert answer is not None and answer.status == 404
        assert page.get_by_role("button").count() == 0
        screenshot(page, "not-yours")
        # with the page's own CSRF token, the daemon still refuses: 403, and nothing runs
        refused = page.request.post(
            f"{dashboard.base}/jobs/root-job/run", form={"csrf": dashboard.csrf}
        )
        assert refused.status == 403
        assert "You may not act on a job named" in refused.text()
        assert daemon.runs("root-job") == []
        page.goto(f"{dashboard.base}/jobs/alice-job")
        page.get_by_role("button", name="Run now").click()
        daemon.wait_for(lambda: [r["state"] for r in daemon.runs("alice-job")] == ["succeeded"])
        run_id = daemon.runs("alice-job")[0]["id"]
        page.goto(f"{dashboard.base}/jobs/alice-job?run={run_id}")
        assert page.locator("pre.output").inner_text().strip() == alice
        # the daemon stops: alice may not read root's history file, and is told so
        daemon.signal(signal.SIGTERM)
        daemon.wait_exit()
        answer = page.goto(f"{dashboard.base}/jobs")
        assert answer is not None and answer.status == 503
        assert "readable by its owner only" in page.locator("main").inner_text()
        screenshot(page, "down-and-private")
    finally:
        dashboard.stop()
        daemon.stop()
