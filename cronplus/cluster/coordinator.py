"""A node's part in the cluster, on the loop's side: lease, claims, failover, fencing.

Every node schedules every job from its own copy of the config.  When an
instant of a `run_on: one` job comes, each node asks the database to record it
for itself (a claim); one insert wins, the others are told no.  Nodes with
more free workers ask sooner, so runs spread over the nodes that have room.

The node renews its lease every third of the lease; a renewal is also when it
declares other nodes dead (past their lease, on the database's clock: their
open runs become `lost` and are retried by policy on whichever node takes the
retry), takes waiting retries, and publishes its config digest.  While the
lease is renewed the fence keeper is told how long it surely holds (60% of a
lease from when the renewal was sent); if renewals stop, the keeper stops this
node's `run_on: one` runs before any other node may declare it dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Callable, Optional

from .. import __version__
from ..model import ClusterSettings, Config, Job
from ..store.postgres import Pool, PostgresHistory
from ..store.records import Run
from ..store.remote import RemoteRunStore
from . import leases
from .leases import NodeFacts

FENCE_FRACTION = 0.6  # of a lease after a renewal was sent: when the keeper stops one-runs
SPREAD = 0.05  # seconds: the most the preferred node waits before claiming, by its load
# seconds: how long the other nodes let the preferred one go first; a burst of instants
# can keep a node's loop busy for a few hundred milliseconds before it sends its claims
BACKUP_WAIT = 0.5
FULL_WAIT = 1.0  # seconds: a node with no free worker lets the others claim first
RETRY_POLL = 1.0  # seconds between looks for waiting retries to take

Offer = Callable[[Run, Job], None]  # a run this node won: hand it to the caps
# swept, live, paused, other nodes' latest successes
Renewal = tuple[list[Run], list[tuple[str, str]], dict[str, bool], list[Run]]
# a success of another node may reach the store this long after it ended (write-behind)
SUCCESS_LOOKBACK = 60.0
Lost = Callable[[Run], None]  # a run of a dead node: retry it by policy


class Coordinator:
    def __init__(
        self,
        settings: ClusterSettings,
        store: RemoteRunStore,
        offer: Offer,
        lost: Lost,
        log: Any,
        monotonic: Callable[[], float],
        call_later: Callable[..., Any],
    ) -> None:
        self.settings = settings
        self.store = store
        self.offer = offer
        self.lost = lost
        self.log = log
        self.monotonic = monotonic
        self.call_later = call_later
        self.incarnation = secrets.token_hex(8)
        self.config: Optional[Config] = None
        self.valid_until = 0.0  # monotonic: the lease surely holds until then
        self.joined = False
        self.next_renewal = 0.0
        self.next_retry_poll = 0.0
        self.renewing = False
        self.polling = False
        self.running = 0
        self.digest = ""
        self.keeper = FenceKeeper()
        self.problem: Optional[str] = None  # why the node is not (or no longer) in the cluster
        self.held: list[tuple[Run, Job, float]] = []  # claims waiting for a lease
        self.outgoing: list[tuple[Run, Job]] = []  # claims to send together
        self.unclaimed: Callable[[Run, Job], None] = lambda _run, _job: None
        self.live: list[str] = []  # nodes holding a lease, by name, at the last renewal
        self.differing: list[str] = []  # live nodes whose config digest differs from ours
        self.learned_until = 0.0  # wall clock: the latest success of another node learned
        self.learned: Callable[[list[Run]], None] = lambda _runs: None  # ...handed to alarms

    # --- the lease ---------------------------------------------------------------------------

    def facts(self) -> NodeFacts:
        config = self.config
        return NodeFacts(
            version=__version__,
            digest=self.digest,
            host=socket.gethostname(),
            pid=os.getpid(),
            running=self.running,
            max_workers=config.settings.max_workers if config else 0,
        )

    def configured(self, config: Config, digest: str) -> None:
        self.config, self.digest = config, digest

    def tick(self, running: int, free: float = 1.0) -> None:
        """Called each turn of the loop: renew when due, take retries, notice a lost lease,
        send or give up claims that waited for a lease."""
        self.running = running
        now = self.monotonic()
        if self.held:
            self._release_held(free)
        if now >= self.next_renewal and not self.renewing:
            self._renew(now)
        if self.joined and now >= self.next_retry_poll and not self.polling and self.fit:
            self._poll_retries(now)

    @property
    def fit(self) -> bool:
        """Whether this node holds a lease it may claim under."""
        return self.joined and self.monotonic() < self.valid_until

    def seconds_to_work(self) -> float:
        """How long the loop may sleep before the coordinator has something to do."""
        now = self.monotonic()
        soonest = min(self.next_renewal, self.next_retry_poll)
        if self.held:
            soonest = min(soonest, now + 0.2)
        return max(0.0, soonest - now)

    def _renew(self, sent: float) -> None:
        self.renewing = True
        facts, lease, incarnation = self.facts(), self.settings.lease, self.incarnation
        joined = self.joined
        since = self.learned_until - SUCCESS_LOOKBACK

        def work(backend: PostgresHistory) -> Renewal:
            if joined:
                if not leases.renew(backend, incarnation, lease, facts):
                    raise LeaseLost("the lease had lapsed or was taken over")
            else:
                leases.join(backend, incarnation, lease, facts)
            return (
                leases.sweep_dead(backend),
                leases.live(backend),
                leases.paused(backend),
                backend.successes_since(since),
            )

        def done(answer: Optional[Renewal], error: Optional[BaseException]) -> None:
            self.renewing = False
            if error is not None:
                self._renewal_failed(error)
                return
            if not self.joined:
                self.log.info("joined the cluster", node=self.settings.node, store=self.store.path)
            self.joined, self.problem = True, None
            self.valid_until = sent + lease * FENCE_FRACTION
            self.keeper.valid_until(self.valid_until)
            self.next_renewal = sent + lease / 3
            swept, live, paused, successes = answer or ([], [], {}, [])
            self._compare(live)
            self.store.learn_paused(paused, sent)
            if successes:
                self.learned_until = max([self.learned_until] + [r.ended or 0 for r in successes])
            self.learned(successes)
            for run in swept:
                self.log.warning(
                    "run of a dead node lost", job=run.job, run_id=run.id, node=run.node
                )
                self.lost(run)

        self.next_renewal = sent + min(1.0, lease / 3)  # until answered: try again soon
        self.store.writer.submit(work, done)

    def _compare(self, live: list[tuple[str, str]]) -> None:
        """Remember who is alive (for spreading claims); say when configs differ."""
        self.live = [name for name, _ in live]
        differing = sorted(name for name, digest in live if digest and digest != self.digest)
        if differing != self.differing:
            if differing:
                self.log.warning(
                    "nodes run a different configuration", nodes=differing, digest=self.digest
                )
            self.differing = differing

    def _renewal_failed(self, error: BaseException) -> None:
        text = " ".join(str(error).split())
        if isinstance(error, leases.NameTaken):
            self.problem = str(error)
            self.log.error("cannot join the cluster", problem=self.problem)
            return
        if isinstance(error, LeaseLost):
            self.joined = False  # join again, as a new incarnation
            self.incarnation = secrets.token_hex(8)
        if self.problem != text:
            self.log.error("cannot reach the cluster's store", error=text)
        self.problem = text

    # --- claims ------------------------------------------------------------------------------

    def claim(self, run: Run, job: Job, free: float) -> None:
        """Ask for `run` after a wait that lets less loaded nodes go first; `free` is the
        share of this node's workers that are idle.  Without a valid lease (just started,
        or cut off) the claim waits for one, for at most a lease; then the instant is
        recorded missed here (dropped when written if another node recorded it)."""
        if not self.fit:
            self.held.append((run, job, self.monotonic() + self.settings.lease))
            return
        self.call_later(self._claim_wait(run, free), self._send_claim, run, job)

    def _release_held(self, free: float) -> None:
        """Claims that waited for a lease: sent now that there is one, or given up."""
        held, self.held = self.held, []
        now = self.monotonic()
        for run, job, deadline in held:
            if self.fit:
                self.call_later(self._claim_wait(run, free), self._send_claim, run, job)
            elif now >= deadline:
                self.unclaimed(run, job)
            else:
                self.held.append((run, job, deadline))

    def _claim_wait(self, run: Run, free: float) -> float:
        """How long to let other nodes go first: runs spread over the live nodes, each
        instant preferring one of them (by a hash of job and instant), busier nodes later,
        a node with no free worker last."""
        if free <= 0:
            return FULL_WAIT
        live = self.live or [self.settings.node]
        key = f"{run.job}@{run.scheduled}".encode()
        preferred = live[int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % len(live)]
        if preferred == self.settings.node:
            return (1 - free) * SPREAD
        return BACKUP_WAIT + random.uniform(0, SPREAD) + (1 - free) * SPREAD

    def _send_claim(self, run: Run, job: Job) -> None:
        """Claims whose wait ends together go to the database in one round trip."""
        if not self.fit:
            return
        self.outgoing.append((run, job))
        if len(self.outgoing) == 1:
            self.call_later(0, self._send_claims)

    def _send_claims(self) -> None:
        batch, self.outgoing = self.outgoing, []
        jobs = {run.id: job for run, job in batch}

        def answered(claimed: Run, won: bool) -> None:
            if won:
                self.offer(claimed, jobs[claimed.id])

        claims = [(run, job.max_concurrent, self._pool(job)) for run, job in batch]
        self.store.claim(claims, self.incarnation, answered)

    def _pool(self, job: Job) -> Optional[Pool]:
        """The job's pool when it is counted across the cluster: name, jobs, size."""
        config = self.config
        if config is None or job.pool is None or job.pool not in config.settings.cluster_pools:
            return None
        members = sorted(n for n, j in config.jobs.items() if j.pool == job.pool)
        return job.pool, members, config.settings.pools[job.pool]

    def _poll_retries(self, now: float) -> None:
        self.polling = True
        self.next_retry_poll = now + RETRY_POLL
        config, incarnation = self.config, self.incarnation
        most = (config.settings.max_workers if config else 0) - self.running
        caps = {n: j.max_concurrent for n, j in config.jobs.items()} if config else {}

        def done(taken: Optional[Sequence[Run]], error: Optional[BaseException]) -> None:
            self.polling = False
            for run in taken or ():
                job = self.config.jobs.get(run.job) if self.config else None
                if job is not None:
                    self.store.adopt(run)
                    self.offer(run, job)

        self.store.writer.submit(
            lambda backend: leases.take_retries(backend, incarnation, most, caps), done
        )

    # --- fencing -----------------------------------------------------------------------------

    def guard(self, run: Run, cgroup: Optional[str], pgid: int) -> None:
        """A `run_on: one` run started here: the keeper stops it if the lease goes."""
        self.keeper.add(run.id, cgroup, pgid)

    def unguard(self, run_id: int) -> None:
        self.keeper.drop(run_id)

    def leave(self) -> None:
        """A clean stop: give up the lease at once so that nobody waits for it."""
        incarnation = self.incarnation
        if self.joined:
            self.store.writer.submit(lambda backend: leases.leave(backend, incarnation), _ignore)
        self.keeper.close()


class LeaseLost(Exception):
    """The renewal found the lease gone: another node may already have declared us dead."""


class FenceKeeper:
    """The daemon's end of the pipe to `cronplus.cluster.fence`."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cronplus.cluster.fence"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # a signal to the daemon's group does not reach it
            env={**os.environ, "PYTHONPATH": _package_root()},
        )

    def _say(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError):
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def valid_until(self, deadline: float) -> None:
        self._say(f"valid {deadline:.3f}")

    def add(self, run_id: int, cgroup: Optional[str], pgid: int) -> None:
        self._say(f"add {run_id} {cgroup or '-'} {pgid}")

    def drop(self, run_id: int) -> None:
        self._say(f"drop {run_id}")

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ignore(_result: Any, _error: Optional[BaseException]) -> None:
    pass
