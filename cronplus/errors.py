"""The exception tree.

Converters raise a plain `ValueError` naming what they expected; the config
reader turns it into a `ConfigError` carrying the file, line, column and key
path, and collects every one of a file before rejecting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CronplusError(Exception):
    """Anything a user can cause; the CLI prints it and exits non-zero."""


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # key path such as jobs.backup.timezone
    message: str  # what was found and what was expected

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(CronplusError):
    """A configuration was rejected; it carries every problem found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class HistoryError(CronplusError):
    """The history database is missing, unreadable or from a newer version."""


class ScheduleError(ValueError):
    """A schedule that cannot be parsed or never fires."""
