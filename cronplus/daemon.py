"""The daemon: wiring, the main loop, signals and reloads.

The loop is a handful of named steps, each a method a test can call with a
clock it controls: wait for the timer's deadline or an event → notice clock
jumps → handle signals → reap finished runs → account for due instants → start
what the caps allow → write the history → notify.  Signal handlers only record
the signal and wake the loop.  Whole concerns live in modules of their own:
accounting (every instant gets a row), planning (next instants, reloads, clock
steps), recovery (after a crash), notifications, chains (jobs after others, a
watcher), and the store.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import structlog

from . import __version__, accounting, config, logs
from .activity import Activity
from .alerts import Alerts
from .chains import Chains
from .clock import Clock, SystemClock, iso_utc
from .clockwatch import THRESHOLD, ClockWatch
from .cluster.node import ClusterNode
from .collector import Collector
from .containment import boot_id, choose, process_start_ticks
from .controlserver import ControlServer, Gate
from .dispatch import Decision, Dispatcher, retry_delay
from .errors import ConfigError, CronplusError, HistoryError
from .events import Watchers
from .ledger import InstantLedger
from .metrics import Metrics
from .model import Config, Job, Outcome, RunState, Trigger
from .notify import Event, event_for
from .notify.outbox import Notifications
from .operations import Operations
from .paths import Paths, add_instance_arguments, resolve
from .planning import Planner
from .recovery import recover
from .reloading import Reloads
from .runner import Runner, RunResult
from .schedule import Rule, stable_jitter
from .servicemanager import ServiceManager
from .spawning.client import spawner_for
from .store import OPEN_STATES, Run, RunStore, open_reader, open_store
from .store.remote import RemoteRunStore
from .timer import Timer

# Longest sleep: a bound on how late a run can be after the wall clock is stepped
# where the kernel cannot tell the daemon at once.
MAX_SLEEP = 300.0
# Without a clock-set alarm, the longest sleep while a job is due within a minute.
WATCHFUL_SLEEP = 1.0
# Control workers pause this long before the loop is due to start runs.
GATE_LEAD = 0.025
# Below this, wait() sleeps the rest exactly instead of polling, which is up to 1 ms late.
PRECISE_WAKE = 0.002
# Finished runs recorded in one turn; the next turn comes at once for the rest.
REAP_SLICE = 64
OPEN = tuple(RunState(s) for s in OPEN_STATES)
UTC = timezone.utc
DAY = 86400.0


@dataclass
class _Stopping:
    deadline: float  # monotonic time after which running jobs are stopped
    fast: bool = False


class Daemon:
    def __init__(self, paths: Paths, clock: Clock, default_zone: Optional[str] = None) -> None:
        self.paths = paths
        self.clock = clock
        self.default_zone = default_zone
        self.log = structlog.get_logger("cronplus")
        self.config: Optional[Config] = None
        self.planner = Planner()
        self.retry_timer = Timer()  # waiting retries, keyed by the id of their pending run
        self.dispatcher = Dispatcher(16, {})
        self.history: Optional[RunStore] = None
        self.runner: Optional[Runner] = None
        self.signals: collections.deque[int] = collections.deque()
        self.results: collections.deque[RunResult] = collections.deque()
        self.stopping: Optional[_Stopping] = None
        self.wake: Optional[asyncio.Event] = None  # made in attach(), inside the running loop
        self.notifications = Notifications(self.log, self.poke)
        self.clockwatch = ClockWatch(clock)
        self.ledger: Optional[InstantLedger] = None  # made in load(), with the store
        self.watchers = Watchers(self.log)  # metrics, alarms and chains watch the loop
        self.notifications.failed = lambda name: self.watchers.notifier_failed(name, clock.now())
        self.cluster: Optional[ClusterNode] = None  # with daemon.cluster: a node of a cluster
        self.alerts: Optional[Alerts] = None  # made in load(), with the store
        self.started_at = clock.now().timestamp()
        self.boot_id = boot_id()
        self.gate = Gate()  # control workers pause while the loop starts runs
        self._last_failure_log = -3600.0
        self.activity = Activity()  # the latest events, for `cronplusctl events` and the dashboard
        self.watchers.add(self.activity)
        self.watchers.add(Metrics(self.log, self.gate, self._history_opener))
        self.planner.timer.on_change = self.watchers.next_run
        self.planner.timer.on_changes = self.watchers.next_runs_changed
        self.reloads = Reloads(self)  # read and planned in a thread, swapped in by the loop
        self.collector = Collector(clock.monotonic)  # garbage collected where the loop has room
        self.watchers.add(self.collector)
        self.manager = ServiceManager()

    def _history_opener(self, config: Config) -> Callable[[], Any]:
        """How a thread reads the history `config` names: the SQLite file or the cluster's."""
        path = self.paths.history(config.settings.history)
        return lambda: open_reader(config, path)

    @property
    def rules(self) -> dict[str, Rule]:
        return self.planner.rules

    @property
    def timer(self) -> Timer:
        return self.planner.timer

    # --- set-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the config and open the history; raises ConfigError or HistoryError."""
        self.config = self.read_config()
        now = self.clock.now()
        cluster = self.config.settings.cluster
        if cluster is not None:
            self.cluster = ClusterNode(self, cluster)
            self.watchers.add(self.cluster)
            self.history = self.cluster.open_store(self.paths, self._report)
        else:
            path = self.paths.history(self.config.settings.history)
            self.history = open_store(path, now, self._report, self.gate.wait)
        self.notifications.store = self.history
        self.history.on_end = self._run_ended
        start = self.cluster.start_instant if self.cluster else self.submit
        self.ledger = InstantLedger(
            self.history, start, self.log, self.started_at, self.watchers.instants_missed
        )
        self.watchers.add(Chains(self.history, self.submit, lambda: bool(self.stopping), self.log))
        self.alerts = Alerts(self.history, self.notifications, self.log)
        self.watchers.add(self.alerts)
        self.dispatcher.reconfigure(self.config.settings.max_workers, self.config.settings.pools)
        self.planner.apply(None, self.config, self.history, now)
        self.watchers.config_applied(self.config, now)
        for run in recover(self.history, self.config, self.retry_timer, now, self.log):
            self.settle(run, "lost", now)
        self.flush(now)
        self.log.info(
            "started",
            version=__version__,
            config=self.paths.config,
            jobs=len(self.config.jobs),
            history=self.history.path,
        )

    def _run_ended(self, run: Run) -> None:
        job = self.config.jobs.get(run.job) if self.config else None
        self.watchers.run_ended(job, run, self.clock.now())

    def _report(self, event: str, level: str = "info", **fields: Any) -> None:
        getattr(self.log, level)(event, **fields)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.history is not None
        self.wake = asyncio.Event()
        mode = self.config.settings.cgroups if self.config else "auto"
        instance = self.history.instance
        group = f"{instance}-{self.cluster.node}" if self.cluster else instance  # nodes share one
        containment = choose(mode, instance, lambda why: self.log.warning(why), group)
        spawning = self.config.settings.spawner if self.config else "auto"
        spawners = spawner_for(spawning, containment, loop, lambda why: self.log.warning(why))
        self.runner = Runner(loop, self.clock, self._on_exit, containment, instance, spawners)
        pids = spawners.pids if spawners else []
        self.log.info("runs contained", spawners=pids, **containment.describe())
        self.collector.start()
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        alarm = self.clockwatch.alarm
        if alarm is not None:
            loop.add_reader(alarm.fd, self._on_clock_set)
        if isinstance(self.history, RemoteRunStore):
            self.history.writer.bind(loop)

    def _on_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.poke()

    def _on_exit(self, result: RunResult) -> None:
        self.results.append(result)
        self.poke()

    def _on_clock_set(self) -> None:
        alarm = self.clockwatch.alarm
        if alarm is not None and alarm.acknowledge():
            self.poke()

    def poke(self) -> None:
        """Wake the loop so it acts on what a signal, a run or a control request changed."""
        if self.wake is not None:
            self.wake.set()

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.attach(loop)
        server = ControlServer(
            self.paths.socket, Operations(self).handle, self._control_error, self.gate
        )
        try:
            await server.start(0o600 if self.paths.user_mode else 0o666)
        except OSError as exc:
            self.log.error("cannot listen", socket=self.paths.socket, error=str(exc))
            return 1
        self.log.info("listening", socket=self.paths.socket)
        self.manager.ready(self.status_line())
        try:
            while self.turn():
                await self.wait()
        finally:
            self.gate.open()
            self.reloads.close()
            if self.cluster is not None:
                self.cluster.leave()
            await server.close()
            self.clockwatch.close()
            if self.runner is not None:
                self.runner.close()
            self.watchers.stopped(self.clock.now())
        self.log.info("stopped")
        if self.history is not None:
            self.flush(self.clock.now())
            self.history.close()
        return 0

    def turn(self) -> bool:
        """One step; a bug in it is logged (at most once a minute) and the loop goes on:
        a scheduler that dies schedules nothing."""
        try:
            return self.step(self.clock.now())
        except Exception as exc:
            now = self.clock.monotonic()
            if now - self._last_failure_log >= 60:
                self._last_failure_log = now
                self.log.exception("a turn of the loop failed; going on", error=repr(exc))
            time.sleep(0.05)  # a failure that repeats does not spin
            return True

    def _control_error(self, what: str, exc: Exception) -> None:
        self.log.error(what, error=repr(exc))

    def step(self, now: datetime) -> bool:
        """One turn of the loop; False when the daemon has finished stopping."""
        self.watch_clock(now)
        if self.cluster is not None:
            self.cluster.tick()
        self.handle_signals(now)
        self.reap(now)
        if self.stopping is None:
            fired = self.fire_due(now)
            self.fire_retries(now)
            self.flush(now)  # a run's row is written before its process starts
            self.start_allowed(now)
            self.schedule_next(fired)
            self.reloads.poll(now)  # a reload read meanwhile, swapped in after the starts
        else:
            self.stop_overdue()
        self.flush(now)
        if self.alerts is not None:
            self.alerts.tick(now)  # runs waiting past their grace, digests, no-success alarms
        self.watchers.runs_waiting(len(self.dispatcher.waiting), now)
        self.notifications.send(self.runner, self.config)
        self.heartbeat()
        return not (
            self.stopping is not None
            and self.runner is not None
            and not self.runner.active
            and not self.results
        )

    def heartbeat(self) -> None:
        """Tell the service manager the loop is alive, and what it is doing."""
        if self.manager.enabled:
            self.manager.heartbeat(self.clock.monotonic())
            self.manager.status(self.status_line())

    def status_line(self) -> str:
        jobs = len(self.config.jobs) if self.config else 0
        running = len(self.runner.active) if self.runner else 0
        line = f"{jobs} jobs, {running} running"
        upcoming_run = self.timer.peek()
        if self.stopping is not None:
            return f"stopping; {line}"
        if upcoming_run is not None:
            name, instant = upcoming_run
            line += f", next: {name} at {instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        failure = self.history.failure if self.history is not None else None
        if failure is not None:
            since = datetime.fromtimestamp(failure.since, UTC)
            line += (
                f"; HISTORY NOT WRITTEN since {since:%Y-%m-%d %H:%M:%S} UTC ({failure.error}),"
                f" {self.history.unwritten if self.history else 0} records held in memory"
            )
        return line

    async def wait(self) -> None:
        assert self.wake is not None
        timeout = self.seconds_to_deadline(self.clock.now())
        if timeout > GATE_LEAD:
            self.gate.open()
            timeout -= GATE_LEAD  # wake in time to close the gate before the deadline
        else:
            self.gate.close()  # the next turn starts runs: the loop alone holds the interpreter
        self.wake.clear()
        if self.signals or self.results:
            return
        self.collector.tick(timeout)
        if timeout <= PRECISE_WAKE:
            # the loop's poll rounds up to whole milliseconds: the last stretch is slept exactly
            time.sleep(timeout)
            await asyncio.sleep(0)  # still let the loop see what is ready
            return
        # Linux lets a poll of T seconds end up to T/1000 late (0.1% timer slack, up to
        # 100 ms): wake that much early, and the next turn sleeps the rest exactly.
        early = min(timeout / 1000, 0.1) + PRECISE_WAKE
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout - early)

    def seconds_to_deadline(self, now: datetime) -> float:
        timeout = MAX_SLEEP
        alarms = self.alerts.deadline() if self.alerts is not None else None
        deadlines = [d for d in (self.timer.deadline(), self.retry_timer.deadline(), alarms) if d]
        if deadlines and self.stopping is None:
            until = (min(deadlines) - now).total_seconds()
            timeout = min(timeout, until)
            if self.clockwatch.alarm is None and until <= 60:
                timeout = min(timeout, WATCHFUL_SLEEP)  # notice a stepped clock within a second
        grace_left = self.stopping.deadline - self.clock.monotonic() if self.stopping else 0.0
        if self.stopping is not None and not self.stopping.fast and grace_left > 0:
            timeout = min(timeout, grace_left)
        ping = self.manager.seconds_to_ping(self.clock.monotonic())
        if ping is not None:
            timeout = min(timeout, ping)
        work = self.cluster.seconds_to_work() if self.cluster else None
        if work is not None:
            timeout = min(timeout, work)
        return max(0.0, timeout)

    def watch_clock(self, now: datetime) -> None:
        """A wall clock set back replans every job at once; a jump forward is a cause of misses."""
        jump = self.clockwatch.observe()
        if jump is None:
            return
        if self.ledger is not None:
            self.ledger.last_jump = (now.timestamp(), jump)
        self.log.warning(
            "clock jumped",
            what=jump.describe(),
            stepped=round(jump.stepped, 3),
            suspended=round(jump.suspended, 3),
        )
        if jump.stepped <= -THRESHOLD and self.config is not None and self.history is not None:
            self.planner.after_step_back(self.config, self.history, now, jump.stepped)
            self._shift_retries(jump.stepped)

    def _shift_retries(self, stepped: float) -> None:
        """Waiting retries keep their real backoff when the wall clock goes back."""
        assert self.history is not None
        for run in self.history.open_runs():
            if run.state == RunState.PENDING.value and run.due is not None:
                due = run.due + stepped
                self.history.transition(run.id, RunState.PENDING, (RunState.PENDING,), due=due)
                if self.retry_timer.next_of(str(run.id)) is not None:
                    self.retry_timer.set(str(run.id), datetime.fromtimestamp(due, UTC))

    def flush(self, now: datetime) -> None:
        """Write what changed; the failure notifiers hear when the history stops taking it."""
        if self.history is None or self.config is None:
            return
        failing = self.history.failure is not None
        written = self.history.flush(now)
        if written == (not failing):
            return
        failure = self.history.failure
        kind = "history-written" if written else "history-unwritten"
        reason = failure.error if failure is not None else ""
        self.watchers.history_health(written, reason, now)
        event = Event(kind, "cronplus", 0, kind, 0, reason, None)
        self.notifications.notify_failure_notifiers(self.config, event)

    def handle_signals(self, now: datetime) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum == signal.SIGHUP:
                self.reloads.request()
            else:
                self.begin_stop(now)

    def reload(self, now: datetime) -> Optional[ConfigError]:
        """Re-read the config and swap it in at once, in this thread (`reloading`)."""
        return self.reloads.now(now)

    def read_config(self, pause: Optional[Callable[[], None]] = None) -> Config:
        """The config; a system daemon run by root refuses files others could have written."""
        strict = not self.paths.user_mode and os.geteuid() == 0
        return config.load(self.paths.config, self.default_zone, strict, pause)

    def set_paused(self, job: Job, paused: bool) -> None:
        """A paused job's instants are recorded skipped; its running runs go on."""
        assert self.history is not None
        self.history.set_paused(job.name, paused)
        self.log.info("paused" if paused else "resumed", job=job.name)

    def begin_stop(self, now: datetime) -> None:
        """First SIGTERM: start nothing new, give running jobs the grace; second: stop fast."""
        assert self.history is not None and self.config is not None
        if self.stopping is not None:
            self.stopping.fast = True
            self.log.warning("stopping fast", running=len(self.runner.active) if self.runner else 0)
            for run_id in list(self.runner.active if self.runner else ()):
                assert self.runner is not None
                self.runner.kill(run_id, Outcome.INTERRUPTED)
            return
        grace = self.config.settings.shutdown_grace
        self.stopping = _Stopping(self.clock.monotonic() + grace)
        self.manager.stopping()
        for waiting in self.dispatcher.drop_waiting():
            self._skip(waiting.run_id, now, "the daemon was stopping")
        running = len(self.runner.active) if self.runner else 0
        self.log.info("stopping", running=running, grace=grace)

    def stop_overdue(self) -> None:
        assert self.stopping is not None
        if self.runner is None or self.clock.monotonic() < self.stopping.deadline:
            return
        for run_id in list(self.runner.active):
            self.runner.stop(run_id, Outcome.INTERRUPTED)

    def reap(self, now: datetime) -> None:
        """Record finished runs, REAP_SLICE a turn: due instants come before the rest."""
        assert self.history is not None and self.config is not None
        for ended in self.results:  # every run that ended leaves the caps now, recorded or not
            self.dispatcher.finished(ended.run_id)
        for _ in range(min(len(self.results), REAP_SLICE)):
            result = self.results.popleft()
            self.dispatcher.finished(result.run_id)
            state = result.outcome.state
            self.history.transition(
                result.run_id,
                state,
                OPEN,
                started=result.started,
                ended=result.ended,
                duration=result.duration,
                exit_code=result.exit_code,
                signal=result.signal,
                output=result.output,
                output_bytes=result.output_bytes,
                peak_rss=result.peak_rss,
                reason=result.reason,
            )
            run = self.history.run(result.run_id)
            job_name = run.job if run else "?"
            level = "info" if state is RunState.SUCCEEDED else "warning"
            getattr(self.log, level)(
                "run finished",
                job=job_name,
                run_id=result.run_id,
                state=state.value,
                reason=result.reason or None,
                duration=round(result.duration, 3),
                output_bytes=result.output_bytes,
            )
            if run is not None:
                self.settle(run, result.outcome.value, now)
                self.history.prune(run.job, self.config.settings.keep_runs)

    def settle(self, run: Run, outcome: str, now: datetime) -> None:
        """A run ended here: retry and notify, unless, in a cluster, another node ended it
        first (it declared this node dead and retries it itself)."""
        if self.cluster is not None:
            self.cluster.settle(run, outcome, now)
        else:
            self.after_run(run, outcome, now)

    def after_run(self, run: Run, outcome: str, now: datetime) -> None:
        """Retry by the job's policy, and tell its notifiers."""
        assert self.config is not None and self.history is not None
        job = self.config.jobs.get(run.job)
        if job is None or (self.stopping is not None and run.state == "interrupted"):
            return
        if run.state == RunState.SUCCEEDED.value:
            self.notifications.notify(job.on_success, event_for("success", run))
            self.watchers.run_concluded(job, run, now)
            return
        if run.state in (RunState.SKIPPED.value, RunState.INTERRUPTED.value):
            return
        delay = retry_delay(job, run.attempt, outcome)
        if delay is None:
            self.watchers.run_failed(job, run, now)  # the alarms decide who hears of it
            self.watchers.run_concluded(job, run, now)
            return
        due = now.timestamp() + delay
        retry_id = self.history.create_run(
            job.name,
            run.scheduled,
            Trigger.RETRY,
            now.timestamp(),
            attempt=run.attempt + 1,
            first_run=run.first_run or run.id,
            due=due,
            starts_followers=bool(run.starts_followers),
        )
        if self.cluster is None or not self.cluster.retry_created(job, retry_id):
            self.retry_timer.set(str(retry_id), datetime.fromtimestamp(due, UTC))
        self.log.info(
            "retry scheduled",
            job=job.name,
            run_id=retry_id,
            retries=run.id,
            attempt=run.attempt + 1,
            delay=delay,
        )
        self.notifications.notify(job.on_retry, event_for("retry", run, iso_utc(due)))

    def fire_retries(self, now: datetime) -> None:
        """Hand every retry whose backoff has passed to the caps."""
        assert self.history is not None and self.config is not None
        for key, due in self.retry_timer.pop_due(now):
            run = self.history.run(int(key))
            job = self.config.jobs.get(run.job) if run else None
            if run is None or run.state != RunState.PENDING.value:
                continue
            if job is None:
                self._skip(run.id, now, "the job is no longer configured")
                continue
            self.offer(run.id, job, due.timestamp(), now)

    def fire_due(self, now: datetime) -> list[tuple[Job, accounting.Plan]]:
        """Account for every instant that has come: start it, skip it, or record it missed."""
        assert self.config is not None
        fired: list[tuple[Job, accounting.Plan]] = []
        for name, nominal in self.timer.pop_due(now):
            job = self.config.jobs.get(name)
            if job is not None:
                fired.append((job, self.account(job, nominal, now)))
        return fired

    def account(self, job: Job, first: datetime, now: datetime) -> accounting.Plan:
        assert self.ledger is not None and self.config is not None
        keep = self.config.settings.keep_runs
        return self.ledger.account(job, self.rules[job.name], first, now, keep)

    def schedule_next(self, fired: list[tuple[Job, accounting.Plan]]) -> None:
        """The next instant of each job that fired: after the starts, so they are not delayed."""
        for job, plan in fired:
            rule = self.rules.get(job.name)
            if rule is None or self.timer.next_of(job.name) is not None or plan.last is None:
                continue
            following = plan.following or rule.next_after(plan.last, plan.last)
            self.timer.set(job.name, following, stable_jitter(job.name, job.jitter))

    def submit(
        self,
        job: Job,
        scheduled: Optional[float],
        trigger: Trigger,
        now: datetime,
        attempt: int = 1,
        first_run: Optional[int] = None,
        caused_by: Optional[int] = None,  # a chained run: the run that started it
        starts_followers: bool = True,
    ) -> int:
        """Record a run and hand it to the caps; returns its id."""
        assert self.history is not None
        run_id = self.history.create_run(
            job.name,
            scheduled,
            trigger,
            now.timestamp(),
            attempt=attempt,
            first_run=first_run,
            caused_by=caused_by,
            starts_followers=starts_followers,
        )
        self.offer(run_id, job, scheduled or now.timestamp(), now)
        return run_id

    def offer(self, run_id: int, job: Job, due: float, now: datetime) -> None:
        """Hand a recorded run to the caps: it waits, is skipped, or replaces a running one."""
        verdict = self.dispatcher.submit(run_id, job, due)
        if verdict.decision is Decision.SKIP:
            self._skip(run_id, now, verdict.reason)
            self.log.warning("run skipped", job=job.name, run_id=run_id, reason=verdict.reason)
            return
        queued = self.history.held_run(run_id) if self.history is not None else None
        if queued is not None:
            self.watchers.run_queued(job, queued, now)
        if verdict.decision is Decision.REPLACE and self.runner is not None:
            for old in verdict.to_stop:
                self.log.info("run replaced", job=job.name, run_id=old, by=run_id)
                self.runner.stop(old, Outcome.INTERRUPTED, f"interrupted: replaced by run {run_id}")

    def _skip(self, run_id: int, now: datetime, why: str) -> None:
        assert self.history is not None
        self.history.transition(
            run_id, RunState.SKIPPED, OPEN, ended=now.timestamp(), reason=f"skipped: {why}"
        )

    def start_allowed(self, now: datetime) -> None:
        """Start every waiting run the caps allow; what identifies them is read after the burst."""
        assert self.history is not None and self.runner is not None
        ready = list(self.dispatcher.startable())
        runs = self.runner.start_all([(waiting.run_id, waiting.job, None) for waiting in ready])
        at = self.clock.now().timestamp()
        started = [(w, spawned, at) for w, spawned in zip(ready, runs) if spawned is not None]
        for waiting, spawned, at in started:  # a spawn failure arrives through reap()
            self.history.transition(
                waiting.run_id,
                RunState.RUNNING,
                (RunState.PENDING,),
                started=at,
                pid=spawned.pid,
                start_ticks=process_start_ticks(spawned.pid),
                boot_id=self.boot_id,
                cgroup=spawned.cgroup,
            )
            self.log.info(
                "run started",
                job=waiting.job.name,
                run_id=waiting.run_id,
                pid=spawned.pid,
                late_ms=round((at - waiting.due) * 1000, 1),
            )
            run = self.history.held_run(waiting.run_id)
            if run is not None:
                self.watchers.run_started(waiting.job, run, now)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cronplus", description="The cronplus scheduler daemon.")
    add_instance_arguments(parser, "run a per-user instance")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="auto")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    parser.add_argument("--version", action="version", version=f"cronplus {__version__}")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_format, level=args.log_level)
    # Worker threads answer big control requests; hand the interpreter back to the
    # scheduling loop within a millisecond rather than the default five.
    sys.setswitchinterval(0.001)
    paths = resolve(args.user, args.config, args.state_dir, args.runtime_dir)
    daemon = Daemon(paths, SystemClock())
    try:
        daemon.load()
    except ConfigError as exc:
        print(f"cronplus: {paths.config}: configuration rejected", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (HistoryError, CronplusError) as exc:
        print(f"cronplus: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(daemon.run())


if __name__ == "__main__":
    sys.exit(main())
