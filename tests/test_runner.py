"""The runner with real processes: shells, argv, environment, limits and failures to start.

How each containment mechanism holds processes that setsid or fork twice is in
tests/faults/test_escaping_processes.py; here, what every run gets from it.
"""

from __future__ import annotations

import os
import pwd
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from helpers import INSTANCE, MECHANISMS, contained, make_job, run_job

from cronplus.containment import Containment, choose, process_start_ticks
from cronplus.containment.cgroup_v1 import CgroupV1
from cronplus.model import Outcome
from cronplus.runner import Runner, Spawned

AS_ROOT = os.geteuid() == 0


def test_a_string_runs_under_the_shell_with_stderr_captured() -> None:
    result = run_job(make_job(command="echo $((1 + 2)); echo oops >&2"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.exit_code == 0
    assert result.output == b"3\noops\n"
    assert result.output_bytes == 7
    assert result.started is not None and result.ended >= result.started


def test_a_list_runs_without_a_shell() -> None:
    result = run_job(make_job(command=("echo", "$HOME", "a;b")))
    assert result.output == b"$HOME a;b\n"


def test_the_environment_is_clean_plus_the_jobs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAKY_SECRET", "x")
    result = run_job(make_job("envjob", command=("env",), env={"TARGET": "s3"}))
    env = dict(line.split("=", 1) for line in result.output.decode().splitlines())
    me = pwd.getpwuid(os.geteuid())
    assert "LEAKY_SECRET" not in env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (me.pw_dir, me.pw_name, me.pw_name)
    assert env["SHELL"] == "/bin/sh"
    assert (env["TARGET"], env["CRONPLUS_JOB"], env["CRONPLUS_RUN_ID"]) == ("s3", "envjob", "1")
    assert env["CRONPLUS_INSTANCE"] == INSTANCE


def test_workdir(tmp_path: Path) -> None:
    result = run_job(make_job(command="pwd", workdir=str(tmp_path)))
    assert result.output.decode().strip() == str(tmp_path)


def test_own_session_and_process_group() -> None:
    probe = "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
    result = run_job(make_job(command=(sys.executable, "-c", probe)))
    assert result.output == b"True True\n"


def test_exit_code_and_signal_are_recorded() -> None:
    failed = run_job(make_job(command="exit 3"))
    assert (failed.outcome, failed.exit_code, failed.reason) == (
        Outcome.EXIT_CODE,
        3,
        "exit code 3",
    )
    killed = run_job(make_job(command="kill -9 $$"))
    assert (killed.outcome, killed.signal, killed.exit_code) == (Outcome.SIGNAL, 9, None)
    assert killed.reason == "killed by SIGKILL"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_soon(pid: int, seconds: float = 3.0) -> bool:
    """Signals are delivered asynchronously: give the kernel a moment to finish the process."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.01)
    return False


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    job = make_job(command=f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5, kill_grace=2.0)
    result = run_job(job)
    assert result.outcome is Outcome.TIMEOUT
    assert result.reason == "timed out after 0.5s"
    assert result.signal == 15
    assert 0.5 <= result.duration < 2.0
    assert _gone_soon(int(pidfile.read_text()))


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    job = make_job(command="trap '' TERM; sleep 60", timeout=0.3, kill_grace=0.5)
    result = run_job(job)
    assert result.outcome is Outcome.TIMEOUT
    assert result.signal == 9
    assert result.duration >= 0.8


def test_only_a_bounded_tail_of_the_output_is_kept() -> None:
    command = "head -c 10000000 /dev/zero; printf END"
    result = run_job(make_job(command=command, output_limit=1024))
    assert result.output_bytes == 10_000_003
    assert len(result.output) == 1024
    assert result.output.endswith(b"\0END")


def test_peak_resident_memory_is_recorded() -> None:
    grow = "x = bytearray(64 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    result = run_job(make_job(command=(sys.executable, "-c", grow)))
    assert result.peak_rss is not None and result.peak_rss > 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (
            {"command": ("/nonexistent/tool", "--flag")},
            "spawn-failed: No such file or directory: /nonexistent/tool",
        ),
        ({"user": "no-such-user-here"}, 'spawn-failed: no such user "no-such-user-here"'),
        (
            {"workdir": "/nonexistent/dir"},
            "spawn-failed: working directory /nonexistent/dir does not exist",
        ),
    ],
)
def test_a_command_that_cannot_start_is_a_failed_run(values: dict[str, Any], reason: str) -> None:
    result = run_job(make_job(**values))
    assert result.outcome is Outcome.SPAWN_FAILED
    assert result.reason == reason
    assert result.started is None


def test_a_file_that_is_not_executable_is_a_failed_run(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run_job(make_job(command=(str(script),)))
    assert result.reason == f"spawn-failed: Permission denied: {script}"


@pytest.mark.skipif(AS_ROOT, reason="checks what happens without root; these tests run as root")
def test_another_user_needs_root() -> None:
    result = run_job(make_job(user="root"))
    assert result.reason == 'spawn-failed: running as user "root" needs the daemon to run as root'


@pytest.mark.skipif(not AS_ROOT, reason="switching users needs root")
def test_as_root_a_job_runs_as_its_user_with_that_users_groups(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    os.chmod(tmp_path, 0o755)
    result = run_job(
        make_job(command="id -u; id -g; echo $HOME $USER", user="nobody", workdir=str(tmp_path))
    )
    uid, gid, rest = result.output.decode().splitlines()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert rest == f"{nobody.pw_dir} nobody"


ALLOCATE = "import time; x = bytearray({mb} * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"


@pytest.fixture(params=MECHANISMS)
def mechanism(request: pytest.FixtureRequest) -> Iterator[Containment]:
    with contained(request.param) as containment:
        yield containment


def test_the_watchdog_stops_a_process_tree_over_its_memory_limit() -> None:
    # two processes of 48 MiB each: neither alone passes 64 MiB, the tree does
    one = f'{sys.executable} -c "{ALLOCATE.format(mb=48)}"'
    job = make_job(command=f"{one} & {one} & wait", memory_limit=64 * 1024 * 1024, timeout=20.0)
    with contained("subreaper") as tracking:
        result = run_job(job, containment=tracking)
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert result.reason.startswith("memory-limit: the process tree used ")
    assert result.reason.endswith("over its limit of 64 MiB")
    assert result.signal == 9
    assert result.duration < 10
    assert result.peak_rss is not None and result.peak_rss > 64 * 1024 * 1024


@pytest.mark.parametrize("kind", MECHANISMS)
def test_a_run_under_its_memory_limit_is_left_alone(kind: str) -> None:
    small = f'{sys.executable} -c "import time; x = bytearray(8 * 1024 * 1024); time.sleep(0.6)"'
    job = make_job(command=small, memory_limit=256 * 1024 * 1024)
    with contained(kind, memory=True) as containment:
        assert run_job(job, containment=containment).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize("kind", ["cgroup-v2", "cgroup-v1"])
def test_the_kernel_enforces_a_cgroup_memory_limit(kind: str) -> None:
    job = make_job(
        command=(sys.executable, "-c", ALLOCATE.format(mb=200)), memory_limit=64 * 1024 * 1024
    )
    with contained(kind, memory=True) as cgroups:
        result = run_job(job, containment=cgroups)
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert result.reason == "memory-limit: killed by the kernel at its limit of 64 MiB"
    assert result.peak_rss is not None and result.peak_rss >= 60 * 1024 * 1024


def test_a_run_lasts_until_its_last_process_ends(mechanism: Containment) -> None:
    result = run_job(make_job(command="(sleep 0.6; echo late) & echo early"), containment=mechanism)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == b"early\nlate\n"
    assert result.duration >= 0.6


def test_start_tells_the_pid_and_its_cgroup_and_the_start_time_can_be_read(
    mechanism: Containment,
) -> None:
    seen: list[tuple[Spawned, Optional[int], bool]] = []

    async def look(runner: Runner, spawned: Spawned) -> None:
        exists = spawned.cgroup is not None and os.path.isdir(spawned.cgroup)
        seen.append((spawned, process_start_ticks(spawned.pid), exists))

    result = run_job(make_job(command="sleep 0.2"), containment=mechanism, meanwhile=look)
    ((spawned, ticks, existed),) = seen
    assert spawned.pid == result.pid
    assert ticks is not None  # what the daemon records after the burst of starts
    if mechanism.kind == "subreaper":
        assert spawned.cgroup is None
    else:  # every run has a group, with or without a memory limit; gone after the run
        assert spawned.cgroup is not None and spawned.cgroup.endswith("/run-1")
        assert existed and not os.path.exists(spawned.cgroup)


def _zombie_children() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.add(int(entry))
    return found


def test_the_subreaper_reaps_orphans_and_keeps_the_leaders_status() -> None:
    before = _zombie_children()
    with contained("subreaper") as tracking:
        result = run_job(
            make_job(command="(sleep 0.3 &); (setsid sleep 0.4 &); exit 3"), containment=tracking
        )
    assert (result.outcome, result.exit_code) == (Outcome.EXIT_CODE, 3)
    assert result.duration >= 0.4  # the orphans were the run's, and it waited for them
    assert _zombie_children() <= before


def test_the_subreaper_remembers_where_an_orphan_without_environment_came_from(
    tmp_path: Path,
) -> None:
    # the child drops the environment and outlives the leader: only the walk that saw it
    # below the leader can tell whose it is
    marker = tmp_path / "alive"
    command = f"env -i sh -c 'touch {marker}; sleep 60; : {marker}' & sleep 0.8"
    with contained("subreaper") as tracking:
        result = run_job(
            make_job(command=command, timeout=1.5, kill_grace=1.0), containment=tracking
        )
    assert result.outcome is Outcome.TIMEOUT
    assert result.exit_code == 0 and result.duration >= 1.5
    assert not _running_with(str(marker))


def _running_with(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if needle.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_cgroups_off_chooses_the_subreaper_and_auto_the_best_cgroup() -> None:
    off = choose("off", INSTANCE)
    try:
        assert (off.kind, off.kernel_limits) == ("subreaper", False)
    finally:
        off.close()
    if CgroupV1.detect(INSTANCE) is None:
        pytest.skip("no writable cgroup v1 memory controller here to be chosen")
    auto = choose("auto", INSTANCE)
    try:
        assert auto.kind in ("cgroup-v2", "cgroup-v1")
        assert auto.describe()["memory_limits"] == "kernel"
    finally:
        auto.close()


def test_the_subreaper_walks_all_of_proc_where_there_are_no_children_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import cronplus.containment.subreaper as subreaper

    monkeypatch.setattr(subreaper, "descendants", lambda root: None)  # no CONFIG_PROC_CHILDREN
    marker = tmp_path / "escaped"
    command = f"setsid -f sh -c 'sleep 60; : {marker}'"
    with contained("subreaper") as tracking:
        result = run_job(
            make_job(command=command, timeout=1.0, kill_grace=1.0), containment=tracking
        )
    assert result.outcome is Outcome.TIMEOUT
    assert not _running_with(str(marker))


def test_stdin_reaches_the_command_byte_for_byte() -> None:
    text = "first line\n  second, with a % and a tab\t\nno newline at the end"
    result = run_job(make_job(command="od -An -c | tr -s ' '; cat /dev/null", stdin=text))
    expected = run_job(
        make_job(command=("sh", "-c", f"printf %s '{text}' | od -An -c | tr -s ' '"))
    )
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == expected.output


def test_without_stdin_the_command_reads_nothing() -> None:
    result = run_job(make_job(command="wc -c"))
    assert result.output.strip() == b"0"
    empty = run_job(make_job(command="wc -c", stdin=""))
    assert empty.output.strip() == b"0"


def test_a_big_stdin_read_slowly_never_holds_the_loop() -> None:
    """8 MiB through a 64 KiB pipe to a reader that naps: the loop keeps ticking meanwhile."""
    size = 8 << 20
    reader = "import sys, time\nn = 0\nwhile chunk := sys.stdin.buffer.read(1 << 20):\n    n += len(chunk); time.sleep(0.2)\nprint(n)"
    gaps: list[float] = []

    async def meanwhile(runner: Runner, spawned: Spawned) -> None:
        import asyncio

        last = time.monotonic()
        while runner.active:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    result = run_job(
        make_job(command=(sys.executable, "-c", reader), stdin="x" * size), meanwhile=meanwhile
    )
    assert result.output == f"{size}\n".encode()
    # a write that blocked would hold the loop for the whole 1.6 s the run takes to read
    assert len(gaps) > 20 and max(gaps) < 1.0


def test_a_command_that_never_reads_its_big_stdin_still_ends() -> None:
    result = run_job(make_job(command="exit 0", stdin="y" * (4 << 20)))
    assert result.outcome is Outcome.SUCCEEDED
