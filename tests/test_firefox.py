"""The dashboard in a real headless Firefox (Debian's firefox-esr), driven over WebDriver
BiDi (tests/firefox.py), in front of a real daemon with real runs and a real
`cronplusctl web`. test_browser.py does the same in Chromium.

Screenshots of each page go to test-artifacts/screenshots/firefox-*.png (or under
$CRONPLUS_TEST_ARTIFACTS), beside Chromium's.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
from firefox import Firefox, Tab, firefox_binary
from test_end_to_end import DaemonProcess, ctl, daemon_factory
from test_web import Dashboard, dashboard_factory

__all__ = ["daemon_factory", "dashboard_factory"]
ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
ARTIFACTS = Path(os.environ.get("CRONPLUS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"

if firefox_binary() is None and not os.environ.get("CI"):
    pytest.skip("needs Debian's firefox-esr (scripts/test installs it)", allow_module_level=True)

JOBS = """
jobs:
  greet: {schedule: "0 0 1 1 *", command: "echo hello from greet", description: "says hello"}
  backup: {schedule: "30 2 * * *", timezone: America/New_York, command: "true"}
  report: {schedule: "0 * * * *", command: "true", description: "hourly report"}
  flaky: {schedule: "* * * * * */2", command: "echo broken >&2; exit 3", description: "always fails"}
  slow: {schedule: "* * * * * *", command: "sleep 2.5", max_concurrent: 3, overlap: queue}
"""


@pytest.fixture
def firefox() -> Iterator[Firefox]:
    """A Firefox of its own, with a fresh profile, that reports the pages' script errors
    and whatever their Content-Security-Policy blocked."""
    with Firefox() as browser:
        browser.subscribe("log.entryAdded")
        browser.preload(
            "() => document.addEventListener('securitypolicyviolation', e =>"
            " console.error(`CSP blocked ${e.blockedURI} (${e.violatedDirective})`))"
        )
        yield browser


def screenshot(tab: Tab, name: str, full_page: bool = True) -> None:
    tab.screenshot(ARTIFACTS / f"firefox-{name}.png", full_page=full_page)


def script_errors(firefox: Firefox) -> list[str]:
    """What the pages' scripts threw or wrote with console.error."""
    return [
        f"{entry['params'].get('type')}: {entry['params'].get('text')}"
        for entry in firefox.events
        if entry.get("method") == "log.entryAdded" and entry["params"].get("level") == "error"
    ]


def datasets(tab: Tab, selector: str) -> list[dict[str, str]]:
    """The data-* attributes of every element that selector matches."""
    found = tab.call(
        "(s) => Array.from(document.querySelectorAll(s), e => ({...e.dataset}))", selector
    )
    return list(found or [])


