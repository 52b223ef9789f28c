"""Logging set-up: journald, a terminal or JSON lines.

Under journald (JOURNAL_STREAM set) each line starts with a syslog priority
prefix and carries no timestamp, since the journal adds its own; on a
terminal the console renderer; anywhere else one JSON object a line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

FORMATS = ("auto", "journal", "console", "json")
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def _journal_prefix(
    _: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["_priority"] = _PRIORITY.get(method, 6)
    return event


def _journal_render(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    priority = event.pop("_priority", 6)
    message = event.pop("event", "")
    fields = " ".join(f"{k}={_quote(v)}" for k, v in event.items() if k != "level")
    return f"<{priority}>{message} {fields}".rstrip()


def _quote(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def choose(requested: str, stream: TextIO) -> str:
    if requested != "auto":
        return requested
    if os.environ.get("JOURNAL_STREAM"):
        return "journal"
    return "console" if stream.isatty() else "json"


def configure(requested: str = "auto", stream: TextIO = sys.stderr, level: str = "info") -> str:
    """Set up structlog for the daemon; returns the format chosen."""
    chosen = choose(requested, stream)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if chosen == "journal":
        processors += [_journal_prefix, _journal_render]
    elif chosen == "console":
        processors += [
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=stream.isatty() and "NO_COLOR" not in os.environ),
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return chosen
