"""The daemon: wiring, the main loop, signals and reloads.

The loop is a handful of named steps, each a method a test can call with a
clock it controls: wait for the timer's deadline or an event → handle signals
→ reap finished runs → fire due runs → start what the caps allow.  Signal
handlers only record the signal and wake the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import structlog

from . import __version__, config, logs
from .clock import Clock, SystemClock, iso_utc
from .containment import LostRun, choose, discard_group, leftover_processes
from .control import ControlServer
from .dispatch import Decision, Dispatcher, retry_delay
from .errors import ConfigError, CronplusError, HistoryError
from .history import History, Run
from .model import CatchUp, Config, Job, Outcome, RunState, ScheduleKind, ScheduleSpec, Trigger
from .notify import Event, event_for, notifier_command
from .operations import Operations
from .paths import Paths, add_instance_arguments, resolve
from .runner import Runner, RunResult
from .schedule import (
    Rule,
    build_rule,
    catch_up_instants,
    instants_between,
    stable_jitter,
    upcoming,
)
from .servicemanager import ServiceManager
from .timer import Timer

# Longest sleep: a bound on how late a run can be after the wall clock is stepped.
MAX_SLEEP = 300.0
# Below this, wait() sleeps the rest exactly instead of polling, which is up to 1 ms late.
PRECISE_WAKE = 0.002
OPEN = (RunState.PENDING, RunState.RUNNING)
UTC = timezone.utc
NO_SCHEDULE = ScheduleSpec(ScheduleKind.AT, at_local="1970-01-01T00:00")  # for notifier runs


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
        self.rules: dict[str, Rule] = {}
        self.timer = Timer()
        self.retry_timer = Timer()  # waiting retries, keyed by the id of their pending run
        self.dispatcher = Dispatcher(16, {})
        self.history: Optional[History] = None
        self.runner: Optional[Runner] = None
        self.signals: collections.deque[int] = collections.deque()
        self.results: collections.deque[RunResult] = collections.deque()
        self.stopping: Optional[_Stopping] = None
        self.wake: Optional[asyncio.Event] = None  # made in attach(), inside the running loop
        self.notifications: collections.deque[tuple[str, Event]] = collections.deque()
        self._notifier_ids = itertools.count(-1, -1)  # apart from run ids; never in the history
        self._notifier_runs: dict[int, tuple[str, int]] = {}  # notifier run -> (name, run told of)
        self.started_at = clock.now().timestamp()
        self.manager = ServiceManager()
        self.instance = secrets.token_hex(4)  # CRONPLUS_INSTANCE: tells our runs from others'

    # --- set-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the config and open the history; raises ConfigError or HistoryError."""
        self.config = self.read_config()
        self.history = History(self.paths.history(self.config.settings.history))
        now = self.clock.now()
        self._apply(self.config, now)
        self.recover(now)
        self.catch_up(now)
        self.log.info(
            "started",
            version=__version__,
            config=self.paths.config,
            jobs=len(self.config.jobs),
            history=self.history.path,
        )

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.wake = asyncio.Event()
        mode = self.config.settings.cgroups if self.config else "auto"
        containment = choose(mode, self.instance, lambda why: self.log.warning(why))
        self.runner = Runner(loop, self.clock, self._on_exit, containment, self.instance)
        self.log.info("runs contained", **containment.describe())
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        self.signals.append(signum)
        if self.wake is not None:
            self.wake.set()

    def _on_exit(self, result: RunResult) -> None:
        self.results.append(result)
        if self.wake is not None:
            self.wake.set()

    def _notifier_done(self, result: RunResult) -> None:
        """A notifier that failed is logged and noted on the run; it fails nothing else."""
        name, run_id = self._notifier_runs.pop(result.run_id, ("?", 0))
        if result.outcome is Outcome.SUCCEEDED:
            return
        said = result.output[-300:].decode(errors="replace").strip().replace("\n", " | ")
        note = f"notifier {name} failed: {result.reason}" + (f": {said}" if said else "")
        self.log.warning("notifier failed", notifier=name, run_id=run_id, reason=note)
        if self.history is not None and run_id:
            self.history.add_note(run_id, note)

    def recover(self, now: datetime) -> None:
        """Runs left open by a daemon that died: waiting retries are re-armed, the rest are lost.

        A lost run's processes may still be alive, orphaned: they are stopped (only
        processes provably its own, see `leftover_processes`), then the run is retried
        as its job's policy says.
        """
        assert self.history is not None and self.config is not None
        lost = []
        for run in self.history.open_runs():
            job = self.config.jobs.get(run.job)
            if run.trigger == Trigger.RETRY.value and run.state == "pending" and run.due and job:
                self.retry_timer.set(str(run.id), datetime.fromtimestamp(run.due, UTC))
            else:
                lost.append(run)
        # one walk of /proc for all of them; without the recorded start and boot, none is provable
        lost_runs = [LostRun(run.id, run.pid, None, None, None) for run in lost]
        left_behind = leftover_processes(lost_runs, self.instance)
        for run, lost_run in zip(lost, lost_runs):
            for pid in left_behind[run.id]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    self.log.warning("stopped an orphan", job=run.job, run_id=run.id, pid=pid)
            if lost_run.cgroup:
                discard_group(lost_run.cgroup)
            reason = (
                "lost: the daemon stopped while it was running"
                if run.state == "running"
                else "lost: the daemon stopped before it started"
            )
            if self.history.transition(
                run.id, RunState.LOST, OPEN, ended=now.timestamp(), reason=reason
            ):
                self.log.warning("run lost", job=run.job, run_id=run.id, pid=run.pid)
                recorded = self.history.run(run.id)
                if recorded is not None:
                    self.after_run(recorded, "lost", now)

    def catch_up(self, now: datetime) -> None:
        """Runs missed while the daemon was down, as each job's `catch_up` says."""
        assert self.history is not None and self.config is not None
        states = self.history.job_states()
        for name, job in self.config.jobs.items():
            state = states.get(name)
            if job.catch_up is CatchUp.SKIP or state is None or state.paused:
                continue
            if state.last_scheduled is None:
                continue
            last = datetime.fromtimestamp(state.last_scheduled, UTC)
            missed = instants_between(self.rules[name], last, now, last, limit=job.catch_up_limit)
            chosen = catch_up_instants(job.catch_up.value, missed)
            for instant in chosen:
                self.log.info("catching up", job=name, scheduled=instant.isoformat())
                self.submit(job, instant.timestamp(), Trigger.CATCH_UP, now)
            if missed:
                self.history.set_last_scheduled(name, missed[-1].timestamp())

    def _apply(self, new: Config, now: datetime) -> None:
        """Swap in a validated config; jobs whose schedule did not change keep their next run."""
        assert self.history is not None
        old = self.config if self.config is not new else None
        states = self.history.job_states()
        rules: dict[str, Rule] = {}
        for name, job in new.jobs.items():
            previous = old.jobs.get(name) if old else None
            unchanged = (
                previous is not None
                and previous.schedule == job.schedule
                and previous.timezone == job.timezone
                and previous.jitter == job.jitter
                and name in self.rules
            )
            rules[name] = self.rules[name] if unchanged else build_rule(job.schedule, job.timezone)
            state = states.get(name)
            if state is not None and state.paused:
                self.timer.remove(name)
            elif not unchanged or self.timer.next_of(name) is None:
                last = state.last_scheduled if state else None
                self._schedule(job, rules[name], now, last)
        for name in set(self.rules) - set(new.jobs):
            self.timer.remove(name)
        self.rules = rules
        self.config = new
        self.dispatcher.reconfigure(new.settings.max_workers, new.settings.pools)

    def _schedule(self, job: Job, rule: Rule, now: datetime, last: Optional[float]) -> None:
        self.timer.set(job.name, upcoming(rule, now, last), stable_jitter(job.name, job.jitter))

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.attach(loop)
        server = ControlServer(self.paths.socket, Operations(self).handle, self._control_error)
        try:
            await server.start(0o600 if self.paths.user_mode else 0o666)
        except OSError as exc:
            self.log.error("cannot listen", socket=self.paths.socket, error=str(exc))
            return 1
        self.log.info("listening", socket=self.paths.socket)
        self.manager.ready(self.status_line())
        try:
            while self.step(self.clock.now()):
                await self.wait()
        finally:
            await server.close()
            if self.runner is not None:
                self.runner.close()
        self.log.info("stopped")
        if self.history is not None:
            self.history.close()
        return 0

    def _control_error(self, what: str, exc: Exception) -> None:
        self.log.error(what, error=repr(exc))

    def step(self, now: datetime) -> bool:
        """One turn of the loop; False when the daemon has finished stopping."""
        self.handle_signals(now)
        self.reap(now)
        if self.stopping is None:
            fired = self.fire_due(now)
            self.fire_retries(now)
            self.start_allowed(now)
            self.schedule_next(fired, now)
        else:
            self.stop_overdue()
        self.send_notifications()
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
        return line

    async def wait(self) -> None:
        assert self.wake is not None
        timeout = self.seconds_to_deadline(self.clock.now())
        self.wake.clear()
        if self.signals or self.results:
            return
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
        deadlines = [d for d in (self.timer.deadline(), self.retry_timer.deadline()) if d]
        if deadlines and self.stopping is None:
            timeout = min(timeout, (min(deadlines) - now).total_seconds())
        grace_left = self.stopping.deadline - self.clock.monotonic() if self.stopping else 0.0
        if self.stopping is not None and not self.stopping.fast and grace_left > 0:
            timeout = min(timeout, grace_left)
        ping = self.manager.seconds_to_ping(self.clock.monotonic())
        if ping is not None:
            timeout = min(timeout, ping)
        return max(0.0, timeout)

    def handle_signals(self, now: datetime) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum == signal.SIGHUP:
                self.reload(now)
            else:
                self.begin_stop(now)

    def reload(self, now: datetime) -> Optional[ConfigError]:
        """Re-read the config; a bad file is rejected whole, returned, and the old one runs on."""
        self.manager.reloading()
        try:
            new = self.read_config()
        except ConfigError as exc:
            self.log.error("reload rejected", config=self.paths.config, problems=len(exc.problems))
            for problem in exc.problems:
                self.log.error("config problem", problem=str(problem))
            self.manager.ready(self.status_line())
            return exc
        self._apply(new, now)
        self.log.info("reloaded", config=self.paths.config, jobs=len(new.jobs))
        self.manager.ready(self.status_line())
        return None

    def read_config(self) -> Config:
        """The config; a system daemon run by root refuses files others could have written."""
        strict = not self.paths.user_mode and os.geteuid() == 0
        return config.load(self.paths.config, self.default_zone, require_root_owned=strict)

    def set_paused(self, job: Job, paused: bool) -> None:
        """A paused job is not scheduled; its running runs go on."""
        assert self.history is not None
        self.history.set_paused(job.name, paused)
        if paused:
            self.timer.remove(job.name)
        else:
            state = self.history.job_states().get(job.name)
            last = state.last_scheduled if state else None
            self._schedule(job, self.rules[job.name], self.clock.now(), last)
        self.log.info("paused" if paused else "resumed", job=job.name)

    def poke(self) -> None:
        """Wake the loop so it acts on what a control request changed."""
        if self.wake is not None:
            self.wake.set()

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
        assert self.history is not None and self.config is not None
        while self.results:
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
                self.after_run(run, result.outcome.value, now)
                self.history.prune(run.job, self.config.settings.keep_runs)

    def after_run(self, run: Run, outcome: str, now: datetime) -> None:
        """Retry by the job's policy, and tell its notifiers."""
        assert self.config is not None and self.history is not None
        job = self.config.jobs.get(run.job)
        if job is None or (self.stopping is not None and run.state == "interrupted"):
            return
        if run.state == RunState.SUCCEEDED.value:
            self.notify(job.on_success, event_for("success", run))
            return
        if run.state in (RunState.SKIPPED.value, RunState.INTERRUPTED.value):
            return
        delay = retry_delay(job, run.attempt, outcome)
        if delay is None:
            self.notify(job.on_failure, event_for("failure", run))
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
        )
        self.retry_timer.set(str(retry_id), datetime.fromtimestamp(due, UTC))
        self.log.info(
            "retry scheduled",
            job=job.name,
            run_id=retry_id,
            retries=run.id,
            attempt=run.attempt + 1,
            delay=delay,
        )
        self.notify(job.on_retry, event_for("retry", run, iso_utc(due)))

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
            self._offer(run.id, job, due.timestamp(), now)

    def notify(self, names: Sequence[str], event: Event) -> None:
        for name in names:
            self.notifications.append((name, event))

    def send_notifications(self) -> None:
        """Start queued notifier commands; they never count against the caps."""
        if self.runner is None or self.config is None:
            return
        while self.notifications:
            name, event = self.notifications.popleft()
            notifier = self.config.notifiers.get(name)
            if notifier is None:
                continue
            argv, env = notifier_command(notifier, event)
            job = Job(
                name=f"notifier:{name}",
                schedule=NO_SCHEDULE,
                timezone="UTC",
                command=tuple(argv),
                env=env,
                timeout=60.0,
                kill_grace=5.0,
                output_limit=4096,
            )
            self.log.info(
                "notifying", notifier=name, kind=event.kind, job=event.job, run_id=event.run_id
            )
            notifier_run = next(self._notifier_ids)
            self._notifier_runs[notifier_run] = (name, event.run_id)
            self.runner.start(notifier_run, job, self._notifier_done)

    def fire_due(self, now: datetime) -> list[tuple[Job, float]]:
        """Create a run for every job whose time has come; returns (job, instant) fired."""
        assert self.history is not None and self.config is not None
        fired: list[tuple[Job, float]] = []
        due = self.timer.pop_due(now)
        if not due:
            return fired
        with self.history.batch():  # one commit for every run due now, before any starts
            for name, nominal in due:
                job = self.config.jobs.get(name)
                if job is None:
                    continue
                self.history.set_last_scheduled(name, nominal.timestamp())
                self.submit(job, nominal.timestamp(), Trigger.SCHEDULE, now)
                fired.append((job, nominal.timestamp()))
        return fired

    def schedule_next(self, fired: list[tuple[Job, float]], now: datetime) -> None:
        """The next run of each job that just fired: after the starts, so they are not delayed."""
        for job, instant in fired:
            if job.name in self.rules and self.timer.next_of(job.name) is None:
                self._schedule(job, self.rules[job.name], now, instant)

    def submit(
        self,
        job: Job,
        scheduled: Optional[float],
        trigger: Trigger,
        now: datetime,
        attempt: int = 1,
        first_run: Optional[int] = None,
    ) -> int:
        """Record a run and hand it to the caps; returns its id."""
        assert self.history is not None
        run_id = self.history.create_run(
            job.name, scheduled, trigger, now.timestamp(), attempt=attempt, first_run=first_run
        )
        self._offer(run_id, job, scheduled or now.timestamp(), now)
        return run_id

    def _offer(self, run_id: int, job: Job, due: float, now: datetime) -> None:
        """Hand a recorded run to the caps: it waits, is skipped, or replaces a running one."""
        assert self.history is not None
        verdict = self.dispatcher.submit(run_id, job, due)
        if verdict.decision is Decision.SKIP:
            self._skip(run_id, now, verdict.reason)
            self.log.warning("run skipped", job=job.name, run_id=run_id, reason=verdict.reason)
        elif verdict.decision is Decision.REPLACE and self.runner is not None:
            for old in verdict.to_stop:
                self.log.info("run replaced", job=job.name, run_id=old, by=run_id)
                self.runner.stop(old, Outcome.INTERRUPTED, f"interrupted: replaced by run {run_id}")

    def _skip(self, run_id: int, now: datetime, why: str) -> None:
        assert self.history is not None
        self.history.transition(
            run_id, RunState.SKIPPED, OPEN, ended=now.timestamp(), reason=f"skipped: {why}"
        )

    def start_allowed(self, now: datetime) -> None:
        """Start every waiting run the caps allow; their rows are written after the last start."""
        assert self.history is not None and self.runner is not None
        started = []
        for waiting in self.dispatcher.startable():
            spawned = self.runner.start(waiting.run_id, waiting.job)
            if spawned is not None:  # else the spawn failure arrives through reap()
                started.append((waiting, spawned.pid, self.clock.now().timestamp()))
        if not started:
            return
        with self.history.batch():
            for waiting, pid, at in started:
                self.history.transition(
                    waiting.run_id, RunState.RUNNING, (RunState.PENDING,), started=at, pid=pid
                )
                self.log.info(
                    "run started",
                    job=waiting.job.name,
                    run_id=waiting.run_id,
                    pid=pid,
                    late_ms=round((at - waiting.due) * 1000, 1),
                )


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
