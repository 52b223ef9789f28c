"""Wiring a daemon into a cluster: the shared store, the coordinator, and the few places
where a cluster node acts differently from a single host.

- A scheduled instant of a `run_on: one` job is claimed before it is offered to
  the caps; `run_on: each` jobs run on every node as on a single host.
- A retry of a `run_on: one` job is left for any node to take; a run of a dead
  node is retried by policy on the node that declared it dead.
- A `run_on: one` run is handed to the fence keeper while it runs.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from ..errors import HistoryError
from ..events import Watcher
from ..model import ClusterSettings, Config, Job, RunState, Trigger
from ..paths import Paths
from ..store.postgres import PostgresHistory, StoreUnreachable
from ..store.records import Run
from ..store.remote import IdBlocks, RemoteRunStore
from ..store.sqlite import EMPTY, Snapshot
from ..store.thread import StoreThread
from ..store.writebehind import Report
from .coordinator import Coordinator

if TYPE_CHECKING:
    from ..daemon import Daemon

CLAIMED = (Trigger.SCHEDULE, Trigger.CATCH_UP)


def config_digest(config: Config) -> str:
    """What a node loaded, short: nodes whose digests differ run different jobs."""
    parts = [
        repr((name, job.schedule, job.timezone, job.command, job.run_on, job.user))
        for name, job in sorted(config.jobs.items())
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


class ClusterNode(Watcher):
    def __init__(self, daemon: Daemon, settings: ClusterSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.node = settings.node
        self.coordinator: Optional[Coordinator] = None

    # --- the store ---------------------------------------------------------------------------

    def scope(self, job: str) -> str:
        config = self.daemon.config
        found = config.jobs.get(job) if config else None
        return self.node if found is not None and found.run_on == "each" else ""

    def connect(self, readonly: bool = False) -> PostgresHistory:
        return PostgresHistory(
            self.settings.store,
            self.node,
            self.scope,
            readonly=readonly,
            password_file=self.settings.password_file,
        )

    def open_store(self, paths: Paths, report: Report) -> RemoteRunStore:
        """The shared history; what it holds is read now, or nothing when it does not answer
        (the node then starts from its own clock and writes when the store is back)."""
        snapshot: Snapshot = EMPTY
        os.makedirs(paths.state_dir, mode=0o700, exist_ok=True)  # for the ids in hand
        ids = IdBlocks(os.path.join(paths.state_dir, "cluster-ids"))
        try:
            backend = self.connect()
            try:
                snapshot = Snapshot(
                    backend.meta("instance"),
                    backend.largest_run_id(),
                    backend.open_runs(),
                    backend.job_states(),
                    backend.alert_states(),
                )
                ids.given(backend.id_block())
                ids.given(backend.id_block())
            finally:
                backend.close()
        except StoreUnreachable as exc:
            report(
                "cluster store unreachable at start; running run_on: each jobs locally",
                level="error",
                error=str(exc),
            )
        writer: StoreThread[PostgresHistory] = StoreThread(self.connect, lambda b: b.close())
        store = RemoteRunStore(
            snapshot, report, self.settings.store, writer, ids, self.node, self.scope
        )
        self.coordinator = Coordinator(
            self.settings,
            store,
            self._offer,
            self._lost,
            self.daemon.log,
            self.daemon.clock.monotonic,
            self._call_later,
        )
        self.coordinator.unclaimed = self._unclaimed
        self.coordinator.learned = self._learned
        # a success elsewhere may end trouble this node remembers from before a restart
        troubled = [s.failing_since for s in snapshot.alert_states.values() if s.failing_since]
        self.coordinator.learned_until = min([self.daemon.clock.now().timestamp(), *troubled])
        return store

    def _call_later(self, delay: float, callback: Any, *args: Any) -> None:
        import asyncio

        asyncio.get_running_loop().call_later(delay, callback, *args)

    # --- the loop's hooks --------------------------------------------------------------------

    def start_instant(self, job: Job, scheduled: float, trigger: Trigger, now: datetime) -> int:
        """A due instant: claimed first for `run_on: one`, else offered at once."""
        daemon = self.daemon
        assert daemon.history is not None and self.coordinator is not None
        if job.run_on != "one" or trigger not in CLAIMED:
            return daemon.submit(job, scheduled, trigger, now)
        run = daemon.history.new_run(job.name, scheduled, trigger, now.timestamp())
        self.coordinator.claim(run, job, self.free_share())
        return run.id

    def free_share(self) -> float:
        daemon = self.daemon
        most = daemon.config.settings.max_workers if daemon.config else 1
        busy = len(daemon.dispatcher.running) + len(daemon.dispatcher.waiting)
        return max(0.0, (most - busy) / most)

    def _offer(self, run: Run, job: Job) -> None:
        daemon = self.daemon
        now = daemon.clock.now()
        daemon.offer(run.id, job, run.scheduled or now.timestamp(), now)
        daemon.poke()

    def _unclaimed(self, run: Run, job: Job) -> None:
        """An instant no lease let this node claim: missed here, unless another node has it."""
        daemon = self.daemon
        assert daemon.history is not None
        daemon.history.create_run(
            job.name,
            run.scheduled,
            Trigger(run.trigger),
            daemon.clock.now().timestamp(),
            state=RunState.MISSED,
            reason="missed: this node held no lease to claim it (cut off from the store)",
        )

    def _learned(self, successes: list[Run]) -> None:
        """Other nodes' successes end this node's alarms; the first live node by name
        alone raises `no_success_within` alarms, for the whole cluster."""
        alerts = self.daemon.alerts
        if alerts is None or self.coordinator is None:
            return
        live = self.coordinator.live
        alerts.speaks_for_cluster = not live or live[0] == self.node
        now = self.daemon.clock.now()
        for run in successes:
            alerts.learn_success(run, now)
        alerts.reconsider()

    def _lost(self, run: Run) -> None:
        self.daemon.after_run(run, "lost", self.daemon.clock.now())

    def settle(self, run: Run, outcome: str, now: datetime) -> None:
        """The end of a `run_on: one` run is recorded only if the run is still open in the
        store; the node that recorded it decides on the retry, once."""
        daemon = self.daemon
        job = daemon.config.jobs.get(run.job) if daemon.config else None
        store = daemon.history
        if job is None or job.run_on != "one" or not isinstance(store, RemoteRunStore):
            daemon.after_run(run, outcome, now)
            return

        def done(won: Optional[bool], error: Optional[BaseException]) -> None:
            if won:
                daemon.after_run(run, outcome, daemon.clock.now())
            elif error is None:
                daemon.log.warning("run already ended by another node", job=run.job, run_id=run.id)
            elif self.coordinator is not None and self.coordinator.fit:
                daemon.after_run(run, outcome, daemon.clock.now())  # the store is away
            else:  # our lease may be gone: the node that declares us dead retries it
                daemon.log.warning(
                    "run not retried here: the lease may be gone", job=run.job, run_id=run.id
                )

        store.writer.submit(lambda backend: backend.end(run), done)

    def retry_created(self, job: Job, retry_id: int) -> bool:
        """A retry of a `run_on: one` job is any node's to take; True: not kept locally."""
        assert isinstance(self.daemon.history, RemoteRunStore)
        if job.run_on != "one":
            return False
        self.daemon.history.make_claimable(retry_id)
        return True

    # --- watching the loop -------------------------------------------------------------------

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        """A `run_on: one` run is the fence keeper's to stop if the lease goes."""
        if job.run_on == "one" and self.coordinator is not None and run.pid is not None:
            self.coordinator.keeper.add(run.id, run.cgroup, run.pid)

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        if self.coordinator is not None and run.pid is not None:
            self.coordinator.keeper.drop(run.id)

    def config_applied(self, config: Config, now: datetime) -> None:
        if self.coordinator is not None:
            self.coordinator.configured(config, config_digest(config))

    def tick(self) -> None:
        if self.coordinator is not None:
            running = len(self.daemon.runner.active) if self.daemon.runner else 0
            self.coordinator.tick(running, self.free_share())

    def seconds_to_work(self) -> Optional[float]:
        return self.coordinator.seconds_to_work() if self.coordinator else None

    def leave(self) -> None:
        if self.coordinator is not None:
            self.coordinator.leave()


def check_store(settings: ClusterSettings) -> Optional[str]:
    """What is wrong with reaching the store, for `cronplusctl check`; None when it answers."""
    try:
        PostgresHistory(
            settings.store, settings.node, readonly=True, password_file=settings.password_file
        ).close()
    except HistoryError as exc:
        return str(exc)
    return None
