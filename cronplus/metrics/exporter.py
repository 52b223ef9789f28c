"""Where the metrics go: an HTTP endpoint and a node_exporter textfile, both off the loop.

The endpoint is prometheus_client's own server, in threads of its own; the
textfile is written by a thread of its own when something changed, at most
every MIN_INTERVAL seconds, and at least every HEARTBEAT seconds so that its age
tells a daemon that died.  Both read the metrics a family at a time and wait
at the loop's gate between families, so a scrape never competes with the loop
while it starts runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric

from ..controlserver import Gate

MIN_INTERVAL = 5.0  # seconds between two writes of the textfile
HEARTBEAT = 60.0  # seconds after which the textfile is written even when nothing changed
# node_exporter reads the file through the group of its directory; other users may not
# (a system daemon's job names and outcomes are root's business)
TEXTFILE_MODE = 0o640


class GatedRegistry:
    """A registry read a metric family at a time, pausing while the loop starts runs.

    `labels` are added to every sample: `node` on the nodes of a cluster.
    """

    def __init__(
        self, registry: CollectorRegistry, gate: Gate, labels: Optional[dict[str, str]] = None
    ) -> None:
        self.registry = registry
        self.gate = gate
        self.labels = labels or {}

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            self.gate.wait()
            yield self._labelled(family) if self.labels else family

    def _labelled(self, family: Metric) -> Metric:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [s._replace(labels={**s.labels, **self.labels}) for s in family.samples]
        return copy

    def restricted_registry(self, names: Iterable[str]) -> GatedRegistry:
        # `/metrics?name[]=...` asks for some families only
        restricted: Any = self.registry.restricted_registry(names)
        return GatedRegistry(restricted, self.gate, self.labels)


class Endpoint:
    """prometheus_client's HTTP server on (host, port), stopped on reload or at exit."""

    def __init__(self, address: tuple[str, int], registry: GatedRegistry) -> None:
        self.address = address
        host, port = address
        self.server, self.thread = start_http_server(port, host, registry=registry)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_textfile(path: str, text: bytes) -> None:
    """Replace `path` with `text` at once: a reader sees the old file or the new, never half.

    The file is mode 0640 and takes the group of its directory, as node_exporter's
    textfile directory is its group's.
    """
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(temporary, flags, TEXTFILE_MODE)
    try:
        os.fchmod(descriptor, TEXTFILE_MODE)  # whatever the umask
        group = os.stat(directory).st_gid
        if os.fstat(descriptor).st_gid != group:
            with contextlib.suppress(PermissionError):
                os.fchown(descriptor, -1, group)
        view = memoryview(text)
        while view:
            view = view[os.write(descriptor, view) :]
    except BaseException:
        os.close(descriptor)
        os.unlink(temporary)
        raise
    os.close(descriptor)
    os.replace(temporary, path)


class Textfile:
    """A thread that writes the textfile after changes, at most every MIN_INTERVAL."""

    def __init__(
        self,
        path: str,
        registry: GatedRegistry,
        on_error: Callable[[str, Exception], None],
        min_interval: float = MIN_INTERVAL,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.path = path
        self.registry = registry
        self.on_error = on_error
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.changed = threading.Event()
        self.closing = threading.Event()
        self.failing = False
        self.thread = threading.Thread(target=self._run, name="metrics-textfile", daemon=True)
        self.thread.start()

    def touch(self) -> None:
        """Something changed: write it soon."""
        self.changed.set()

    def _run(self) -> None:
        while not self.closing.is_set():
            self.write()
            self.closing.wait(self.min_interval)  # never more often than this
            self.changed.wait(self.heartbeat - self.min_interval)

    def write(self) -> None:
        self.changed.clear()
        try:
            write_textfile(self.path, generate_latest(self.registry))
        except OSError as exc:
            if not self.failing:  # said once until it works again
                self.on_error(self.path, exc)
            self.failing = True
            return
        self.failing = False

    def close(self, last: Optional[bytes] = None) -> None:
        """Stop the thread; `last` is written as the file's final content."""
        self.closing.set()
        self.changed.set()
        self.thread.join(timeout=10)
        if last is not None:
            try:
                write_textfile(self.path, last)
            except OSError as exc:
                self.on_error(self.path, exc)
