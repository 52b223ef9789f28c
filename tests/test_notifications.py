"""Desktop notifications through a real private session bus, and what happens when none is there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from test_control import importable_copy, shared_dir, users
from test_end_to_end import DaemonProcess, ctl, daemon_factory

from cronplus.model import Notification
from cronplus.notify import OSASCRIPT_LINES, desktop_argv

__all__ = ["daemon_factory", "shared_dir", "users"]  # fixtures, used by name below
HERE = Path(__file__).resolve().parent


def test_osascript_gets_title_and_message_as_arguments_never_as_script() -> None:
    title = 'He said "stop" \\ now'
    message = 'line one\nline two "quoted" \\ back\\slash; do shell script "rm -rf ~"'
    argv = desktop_argv(Notification(title=title, message=message), platform="darwin")
    assert argv == [
        "/usr/bin/osascript",
        "-e",
        "on run argv",
        "-e",
        "display notification (item 2 of argv) with title (item 1 of argv)",
        "-e",
        "end run",
        title,
        message,
    ]
    script = " ".join(OSASCRIPT_LINES)
    assert "stop" not in script and "rm -rf" not in script


class SessionBus:
    """A private dbus-daemon --session with the test notification service on it."""

    def __init__(
        self,
        directory: Path,
        python: str = sys.executable,
        run_as: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self.record = directory / "notifications.jsonl"
        prefix = run_as or []
        self.bus = subprocess.Popen(
            [*prefix, "dbus-daemon", "--session", "--nofork", f"--address={self.address}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert time.monotonic() < deadline, "dbus-daemon did not start"
            time.sleep(0.02)
        env = {**os.environ, **(extra_env or {})}
        service = HERE / "notification_service.py"
        if run_as:  # somewhere the other user can read it
            service = Path(shutil.copy(service, directory))
            service.chmod(0o644)
        self.service = subprocess.Popen(
            [
                *prefix,
                *(["env", f"PYTHONPATH={env.get('PYTHONPATH', '')}"] if run_as else []),
                python,
                str(service),
                self.address,
                str(self.record),
            ],
            env=env,
        )
        ready = Path(str(self.record) + ".ready")
        while not ready.exists():
            assert time.monotonic() < deadline + 10, "the notification service did not start"
            assert self.service.poll() is None, "the notification service died"
            time.sleep(0.02)

    def received(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def close(self) -> None:
        for process in (self.service, self.bus):
            process.terminate()
            process.wait(10)


@pytest.fixture
def session_bus(tmp_path: Path) -> Iterator[SessionBus]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    bus = SessionBus(tmp_path)
    yield bus
    bus.close()


def test_a_notify_job_reaches_the_session_bus(
    tmp_path: Path, session_bus: SessionBus, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        jobs:
          take-a-break:
            every: 20m
            notify: {title: "Take a break", message: "You are sitting for too long", urgency: critical}
        """
    )
    daemon.extra_env = {"DBUS_SESSION_BUS_ADDRESS": session_bus.address}
    daemon.start()
    assert ctl(tmp_path, "run", "take-a-break").returncode == 0
    daemon.wait_for(lambda: bool(session_bus.received()))
    daemon.wait_for(lambda: any(r["state"] == "succeeded" for r in daemon.runs("take-a-break")))
    [shown] = session_bus.received()
    assert shown == {
        "app": "cronplus",
        "summary": "Take a break",
        "body": "You are sitting for too long",
        "icon": "",
        "urgency": 2,
        "uid": os.getuid(),
    }


def test_a_failure_alert_reaches_the_desktop(
    tmp_path: Path, session_bus: SessionBus, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory(
        """
        notifiers:
          desktop: {type: desktop}
        jobs:
          backup: {schedule: "0 0 1 1 *", command: "echo disk full >&2; exit 2", on_failure: [desktop]}
        """
    )
    daemon.extra_env = {"DBUS_SESSION_BUS_ADDRESS": session_bus.address}
    daemon.start()
    run_id = json.loads(ctl(tmp_path, "run", "backup", "--json").stdout)["run_id"]
    daemon.wait_for(lambda: bool(session_bus.received()))
    [shown] = session_bus.received()
    assert shown["summary"] == "cronplus: backup"
    assert shown["body"] == f"backup failed: exit code 2 (run {run_id}, attempt 1)"
    assert shown["urgency"] == 2


def test_no_session_bus_fails_the_notify_run_and_notes_a_failed_alert(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    nowhere = tmp_path / "no-such-bus"
    daemon = daemon_factory(
        """
        notifiers:
          desktop: {type: desktop}
        jobs:
          remind: {every: 20m, notify: {title: "hello"}}
          backup: {schedule: "0 0 1 1 *", command: "exit 1", on_failure: [desktop]}
        """
    )
    daemon.extra_env = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={nowhere}"}
    daemon.start()
    assert ctl(tmp_path, "run", "remind").returncode == 0
    daemon.wait_for(lambda: any(r["state"] == "failed" for r in daemon.runs("remind")))
    failed = daemon.runs("remind")[-1]
    assert failed["output"].decode() == f"no session bus at {nowhere}: is the user logged in?\n"

    backup = json.loads(ctl(tmp_path, "run", "backup", "--json").stdout)["run_id"]
    daemon.wait_for(lambda: any(r["id"] == backup and r["notes"] for r in daemon.runs("backup")))
    note = next(r["notes"] for r in daemon.runs("backup") if r["id"] == backup)
    assert (
        note
        == f"notifier desktop failed: exit code 1: no session bus at {nowhere}: is the user logged in?"
    )
    assert ctl(tmp_path, "status").returncode == 0  # the daemon goes on


def test_the_system_daemon_notifies_a_user_on_that_users_own_bus(
    shared_dir: Path, users: Callable[[str], str]
) -> None:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    alice = users("cpalice")
    import pwd

    uid = pwd.getpwnam(alice).pw_uid
    lib = importable_copy(shared_dir)
    runtime = Path(f"/run/user/{uid}")
    runtime.mkdir(parents=True, exist_ok=True)
    os.chown(runtime, uid, uid)
    runtime.chmod(0o700)
    bus = SessionBus(
        runtime,
        python="/usr/bin/python3",
        run_as=["runuser", "-u", alice, "--"],
        extra_env={"PYTHONPATH": str(lib)},
    )
    daemon = DaemonProcess(
        shared_dir,
        f"""
        jobs:
          stretch: {{every: 20m, user: {alice}, workdir: /, notify: {{title: "Stretch", message: "for {alice}"}}}}
        """,
    )
    try:
        # the daemon's own Python must be one alice can run, as it is once installed
        daemon.python = "/usr/bin/python3"
        daemon.extra_env = {"PYTHONPATH": str(lib)}
        daemon.start()
        assert ctl(shared_dir, "run", "stretch").returncode == 0
        daemon.wait_for(lambda: bool(bus.received()))
        [shown] = bus.received()
        assert (shown["summary"], shown["body"], shown["uid"]) == ("Stretch", f"for {alice}", uid)
    finally:
        daemon.stop()
        bus.close()
        shutil.rmtree(runtime, ignore_errors=True)
