"""Several real daemons sharing a private PostgreSQL server, and a proxy the tests can cut.

Each node is a `DaemonProcess` in a folder of its own with the same config (but
its node name); results are read from the database itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import psycopg
import pytest
from postgres import PostgresServer
from test_end_to_end import DaemonProcess

_databases = iter(range(1, 1_000_000))


class Proxy:
    """A TCP relay to the database; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sockets = [a, b]
        try:
            while self.open and not self.stopping:
                ready, _, _ = select.select(sockets, [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def cut(self) -> None:
        """A partition: established connections go dead (nothing passes), new ones fail."""
        self.open = False
        for a, b in self.pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.pairs.clear()

    def heal(self) -> None:
        self.open = True

    def close(self) -> None:
        self.stopping = True
        self.cut()
        self.listener.close()


class Cluster:
    def __init__(self, server: PostgresServer, base: Path, jobs: str, lease: str = "4s") -> None:
        self.server = server
        self.base = base
        self.url = server.fresh_database(f"cluster{next(_databases)}")
        self.passfile = server.passfile(base / "pgpass")
        self.jobs = jobs
        self.lease = lease
        self.nodes: dict[str, DaemonProcess] = {}
        self.proxies: dict[str, Proxy] = {}

    def config(self, name: str, port: Optional[int] = None) -> str:
        url = self.url if port is None else self.url.replace(f":{self.server.port}/", f":{port}/")
        return (
            f'daemon:\n  cluster: {{store: "{url}", node: {name}, lease: {self.lease},'
            f" password_file: {self.passfile}}}\n  max_workers: 8\n" + self.jobs
        )

    def add(self, name: str, through_proxy: bool = False) -> DaemonProcess:
        folder = self.base / name
        folder.mkdir(exist_ok=True)
        port = None
        if through_proxy:
            self.proxies[name] = Proxy(self.server.port)
            port = self.proxies[name].port
        node = DaemonProcess(folder, self.config(name, port))
        self.nodes[name] = node
        return node

    def start(self, *names: str) -> None:
        for name in names or tuple(self.nodes):
            self.nodes[name].start()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, passfile=str(self.passfile), autocommit=True) as db:
            cursor = db.execute(sql, args)
            return list(cursor.fetchall()) if cursor.description else []

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        logs = "\n".join(f"--- {n}\n{d.log.read_text()[-3000:]}" for n, d in self.nodes.items())
        raise AssertionError(f"timed out; logs:\n{logs}")

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait()
        for proxy in self.proxies.values():
            proxy.close()
        kill_leftovers(self.base)


def kill_leftovers(base: Path) -> None:
    """Jobs of killed nodes still running (their keepers stop them; be sure anyway)."""
    marker = str(base).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker in cmdline.read():
                    os.kill(int(entry), 9)
        except OSError:
            continue


@pytest.fixture
def cluster_factory(pg_server: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(jobs: str, lease: str = "4s") -> Cluster:
        made.append(Cluster(pg_server, tmp_path, jobs, lease))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()
