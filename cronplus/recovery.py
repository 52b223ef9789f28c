"""Runs a daemon left open when it died: waiting retries are re-armed, the rest are lost.

A lost run's processes may still be alive, orphaned.  Only processes that are
provably that run's, of this instance, are stopped: several instances (the
system one and per-user ones) each number their runs from 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import datetime, timezone
from typing import Any

from .containment import LostRun, discard_group, leftover_processes
from .model import Config, RunState, Trigger
from .store import OPEN_STATES, Run, RunStore
from .timer import Timer

UTC = timezone.utc
OPEN = tuple(RunState(s) for s in OPEN_STATES)


def recover(
    store: RunStore, config: Config, retry_timer: Timer, now: datetime, log: Any
) -> list[Run]:
    """Re-arm waiting retries; record the other open runs lost and stop their leftovers.

    Returns the lost runs, for the daemon to retry by their jobs' policies.
    """
    lost = []
    for run in store.open_runs():
        waiting_retry = run.trigger == Trigger.RETRY.value and run.state == "pending"
        if waiting_retry and run.due and run.job in config.jobs:
            retry_timer.set(str(run.id), datetime.fromtimestamp(run.due, UTC))
        else:
            lost.append(run)
    identities = [LostRun(r.id, r.pid, r.start_ticks, r.boot_id, r.cgroup) for r in lost]
    left_behind = leftover_processes(identities, store.instance)
    recorded = []
    for run in lost:
        for pid in left_behind[run.id]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                log.warning("stopped an orphan", job=run.job, run_id=run.id, pid=pid)
        if run.cgroup:
            discard_group(run.cgroup)
        reason = (
            "lost: the daemon stopped while it was running"
            if run.state == "running"
            else "lost: the daemon stopped before it started"
        )
        if store.transition(run.id, RunState.LOST, OPEN, ended=now.timestamp(), reason=reason):
            log.warning("run lost", job=run.job, run_id=run.id, pid=run.pid)
            found = store.run(run.id)
            if found is not None:
                recorded.append(found)
    return recorded
