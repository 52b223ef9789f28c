"""Fixtures every test folder may use: a private PostgreSQL server for the session.

This folder is on the import path of the tests in its subfolders (`faults/`, the
fault-injection suite; `cluster/`, several daemons on one database), so they share
its builders (`helpers`, `postgres`, `test_end_to_end`...).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres import PostgresServer, available, start_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    why = available()
    if why is not None:
        pytest.skip(why)
    server = start_server()
    yield server
    server.stop()
