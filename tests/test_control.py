"""The control socket: the method table, faults, hostile clients, and who may do what."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from test_end_to_end import DaemonProcess, child_env, ctl

from cronplus.control import MAX_REQUEST, METHODS, Caller, FaultCode, answer

ROOT_CALLER = Caller(uid=0, gid=0, pid=1, name="root")


def echo(caller: Caller, method: Any, params: dict[str, Any]) -> Any:
    return {"method": method.name, "params": params, "uid": caller.uid}


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (b"\x00\xff garbage\n", FaultCode.BAD_REQUEST, "not a JSON object"),
        (b"[1, 2]\n", FaultCode.BAD_REQUEST, "not a JSON object"),
        (b'{"id": 3, "method": "explode"}\n', FaultCode.UNKNOWN_METHOD, "unknown method 'explode'"),
        (
            b'{"id": 4, "method": "history"}\n',
            FaultCode.BAD_ARGUMENTS,
            'history: "job" is required',
        ),
        (
            b'{"id": 5, "method": "history", "params": {"job": "a", "limit": "ten"}}\n',
            FaultCode.BAD_ARGUMENTS,
            "history: \"limit\" must be int, found 'ten'",
        ),
        (
            b'{"id": 6, "method": "status", "params": {"jobb": "a"}}\n',
            FaultCode.BAD_ARGUMENTS,
            'status: unknown argument "jobb"',
        ),
        (
            b'{"id": 7, "method": "logs", "params": {"run_id": true}}\n',
            FaultCode.BAD_ARGUMENTS,
            "must be int",
        ),
    ],
)
def test_malformed_requests_get_numbered_faults(line: bytes, code: FaultCode, message: str) -> None:
    reply = answer(line, ROOT_CALLER, echo)
    assert reply["fault"]["code"] == int(code)
    assert reply["fault"]["name"] == code.name
    assert message in reply["fault"]["message"]


def test_a_good_request_reaches_the_handler_with_its_id() -> None:
    reply = answer(
        b'{"id": 9, "method": "history", "params": {"job": "a", "limit": 3}}\n', ROOT_CALLER, echo
    )
    assert reply == {
        "id": 9,
        "result": {"method": "history", "params": {"job": "a", "limit": 3}, "uid": 0},
    }


def test_every_method_has_help_and_a_cronplusctl_command() -> None:
    from cronplus.ctl import subcommands

    commands = subcommands()
    for method in METHODS:
        assert method.help
        assert method.name in commands


# --- a real daemon and raw sockets -----------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="cronplus-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(shared_dir: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(
        shared_dir,
        """
        jobs:
          greet: {schedule: "0 0 1 1 *", command: "echo hello; echo world >&2"}
          failing: {schedule: "0 0 1 1 *", command: "echo broken; exit 4"}
        """,
    ).start()
    yield process
    process.stop()


def raw_call(path: Path, payload: bytes, timeout: float = 10) -> list[dict[str, Any]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    sock.sendall(payload)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if data.count(b"\n") >= payload.count(b"\n") and data.endswith(b"\n"):
            break
    sock.close()
    return [json.loads(line) for line in data.splitlines()]


def test_garbage_huge_and_half_closed_clients_do_not_hurt_the_daemon(daemon: DaemonProcess) -> None:
    path = daemon.state / "control.sock"
    assert raw_call(path, b"\xde\xad\xbe\xef\n")[0]["fault"]["name"] == "BAD_REQUEST"
    huge = raw_call(path, b"{" + b"x" * (MAX_REQUEST + 10) + b"\n")
    assert huge[0]["fault"]["name"] == "REQUEST_TOO_LARGE"
    # half-closed before a whole line: the daemon just closes its side
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.sendall(b'{"id": 1, "method": "ver')
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(5)
    assert sock.recv(100) == b""
    sock.close()
    # several requests on one connection are answered in order
    two = raw_call(path, b'{"id": 1, "method": "version"}\n{"id": 2, "method": "status"}\n')
    assert [r["id"] for r in two] == [1, 2] and "result" in two[1]


def test_a_silent_client_does_not_stall_others(daemon: DaemonProcess) -> None:
    path = str(daemon.state / "control.sock")
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
    for sock in silent:
        sock.connect(path)
    started = time.monotonic()
    reply = raw_call(Path(path), b'{"id": 1, "method": "version"}\n')
    assert reply[0]["result"]["pid"] == daemon.process.pid  # type: ignore[union-attr]
    assert time.monotonic() - started < 2
    for sock in silent:
        sock.close()


def test_cronplusctl_drives_the_daemon(daemon: DaemonProcess) -> None:
    run = ctl(daemon.dir, "run", "failing", "--json")
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout)["run_id"]
    daemon.wait_for(lambda: any(r["id"] == first and r["state"] == "failed" for r in daemon.runs()))

    retry = ctl(daemon.dir, "retry", "failing", "--json")
    assert retry.returncode == 0, retry.stderr
    second = json.loads(retry.stdout)
    assert (second["retries"], second["attempt"]) == (first, 2)
    daemon.wait_for(
        lambda: any(r["id"] == second["run_id"] and r["state"] == "failed" for r in daemon.runs())
    )
    rows = {r["id"]: r for r in daemon.runs("failing")}
    assert (rows[first]["trigger"], rows[second["run_id"]]["trigger"]) == ("manual", "retry")
    assert rows[second["run_id"]]["first_run"] == first

    logs = ctl(daemon.dir, "logs", str(first))
    assert logs.stdout == "broken\n"
    assert f"run {first} of failing: failed (exit code 4), 7 bytes of output" in logs.stderr

    nothing = ctl(daemon.dir, "retry", "greet")
    assert nothing.returncode == 1 and '"greet" has no failed run to retry' in nothing.stderr
    unknown = ctl(daemon.dir, "run", "nosuch")
    assert unknown.returncode == 6 and 'no job named "nosuch"' in unknown.stderr

    paused = ctl(daemon.dir, "pause", "greet")
    assert paused.stdout.strip() == "paused: greet"
    status = json.loads(ctl(daemon.dir, "status", "--json").stdout)
    assert {s["job"]: s["paused"] for s in status} == {"failing": False, "greet": True}
    ctl(daemon.dir, "resume", "--all")
    status = json.loads(ctl(daemon.dir, "status", "greet", "--json").stdout)
    assert status[0]["paused"] is False and status[0]["next"] is not None

    history = ctl(daemon.dir, "history", "failing", "--failed", "--json")
    assert [r["id"] for r in json.loads(history.stdout)] == [second["run_id"], first]


def test_reload_waits_and_prints_the_problems(daemon: DaemonProcess) -> None:
    daemon.write('jobs:\n  greet: {schedule: "0 0 1 1 *", command: "true", retries: -1}\n')
    rejected = ctl(daemon.dir, "reload")
    assert rejected.returncode == 1
    assert "configuration rejected; the running one is kept" in rejected.stderr
    assert f"{daemon.config}:2:60: jobs.greet.retries: found -1" in rejected.stderr
    daemon.write('jobs:\n  greet: {schedule: "0 0 1 1 *", command: "true"}\n')
    accepted = ctl(daemon.dir, "reload")
    assert (accepted.returncode, accepted.stdout.strip()) == (0, "reloaded: 1 jobs")


def test_read_commands_fall_back_to_the_file_and_actions_refuse(daemon: DaemonProcess) -> None:
    run = ctl(daemon.dir, "run", "greet", "--json")
    run_id = json.loads(run.stdout)["run_id"]
    daemon.wait_for(
        lambda: any(r["id"] == run_id and r["state"] == "succeeded" for r in daemon.runs())
    )
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    assert not (daemon.state / "control.sock").exists()
    logs = ctl(daemon.dir, "logs", str(run_id))
    assert (logs.returncode, logs.stdout) == (0, "hello\nworld\n")
    assert "cronplus is not running" in logs.stderr
    action = ctl(daemon.dir, "run", "greet")
    assert action.returncode == 7 and "cronplus is not running" in action.stderr


def test_a_second_daemon_on_the_same_socket_refuses_to_start(daemon: DaemonProcess) -> None:
    argv = [
        sys.executable,
        "-m",
        "cronplus.daemon",
        "-c",
        str(daemon.config),
        "--state-dir",
        str(daemon.state),
    ]
    second = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=30)
    assert second.returncode == 1
    assert "another cronplus is already listening" in second.stdout + second.stderr


# --- peer credentials with real users ---------------------------------------------------------

CLIENT = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.sendall(sys.argv[2].encode() + b"\\n")
print(sock.makefile().readline(), end="")
"""


