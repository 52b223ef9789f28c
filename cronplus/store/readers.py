"""Read-only connections for the control socket's worker threads.

The daemon's own connection belongs to its loop; answers computed in worker
threads read through a connection of their own (WAL lets readers and the writer
go on side by side), opened again when the file was replaced.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

from ..errors import HistoryError
from .sqlite import SqliteHistory


class ThreadReaders:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> Optional[SqliteHistory]:
        """This thread's reader; None while there is no readable file."""
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return None
        held: Optional[tuple[int, SqliteHistory]] = getattr(self._local, "reader", None)
        if held is not None and held[0] == inode:
            return held[1]
        if held is not None:
            held[1].close()
        try:
            reader = SqliteHistory(self.path, readonly=True)
        except HistoryError:
            return None
        self._local.reader = (inode, reader)
        return reader
