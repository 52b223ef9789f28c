"""Telling the service manager how the daemon is: sd_notify through sdnotify.

READY=1 once the config is loaded and the socket listens; STATUS= with a
one-line summary whenever it changes; WATCHDOG=1 from the main loop at half
the interval systemd asked for, so a stuck loop gets the daemon restarted;
RELOADING=1 (with MONOTONIC_USEC) and READY=1 around reloads; STOPPING=1.
Without NOTIFY_SOCKET (a terminal, launchd) every call does nothing.
"""

from __future__ import annotations

import os
import time
from typing import Optional

import sdnotify


class ServiceManager:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        self._status = ""
        self._last_ping = 0.0
        self.watchdog_interval: Optional[float] = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.get("WATCHDOG_PID", "")
        if self.enabled and usec.isdigit() and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self, status: str) -> None:
        self._status = status
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self._send(f"STATUS={text}")

    def seconds_to_ping(self, monotonic: float) -> Optional[float]:
        if self.watchdog_interval is None:
            return None
        return max(0.0, self._last_ping + self.watchdog_interval - monotonic)

    def heartbeat(self, monotonic: float) -> None:
        """WATCHDOG=1, at most once per half interval; called from the loop, never a thread."""
        if (
            self.watchdog_interval is not None
            and monotonic - self._last_ping >= self.watchdog_interval
        ):
            self._last_ping = monotonic
            self._send("WATCHDOG=1")