def as_user(user: str, socket_path: Path, method: str, **params: Any) -> dict[str, Any]:
    request = json.dumps({"id": 1, "method": method, "params": params})
    done = subprocess.run(
        ["runuser", "-u", user, "--", "/usr/bin/python3", "-c", CLIENT, str(socket_path), request],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


@pytest.fixture
def users() -> Iterator[Callable[[str], str]]:
    if os.geteuid() != 0:
        pytest.skip("creating users for the credential tests needs root")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("the unprivileged client needs /usr/bin/python3")
    made: list[str] = []

    def make(name: str) -> str:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run(["userdel", name], capture_output=True)


def importable_copy(target: Path) -> Path:
    """cronplus and what it imports, copied where an unprivileged user can read them."""
    import importlib.util

    lib = target / "lib"
    lib.mkdir()
    modules = ("cronplus", "croniter", "dateutil", "six", "yaml", "_yaml", "structlog", "tzdata")
    for name in (*modules, "jeepney", "sdnotify"):
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            shutil.copytree(next(iter(spec.submodule_search_locations)), lib / name)
        elif spec.origin:
            shutil.copy(spec.origin, lib)
    for path in [lib, *lib.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return lib


def test_cronplusctl_as_another_user(shared_dir: Path, users: Callable[[str], str]) -> None:
    alice = users("cpalice")
    lib = importable_copy(shared_dir)
    process = DaemonProcess(
        shared_dir,
        f"""
        jobs:
          alice-job: {{schedule: "0 0 1 1 *", command: "true", user: {alice}}}
          root-job: {{schedule: "0 0 1 1 *", command: "true"}}
        """,
    ).start()
    try:
        process.state.chmod(0o755)
        process.config.chmod(0o644)
        argv = [
            "runuser",
            "-u",
            alice,
            "--",
            "env",
            f"PYTHONPATH={lib}",
            "/usr/bin/python3",
            "-m",
            "cronplus.ctl",
            "-c",
            str(process.config),
            "--state-dir",
            str(process.state),
        ]
        mine = subprocess.run([*argv, "status"], capture_output=True, text=True, timeout=30)
        assert mine.returncode == 0, mine.stderr
        assert [line.split()[0] for line in mine.stdout.splitlines()] == ["JOB", "alice-job"]
        denied = subprocess.run(
            [*argv, "run", "root-job"], capture_output=True, text=True, timeout=30
        )
        assert denied.returncode == 4
        assert denied.stderr.strip() == f'cronplusctl: job "root-job" runs as root, not as {alice}'
        (process.state / "control.sock").chmod(0o600)
        locked = subprocess.run(
            [*argv, "run", "alice-job"], capture_output=True, text=True, timeout=30
        )
        assert locked.returncode == 4
        assert (
            locked.stderr.strip()
            == f"cronplusctl: permission denied on {process.state / 'control.sock'}"
        )
    finally:
        process.stop()


def test_users_see_and_act_only_on_their_own_jobs(
    shared_dir: Path, users: Callable[[str], str]
) -> None:
    alice, bob = users("cpalice"), users("cpbob")
    process = DaemonProcess(
        shared_dir,
        f"""
        jobs:
          alice-job: {{schedule: "0 0 1 1 *", command: "id -un", user: {alice}, workdir: /}}
          bob-job: {{schedule: "0 0 1 1 *", command: "id -un", user: {bob}, workdir: /}}
          root-job: {{schedule: "0 0 1 1 *", command: "id -un"}}
        """,
    ).start()
    try:
        path = process.state / "control.sock"
        process.state.chmod(0o755)
        seen = as_user(alice, path, "status")["result"]
        assert [s["job"] for s in seen] == ["alice-job"]
        assert as_user(alice, path, "history", job="bob-job")["fault"]["name"] == "NOT_ALLOWED"
        assert as_user(alice, path, "run", job="root-job")["fault"]["name"] == "NOT_ALLOWED"
        assert as_user(alice, path, "reload")["fault"]["name"] == "NOT_ALLOWED"
        assert as_user(alice, path, "pause", all=True)["result"] == {"paused": ["alice-job"]}
        started = as_user(alice, path, "run", job="alice-job")["result"]
        process.wait_for(
            lambda: any(
                r["id"] == started["run_id"] and r["state"] == "succeeded" for r in process.runs()
            )
        )
        output = as_user(alice, path, "logs", run_id=started["run_id"])["result"]["output"]
        assert output == f"{alice}\n"
        assert (
            as_user(bob, path, "logs", run_id=started["run_id"])["fault"]["name"] == "NOT_ALLOWED"
        )
        assert pwd.getpwnam(alice).pw_uid != 0
    finally:
        process.stop()
