"""What the runner asks of every containment mechanism, and the one failure it must tell apart."""

from __future__ import annotations

import subprocess
from typing import Callable, Optional, Protocol


class OverLimit(Exception):
    """The run already used more memory than its limit when the limit was set."""


class RunGroup(Protocol):
    """One run's processes: the leader and everything it started, wherever they went."""

    @property
    def path(self) -> Optional[str]:
        """The run's cgroup directory; None when the run is tracked without one."""

    def limit(self, limit: int) -> None:
        """Hold the run to `limit` bytes; raises OverLimit, or OSError when it cannot."""

    def signal(self, signum: int) -> None:
        """Send `signum` to every live process of the run."""

    def empty(self) -> bool:
        """No live process of the run is left."""

    def usage(self) -> int:
        """Resident bytes of the run's processes, for the watchdog."""

    def oom_kills(self) -> int:
        """Processes of the run the kernel killed at its limit."""

    def peak(self) -> Optional[int]:
        """The most memory the run held, where the kernel counts it."""

    def release(self) -> None:
        """Forget the run; its cgroup goes when empty."""


class Containment(Protocol):
    """How this daemon keeps each run's processes together."""

    kind: str  # what the start-up log names
    kernel_limits: bool  # memory limits enforced by the kernel, not by the watchdog
    polled: bool  # refresh() must run while runs are active

    def spawn(
        self, run_id: int, start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[subprocess.Popen[bytes], RunGroup]:
        """Call `start` so that the process is born inside the run's group."""

    def refresh(self) -> None:
        """Bring the groups up to date (a walk of /proc where there is no cgroup)."""

    def describe(self) -> dict[str, str]:
        """Facts for the start-up log."""

    def close(self) -> None:
        """At the end of the daemon: give back what `choose` took."""
