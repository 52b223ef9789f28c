"""A private PostgreSQL server for the tests: initdb into a temporary directory, owned by
an unprivileged user, listening on a Unix socket in that directory and on a loopback port.

Each test gets a database of its own (`fresh_database`), so tests never see each
other's rows; the server is started once per test session and stopped by its pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
OWNER = "postgres"  # made by Debian's postgresql package; unprivileged


def available() -> Optional[str]:
    """Why a server cannot be started here, or None."""
    if not BINARIES:
        return "no PostgreSQL server binaries (Debian package postgresql)"
    if os.geteuid() != 0:
        return "starting a private PostgreSQL server as its own user needs root"
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        return f"no {OWNER} user"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install cronplus[postgres])"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    directory: Path
    port: int
    password: str = "cronplus-test-secret"
    pid: Optional[int] = None

    @property
    def bin(self) -> Path:
        return BINARIES[0]

    def _as_owner(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            ["runuser", "-u", OWNER, "--", *argv], capture_output=True, text=True, **kwargs
        )

    def start(self) -> PostgresServer:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.directory, OWNER, OWNER)
        self.directory.chmod(0o755)
        done = self._as_owner(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            OWNER,
            "--no-sync",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        self._run_server()
        self.pid = int((data / "postmaster.pid").read_text().split()[0])
        self.sql(
            f"CREATE ROLE cronplus LOGIN PASSWORD '{self.password}' CREATEDB",
        )
        return self

    def _run_server(self) -> None:
        """pg_ctl start, its output to a log file (a pipe would stay open with the server)."""
        data = self.directory / "data"
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.directory} -c fsync=off"
            " -c max_connections=200 -c shared_buffers=32MB"
        )
        log = self.directory / "server.log"
        done = self._as_owner(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log),
            "-w",
            "start",
            timeout=120,
        )
        assert done.returncode == 0, done.stderr + log.read_text()

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = self._as_owner(
            "psql",
            "-h",
            str(self.directory),
            "-p",
            str(self.port),
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            statement,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def fresh_database(self, name: str) -> str:
        """A new empty database owned by the cronplus role; its URL (over TCP, password apart)."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql(f'CREATE DATABASE "{name}" OWNER cronplus')
        return f"postgresql://cronplus@127.0.0.1:{self.port}/{name}"

    def passfile(self, where: Path) -> Path:
        """A .pgpass file with the role's password, mode 0600 as libpq requires."""
        where.write_text(f"*:*:*:cronplus:{self.password}\n")
        where.chmod(0o600)
        return where

    def restart(self) -> None:
        """A fast restart, as an operator's `systemctl restart postgresql` does."""
        data = self.directory / "data"
        done = self._as_owner(
            str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", timeout=120
        )
        assert done.returncode == 0, done.stderr
        self._run_server()
        self.pid = int((data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None


def start_server() -> PostgresServer:
    directory = Path(tempfile.mkdtemp(prefix="cronplus-pg-", dir="/tmp"))
    return PostgresServer(directory, free_port()).start()
