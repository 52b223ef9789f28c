"""Notifiers: what each type is told and the command that tells it.

One module per notifier type builds the command that delivers an event
(`desktop`, `command`, `webhook`); the child processes they run live beside them
(`show_desktop`, `post_webhook`) and are run by file with the daemon's Python, so
they need nothing of ours on their path.  `outbox` is the daemon's side: events
queue up during a turn of the loop and leave at its end, each as a child process.

A module run by file has its own folder first on its path: no module here may
share a name with one of the standard library's.
"""

from __future__ import annotations

from ..model import Notifier
from . import command, desktop, mail, webhook
from .desktop import OSASCRIPT_LINES, desktop_argv, session_environment
from .facts import Delivery, Event, event_for

__all__ = [
    "OSASCRIPT_LINES",
    "Delivery",
    "Event",
    "desktop_argv",
    "event_for",
    "notifier_command",
    "session_environment",
]


def notifier_command(notifier: Notifier, event: Event, host: str = "") -> Delivery:
    """The child process that delivers `event` through `notifier`."""
    env = event.environment()
    if notifier.type == "command":
        return Delivery(command.argv(notifier), env)
    if notifier.type == "webhook":
        return Delivery(*webhook.argv(notifier, env))
    if notifier.type == "email":
        return mail.delivery(notifier, event, host or mail.hostname())
    return Delivery(desktop.argv(event.job, event.summary(), event.kind), env)
