"""Shared builders for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from cronplus.clock import SystemClock
from cronplus.limits import Cgroups
from cronplus.model import Job, ScheduleKind, ScheduleSpec
from cronplus.runner import Runner, RunResult
from cronplus.store import RunStore, open_store


@contextlib.contextmanager
def history_file(path: Path) -> Iterator[RunStore]:
    """A history file to fill before a daemon starts on it; written and closed on leaving."""
    store = open_store(str(path), datetime.now(timezone.utc), lambda *_, **__: None)
    yield store
    assert store.flush(datetime.now(timezone.utc))
    store.close()


def make_job(name: str = "job", **values: Any) -> Job:
    values.setdefault("schedule", ScheduleSpec(ScheduleKind.CRON, ("* * * * *",)))
    values.setdefault("timezone", "UTC")
    values.setdefault("command", "true")
    return Job(name=name, **values)


def run_job(job: Job, wait: float = 20.0, cgroups: Optional[Cgroups] = None) -> RunResult:
    """Start `job` through a real Runner and return its result."""

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[RunResult] = loop.create_future()

        def finished(result: RunResult) -> None:
            if not done.done():
                done.set_result(result)

        runner = Runner(loop, SystemClock(), finished, cgroups)
        runner.start(1, job)
        return await asyncio.wait_for(done, wait)

    return asyncio.run(main())
