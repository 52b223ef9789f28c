"""What a notifier is told, and how a notifier's child process is started."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..store import Run


@dataclass(frozen=True)
class Event:
    """What a notifier is told about a run."""

    kind: str  # failure, success, retry, recovery, digest, missed, no-success, output
    job: str
    run_id: int
    state: str
    attempt: int
    reason: str
    exit_code: Optional[int]
    next_attempt: Optional[str] = None  # ISO UTC, for a retry
    timezone: str = "UTC"
    scheduled: Optional[float] = None  # epoch seconds
    started: Optional[float] = None
    ended: Optional[float] = None
    duration: Optional[float] = None
    output: bytes = b""  # the end of what the run printed
    output_bytes: int = 0
    detail: str = ""  # more lines: a digest's count, the instants missed

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
        if self.kind in ("recovery", "digest", "missed", "no-success"):
            return self.reason
        if self.kind == "output":
            return f"{self.job} printed {self.output_bytes} bytes (run {self.run_id}, {self.state})"
        if self.kind == "success":
            return f"{self.job} succeeded (run {self.run_id})"
        if self.kind == "retry":
            attempt = self.attempt + 1
            return (
                f"{self.job} {self.state} ({self.reason}); attempt {attempt} at {self.next_attempt}"
            )
        return f"{self.job} {self.state}: {self.reason} (run {self.run_id}, attempt {self.attempt})"


def event_for(
    kind: str,
    run: Run,
    next_attempt: Optional[str] = None,
    timezone: str = "UTC",
    reason: Optional[str] = None,
    detail: str = "",
) -> Event:
    return Event(
        kind=kind,
        job=run.job,
        run_id=run.id,
        state=run.state,
        attempt=run.attempt,
        reason=run.reason if reason is None else reason,
        exit_code=run.exit_code,
        next_attempt=next_attempt,
        timezone=timezone,
        scheduled=run.scheduled,
        started=run.started,
        ended=run.ended,
        duration=run.duration,
        output=run.output or b"",
        output_bytes=run.output_bytes,
        detail=detail,
    )


@dataclass(frozen=True)
class Delivery:
    """How a notifier is told: a child process, what it reads, how long it may take."""

    argv: list[str]
    env: dict[str, str]
    stdin: Optional[str] = None
    timeout: float = 60.0
