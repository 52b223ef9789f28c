"""Notice when the wall clock jumps: a step (NTP, `date -s`) or a resume from suspend.

Each turn of the loop compares how far three clocks moved since the last turn:
the wall clock, a monotonic clock that stops while the machine sleeps, and a
boot-time clock that does not.  The wall clock moving more or less than the
boot-time clock is a step; the boot-time clock moving more than the monotonic
one is a suspend.  On Linux a timerfd armed with TFD_TIMER_CANCEL_ON_SET wakes
the loop the moment the wall clock is set, so a step is noticed at once rather
than when the current sleep ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import sys
from dataclasses import dataclass
from typing import Optional

from .clock import Clock
from .model import format_seconds

THRESHOLD = 1.0  # seconds of disagreement between the clocks that count as a jump


@dataclass(frozen=True)
class ClockJump:
    stepped: float  # seconds the wall clock was set forward (negative: back)
    suspended: float  # seconds the machine slept

    def describe(self) -> str:
        if self.suspended >= THRESHOLD:
            return f"the machine was suspended for {_span(self.suspended)}"
        direction = "forward" if self.stepped > 0 else "back"
        return f"the clock was stepped {direction} by {_span(abs(self.stepped))}"


def _span(seconds: float) -> str:
    return format_seconds(round(seconds)) if seconds >= 1 else f"{seconds:.1f}s"


class ClockWatch:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._last = self._read()
        self.alarm = ClockSetAlarm.create()

    def _read(self) -> tuple[float, float, float]:
        return self.clock.now().timestamp(), self.clock.monotonic(), self.clock.boottime()

    def observe(self) -> Optional[ClockJump]:
        """The jump since the last call, if the clocks disagree by more than THRESHOLD."""
        wall, mono, boot = now = self._read()
        last_wall, last_mono, last_boot = self._last
        self._last = now
        suspended = (boot - last_boot) - (mono - last_mono)
        stepped = (wall - last_wall) - (boot - last_boot)
        if suspended < THRESHOLD and abs(stepped) < THRESHOLD:
            return None
        return ClockJump(stepped=stepped, suspended=max(suspended, 0.0))

    def close(self) -> None:
        if self.alarm is not None:
            self.alarm.close()


class ClockSetAlarm:
    """A timerfd that becomes readable when the wall clock is set (Linux)."""

    TFD_TIMER_ABSTIME = 1
    TFD_TIMER_CANCEL_ON_SET = 2
    TFD_NONBLOCK = os.O_NONBLOCK
    TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
    CLOCK_REALTIME = 0
    FAR = 1 << 40  # seconds since 1970: an expiry that never comes

    class _Itimerspec(ctypes.Structure):
        _fields_ = (("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2))

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd

    @classmethod
    def create(cls) -> Optional[ClockSetAlarm]:
        """The alarm, or None where the kernel has no timerfd (then the sleep bound does)."""
        if not sys.platform.startswith("linux"):
            return None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.timerfd_create(cls.CLOCK_REALTIME, cls.TFD_NONBLOCK | cls.TFD_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        alarm = cls(libc, fd)
        if not alarm.arm():
            alarm.close()
            return None
        return alarm

    def arm(self) -> bool:
        spec = self._Itimerspec()
        spec.it_value[0] = self.FAR
        flags = self.TFD_TIMER_ABSTIME | self.TFD_TIMER_CANCEL_ON_SET
        return int(self._libc.timerfd_settime(self.fd, flags, ctypes.byref(spec), None)) == 0

    def acknowledge(self) -> bool:
        """Called when the fd is readable: True if the clock was set; the alarm is re-armed."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.ECANCELED:
                raise
            self.arm()
            return True
        self.arm()  # the far expiry came (it cannot): arm again all the same
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
