"""History files are their owner's alone, and crash recovery touches only its own processes.

Two real instances run side by side, each numbering its runs from 1; one is
killed with SIGKILL and restarted, and must stop its own orphans and nothing of
the other's.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
from test_control import shared_dir, users
from test_end_to_end import DaemonProcess, ctl, daemon_factory

from cronplus.containment.procfs import environment, processes

__all__ = ["daemon_factory", "shared_dir", "users"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def processes_of(instance: str, run_id: int) -> list[int]:
    """Live pids whose environment names this instance and run."""
    found = []
    for candidate in processes():
        if not candidate.alive:
            continue
        env = environment(candidate.pid)
        if (
            env.get(b"CRONPLUS_INSTANCE") == instance.encode()
            and env.get(b"CRONPLUS_RUN_ID") == str(run_id).encode()
        ):
            found.append(candidate.pid)
    return found


def instance_of(daemon: DaemonProcess) -> str:
    import sqlite3

    db = sqlite3.connect(f"file:{daemon.runs_file}?mode=ro", uri=True)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0])
    finally:
        db.close()


SLEEPERS = """
daemon: {{cgroups: {cgroups}}}
jobs:
  sleeper:
    schedule: "0 0 1 1 *"
    command: "setsid sleep 300 & sleep 300"
"""


@pytest.mark.parametrize("cgroups", ["auto", "off"])
def test_recovery_after_kill_9_stops_its_own_orphans_and_no_one_elses(
    tmp_path: Path, cgroups: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = DaemonProcess(tmp_path / "a", SLEEPERS.format(cgroups=cgroups)).start()
    second = DaemonProcess(tmp_path / "b", SLEEPERS.format(cgroups=cgroups)).start()
    try:
        for daemon in (first, second):
            assert ctl(daemon.dir, "run", "sleeper").returncode == 0
            daemon.wait_for(lambda d=daemon: any(r["state"] == "running" for r in d.runs()))  # type: ignore[misc]
        mine, theirs = instance_of(first), instance_of(second)
        assert mine != theirs
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            len(processes_of(mine, 1)) < 3 or len(processes_of(theirs, 1)) < 3
        ):
            time.sleep(0.05)  # the shell and both sleeps, in each instance: run 1 both times
        orphans, others = processes_of(mine, 1), processes_of(theirs, 1)
        assert len(orphans) >= 3 and len(others) >= 3
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        first.start()
        first.wait_for(lambda: "stopped an orphan" in first.events())
        first.wait_for(lambda: not processes_of(mine, 1))
        [lost] = first.runs("sleeper")
        assert (lost["state"], lost["reason"]) == (
            "lost",
            "lost: the daemon stopped while it was running",
        )
        assert sorted(processes_of(theirs, 1)) == sorted(others)  # the other instance's, untouched
    finally:
        first.stop()
        second.stop()
        for pid in processes_of(instance_of(second), 1) + processes_of(instance_of(first), 1):
            os.kill(pid, signal.SIGKILL)


def test_history_files_are_private_while_running_and_after_a_stop(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    daemon = daemon_factory('jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n').start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 2)
    assert mode(daemon.state) == 0o700
    for name in ("history.db", "history.db-wal", "history.db-shm"):
        assert mode(daemon.state / name) == 0o600, name
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert mode(daemon.state / "history.db") == 0o600


def test_the_owner_reads_offline_and_others_get_a_message(
    shared_dir: Path, users: Callable[[str], str]
) -> None:
    from test_control import importable_copy

    eve = users("cpeve")
    lib = importable_copy(shared_dir)
    daemon = DaemonProcess(
        shared_dir, 'jobs:\n  tick: {schedule: "* * * * * *", command: "true"}\n'
    ).start()
    daemon.wait_for(lambda: len(daemon.runs("tick")) >= 2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    owner = ctl(shared_dir, "history", "tick")
    assert owner.returncode == 0 and "succeeded" in owner.stdout
    daemon.config.chmod(0o644)
    argv = ["runuser", "-u", eve, "--", "env", f"PYTHONPATH={lib}", "/usr/bin/python3", "-m"]
    argv += ["cronplus.ctl", "-c", str(daemon.config), "--state-dir", str(daemon.state)]
    runtime = shared_dir / "run"  # as /run/cronplus: reachable by all, no daemon in it now
    runtime.mkdir(mode=0o755)
    argv += ["--runtime-dir", str(runtime)]
    other = subprocess.run([*argv, "history", "tick"], capture_output=True, text=True, timeout=30)
    assert other.returncode == 1
    assert "Traceback" not in other.stderr
    assert f"{daemon.state / 'history.db'}: permission denied" in other.stderr
