"""The only place processes start.

Every run goes through `Runner.start`: user and groups, a clean environment,
working directory, its own session and process group, born inside its own
containment group (see `containment`), a timeout that stops every process of
the run, and output kept as a bounded tail.  A command that cannot start
becomes a finished run with the reason, never an exception in the daemon loop.
Leaders are watched with a pidfd where the kernel has one, else with SIGCHLD;
never with a thread per child.  A run ends when its leader has exited and no
process of its group is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .clock import Clock
from .containment import Containment, OverLimit, RunGroup
from .containment.cgroup import CgroupTree
from .model import Job, Outcome
from .notify.desktop import desktop_argv, session_environment
from .spawning.client import UNSENT, Child, Request, Spawner, Spawners, Usage

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
PASSED_THROUGH = ("LANG", "LC_ALL", "LC_CTYPE", "LANGUAGE")
# Only for runs as the daemon's own user: what a desktop job needs to reach the session.
SESSION_VARIABLES = ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")
READ_CHUNK = 65536
SAMPLE_SECONDS = 0.25  # the watchdog's pace, and how soon a run's last process is missed
KILL_AGAIN = 0.05  # SIGKILL passes until the group is empty: members may fork meanwhile
KILL_GIVE_UP = 10.0  # a process that outlives this many seconds of SIGKILL is stuck in the kernel


@dataclass(frozen=True)
class Spawned:
    """A started run, as the history records it to find its processes after a crash
    (with the leader's start time, which the daemon reads after a burst of starts)."""

    pid: int
    cgroup: Optional[str]  # the run's cgroup directory, or None


@dataclass(frozen=True)
class RunResult:
    run_id: int
    outcome: Outcome
    started: Optional[float]  # epoch seconds; None when the process never started
    ended: float
    duration: float
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    output: bytes = b""
    output_bytes: int = 0
    peak_rss: Optional[int] = None  # bytes
    reason: str = ""
    pid: Optional[int] = None


class ActiveRun:
    """A running run, as the runner keeps it: slots, as a thousand of them may run at once."""

    __slots__ = (
        "group",
        "input",
        "job",
        "kill_again",
        "killing_since",
        "leader_code",
        "leader_usage",
        "on_exit",
        "output_bytes",
        "output_fd",
        "peak_sampled",
        "pidfd",
        "process",
        "run_id",
        "spawner",
        "started",
        "started_mono",
        "stop_detail",
        "stop_reason",
        "tail",
        "timers",
        "writer",
    )

    def __init__(
        self,
        run_id: int,
        job: Job,
        process: Union[subprocess.Popen[bytes], Child],
        group: RunGroup,
        started: float,
        started_mono: float,
        output_fd: int,
        pidfd: Optional[int],
        on_exit: Callable[[RunResult], None],
        spawner: Optional[Spawner] = None,
    ) -> None:
        self.run_id = run_id
        self.job = job
        self.process = process
        self.group = group
        self.started = started
        self.started_mono = started_mono
        self.output_fd = output_fd
        self.pidfd = pidfd
        self.on_exit = on_exit
        self.tail = bytearray()
        self.output_bytes = 0
        self.stop_reason: Optional[Outcome] = None
        self.stop_detail = ""  # overrides the usual reason text
        self.timers: list[asyncio.TimerHandle] = []
        self.peak_sampled = 0
        self.leader_code: Optional[int] = None  # set when the leader has exited and been reaped
        self.leader_usage: Optional[object] = None
        self.killing_since: Optional[float] = None  # monotonic time of the first SIGKILL pass
        self.kill_again: Optional[asyncio.TimerHandle] = None
        self.input: Optional[memoryview] = None  # what is left to write to its standard input
        self.writer = False  # the loop waits for room in the input pipe
        self.spawner = spawner  # whose child it is: that spawner gives the exit status

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass(frozen=True)
class Prepared:
    """A run's process as the daemon prepares it, before any fork."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    target: Optional[pwd.struct_passwd]  # the account to switch to
    groups: Optional[list[int]]
    stdin_pipe: bool

    def request(self, run_id: int, join: Optional[str]) -> Request:
        """As a spawner takes it, born in the group whose file is `join`."""
        uid, gid = (self.target.pw_uid, self.target.pw_gid) if self.target else (None, None)
        return Request(
            run_id, self.argv, self.env, self.cwd, uid, gid, self.groups, self.stdin_pipe, join
        )


class SpawnError(Exception):
    """Why a command could not start; becomes the run's reason."""


def command_argv(job: Job) -> list[str]:
    """A string runs under /bin/sh -c as cron does; a list runs without a shell."""
    if isinstance(job.command, str):
        return ["/bin/sh", "-c", job.command]
    if job.command:
        return list(job.command)
    if job.notify is not None:
        return desktop_argv(job.notify)
    raise SpawnError("the job has nothing to run")


def identity(job: Job) -> tuple[Optional[pwd.struct_passwd], pwd.struct_passwd]:
    """(the account to switch to or None, the account the run uses); raises SpawnError."""
    me = pwd.getpwuid(os.geteuid())
    if job.user is None or job.user == me.pw_name:
        return None, me
    try:
        target = pwd.getpwnam(job.user)
    except KeyError:
        raise SpawnError(f'no such user "{job.user}"') from None
    if os.geteuid() != 0:
        raise SpawnError(f'running as user "{job.user}" needs the daemon to run as root')
    return target, target


def environment(
    job: Job, account: pwd.struct_passwd, switching: bool, run_id: int, instance: str
) -> dict[str, str]:
    """A clean environment as cron gives, plus the job's own variables."""
    env = {
        "HOME": account.pw_dir,
        "USER": account.pw_name,
        "LOGNAME": account.pw_name,
        "SHELL": "/bin/sh",
        "PATH": DEFAULT_PATH,
    }
    passed = PASSED_THROUGH if switching else PASSED_THROUGH + SESSION_VARIABLES
    env.update({k: os.environ[k] for k in passed if k in os.environ})
    if switching and job.notify is not None:
        env.update(session_environment(account.pw_uid))  # the target user's own session bus
    env["CRONPLUS_JOB"] = job.name
    env["CRONPLUS_RUN_ID"] = str(run_id)
    env["CRONPLUS_INSTANCE"] = instance  # with the run id, names the run's processes for good
    env.update(job.env)  # the config keeps CRONPLUS_* for us; notifier runs set their own facts
    return env


class Runner:
    """Starts and watches runs; calls `on_exit` once for every run it was given."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Clock,
        on_exit: Callable[[RunResult], None],
        containment: Containment,
        instance: str,
        spawners: Optional[Spawners] = None,
    ) -> None:
        self.loop = loop
        self.spawners = spawners  # where runs start when one is up; see `cronplus.spawning`
        self.clock = clock
        self.on_exit = on_exit
        self.containment = containment
        self.instance = instance
        self.active: dict[int, ActiveRun] = {}
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._use_pidfd = hasattr(os, "pidfd_open")
        if not self._use_pidfd:
            loop.add_signal_handler(signal.SIGCHLD, self._reap_all)

    def start(
        self, run_id: int, job: Job, on_exit: Optional[Callable[[RunResult], None]] = None
    ) -> Optional[Spawned]:
        """Start a run; None when it failed to start (already reported).

        Its result goes to `on_exit` when given (notifier runs), else to the runner's.
        """
        return self.start_all([(run_id, job, on_exit)])[0]

    def start_all(
        self, runs: list[tuple[int, Job, Optional[Callable[[RunResult], None]]]]
    ) -> list[Optional[Spawned]]:
        """Start runs, through the spawner when there is one; `start` for each, in order."""
        if self.spawners is not None and runs and self.spawners.ensure():
            return self._start_by_spawners(self.spawners, runs)
        return [
            self._start_here(run_id, job, on_exit or self.on_exit) for run_id, job, on_exit in runs
        ]

    def _start_here(
        self, run_id: int, job: Job, done: Callable[[RunResult], None]
    ) -> Optional[Spawned]:
        """Fork from the daemon itself: no spawner, or it is down."""
        started, mono = self.clock.now().timestamp(), self.clock.monotonic()
        try:
            process, group = self.containment.spawn(run_id, self._command(run_id, job))
        except SpawnError as exc:
            self._report_spawn_failure(run_id, mono, str(exc), done)
            return None
        except OSError as exc:
            self._report_spawn_failure(run_id, mono, _os_reason(exc), done)
            return None
        return self._begin(run_id, job, process, group, started, mono, done)

    def _start_by_spawners(
        self, spawners: Spawners, runs: list[tuple[int, Job, Optional[Callable[[RunResult], None]]]]
    ) -> list[Optional[Spawned]]:
        """Prepare each run while the spawners fork the ones prepared before it."""
        births: list[Optional[tuple[Callable[[RunResult], None], float, float, RunGroup]]] = []
        tree: CgroupTree = self.containment  # type: ignore[assignment]  # `spawner_for` saw to it

        def requests() -> Iterator[Optional[Request]]:
            for run_id, job, on_exit in runs:
                done = on_exit or self.on_exit
                started, mono = self.clock.now().timestamp(), self.clock.monotonic()
                try:
                    prepared = self._prepare(run_id, job)
                    group, join = tree.birth(run_id)
                except (SpawnError, OSError) as exc:
                    reason = str(exc) if isinstance(exc, SpawnError) else _os_reason(exc)
                    self._report_spawn_failure(run_id, mono, reason, done)
                    births.append(None)
                    yield None
                    continue
                births.append((done, started, mono, group))
                yield prepared.request(run_id, join)

        answers = spawners.start_all(requests(), tree.home_of)
        results: list[Optional[Spawned]] = []
        for (run_id, job, _), birth, (answer, spawner) in zip(runs, births, answers):
            results.append(None)
            if birth is None:
                continue  # reported when it could not be prepared
            done, started, mono, group = birth
            if isinstance(answer, Child):
                results[-1] = self._begin(run_id, job, answer, group, started, mono, done, spawner)
            elif answer == UNSENT:  # no spawner took it: nothing started, start it here
                results[-1] = self._start_here(run_id, job, done)
            elif answer is None or isinstance(answer, str):  # it may have started: stop it
                self.containment.refresh()
                group.signal(signal.SIGKILL)
                group.release()
                reason = "the spawner ended before it answered; anything it started was stopped"
                self._report_spawn_failure(run_id, mono, reason, done)
            else:
                group.release()
                self._report_spawn_failure(run_id, mono, _os_reason(answer), done)
        return results

    def _begin(
        self,
        run_id: int,
        job: Job,
        process: Union[subprocess.Popen[bytes], Child],
        group: RunGroup,
        started: float,
        mono: float,
        done: Callable[[RunResult], None],
        spawner: Optional[Spawner] = None,
    ) -> Spawned:
        """Watch a run that has just started: its output, its leader, its timeout and limit."""
        spawned = Spawned(process.pid, group.path)
        assert process.stdout is not None
        output_fd = process.stdout.fileno()
        os.set_blocking(output_fd, False)
        pidfd = os.pidfd_open(process.pid) if self._use_pidfd else None
        active = ActiveRun(
            run_id, job, process, group, started, mono, output_fd, pidfd, done, spawner
        )
        self.active[run_id] = active
        self.loop.add_reader(output_fd, self._read_output, active)
        if job.stdin is not None:
            active.input = memoryview(job.stdin.encode("utf-8", "surrogateescape"))
            self._feed(active)
        if pidfd is not None:
            self.loop.add_reader(pidfd, self._reap, active)
        else:
            self.loop.call_soon(self._reap_all)  # it may have exited before the handler saw it
        if job.timeout is not None:
            active.timers.append(
                self.loop.call_later(job.timeout, self.stop, run_id, Outcome.TIMEOUT)
            )
        if job.memory_limit is not None:
            self._limit_memory(active, job.memory_limit)
        self._watch(active)
        return spawned

    def _limit_memory(self, active: ActiveRun, limit: int) -> None:
        """Set after the birth, with the daemon out of the group; a run already over it stops."""
        try:
            active.group.limit(limit)
        except OverLimit:
            detail = f"memory-limit: over its limit of {limit >> 20} MiB before it could be set"
            self.kill(active.run_id, Outcome.MEMORY_LIMIT, detail)
        except OSError as exc:
            detail = f"memory-limit: the limit could not be set: {exc.strerror or exc}"
            self.kill(active.run_id, Outcome.MEMORY_LIMIT, detail)

    def _watch(self, only: Optional[ActiveRun] = None) -> None:
        """Keep the ticker going while a run needs the watchdog or waits for its last process.

        After a start only the new run is looked at: a burst of starts stays linear.
        """
        if self._ticker is not None:
            return
        runs = [only] if only is not None else self.active.values()
        if any(self._needs_ticks(a) for a in runs):
            self._ticker = self.loop.call_later(SAMPLE_SECONDS, self._tick)

    def _needs_ticks(self, active: ActiveRun) -> bool:
        return (
            self.containment.polled
            or active.job.memory_limit is not None
            or active.leader_code is not None
        )

    def _tick(self) -> None:
        self._ticker = None
        self.containment.refresh()  # one walk of /proc for every run, where there is no cgroup
        for active in list(self.active.values()):
            self._check_memory(active)
            if active.leader_code is not None:
                self._settle(active)
        self._watch()

    def _check_memory(self, active: ActiveRun) -> None:
        used = active.group.usage()
        active.peak_sampled = max(active.peak_sampled, used)
        limit = active.job.memory_limit
        if limit is None or active.stop_reason is not None:
            return
        if self.containment.kernel_limits:
            if active.group.oom_kills():  # v1 kills one process; the run goes with it
                self.kill(active.run_id, Outcome.MEMORY_LIMIT, _killed_at_limit(limit))
        elif used > limit:
            detail = (
                f"memory-limit: the process tree used {used >> 20} MiB,"
                f" over its limit of {limit >> 20} MiB"
            )
            self.kill(active.run_id, Outcome.MEMORY_LIMIT, detail)

    def _prepare(self, run_id: int, job: Job) -> Prepared:
        """What can be checked before the fork is (SpawnError)."""
        argv = command_argv(job)
        target, account = identity(job)
        env = environment(job, account, target is not None, run_id, self.instance)
        workdir = job.workdir or account.pw_dir or "/"
        if not os.path.isdir(workdir):
            raise SpawnError(f"working directory {workdir} does not exist")
        groups = os.getgrouplist(target.pw_name, target.pw_gid) if target else None
        return Prepared(argv, env, workdir, target, groups, job.stdin is not None)

    def _command(self, run_id: int, job: Job) -> Callable[[], subprocess.Popen[bytes]]:
        """What the containment calls to fork."""
        prepared = self._prepare(run_id, job)
        target = prepared.target
        return lambda: subprocess.Popen(  # the command is the job's, by design
            prepared.argv,
            stdin=subprocess.PIPE if prepared.stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=prepared.cwd,
            env=prepared.env,
            start_new_session=True,
            close_fds=True,
            user=target.pw_uid if target else None,
            group=target.pw_gid if target else None,
            extra_groups=prepared.groups,
        )

    def _report_spawn_failure(
        self, run_id: int, mono: float, reason: str, done: Callable[[RunResult], None]
    ) -> None:
        result = RunResult(
            run_id=run_id,
            outcome=Outcome.SPAWN_FAILED,
            started=None,
            ended=self.clock.now().timestamp(),
            duration=self.clock.monotonic() - mono,
            reason=f"spawn-failed: {reason}",
        )
        self.loop.call_soon(done, result)

    def stop(self, run_id: int, reason: Outcome, detail: str = "") -> None:
        """SIGTERM to every process of the run, SIGKILL after the job's kill_grace."""
        active = self.active.get(run_id)
        if active is None or active.stop_reason is not None:
            return
        active.stop_reason = reason
        active.stop_detail = detail
        self._signal(active, signal.SIGTERM)
        active.timers.append(self.loop.call_later(active.job.kill_grace, self._kill_all, active))

    def kill(self, run_id: int, reason: Outcome, detail: str = "") -> None:
        """SIGKILL at once, for a fast stop or a run over its memory limit."""
        active = self.active.get(run_id)
        if active is None:
            return
        if active.stop_reason is None:
            active.stop_reason, active.stop_detail = reason, detail
        self._kill_all(active)

    def close(self) -> None:
        """At the end of the daemon: the containment gives back what it took."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self.spawners is not None:
            self.spawners.close()
        self.containment.close()

    def _signal(self, active: ActiveRun, signum: int) -> None:
        if active.leader_code is None:  # its pid, and so its process group, is still its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(active.pid, signum)
        self.containment.refresh()
        active.group.signal(signum)

    def _kill_all(self, active: ActiveRun) -> None:
        """SIGKILL to every process of the run, again until none is left."""
        if self.active.get(active.run_id) is not active:
            return
        now = self.clock.monotonic()
        if active.killing_since is None:
            active.killing_since = now
        if active.kill_again is not None:
            active.kill_again.cancel()
        self._signal(active, signal.SIGKILL)
        if active.leader_code is not None and active.group.empty():
            self._finish(active)
            return
        # a process that survives a second of SIGKILL is stuck in the kernel: look less often
        pause = KILL_AGAIN if now - active.killing_since < 1.0 else 1.0
        active.kill_again = self.loop.call_later(pause, self._kill_all, active)

    def _feed(self, active: ActiveRun) -> None:
        """Write what the pipe takes now; the loop writes the rest when it has room.

        Never blocks: a run that does not read its input holds only its own pipe,
        and the input ends (EOF) once all of it is written, as cron gives it.
        """
        pipe = active.process.stdin
        if pipe is None or active.input is None:
            return
        fd = pipe.fileno()
        os.set_blocking(fd, False)
        try:
            while active.input.nbytes:
                written = os.write(fd, active.input[:READ_CHUNK])
                active.input = active.input[written:]
        except BlockingIOError:
            if not active.writer:
                self.loop.add_writer(fd, self._feed, active)
                active.writer = True
            return
        except OSError:  # EPIPE: the run closed its input or ended; the rest is dropped
            pass
        self._close_input(active)

    def _close_input(self, active: ActiveRun) -> None:
        pipe = active.process.stdin
        if pipe is None:
            return
        if active.writer:
            self.loop.remove_writer(pipe.fileno())
            active.writer = False
        active.input = None
        with contextlib.suppress(OSError):
            pipe.close()
        active.process.stdin = None

    def _read_output(self, active: ActiveRun) -> None:
        try:
            chunk = os.read(active.output_fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(active.output_fd)
            return
        self._keep(active, chunk)

    def _keep(self, active: ActiveRun, chunk: bytes) -> None:
        """Count every byte, keep the tail: trimmed in batches, to the limit at the end."""
        active.output_bytes += len(chunk)
        active.tail += chunk
        limit = active.job.output_limit
        if len(active.tail) > 2 * limit + READ_CHUNK:
            del active.tail[: len(active.tail) - limit]

    def _reap_all(self) -> None:
        for active in list(self.active.values()):
            if active.leader_code is None:
                self._reap(active)

    def _reap(self, active: ActiveRun) -> None:
        """The leader exited: keep its status; the run ends when its last process has.

        The spawner's child: the spawner reaps it when asked and says how it ended;
        after the spawner's own end the daemon has adopted it and reaps it here.
        """
        if active.spawner is not None and active.pidfd is not None:
            self.loop.remove_reader(active.pidfd)
            if active.spawner.reap(active.pid, lambda _, s, u: self._reaped(active, s, u)):
                return
        try:
            pid, status, usage = os.wait4(active.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, usage = active.pid, 0, None
        if pid == 0:
            if active.pidfd is not None and active.spawner is not None:
                self.loop.add_reader(active.pidfd, self._reap, active)
            return
        self._leader_ended(active, status, usage)

    def _reaped(self, active: ActiveRun, status: Optional[int], usage: Optional[Usage]) -> None:
        """The spawner's answer; None when it ended first: the daemon reaps the leader."""
        if self.active.get(active.run_id) is not active or active.leader_code is not None:
            return
        if status is None:
            active.spawner = None
            self._reap(active)
            return
        self._leader_ended(active, status, usage)

    def _leader_ended(self, active: ActiveRun, status: int, usage: Optional[object]) -> None:
        code = os.waitstatus_to_exitcode(status)
        active.process.returncode = code
        active.leader_code, active.leader_usage = code, usage
        if active.pidfd is not None:
            self.loop.remove_reader(active.pidfd)
            os.close(active.pidfd)
            active.pidfd = None
        self.containment.refresh()
        self._check_memory(active)  # the kernel may have taken the leader at the limit
        if active.stop_reason is not None:
            self._kill_all(active)  # stragglers of a stopped run go at once
        else:
            self._settle(active)

    def _settle(self, active: ActiveRun) -> None:
        """Finish a run whose leader is gone once its group is empty, or SIGKILL cannot empty it."""
        if self.active.get(active.run_id) is not active:
            return
        stuck = (
            active.killing_since is not None
            and self.clock.monotonic() - active.killing_since > KILL_GIVE_UP
        )
        if active.group.empty() or stuck:
            self._finish(active)
        else:
            self._watch(active)

    def _finish(self, active: ActiveRun) -> None:
        self.active.pop(active.run_id, None)
        for timer in (*active.timers, active.kill_again):
            if timer is not None:
                timer.cancel()
        code = active.leader_code if active.leader_code is not None else 0
        self._close_input(active)
        self._drain(active)
        self.loop.remove_reader(active.output_fd)
        assert active.process.stdout is not None
        active.process.stdout.close()
        limit = active.job.output_limit
        output = bytes(active.tail[-limit:]) if limit else b""
        group = active.group
        memory = active.job.memory_limit
        if memory is not None and active.stop_reason is None and group.oom_kills():
            active.stop_reason = Outcome.MEMORY_LIMIT
            active.stop_detail = (
                f"memory-limit: killed by the kernel at its limit of {memory >> 20} MiB"
            )
        peak = max(_peak_rss(active.leader_usage) or 0, active.peak_sampled, group.peak() or 0)
        group.release()
        if active.stop_reason is not None:
            outcome = active.stop_reason
        elif code == 0:
            outcome = Outcome.SUCCEEDED
        elif code > 0:
            outcome = Outcome.EXIT_CODE
        else:
            outcome = Outcome.SIGNAL
        result = RunResult(
            run_id=active.run_id,
            outcome=outcome,
            started=active.started,
            ended=self.clock.now().timestamp(),
            duration=self.clock.monotonic() - active.started_mono,
            exit_code=code if code >= 0 else None,
            signal=-code if code < 0 else None,
            output=output,
            output_bytes=active.output_bytes,
            peak_rss=peak or None,
            reason=active.stop_detail or _reason(outcome, code, active.job),
            pid=active.pid,
        )
        active.on_exit(result)

    def _drain(self, active: ActiveRun) -> None:
        """Read what the run wrote before it ended; stragglers holding the pipe are cut off."""
        for _ in range(64):
            try:
                chunk = os.read(active.output_fd, READ_CHUNK)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            self._keep(active, chunk)


def _os_reason(exc: OSError) -> str:
    detail = exc.strerror or str(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{detail}{where}"


def _peak_rss(usage: Optional[object]) -> Optional[int]:
    maxrss = getattr(usage, "ru_maxrss", None)
    if not maxrss:
        return None
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024


def _killed_at_limit(limit: int) -> str:
    return f"memory-limit: killed by the kernel at its limit of {limit >> 20} MiB"


def _reason(outcome: Outcome, code: int, job: Job) -> str:
    if outcome is Outcome.EXIT_CODE:
        return f"exit code {code}"
    if outcome is Outcome.SIGNAL:
        return f"killed by {signal.Signals(-code).name}"
    if outcome is Outcome.TIMEOUT:
        return f"timed out after {job.timeout:g}s"
    if outcome is Outcome.INTERRUPTED:
        return "interrupted: the daemon was stopping"
    return ""
