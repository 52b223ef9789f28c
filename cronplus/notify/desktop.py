"""The desktop notifier: D-Bus on Linux (the `show_desktop` child), osascript on macOS.

On macOS the title and message reach osascript as arguments read by
`on run argv`, never spliced into the script text, so quotes, backslashes and
newlines in a message cannot change what the script does.
"""

from __future__ import annotations

import sys
from typing import Optional

from ..model import Notification
from . import show_desktop

OSASCRIPT_LINES = (
    "on run argv",
    "display notification (item 2 of argv) with title (item 1 of argv)",
    "end run",
)


def desktop_argv(notification: Notification, platform: Optional[str] = None) -> list[str]:
    """The argument vector that shows `notification` on this platform's desktop.

    Linux: our show_desktop.py speaks to the session bus, run by file with this Python.
    macOS: osascript, with title and message as arguments of `on run argv`.
    """
    if (platform or sys.platform) == "darwin":
        argv = ["/usr/bin/osascript"]
        for line in OSASCRIPT_LINES:
            argv += ["-e", line]
        return [*argv, notification.title, notification.message]
    return [
        sys.executable,
        show_desktop.__file__,
        notification.title,
        notification.message,
        notification.urgency,
        notification.icon,
    ]


def argv(job: str, summary: str, kind: str) -> list[str]:
    """A notifier's message about `job`: critical for failures, normal otherwise."""
    urgency = "critical" if kind in ("failure", "missed", "no-success") else "normal"
    return desktop_argv(Notification(title=f"cronplus: {job}", message=summary, urgency=urgency))


def session_environment(uid: int) -> dict[str, str]:
    """Where the session bus of user `uid` is, for a daemon delivering to another user."""
    runtime = f"/run/user/{uid}"
    return {"XDG_RUNTIME_DIR": runtime, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus"}
