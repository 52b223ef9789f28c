"""Jobs that follow other jobs, driven through the daemon's steps with a clock the test sets.

The runner is the fake of test_daemon_steps (the one seam where processes start);
config, schedule, caps, retries, the chain watcher and the SQLite history are real.
The same chains with real processes and a real daemon are in test_chains_end_to_end.py.
"""

from __future__ import annotations

from pathlib import Path

from test_daemon_steps import FakeRunner, make_daemon

from cronplus.clock import FakeClock
from cronplus.control import Caller
from cronplus.daemon import Daemon
from cronplus.model import Outcome
from cronplus.operations import Operations
from cronplus.store import Run

EVERY_TEN = '"* * * * * */10"'


def runs(daemon: Daemon, job: str) -> list[Run]:
    assert daemon.history is not None
    return list(reversed(daemon.history.runs(job, limit=1000)))


def tick(daemon: Daemon, clock: FakeClock, seconds: float = 0.0) -> None:
    clock.advance(seconds)
    daemon.step(clock.now())


def running_of(runner: FakeRunner, job: str) -> list[int]:
    return [run_id for run_id, j in runner.active.items() if j.name == job]


def test_a_success_starts_the_jobs_after_it_with_a_link_to_their_cause(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "true"}}
          report: {{after: backup, command: "true"}}
          cleanup: {{after: {{job: backup, on: failure}}, command: "true"}}
          audit: {{after: [{{job: backup, on: any}}], command: "true"}}
        """,
    )
    tick(daemon, clock, 10)
    (backup,) = running_of(runner, "backup")
    assert running_of(runner, "report") == []
    runner.finish(backup)
    tick(daemon, clock)
    report, audit = runs(daemon, "report"), runs(daemon, "audit")
    assert [(r.trigger, r.caused_by, r.state) for r in report] == [("chain", backup, "running")]
    assert [(r.trigger, r.caused_by) for r in audit] == [("chain", backup)]
    assert runs(daemon, "cleanup") == []
    assert report[0].scheduled is None  # not an instant of a schedule: nothing to account for
    assert daemon.timer.next_of("report") is None


def test_a_failure_starts_the_failure_followers_only(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "false"}}
          report: {{after: backup, command: "true"}}
          cleanup: {{after: {{job: backup, on: failure}}, command: "true"}}
        """,
    )
    tick(daemon, clock, 10)
    (backup,) = running_of(runner, "backup")
    runner.finish(backup, Outcome.EXIT_CODE, 1)
    tick(daemon, clock)
    assert [(r.trigger, r.caused_by) for r in runs(daemon, "cleanup")] == [("chain", backup)]
    assert runs(daemon, "report") == []


def test_a_retried_run_starts_its_followers_once_on_its_final_outcome(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        """
        jobs:
          backup: {schedule: "0 0 1 1 *", command: "x", retries: 2, retry_backoff: 5s}
          report: {after: backup, command: "true"}
          cleanup: {after: {job: backup, on: failure}, command: "true"}
        """,
    )
    operations = Operations(daemon)
    caller = root_caller()
    operations.run(caller, {"job": "backup", "chain": True})
    for _ in range(2):  # attempts 1 and 2 fail and are retried
        tick(daemon, clock)
        (attempt,) = running_of(runner, "backup")
        runner.finish(attempt, Outcome.EXIT_CODE, 1)
        tick(daemon, clock)
        assert runs(daemon, "report") == [] and runs(daemon, "cleanup") == []
        tick(daemon, clock, 5 * 2)  # the backoff doubles: 5s, then 10s; both have passed
    (last,) = running_of(runner, "backup")
    runner.finish(last)
    tick(daemon, clock)
    assert [r.attempt for r in runs(daemon, "backup")] == [1, 2, 3]
    assert [(r.trigger, r.caused_by) for r in runs(daemon, "report")] == [("chain", last)]
    assert runs(daemon, "cleanup") == []
    for _ in range(5):
        tick(daemon, clock, 10)
    assert len(runs(daemon, "report")) == 1


def test_a_run_that_fails_for_good_starts_the_failure_followers_once(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        """
        jobs:
          backup: {schedule: "0 0 1 1 *", command: "x", retries: 1, retry_backoff: 1s}
          cleanup: {after: {job: backup, on: failure}, command: "true"}
        """,
    )
    Operations(daemon).run(root_caller(), {"job": "backup", "chain": True})
    tick(daemon, clock)
    for _ in range(2):
        (attempt,) = running_of(runner, "backup")
        runner.finish(attempt, Outcome.TIMEOUT)
        tick(daemon, clock)  # the end is reaped: a retry waits for its backoff, or not
        tick(daemon, clock, 2)
    tick(daemon, clock, 10)
    assert [r.state for r in runs(daemon, "backup")] == ["timed-out", "timed-out"]
    assert [(r.trigger, r.caused_by) for r in runs(daemon, "cleanup")] == [("chain", attempt)]


def test_a_manual_run_starts_followers_only_with_chain(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        """
        jobs:
          backup: {schedule: "0 0 1 1 *", command: "true"}
          report: {after: backup, command: "true"}
          mail: {after: report, command: "true"}
        """,
    )
    operations = Operations(daemon)
    alone = operations.run(root_caller(), {"job": "backup"})["run_id"]
    tick(daemon, clock)
    runner.finish(alone)
    tick(daemon, clock)
    assert runs(daemon, "report") == []
    chained = operations.run(root_caller(), {"job": "backup", "chain": True})["run_id"]
    tick(daemon, clock)
    runner.finish(chained)
    tick(daemon, clock)
    (report,) = runs(daemon, "report")
    assert report.caused_by == chained
    runner.finish(report.id)
    tick(daemon, clock)  # a chain goes on: mail follows report
    assert [(r.trigger, r.caused_by) for r in runs(daemon, "mail")] == [("chain", report.id)]


