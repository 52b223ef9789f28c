"""What /proc says about processes: the one place that parses it.

Every reader returns None or skips a process that ends while it looks; a
process is named by (pid, start time in clock ticks since boot), because a pid
alone may be reused by the time it is acted on.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Optional

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    session: int
    start_ticks: int  # field 22 of /proc/<pid>/stat
    state: str  # R, S, D, Z, ...
    rss: int  # resident bytes

    @property
    def alive(self) -> bool:
        """Not yet a zombie: it can still run, fork and hold memory."""
        return self.state not in ("Z", "X")


def process(pid: int) -> Optional[Process]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields follow the last ")"
    fields = text.rsplit(b")", 1)[-1].split()
    try:
        return Process(
            pid=pid,
            ppid=int(fields[1]),
            session=int(fields[3]),
            start_ticks=int(fields[19]),
            state=fields[0].decode(),
            rss=int(fields[21]) * PAGE,
        )
    except (IndexError, ValueError):
        return None


def processes() -> Iterator[Process]:
    """Every process on the machine; ones that end meanwhile are skipped."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            found = process(int(entry))
            if found is not None:
                yield found


def descendants(root: int) -> Optional[list[Process]]:
    """Every process below `root`, following /proc/<pid>/task/<tid>/children from it.

    Costs in proportion to the descendants, not to every process on the machine;
    None where the kernel lacks those files (CONFIG_PROC_CHILDREN).
    """
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return None
    found: list[Process] = []
    stack = _children(root)
    while stack:
        pid = stack.pop()
        current = process(pid)
        if current is not None:
            found.append(current)
            stack.extend(_children(pid))
    return found


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    pids: list[int] = []
    for task in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{task}/children") as children,
        ):
            pids.extend(int(child) for child in children.read().split())
    return pids


def process_start_ticks(pid: int) -> Optional[int]:
    """When `pid` started, in clock ticks since boot; None when there is no such process."""
    found = process(pid)
    return found.start_ticks if found is not None else None


def boot_id() -> Optional[str]:
    """This boot's random id: start ticks and pids mean nothing across a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def environment(pid: int) -> dict[bytes, bytes]:
    """The environment `pid` was started with (empty for a zombie or when unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return {}
    return dict(entry.partition(b"=")[::2] for entry in entries if b"=" in entry)


def send_signal(pid: int, signum: int, still_meant: Callable[[], bool]) -> None:
    """Signal `pid` only if `still_meant()` holds while a pidfd pins the process checked.

    Without a pidfd (macOS, Linux before 5.3) the check and the kill are two
    steps, as with kill(1).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        if still_meant():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        return
    try:
        if still_meant():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)