def test_the_pages_in_firefox(
    tmp_path: Path,
    daemon_factory: Callable[[str], DaemonProcess],
    dashboard_factory: Callable[[DaemonProcess], Dashboard],
    firefox: Firefox,
) -> None:
    daemon = daemon_factory(JOBS).start()
    daemon.wait_for(lambda: sum(r["state"] == "failed" for r in daemon.runs("flaky")) >= 2)
    daemon.wait_for(lambda: sum(r["state"] == "succeeded" for r in daemon.runs("slow")) >= 2)
    dashboard = dashboard_factory(daemon)
    tab = firefox.tab()
    tab.set_viewport(1280, 900)

    # logging in: the token URL sets an HttpOnly, SameSite=Strict cookie and leaves the address
    tab.navigate(dashboard.url)
    assert tab.url == f"{dashboard.base}/jobs"
    cookies = {c["name"]: c for c in tab.cookies()}
    port = dashboard.base.rsplit(":", 1)[1]
    cookie = cookies[f"cronplus_token_{port}"]
    assert cookie["value"] == dashboard.token
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "strict"
    assert tab.evaluate("document.cookie") == ""  # out of the page's scripts' reach

    # jobs: every job, with the next run the daemon has, in its zone and in UTC
    status = {r["job"]: r for r in json.loads(ctl(tmp_path, "status", "--json").stdout)}
    shown = [row["job"] for row in datasets(tab, "table.jobs tbody tr")]
    assert sorted(shown) == sorted(status)
    for job in ("backup", "greet"):  # far enough ahead not to move while the page is read
        due = datetime.fromisoformat(status[job]["next"].replace("Z", "+00:00"))
        assert tab.text(f'tr[data-job="{job}"] .utc') == f"{due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    due = datetime.fromisoformat(status["backup"]["next"].replace("Z", "+00:00"))
    in_zone = due.astimezone(ZoneInfo("America/New_York"))
    assert tab.text('tr[data-job="backup"] .local') == (
        f"{in_zone:%Y-%m-%d %H:%M:%S} {str(in_zone)[-6:]} {in_zone.tzname()}"
    )
    assert tab.text('tr[data-job="flaky"] .rate') == "0%"
    assert tab.count('tr[data-job="flaky"] ol.strip li.s-failed') >= 2
    assert tab.text("#live") == "live"
    screenshot(tab, "jobs")

    # timeline: a failed run drawn as failed, with the hatched pattern Firefox resolves
    tab.navigate(f"{dashboard.base}/timeline?range=1h")
    failed = 'g.lane[data-job="flaky"] rect.bar[data-state="failed"]'
    assert tab.count(failed) >= 2
    bar = tab.call(
        "(s) => { const b = document.querySelector(s), box = b.getBBox();"
        " return {fill: getComputedStyle(b).fill, title: b.querySelector('title').textContent,"
        " width: box.width, height: box.height,"
        " pattern: document.getElementById('hatch-failed').tagName}; }",
        failed,
    )
    assert "#hatch-failed" in bar["fill"] and bar["pattern"] == "pattern"
    assert ": failed," in bar["title"]
    assert bar["width"] > 0 and bar["height"] == 12
    slow = datasets(tab, 'g.lane[data-job="slow"]')[0]
    assert int(slow["overlaps"]) >= 1 and int(slow["rows"]) >= 2
    screenshot(tab, "timeline")

    # upcoming: backup's next runs
    tab.navigate(f"{dashboard.base}/upcoming?days=3")
    assert tab.count('table.upcoming tr[data-job="backup"]') >= 2
    screenshot(tab, "upcoming", full_page=False)

    # job: a real click on "Run now" starts a run that appears in the history
    tab.navigate(f"{dashboard.base}/jobs/greet")
    before = {r["id"] for r in daemon.runs("greet")}
    tab.click('form[action="/jobs/greet/run"] button')
    tab.wait_for("location.search.startsWith('?done=')")
    done = tab.text(".done")
    run_id = int(done.rsplit(" ", 1)[1])
    assert run_id not in before
    daemon.wait_for(lambda: any(r["id"] == run_id for r in daemon.runs("greet")))
    succeeded = f'tr[data-run="{run_id}"][data-state="succeeded"]'
    tab.wait_for(f"document.querySelector({json.dumps(succeeded)})")
    tab.click(f'tr[data-run="{run_id}"] a')
    tab.wait_for(f"location.search === '?run={run_id}'")
    assert "hello from greet" in tab.text("pre.output")
    screenshot(tab, "job")

    # live: a run started elsewhere comes onto the page by the server-sent events, no reload
    tab.navigate(f"{dashboard.base}/jobs/greet")
    tab.evaluate("window.notReloaded = true")
    started = json.loads(ctl(tmp_path, "run", "greet", "--json").stdout)["run_id"]
    tab.wait_for(f"document.querySelector('tr[data-run=\"{started}\"]')")
    assert tab.evaluate("window.notReloaded") is True
    assert tab.evaluate("document.documentElement.dataset.updated") is not None

    # keyboard: the first Tab reaches the skip link, Enter moves focus to the content
    tab.navigate(f"{dashboard.base}/jobs")
    tab.press("Tab")
    assert tab.evaluate("document.activeElement.className") == "skip"
    tab.press("Enter")
    tab.wait_for("document.activeElement.id === 'main'", timeout=5)

    # a phone: the body never scrolls sideways; only the tables' own boxes do
    phone = firefox.tab()
    phone.set_viewport(390, 844)
    for path in ("/jobs", "/jobs/greet", "/jobs/flaky", "/timeline", "/upcoming"):
        phone.navigate(dashboard.base + path)
        # Firefox draws a classic scroll bar: the page has the width inside it, not 390
        widths = phone.evaluate(
            "({inner: innerWidth, visible: document.documentElement.clientWidth,"
            " page: document.documentElement.scrollWidth, body: document.body.scrollWidth})"
        )
        assert widths["inner"] == 390, widths
        assert widths["page"] <= widths["visible"], (path, widths)
        assert widths["body"] <= widths["visible"], (path, widths)
        name = path.strip("/").replace("/", "-")
        screenshot(phone, f"{name}-phone", full_page=path != "/upcoming")
    phone.close()

    # the daemon stops: the open page learns it from the events and says so, no reload; it
    # starts again: the page is live again
    tab.navigate(f"{dashboard.base}/jobs/greet")
    tab.evaluate("window.notReloaded = true")
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    tab.wait_for("document.getElementById('live').dataset.live === 'off'", timeout=15)
    tab.wait_for("document.querySelector('.banner')", timeout=10)
    assert "cronplus is not running" in tab.text(".banner")
    assert tab.text("#live") == "read-only" and tab.count(".actions button") == 0
    assert tab.evaluate("window.notReloaded") is True
    screenshot(tab, "daemon-down")
    daemon.start()
    tab.wait_for("document.getElementById('live').dataset.live === 'on'", timeout=15)
    tab.wait_for("document.querySelector('.actions') && !document.querySelector('.banner')")
    assert tab.evaluate("window.notReloaded") is True

    assert script_errors(firefox) == []
