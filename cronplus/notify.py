"""Desktop notifications as commands the runner starts.

On macOS the title and message reach osascript as arguments read by
`on run argv`, never spliced into the script text, so quotes, backslashes and
newlines in a message cannot change what the script does.
"""

from __future__ import annotations

import sys
from typing import Optional

from .model import Notification

OSASCRIPT_LINES = (
    "on run argv",
    "display notification (item 2 of argv) with title (item 1 of argv)",
    "end run",
)


def desktop_argv(notification: Notification, platform: Optional[str] = None) -> list[str]:
    """The argument vector that shows `notification` on this platform's desktop."""
    if (platform or sys.platform) == "darwin":
        argv = ["/usr/bin/osascript"]
        for line in OSASCRIPT_LINES:
            argv += ["-e", line]
        return [*argv, notification.title, notification.message]
    argv = ["notify-send", "--app-name=cronplus", f"--urgency={notification.urgency}"]
    if notification.icon:
        argv.append(f"--icon={notification.icon}")
    return [*argv, "--", notification.title, notification.message]
