"""Telling notifiers what happened, without ever failing a job or the daemon.

Events queue up during a turn of the loop and are sent at its end, each as a
child process started outside the job caps.  A notifier that fails is logged
and noted on the run it was about.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..model import Config, Job, Outcome, ScheduleKind, ScheduleSpec
from . import Event, notifier_command

if TYPE_CHECKING:
    from ..runner import Runner, RunResult
    from ..store import RunStore

NO_SCHEDULE = ScheduleSpec(ScheduleKind.AT, at_local="1970-01-01T00:00")  # notifier runs


class Notifications:
    def __init__(self, log: Any, wake: Callable[[], None]) -> None:
        self.log = log
        self.wake = wake  # a note on a run is written by the loop's next turn
        self.queue: collections.deque[tuple[str, Event]] = collections.deque()
        self._ids = itertools.count(-1, -1)  # apart from run ids; never in the history
        self._sent: dict[int, tuple[str, int]] = {}  # notifier run -> (name, run told of)
        self.store: Optional[RunStore] = None
        self.failed: Callable[[str], None] = lambda _name: None  # told to the watchers

    def notify(self, names: Sequence[str], event: Event) -> None:
        for name in names:
            self.queue.append((name, event))

    def notify_failure_notifiers(self, config: Config, event: Event) -> None:
        """An event about the daemon itself, for every notifier some job hears failures on."""
        names = sorted({name for job in config.jobs.values() for name in job.on_failure})
        self.notify(names, event)

    def send(self, runner: Optional[Runner], config: Optional[Config]) -> None:
        """Start queued notifier commands; they never count against the caps."""
        if runner is None or config is None:
            return
        while self.queue:
            name, event = self.queue.popleft()
            notifier = config.notifiers.get(name)
            if notifier is None:
                continue
            delivery = notifier_command(notifier, event)
            job = Job(
                name=f"notifier:{name}",
                schedule=NO_SCHEDULE,
                timezone="UTC",
                command=tuple(delivery.argv),
                stdin=delivery.stdin,
                env=delivery.env,
                timeout=delivery.timeout,
                kill_grace=5.0,
                output_limit=4096,
            )
            self.log.info(
                "notifying", notifier=name, kind=event.kind, job=event.job, run_id=event.run_id
            )
            notifier_run = next(self._ids)
            self._sent[notifier_run] = (name, event.run_id)
            runner.start(notifier_run, job, self._done)

    def _done(self, result: RunResult) -> None:
        """A notifier that failed is logged and noted on the run; it fails nothing else."""
        name, run_id = self._sent.pop(result.run_id, ("?", 0))
        if result.outcome is Outcome.SUCCEEDED:
            return
        said = result.output[-300:].decode(errors="replace").strip().replace("\n", " | ")
        note = f"notifier {name} failed: {result.reason}" + (f": {said}" if said else "")
        self.log.warning("notifier failed", notifier=name, run_id=run_id, reason=note)
        self.failed(name)
        if self.store is not None and run_id:
            self.store.add_note(run_id, note)
            self.wake()
