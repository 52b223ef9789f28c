"""The timer's ordering and the dispatcher's caps, as pure decisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from helpers import make_job

from cronplus.dispatch import Decision, Dispatcher
from cronplus.model import Overlap
from cronplus.timer import Timer

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_timer_pops_due_jobs_earliest_first_and_forgets_replaced_entries() -> None:
    timer = Timer()
    timer.set("late", T0 + timedelta(seconds=30))
    timer.set("early", T0 + timedelta(seconds=10))
    timer.set("moved", T0 + timedelta(seconds=5))
    timer.set("moved", T0 + timedelta(seconds=20))  # rescheduled: the 5 s entry is stale
    timer.set("gone", T0 + timedelta(seconds=1))
    timer.remove("gone")
    assert timer.deadline() == T0 + timedelta(seconds=10)
    assert timer.pop_due(T0 + timedelta(seconds=25)) == [
        ("early", T0 + timedelta(seconds=10)),
        ("moved", T0 + timedelta(seconds=20)),
    ]
    assert timer.deadline() == T0 + timedelta(seconds=30)
    assert len(timer) == 1


def test_timer_fires_a_jittered_job_late_but_reports_its_nominal_instant() -> None:
    timer = Timer()
    timer.set("j", T0, delay_seconds=90)
    assert timer.pop_due(T0 + timedelta(seconds=89)) == []
    assert timer.deadline() == T0 + timedelta(seconds=90)
    assert timer.pop_due(T0 + timedelta(seconds=90)) == [("j", T0)]


def test_setting_the_same_instant_twice_fires_once() -> None:
    timer = Timer()
    timer.set("j", T0)
    timer.set("j", T0)
    assert timer.pop_due(T0) == [("j", T0)]
    assert timer.pop_due(T0) == []


def test_global_cap_queues_in_priority_then_due_order() -> None:
    dispatcher = Dispatcher(max_workers=2, pools={})
    jobs = {n: make_job(n, priority=p) for n, p in [("a", 0), ("b", 0), ("c", 5), ("d", 0)]}
    for run_id, (name, due) in enumerate([("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 0.5)], start=1):
        assert dispatcher.submit(run_id, jobs[name], due).decision is Decision.WAIT
    started = dispatcher.startable()
    assert [w.job.name for w in started] == ["c", "d"]  # priority first, then the earliest due
    assert dispatcher.startable() == []
    dispatcher.finished(started[0].run_id)
    assert [w.job.name for w in dispatcher.startable()] == ["a"]


def test_named_pool_caps_its_jobs_only() -> None:
    dispatcher = Dispatcher(max_workers=10, pools={"db": 1})
    db1, db2, free = make_job("db1", pool="db"), make_job("db2", pool="db"), make_job("free")
    for run_id, job in enumerate([db1, db2, free], start=1):
        dispatcher.submit(run_id, job, float(run_id))
    assert sorted(w.job.name for w in dispatcher.startable()) == ["db1", "free"]
    dispatcher.finished(1)
    assert [w.job.name for w in dispatcher.startable()] == ["db2"]


def test_overlap_skip_queue_replace() -> None:
    dispatcher = Dispatcher(max_workers=10, pools={})
    skip = make_job("s", overlap=Overlap.SKIP)
    queue = make_job("q", overlap=Overlap.QUEUE)
    replace = make_job("r", overlap=Overlap.REPLACE)
    for run_id, job in enumerate([skip, queue, replace], start=1):
        dispatcher.submit(run_id, job, 0.0)
    assert len(dispatcher.startable()) == 3

    verdict = dispatcher.submit(4, skip, 1.0)
    assert verdict.decision is Decision.SKIP
    assert verdict.reason == "overlap: 1 run(s) already running"

    assert dispatcher.submit(5, queue, 1.0).decision is Decision.WAIT
    assert dispatcher.startable() == []
    dispatcher.finished(2)
    assert [w.run_id for w in dispatcher.startable()] == [5]

    verdict = dispatcher.submit(6, replace, 1.0)
    assert (verdict.decision, verdict.to_stop) == (Decision.REPLACE, (3,))
    assert dispatcher.startable() == []  # the old run must end first
    dispatcher.finished(3)
    assert [w.run_id for w in dispatcher.startable()] == [6]


def test_max_concurrent_above_one() -> None:
    dispatcher = Dispatcher(max_workers=10, pools={})
    job = make_job("p", max_concurrent=2)
    decisions = [dispatcher.submit(i, job, float(i)).decision for i in range(1, 4)]
    assert decisions == [Decision.WAIT, Decision.WAIT, Decision.SKIP]
    assert len(dispatcher.startable()) == 2
