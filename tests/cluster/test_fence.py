"""The fence keeper as a real process: it stops a node's runs when the lease may be gone,
and waits without spinning once it has nothing to stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from test_end_to_end import child_env

CPU_TICKS = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def keeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cronplus.cluster.fence"], stdin=subprocess.PIPE, env=child_env()
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def say(keeper: subprocess.Popen[bytes], line: str) -> None:
    assert keeper.stdin is not None
    keeper.stdin.write(line.encode() + b"\n")
    keeper.stdin.flush()


def a_run() -> subprocess.Popen[bytes]:
    """A process group of its own, as a run is."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


def gone(run: subprocess.Popen[bytes], within: float = 10) -> bool:
    try:
        run.wait(within)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        return False
    return True


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CPU_TICKS  # utime + stime


def test_runs_are_stopped_at_the_deadline_and_the_keeper_then_waits_idle(
    keeper: subprocess.Popen[bytes],
) -> None:
    held, dropped = a_run(), a_run()
    say(keeper, f"valid {time.monotonic() + 0.5:.3f}")
    say(keeper, f"add 1 - {held.pid}")
    say(keeper, f"add 2 - {dropped.pid}")
    say(keeper, "drop 2")
    assert gone(held)
    assert not gone(dropped, within=0.5)  # dropped: not the keeper's to stop
    before = cpu_seconds(keeper.pid)
    time.sleep(1.5)
    # past the deadline with nothing to stop, it blocks on the pipe (it used to spin)
    assert cpu_seconds(keeper.pid) - before < 0.2
    late = a_run()
    say(keeper, f"add 3 - {late.pid}")  # a run it hears of after the deadline: at once
    assert gone(late)
    say(keeper, f"valid {time.monotonic() + 60:.3f}")
    renewed = a_run()
    say(keeper, f"add 4 - {renewed.pid}")
    assert not gone(renewed, within=1)  # the lease holds again
    renewed.kill()
    renewed.wait()


def test_a_closed_pipe_keeps_the_promise_until_the_deadline_then_exits(
    keeper: subprocess.Popen[bytes],
) -> None:
    held = a_run()
    say(keeper, f"valid {time.monotonic() + 1.0:.3f}")
    say(keeper, f"add 1 - {held.pid}")
    assert keeper.stdin is not None
    keeper.stdin.close()  # the daemon was killed
    assert not gone(held, within=0.3)  # the lease still holds
    assert gone(held)
    assert keeper.wait(10) == 0


def test_a_closed_pipe_with_nothing_to_stop_ends_the_keeper_at_once(
    keeper: subprocess.Popen[bytes],
) -> None:
    say(keeper, f"valid {time.monotonic() + 3600:.3f}")
    assert keeper.stdin is not None
    keeper.stdin.close()  # a daemon that stopped, or never joined, with no run of its own
    assert keeper.wait(10) == 0
