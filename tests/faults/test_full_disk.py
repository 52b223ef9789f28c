"""A full disk, a read-only file system and a damaged history file, for real.

The history lives on a small tmpfs mounted for the test and filled to the last
byte; the daemon is a real child process with per-second jobs.  Jobs must keep
running on schedule, the problem must be told (log, `health`, `status`, the
failure notifiers), and once the disk takes writes again every run must be in
the file, one row per instant.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from test_end_to_end import DaemonProcess, ctl, daemon_factory

__all__ = ["daemon_factory"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    """The daemon's state directory on a 3 MiB tmpfs of its own."""
    state = tmp_path / "state"
    mount_tmpfs(state, "3m")
    yield state
    subprocess.run(["umount", "-l", str(state)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no byte left; returns it."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 4096, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * chunk)
            except OSError:
                continue
    finally:
        os.close(descriptor)
    return filler


def scheduled_seconds(daemon: DaemonProcess, job: str) -> list[int]:
    return [int(r["scheduled"]) for r in daemon.runs(job) if r["trigger"] == "schedule"]


JOBS = """
notifiers:
  alert: {{type: command, command: "echo $CRONPLUS_EVENT $CRONPLUS_REASON >> {alerts}"}}
jobs:
  tick:
    schedule: "* * * * * *"
    command: "echo tick"
    on_failure: [alert]
"""


def test_jobs_run_on_while_the_disk_is_full_and_every_run_is_written_after(
    tmp_path: Path, small_state: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    alerts = tmp_path / "alerts"
    daemon = daemon_factory(JOBS.format(alerts=alerts)).start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 2)
    filler = fill(small_state)
    started_before = daemon.events().count("run started")
    daemon.wait_for(lambda: "history not written; kept in memory" in daemon.events())
    daemon.wait_for(lambda: daemon.events().count("run started") >= started_before + 4)
    assert alerts.exists() and "history-unwritten" in alerts.read_text()

    health = ctl(tmp_path, "health")
    assert health.returncode == 1
    assert "history: NOT WRITTEN since" in health.stdout and "disk is full" in health.stdout
    status = ctl(tmp_path, "status")
    assert status.returncode == 0
    assert "warning: history: NOT WRITTEN" in status.stderr
    errors = [r for r in daemon.records("history not written; kept in memory")]
    assert len(errors) == 1  # once a minute, not once a run

    filler.unlink()
    daemon.wait_for(lambda: "history written again" in daemon.events())
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    seconds = scheduled_seconds(daemon, "tick")
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # none lost, none twice
    assert len(seconds) >= started_before + 4


def run_and_free(
    daemon: DaemonProcess, tmp_path: Path, free: Callable[[], None], error: str
) -> None:
    """The daemon, started on a file system that takes no writes, runs its jobs; freed, it
    writes every one of them."""
    daemon.start()
    daemon.wait_for(lambda: daemon.events().count("run finished") >= 3)
    health = ctl(tmp_path, "health")
    assert health.returncode == 1 and error in health.stdout, health.stdout
    finished = daemon.events().count("run finished")
    free()
    daemon.wait_for(lambda: "history written again" in daemon.events())
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    seconds = scheduled_seconds(daemon, "tick")
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
    assert len(seconds) >= finished


def test_starting_on_a_full_disk_with_a_history_runs_jobs_and_writes_them_later(
    tmp_path: Path, small_state: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n').start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 1)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    filler = fill(small_state)
    run_and_free(daemon, tmp_path, filler.unlink, "disk")


def test_starting_on_a_full_disk_without_a_history(
    tmp_path: Path, small_state: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n')
    filler = fill(small_state)
    run_and_free(daemon, tmp_path, filler.unlink, "disk")


def test_starting_on_a_read_only_file_system(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    """The history alone on a file system mounted read-only; the socket elsewhere, as in /run."""
    readonly = tmp_path / "ro"
    mount_tmpfs(readonly, "1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
        daemon = daemon_factory(
            "daemon: {history: ro/history.db}\n"
            'jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n'
        )
        daemon.runs_file = readonly / "history.db"

        def writable() -> None:
            subprocess.run(["mount", "-o", "remount,rw", str(readonly)], check=True)

        run_and_free(daemon, tmp_path, writable, "Read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=False)


def test_a_damaged_history_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n')
    daemon.state.mkdir(mode=0o700)
    damaged = daemon.state / "history.db"
    damaged.write_bytes(b"SQLite format 3\0" + os.urandom(8192))
    daemon.start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 2)
    [moved] = [r["moved_to"] for r in daemon.records("history damaged; moved aside")]
    assert str(moved).startswith(str(damaged) + ".corrupt-")
    for path in (Path(str(moved)), damaged):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    history = ctl(tmp_path, "history", "tick")
    assert history.returncode == 0 and "succeeded" in history.stdout
