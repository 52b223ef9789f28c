"""Notifications as commands the runner starts: desktop, command and webhook.

On macOS the title and message reach osascript as arguments read by
`on run argv`, never spliced into the script text, so quotes, backslashes and
newlines in a message cannot change what the script does.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Optional

from . import desktop, webhook
from .model import Notification, Notifier
from .store import Run

OSASCRIPT_LINES = (
    "on run argv",
    "display notification (item 2 of argv) with title (item 1 of argv)",
    "end run",
)


def desktop_argv(notification: Notification, platform: Optional[str] = None) -> list[str]:
    """The argument vector that shows `notification` on this platform's desktop.

    Linux: our desktop.py speaks to the session bus, run by file with this Python.
    macOS: osascript, with title and message as arguments of `on run argv`.
    """
    if (platform or sys.platform) == "darwin":
        argv = ["/usr/bin/osascript"]
        for line in OSASCRIPT_LINES:
            argv += ["-e", line]
        return [*argv, notification.title, notification.message]
    return [
        sys.executable,
        desktop.__file__,
        notification.title,
        notification.message,
        notification.urgency,
        notification.icon,
    ]


def session_environment(uid: int) -> dict[str, str]:
    """Where the session bus of user `uid` is, for a daemon delivering to another user."""
    runtime = f"/run/user/{uid}"
    return {"XDG_RUNTIME_DIR": runtime, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus"}


@dataclass(frozen=True)
class Event:
    """What a notifier is told about a run."""

    kind: str  # failure, success or retry
    job: str
    run_id: int
    state: str
    attempt: int
    reason: str
    exit_code: Optional[int]
    next_attempt: Optional[str] = None  # ISO UTC, for a retry

    def environment(self) -> dict[str, str]:
        values = {
            "CRONPLUS_EVENT": self.kind,
            "CRONPLUS_JOB": self.job,
            "CRONPLUS_RUN_ID": str(self.run_id),
            "CRONPLUS_STATE": self.state,
            "CRONPLUS_ATTEMPT": str(self.attempt),
            "CRONPLUS_REASON": self.reason,
            "CRONPLUS_EXIT_CODE": "" if self.exit_code is None else str(self.exit_code),
            "CRONPLUS_NEXT_ATTEMPT": self.next_attempt or "",
        }
        return values

    def summary(self) -> str:
        if self.kind == "success":
            return f"{self.job} succeeded (run {self.run_id})"
        if self.kind == "retry":
            attempt = self.attempt + 1
            return (
                f"{self.job} {self.state} ({self.reason}); attempt {attempt} at {self.next_attempt}"
            )
        return f"{self.job} {self.state}: {self.reason} (run {self.run_id}, attempt {self.attempt})"


def event_for(kind: str, run: Run, next_attempt: Optional[str] = None) -> Event:
    return Event(
        kind=kind,
        job=run.job,
        run_id=run.id,
        state=run.state,
        attempt=run.attempt,
        reason=run.reason,
        exit_code=run.exit_code,
        next_attempt=next_attempt,
    )


def notifier_command(notifier: Notifier, event: Event) -> tuple[list[str], dict[str, str]]:
    """The argument vector and environment that deliver `event` through `notifier`."""
    env = event.environment()
    options = notifier.options
    if notifier.type == "command":
        command = options["command"]
        if isinstance(command, str):
            return ["/bin/sh", "-c", command], env
        assert isinstance(command, list)  # the config reader accepts a string or a list
        return [str(a) for a in command], env
    if notifier.type == "webhook":
        payload = {k.removeprefix("CRONPLUS_").lower(): v for k, v in env.items()}
        env["CRONPLUS_PAYLOAD"] = json.dumps(payload)
        env["CRONPLUS_WEBHOOK_TIMEOUT"] = str(options.get("timeout", 10))
        env["CRONPLUS_WEBHOOK_RETRIES"] = str(options.get("retries", 2))
        # by file: the child needs nothing of ours on its path, and jobs get a clean environment
        return [sys.executable, webhook.__file__, str(options["url"])], env
    urgency = "critical" if event.kind == "failure" else "normal"
    title = f"cronplus: {event.job}"
    return desktop_argv(Notification(title=title, message=event.summary(), urgency=urgency)), env
