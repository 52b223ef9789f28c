"""What an operator may ask of a running daemon, method by method.

Each method of the control table has one function here.  Authorization is
decided from the caller's kernel credentials: root and the daemon's own user may
see and act on every job; anyone else only on jobs that run as them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from . import __version__
from .clock import iso_utc
from .control import Access, Caller, Fault, FaultCode, Method
from .controlserver import Gate, Offload
from .model import Job, RunState, Trigger
from .reloading import Waiter
from .report import DAY, job_record, name_causes, recent_record, run_record
from .schedule import build_rule, dst_mark, next_instants, upcoming_instants
from .store import Run, RunStore
from .store.postgres import PostgresHistory
from .store.readers import Reader, ThreadReaders
from .store.writebehind import add_counts, merge_runs, with_notes

if TYPE_CHECKING:
    from .daemon import Daemon

T = TypeVar("T")


PACE = 50  # items a worker computes between two looks at the loop's gate


def paced(items: Sequence[T], gate: Gate) -> Iterator[T]:
    """`items`, pausing every PACE of them while the loop starts runs."""
    for index, item in enumerate(items):
        if index % PACE == 0:
            gate.wait()
        yield item


def cause_finder(
    reader: Optional[Reader], held: dict[int, Optional[str]]
) -> Callable[[int], Optional[str]]:
    """The job of a run: from memory, else from the history (in a worker thread)."""

    def job_of(run_id: int) -> Optional[str]:
        if run_id in held:
            return held[run_id]
        return reader.job_of(run_id) if reader is not None else None

    return job_of


def may_act_on(caller: Caller, job_user: str | None) -> bool:
    """Root and the daemon's user act on every job; others on the jobs that run as them."""
    return (
        caller.is_root
        or caller.uid == os.geteuid()
        or (job_user is not None and job_user == caller.name)
    )


