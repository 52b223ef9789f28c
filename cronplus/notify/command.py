"""The command notifier: the user's own program, told the facts in its environment."""

from __future__ import annotations

from ..model import Notifier


def argv(notifier: Notifier) -> list[str]:
    """A string runs under /bin/sh -c; a list runs without a shell."""
    command = notifier.options["command"]
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    assert isinstance(command, list)  # the config reader accepts a string or a list
    return [str(a) for a in command]
