"""Read-only connections for the control socket's worker threads.

The daemon's own connection belongs to its loop (or its store thread); answers
computed in worker threads read through a connection of their own — WAL lets
SQLite's readers and writer go on side by side, and PostgreSQL gives each its
own session — opened again when the file was replaced or the connection broke.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional, Union

from ..errors import HistoryError
from .postgres import PostgresHistory
from .sqlite import SqliteHistory

Reader = Union[SqliteHistory, PostgresHistory]


class ThreadReaders:
    def __init__(self, open_reader: Callable[[], Reader], identity: Callable[[], Any]) -> None:
        """`identity` names what the reader reads (a file's inode): when it changes, or is
        None (nothing to read), the thread's reader is made again."""
        self._open = open_reader
        self._identity = identity
        self._local = threading.local()

    @classmethod
    def for_file(cls, path: str) -> ThreadReaders:
        def inode() -> Optional[int]:
            try:
                return os.stat(path).st_ino
            except OSError:
                return None

        return cls(lambda: SqliteHistory(path, readonly=True), inode)

    def get(self) -> Optional[Reader]:
        """This thread's reader; None while there is nothing to read."""
        identity = self._identity()
        if identity is None:
            return None
        held: Optional[tuple[Any, Reader]] = getattr(self._local, "reader", None)
        if held is not None and held[0] == identity and not _broken(held[1]):
            return held[1]
        if held is not None:
            held[1].close()
        try:
            reader = self._open()
        except HistoryError:
            return None
        self._local.reader = (identity, reader)
        return reader

    def forget(self) -> None:
        """This thread's reader failed: make a new one next time."""
        held = getattr(self._local, "reader", None)
        if held is not None:
            held[1].close()
            self._local.reader = None


def _broken(reader: Reader) -> bool:
    """A database session that ended (the server restarted, the network went)."""
    if not isinstance(reader, PostgresHistory):
        return False
    return bool(reader.db.closed or reader.db.broken)
