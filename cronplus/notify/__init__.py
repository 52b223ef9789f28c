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

from dataclasses import dataclass
from typing import Optional

from ..model import Notifier
from ..store import Run
from . import command, desktop, webhook
from .desktop import OSASCRIPT_LINES, desktop_argv, session_environment

__all__ = [
    "OSASCRIPT_LINES",
    "Event",
    "desktop_argv",
    "event_for",
    "notifier_command",
    "session_environment",
]


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
    if notifier.type == "command":
        return command.argv(notifier), env
    if notifier.type == "webhook":
        return webhook.argv(notifier, env)
    return desktop.argv(event.job, event.summary(), event.kind), env