def test_a_chained_run_respects_its_overlap_policy_and_pool(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        """
        daemon: {pools: {db: 1}}
        jobs:
          load: {schedule: "* * * * * *", command: "true", max_concurrent: 5}
          report: {after: load, command: "true", overlap: skip}
          vacuum: {after: load, command: "true", pool: db, overlap: queue, max_concurrent: 5}
          hog: {schedule: "0 0 1 1 *", command: "true", pool: db}
        """,
    )
    hog = Operations(daemon).run(root_caller(), {"job": "hog"})["run_id"]
    tick(daemon, clock, 1)
    tick(daemon, clock, 1)
    first, second = running_of(runner, "load")
    runner.finish(first)
    runner.finish(second)
    tick(daemon, clock)
    report = runs(daemon, "report")
    assert [(r.state, r.caused_by) for r in report] == [("running", first), ("skipped", second)]
    assert report[1].reason == "skipped: overlap: 1 run(s) already waiting to run"
    vacuum = runs(daemon, "vacuum")
    assert [r.state for r in vacuum] == ["pending", "pending"]  # the pool is held by hog
    runner.finish(hog)
    tick(daemon, clock)
    assert [r.state for r in runs(daemon, "vacuum")] == ["running", "pending"]


def test_within_leaves_out_a_run_for_an_old_instant(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "x", retries: 1, retry_backoff: 2h}}
          report: {{after: {{job: backup, within: 1h}}, command: "true"}}
          mail: {{after: backup, command: "true"}}
        """,
    )
    tick(daemon, clock, 10)
    (first,) = running_of(runner, "backup")
    runner.finish(first, Outcome.EXIT_CODE, 1)
    tick(daemon, clock)
    clock.advance(2 * 3600)  # the retry of the 12:00:10 instant runs two hours later
    daemon.fire_retries(clock.now())
    daemon.start_allowed(clock.now())
    (retry,) = [r for r in running_of(runner, "backup") if r != first][-1:]
    runner.finish(retry)
    daemon.reap(clock.now())
    assert runs(daemon, "report") == []
    assert [r.caused_by for r in runs(daemon, "mail")] == [retry]


def test_a_paused_follower_records_its_chained_run_skipped(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "true"}}
          report: {{after: backup, command: "true"}}
        """,
    )
    assert daemon.config is not None
    daemon.set_paused(daemon.config.jobs["report"], True)
    tick(daemon, clock, 10)
    (backup,) = running_of(runner, "backup")
    runner.finish(backup)
    tick(daemon, clock)
    (report,) = runs(daemon, "report")
    assert (report.state, report.reason, report.caused_by) == ("skipped", "skipped: paused", backup)
    assert running_of(runner, "report") == []


def test_a_run_ending_while_the_daemon_stops_starts_nothing(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        daemon: {{shutdown_grace: 1h}}
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "true"}}
          report: {{after: backup, command: "true"}}
        """,
    )
    tick(daemon, clock, 10)
    (backup,) = running_of(runner, "backup")
    daemon.begin_stop(clock.now())
    runner.finish(backup)
    tick(daemon, clock)
    (report,) = runs(daemon, "report")
    assert (report.state, report.reason) == ("skipped", "skipped: the daemon was stopping")
    assert daemon.history is not None and daemon.history.open_runs() == []


def test_start_and_end_bound_a_follower(tmp_path: Path) -> None:
    # T0 is 2026-06-01 12:00 UTC
    daemon, clock, runner = make_daemon(
        tmp_path,
        f"""
        jobs:
          backup: {{schedule: {EVERY_TEN}, command: "true"}}
          early: {{after: backup, command: "true", end: "2026-06-01T12:00:15"}}
          late: {{after: backup, command: "true", start: "2026-06-01T12:00:15"}}
        """,
    )
    for _ in range(2):
        tick(daemon, clock, 10)
        (backup,) = running_of(runner, "backup")
        runner.finish(backup)
        tick(daemon, clock)
        for name in ("early", "late"):
            for run_id in running_of(runner, name):
                runner.finish(run_id)
    assert len(runs(daemon, "early")) == 1 and len(runs(daemon, "late")) == 1
    assert runs(daemon, "early")[0].created < runs(daemon, "late")[0].created


def test_a_reload_that_makes_a_cycle_is_rejected_whole(tmp_path: Path) -> None:
    daemon, clock, _ = make_daemon(
        tmp_path,
        """
        jobs:
          a: {schedule: "@daily", command: "true"}
          b: {after: a, command: "true"}
        """,
    )
    config = tmp_path / "cronplus.yaml"
    config.write_text(
        "jobs:\n"
        "  a: {schedule: '@daily', command: 'true', after: c}\n"
        "  b: {after: a, command: 'true'}\n"
        "  c: {after: b, command: 'true'}\n"
    )
    rejected = daemon.reload(clock.now())
    assert rejected is not None
    assert [str(p) for p in rejected.problems] == [
        f"{config}:2:51: jobs.a.after: a chain that comes back to where it started:"
        " a -> c -> b -> a (each follows the next), expected no cycle"
    ]
    assert daemon.config is not None and sorted(daemon.config.jobs) == ["a", "b"]


def root_caller() -> Caller:
    return Caller(uid=0, gid=0, pid=1, name="root")