class Operations:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        assert daemon.history is not None
        cluster = daemon.cluster
        if cluster is not None:
            self.readers = ThreadReaders(lambda: cluster.connect(readonly=True), lambda: 1)
        else:
            self.readers = ThreadReaders.for_file(daemon.history.path)
        self.table: dict[str, Callable[[Caller, dict[str, Any]], Any]] = {
            "version": self.version,
            "health": self.health,
            "nodes": self.nodes,
            "status": self.status,
            "runs": self.runs,
            "events": self.events,
            "history": self.history,
            "logs": self.logs,
            "next": self.next,
            "run": self.run,
            "retry": self.retry,
            "pause": self.pause,
            "resume": self.resume,
            "reload": self.reload,
        }

    def handle(self, caller: Caller, method: Method, params: dict[str, Any]) -> Any:
        if method.access is Access.ADMIN and not (caller.is_root or caller.uid == os.geteuid()):
            raise Fault(FaultCode.NOT_ALLOWED, f"{method.name}: only root may do this")
        if not method.reads and self.daemon.stopping is not None:
            raise Fault(FaultCode.STOPPING, "the daemon is stopping")
        result = self.table[method.name](caller, params)
        self.daemon.poke()
        return result

    # --- helpers ---------------------------------------------------------------------------

    def _jobs(self) -> dict[str, Job]:
        assert self.daemon.config is not None
        return dict(self.daemon.config.jobs)

    def _job(self, caller: Caller, name: str) -> Job:
        job = self._jobs().get(name)
        if job is None:
            raise Fault(FaultCode.NO_SUCH_JOB, f'no job named "{name}"')
        if not may_act_on(caller, job.user):
            raise Fault(
                FaultCode.NOT_ALLOWED,
                f'job "{name}" runs as {job.user or "root"}, not as {caller.name}',
            )
        return job

    def _selected(self, caller: Caller, params: dict[str, Any]) -> list[Job]:
        if params.get("all"):
            return [j for j in self._jobs().values() if may_act_on(caller, j.user)]
        if "job" not in params:
            raise Fault(FaultCode.BAD_ARGUMENTS, "give a job or all")
        return [self._job(caller, params["job"])]

    def _history(self) -> RunStore:
        assert self.daemon.history is not None
        return self.daemon.history

    # --- methods ---------------------------------------------------------------------------

    def version(self, caller: Caller, params: dict[str, Any]) -> Any:
        daemon = self.daemon
        return {
            "version": __version__,
            "pid": os.getpid(),
            "config": daemon.paths.config,
            "history": self._history().path,
            "started": iso_utc(daemon.started_at),
            "jobs": len(self._jobs()),
            "running": len(daemon.runner.active) if daemon.runner else 0,
        }

    def nodes(self, caller: Caller, params: dict[str, Any]) -> Offload:
        cluster = self.daemon.cluster
        if cluster is None or cluster.coordinator is None:
            raise Fault(FaultCode.BAD_REQUEST, "not a cluster: daemon.cluster is not set")
        readers, me = self.readers, cluster.node
        coordinator = cluster.coordinator
        mine = coordinator.digest

        def work() -> Any:
            from .cluster.leases import nodes

            reader = readers.get()
            if not isinstance(reader, PostgresHistory):
                raise Fault(FaultCode.INTERNAL, "the cluster's store cannot be read now")
            return [
                {
                    "node": n.name,
                    "state": n.state,
                    "lease_age": round(n.lease_age, 1),
                    "lease_left": round(n.lease_left, 1),
                    "version": n.version,
                    "running": n.running,
                    "max_workers": n.max_workers,
                    "digest": n.digest,
                    "same_config": n.digest == mine,
                    "this_node": n.name == me,
                    "host": n.host,
                    "started": n.started.isoformat(),
                }
                for n in nodes(reader)
            ]

        return Offload(work)

    def health(self, caller: Caller, params: dict[str, Any]) -> Any:
        history = self._history()
        failure = history.failure
        jump = self.daemon.ledger.last_jump if self.daemon.ledger else None
        return {
            "history": {
                "path": history.path,
                "written": failure is None,
                "failing_since": iso_utc(failure.since) if failure else None,
                "error": failure.error if failure else None,
                "held_in_memory": history.unwritten,
                "dropped": failure.dropped if failure else 0,
            },
            "last_clock_jump": (
                {"at": iso_utc(jump[0]), "what": jump[1].describe()} if jump is not None else None
            ),
        }

    def status(self, caller: Caller, params: dict[str, Any]) -> Offload:
        """What the loop holds is copied whole (a few C-level copies, not a pass over
        every job); the jobs are chosen, sorted and described in the worker."""
        one = [self._job(caller, params["job"])] if params.get("job") else None
        assert self.daemon.config is not None
        configured = self.daemon.config.jobs  # a configuration is never changed, only replaced
        history = self._history()
        now = self.daemon.clock.now()
        since = now.timestamp() - DAY
        states = history.job_states()
        timer = self.daemon.timer.entries()
        held_last, held_misses = history.held_last_runs(), history.held_misses(since)
        recent = params.get("recent") or 0
        held_rows = history.held_by_job() if recent else {}
        running: dict[str, list[int]] = {}
        if self.daemon.runner is not None:
            for run_id, active in sorted(self.daemon.runner.active.items()):
                running.setdefault(active.job.name, []).append(run_id)
        readers, gate = self.readers, self.daemon.gate
        held_causes = self._held_causes(held_last.values())

        def work() -> Any:
            jobs = one or [j for _, j in sorted(configured.items()) if may_act_on(caller, j.user)]
            reader = readers.get()
            last = {**(reader.last_runs() if reader else {}), **held_last}
            missed = add_counts(reader.misses_since(since) if reader else {}, held_misses)
            records = []
            for j in paced(jobs, gate):
                entry = timer.get(j.name)
                record = job_record(
                    j,
                    now,
                    states.get(j.name),
                    last.get(j.name),
                    running.get(j.name, []),
                    entry[1] if entry is not None else None,
                    missed.get(j.name, 0),
                )
                if recent:
                    written = reader.runs(j.name, recent) if reader else []
                    runs = merge_runs(written, held_rows.get(j.name, []), recent, False)
                    record["recent"] = [recent_record(r) for r in runs]
                records.append(record)
            name_causes((r["last"] for r in records), cause_finder(reader, held_causes))
            return records

        return Offload(work)

    def runs(self, caller: Caller, params: dict[str, Any]) -> Offload:
        """The runs of a window of time: every one still open, and the latest that ended."""
        if params.get("job"):
            jobs = [self._job(caller, params["job"])]
        else:
            jobs = [j for _, j in sorted(self._jobs().items()) if may_act_on(caller, j.user)]
        hours, limit = params.get("hours") or 24, params.get("limit") or 1000
        until = self.daemon.clock.now().timestamp()
        since = until - hours * 3600.0
        names = {j.name for j in jobs}
        held = [r for r in self._history().held_between(since, until) if r.job in names]
        zones = {j.name: j.timezone for j in jobs}
        readers, gate = self.readers, self.daemon.gate

        def work() -> Any:
            reader = readers.get()
            written = reader.runs_between(since, until, sorted(names), limit) if reader else []
            found = {r.id: r for r in written}
            found.update({r.id: r for r in held})
            ended = sorted(
                (r for r in found.values() if r.ended is not None),
                key=lambda r: (r.ended, r.id),
                reverse=True,
            )
            still_open = [r for r in found.values() if r.ended is None]
            shown = sorted([*still_open, *ended[:limit]], key=lambda r: r.id, reverse=True)
            return {
                "since": iso_utc(since),
                "until": iso_utc(until),
                "truncated": len(ended) > limit
                or sum(1 for r in written if r.ended is not None) >= limit,
                "timezones": zones,
                "runs": [run_record(r) for r in paced(shown, gate)],
            }

        return Offload(work)

    def events(self, caller: Caller, params: dict[str, Any]) -> Offload:
        seq, events, complete = self.daemon.activity.after(params.get("after") or 0)
        assert self.daemon.config is not None
        configured = self.daemon.config.jobs
        users = {e.job: configured[e.job].user for e in events if e.job and e.job in configured}
        started = iso_utc(self.daemon.started_at)

        def work() -> Any:
            # a job no longer configured is root's and the daemon's user's to see
            shown = [
                e.record() for e in events if e.job is None or may_act_on(caller, users.get(e.job))
            ]
            return {"seq": seq, "complete": complete, "daemon_started": started, "events": shown}

        return Offload(work)

    def history(self, caller: Caller, params: dict[str, Any]) -> Offload:
        job = self._job(caller, params["job"])
        limit, failed = params.get("limit") or 20, bool(params.get("failed"))
        held = self._history().held(job.name)
        held_causes = self._held_causes(held)
        readers, gate = self.readers, self.daemon.gate

        def work() -> Any:
            reader = readers.get()
            written = reader.runs(job.name, limit, failed) if reader else []
            runs = merge_runs(written, held, limit, failed)
            records = [run_record(r) for r in paced(runs, gate)]
            name_causes(records, cause_finder(reader, held_causes))
            return {"job": job.name, "timezone": job.timezone, "runs": records}

        return Offload(work)

    def _held_causes(self, runs: Iterable[Run]) -> dict[int, Optional[str]]:
        """The jobs of the runs that caused these chained runs, for those in memory only."""
        history = self._history()
        causes = {r.caused_by for r in runs if r.caused_by is not None}
        return {c: held.job for c in causes if (held := history.held_run(c)) is not None}

    def logs(self, caller: Caller, params: dict[str, Any]) -> Offload:
        """A run's output, read off the loop; the caller must be allowed to see its job
        (decided there too: in a cluster the run may be another node's)."""
        run_id = params["run_id"]
        history, readers, jobs = self._history(), self.readers, self._jobs()
        held, notes = history.held_run(run_id), history.held_notes(run_id)

        def work() -> Any:
            reader = readers.get()
            run = held or with_notes(reader.run(run_id) if reader else None, notes)
            if run is None:
                raise Fault(FaultCode.NO_SUCH_RUN, f"no run {run_id}")
            job = jobs.get(run.job)
            if not may_act_on(caller, job.user if job else None):
                raise Fault(FaultCode.NOT_ALLOWED, f"run {run_id} belongs to a job you may not see")
            record = run_record(run)
            output = run.output or b""
            record["truncated"] = run.output_bytes > len(output)
            record["timezone"] = job.timezone if job else "UTC"
            record["output"] = output
            return record

        return Offload(work, large="output")

    def next(self, caller: Caller, params: dict[str, Any]) -> Offload:
        job = self._job(caller, params["job"])
        state = self._history().job_state(job.name)
        last = state.last_scheduled if state else None
        now, count = self.daemon.clock.now(), params.get("count") or 5
        gate = self.daemon.gate

        def work() -> Any:
            rule = build_rule(job.schedule, job.timezone, shared=False)  # this thread's own
            instants = upcoming_instants(rule, now, last, 1)
            while instants and len(instants) < count:
                gate.wait()
                more = next_instants(
                    rule, instants[-1], min(PACE, count - len(instants)), instants[-1]
                )
                if not more:
                    break
                instants += more
            return {
                "job": job.name,
                "timezone": job.timezone,
                "schedule": job.schedule.describe(),
                "next": [iso_utc(i.timestamp()) for i in instants],
                "marks": [dst_mark(rule, i) for i in paced(instants, gate)],  # daylight saving
            }

        return Offload(work)

    def run(self, caller: Caller, params: dict[str, Any]) -> Any:
        job = self._job(caller, params["job"])
        now, chain = self.daemon.clock.now(), bool(params.get("chain"))
        run_id = self.daemon.submit(job, None, Trigger.MANUAL, now, starts_followers=chain)
        run = self._history().run(run_id)
        return {
            "run_id": run_id,
            "state": run.state if run else None,
            "reason": run.reason if run else "",
        }

    def retry(self, caller: Caller, params: dict[str, Any]) -> Offload:
        """The failed run is found off the loop (in a cluster it may be another node's);
        the new attempt is submitted on it."""
        job = self._job(caller, params["job"])
        wanted: Optional[int] = params.get("run_id")
        history, readers = self._history(), self.readers

        def find() -> Run:
            reader = readers.get()
            if wanted is not None:
                held = history.held_run(wanted)
                failed = held or (reader.run(wanted) if reader else None)
                if failed is None:
                    raise Fault(FaultCode.NO_SUCH_RUN, f"no run {wanted}")
                if failed.job != job.name:
                    raise Fault(
                        FaultCode.NO_SUCH_RUN, f'run {failed.id} is not a run of "{job.name}"'
                    )
                if not RunState(failed.state).failed:
                    raise Fault(
                        FaultCode.NOTHING_TO_RETRY, f"run {failed.id} is {failed.state}, not failed"
                    )
                return failed
            written = reader.runs(job.name, 1, True) if reader else []
            candidates = merge_runs(written, history.held(job.name), 1, True)
            if not candidates:
                raise Fault(FaultCode.NOTHING_TO_RETRY, f'"{job.name}" has no failed run to retry')
            return candidates[0]

        def submit(failed: Run) -> Any:
            if self.daemon.stopping is not None:
                raise Fault(FaultCode.STOPPING, "the daemon is stopping")
            run_id = self.daemon.submit(
                job,
                failed.scheduled,
                Trigger.RETRY,
                self.daemon.clock.now(),
                attempt=failed.attempt + 1,
                first_run=failed.first_run or failed.id,
                starts_followers=bool(failed.starts_followers),
            )
            self.daemon.poke()
            return {"run_id": run_id, "retries": failed.id, "attempt": failed.attempt + 1}

        return Offload(find, then=submit)

    def pause(self, caller: Caller, params: dict[str, Any]) -> Any:
        jobs = self._selected(caller, params)
        for job in jobs:
            self.daemon.set_paused(job, True)
        return {"paused": [j.name for j in jobs]}

    def resume(self, caller: Caller, params: dict[str, Any]) -> Any:
        jobs = self._selected(caller, params)
        for job in jobs:
            self.daemon.set_paused(job, False)
        return {"resumed": [j.name for j in jobs]}

    def reload(self, caller: Caller, params: dict[str, Any]) -> Offload:
        """Read in a thread and swapped in by the loop; answered once applied or rejected."""
        waiter = self.daemon.reloads.request()

        def answer(done: Waiter) -> Any:
            if done.stopped:
                raise Fault(FaultCode.STOPPING, "the daemon is stopping")
            if done.error is not None:
                problems = [str(p) for p in done.error.problems]
                raise Fault(
                    FaultCode.CONFIG_REJECTED,
                    "configuration rejected; the running one is kept",
                    problems,
                )
            return {"jobs": done.jobs}

        return Offload(waiter.wait, then=answer)
