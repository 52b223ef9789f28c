"""Reloads: read and planned away from the loop, swapped in at once.

A reload (SIGHUP or `cronplusctl reload`) is read, checked and planned in a thread
of its own: the YAML, the jobs, a rule for every job added or rescheduled and its
first instant.  That thread stops at the loop's gate every few dozen values, so it
never holds the interpreter while the loop starts runs.  When the plan is ready the
loop swaps it in within one turn, doing only what is proportional to the jobs that
changed; it does so right after a turn that started runs, not in the last
SWAP_ROOM before an instant is due.  A reload asked for while another is being read
supersedes it: the older one stops at its next pause, and every caller waiting
hears the result of the newest.  `cronplusctl reload` answers once the file is
applied or rejected, as it always has.

Instants already due fire under the schedule they were due by; a job the reload
adds or reschedules starts from the swap; a bad file is rejected whole and the old
configuration runs on; nothing a file holds stops the daemon.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Optional, Union

from .errors import ConfigError, ConfigProblem
from .model import Config
from .planning import Plan, prepare
from .schedule import Rule

if TYPE_CHECKING:
    from .daemon import Daemon

# The loop swaps a ready plan in only when no instant is due sooner than this, or
# than twice what the swap is expected to take (from the last one, per job changed)...
SWAP_ROOM = 0.05
FIRST_GUESS = 50e-6  # seconds a swap takes per job changed, until one is measured
ENOUGH_ROOM = 0.5  # never asked for more: right after a per-second instant there is this much
# ...unless it has waited this long for such a moment (instants every few milliseconds).
MAX_WAIT = 10.0

Built = Union[Plan, ConfigError]


class Superseded(Exception):
    """A newer reload was asked for: this one stops where it is."""


@dataclass
class Waiter:
    """A caller of `cronplusctl reload`, waiting (in a control worker) for the result."""

    done: threading.Event = field(default_factory=threading.Event)
    error: Optional[ConfigError] = None
    jobs: int = 0
    stopped: bool = False

    def wait(self) -> Waiter:
        self.done.wait()
        return self

    def tell(self, error: Optional[ConfigError], jobs: int, stopped: bool = False) -> None:
        self.error, self.jobs, self.stopped = error, jobs, stopped
        self.done.set()


def in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="reload", daemon=True).start()


class Reloads:
    def __init__(
        self, daemon: Daemon, spawn: Callable[[Callable[[], None]], None] = in_thread
    ) -> None:
        self.daemon = daemon
        self.spawn = spawn  # how a build runs: a thread of its own (tests run it by hand)
        self.generation = 0  # of the newest reload asked for
        self.waiters: list[Waiter] = []
        self.ready: Optional[tuple[int, Built, float]] = None  # (generation, built, monotonic)
        self._lock = threading.Lock()
        self.per_change = FIRST_GUESS  # seconds the last swap took per job it changed

    # --- on the loop -----------------------------------------------------------------------

    def request(self) -> Waiter:
        """Start reading the config in a thread; the loop swaps it in when ready."""
        daemon = self.daemon
        assert daemon.config is not None
        with self._lock:
            self.generation += 1
            generation = self.generation
            self.ready = None  # a plan ready but not swapped in is older than the file now
        waiter = Waiter()
        self.waiters.append(waiter)
        daemon.manager.reloading()
        base, rules, asked = daemon.config, daemon.planner.rules, daemon.clock.now()
        wake = _waker(daemon.poke)
        self.spawn(lambda: self._build(generation, base, rules, asked, wake))
        return waiter

    def poll(self, now: datetime) -> None:
        """Swap a ready plan in, or say why the file was rejected; the callers hear it."""
        ready = self.ready
        if ready is None:
            return
        generation, built, since = ready
        if isinstance(built, Plan) and not self._room(now, since, len(built.changed)):
            return  # an instant is due in a moment: swapped in right after it
        with self._lock:
            if self.ready is not ready:
                return
            self.ready = None
            if generation != self.generation:
                return
        self._settle(built, now)

    def now(self, now: datetime) -> Optional[ConfigError]:
        """Read, plan and swap in at once, in this thread (used where there is no loop yet)."""
        daemon = self.daemon
        daemon.manager.reloading()
        with self._lock:
            self.generation += 1
            self.ready = None
        built = self._read(daemon.config, daemon.planner.rules, now, None)
        return self._settle(built, now)

    def close(self) -> None:
        """The daemon stops: callers still waiting are told so."""
        with self._lock:
            self.generation += 1
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.tell(None, 0, stopped=True)

    def _room(self, now: datetime, since: float, changes: int) -> bool:
        daemon = self.daemon
        if daemon.clock.monotonic() - since >= MAX_WAIT:
            return True
        deadlines = [d for d in (daemon.timer.deadline(), daemon.retry_timer.deadline()) if d]
        needed = min(ENOUGH_ROOM, max(SWAP_ROOM, 2 * self.per_change * changes))
        return not deadlines or (min(deadlines) - now).total_seconds() >= needed

    def _settle(self, built: Built, now: datetime) -> Optional[ConfigError]:
        daemon = self.daemon
        error = built if isinstance(built, ConfigError) else None
        if isinstance(built, Plan):
            self._swap(built, now)
        else:
            self._reject(built, now)
        waiters, self.waiters = self.waiters, []
        jobs = len(daemon.config.jobs) if daemon.config else 0
        for waiter in waiters:
            waiter.tell(error, jobs)
        return error

    def _swap(self, plan: Plan, now: datetime) -> None:
        daemon = self.daemon
        assert daemon.config is not None and daemon.history is not None
        began = daemon.clock.monotonic()
        if plan.base is not daemon.config:  # read against another config: compared again
            plan = prepare(plan.config, daemon.config, daemon.planner.rules, now)
        fired = daemon.fire_due(now)
        for name in plan.changed:
            old = daemon.config.jobs.get(name)
            if old is None or not old.jitter:
                continue
            nominal = daemon.timer.next_of(name)
            if nominal is not None and nominal <= now:  # due, waiting for its jitter
                daemon.timer.remove(name)
                fired.append((old, daemon.account(old, nominal, now)))
        daemon.planner.swap(plan, daemon.history, now)
        daemon.config = plan.config
        daemon.dispatcher.reconfigure(plan.config.settings.max_workers, plan.config.settings.pools)
        daemon.schedule_next(fired)
        daemon.watchers.config_applied(plan.config, now)
        daemon.flush(now)  # the marks of the jobs changed: part of what a swap costs
        jobs, changed = len(plan.config.jobs), len(plan.changed)
        if changed >= 100:
            self.per_change = (daemon.clock.monotonic() - began) / changed
        daemon.log.info("reloaded", config=daemon.paths.config, jobs=jobs, changed=changed)
        daemon.manager.ready(daemon.status_line())

    def _reject(self, error: ConfigError, now: datetime) -> None:
        daemon = self.daemon
        daemon.log.error(
            "reload rejected", config=daemon.paths.config, problems=len(error.problems)
        )
        for problem in error.problems:
            daemon.log.error("config problem", problem=str(problem))
        daemon.watchers.reload_rejected([str(p) for p in error.problems], now)
        daemon.manager.ready(daemon.status_line())

    # --- in the reload's thread ------------------------------------------------------------

    def _build(
        self,
        generation: int,
        base: Optional[Config],
        rules: Mapping[str, Rule],
        asked: datetime,
        wake: Callable[[], None],
    ) -> None:
        gate = self.daemon.gate

        def pause() -> None:
            if self.generation != generation:
                raise Superseded
            gate.wait()

        try:
            built = self._read(base, rules, asked, pause)
        except Superseded:
            return
        with self._lock:
            if self.generation != generation:
                return
            self.ready = (generation, built, self.daemon.clock.monotonic())
        wake()

    def _read(
        self,
        base: Optional[Config],
        rules: Mapping[str, Rule],
        asked: datetime,
        pause: Optional[Callable[[], None]],
    ) -> Built:
        daemon = self.daemon
        try:
            new = daemon.read_config(pause)
            return prepare(new, base, rules, asked, pause)
        except Superseded:
            raise
        except ConfigError as exc:
            return exc
        except Exception as exc:  # a reload must never take the daemon down
            daemon.log.exception("reload failed", config=daemon.paths.config)
            problem = ConfigProblem(daemon.paths.config, 1, 1, "", f"cannot be read: {exc!r}")
            return ConfigError([problem])


def _waker(poke: Callable[[], None]) -> Callable[[], None]:
    """Wakes the loop from another thread: `poke`, scheduled on the running loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a test driving the steps): the test steps again itself
        return lambda: None

    def wake() -> None:
        loop.call_soon_threadsafe(poke)

    return wake
