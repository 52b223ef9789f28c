"""Watchers hear what happens in the loop, where it happens; a failing one stops nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Optional

from test_daemon_steps import EVERY_TEN_SECONDS, make_daemon

from cronplus.events import Watcher
from cronplus.model import Config, Job
from cronplus.store import Run


class Recorder(Watcher):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def config_applied(self, config: Config, now: datetime) -> None:
        self.seen.append(("config", ",".join(sorted(config.jobs))))

    def reload_rejected(self, problems: Sequence[str], now: datetime) -> None:
        self.seen.append(("rejected", str(len(problems))))

    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        self.seen.append(("started", f"{job.name}:{run.id}"))

    def run_ended(self, job: Optional[Job], run: Run, now: datetime) -> None:
        self.seen.append(("ended", f"{run.job}:{run.id}:{run.state}"))

    def instants_missed(self, job: Job, runs: Sequence[Run], now: datetime) -> None:
        self.seen.append(("missed", f"{job.name}:{sum(r.instants for r in runs)}"))

    def history_health(self, written: bool, error: str, now: datetime) -> None:
        self.seen.append(("history", "written" if written else "unwritten"))


class Broken(Watcher):
    def run_started(self, job: Job, run: Run, now: datetime) -> None:
        raise RuntimeError("a watcher with a bug")


def test_watchers_hear_each_event_once_and_a_broken_one_stops_nothing(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(tmp_path, EVERY_TEN_SECONDS)
    recorder = Recorder()
    daemon.watchers.add(Broken())
    daemon.watchers.add(recorder)
    clock.advance(10)
    daemon.step(clock.now())
    clock.advance(10)
    daemon.step(clock.now())  # run 1 still running: run 2 skipped by overlap
    runner.finish(1)
    clock.advance(25)  # the loop stalled over the instant at 30 s
    daemon.step(clock.now())
    (tmp_path / "cronplus.yaml").write_text("jobs: [")
    daemon.reload(clock.now())
    assert recorder.seen == [
        ("started", "tick:1"),
        ("ended", "tick:2:skipped"),
        ("ended", "tick:1:succeeded"),
        ("ended", "tick:3:missed"),
        ("missed", "tick:1"),
        ("started", "tick:4"),
        ("rejected", "1"),
    ]
    assert [r.state for r in reversed(daemon.history.runs("tick"))] == [  # type: ignore[union-attr]
        "succeeded",
        "skipped",
        "missed",
        "running",
    ]
