"""Where the dashboard's data comes from: the daemon, asked over its control socket as
the user who started the dashboard, or the history file read-only when it is down.

Every call blocks; the app runs them in worker threads.  What the daemon refuses
(another user's job, a run that does not exist) comes back as the daemon's fault,
and the app decides what page that is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..clock import SystemClock
from ..control import Client, DaemonDown, Fault, FaultCode
from ..errors import ConfigError, CronplusError, HistoryError
from ..paths import Paths

Record = dict[str, Any]


class Unreadable(Exception):
    """The daemon is down and the history cannot be read by this user: the message says why."""


@dataclass
class Answer:
    value: Any
    live: bool  # from the running daemon; False: from the history file, read-only


class Source:
    def __init__(self, paths: Paths, timeout: float = 30.0) -> None:
        self.paths = paths
        self.client = Client(paths.socket, timeout)
        self.clock = SystemClock()

    def ask(self, method: str, **params: Any) -> Any:
        """The daemon's answer; raises DaemonDown or Fault (a refused socket is NOT_ALLOWED)."""
        try:
            return self.client.call(method, **{k: v for k, v in params.items() if v is not None})
        except PermissionError:
            raise Fault(
                FaultCode.NOT_ALLOWED, f"permission denied on {self.paths.socket}"
            ) from None
        except OSError as exc:
            raise Fault(FaultCode.INTERNAL, f"{self.paths.socket}: {exc}") from None

    # --- read pages: the daemon, else the file ---------------------------------------------

    def status(self, recent: int) -> Answer:
        try:
            return Answer(self.ask("status", recent=recent or None), True)
        except DaemonDown:
            config, history = self._offline()
            from ..report import status_from_history

            try:
                records = status_from_history(
                    config, history, self.clock.now(), sorted(config.jobs), recent
                )
            finally:
                history.close()
            return Answer(records, False)

    def job(self, name: str, limit: int, failed: bool) -> tuple[Answer, Answer]:
        """(the job's status record, its history answer)."""
        try:
            record = self.ask("status", job=name, recent=1)[0]
            runs = self.ask("history", job=name, limit=limit, failed=failed or None)
            return Answer(record, True), Answer(runs, True)
        except DaemonDown:
            config, history = self._offline()
            if name not in config.jobs:
                history.close()
                raise Fault(FaultCode.NO_SUCH_JOB, f'no job named "{name}"') from None
            from ..report import run_record, status_from_history

            try:
                record = status_from_history(config, history, self.clock.now(), [name], 1)[0]
                rows = history.runs(name, limit, failed)
            finally:
                history.close()
            job = config.jobs[name]
            runs = {"job": name, "timezone": job.timezone, "runs": [run_record(r) for r in rows]}
            return Answer(record, False), Answer(runs, False)

    def logs(self, run_id: int) -> Answer:
        try:
            return Answer(self.ask("logs", run_id=run_id), True)
        except DaemonDown:
            _, history = self._offline()
            from ..report import run_record

            try:
                run = history.run(run_id)
            finally:
                history.close()
            if run is None:
                raise Fault(FaultCode.NO_SUCH_RUN, f"no run {run_id}") from None
            return Answer(run_record(run, with_output=True), False)

    def runs(self, hours: int, limit: int) -> Answer:
        try:
            return Answer(self.ask("runs", hours=hours, limit=limit), True)
        except DaemonDown:
            from ..ctlwatch import offline_runs

            return Answer(offline_runs(_OfflineCtl(self), hours, None, limit), False)

    # --- the daemon only -------------------------------------------------------------------

    def events(self, after: int) -> Optional[Record]:
        """New events after `after`; None while the daemon is down."""
        try:
            answer: Record = self.ask("events", after=after)
        except DaemonDown:
            return None
        return answer

    def act(self, method: str, job: str) -> Record:
        """run, retry, pause or resume; raises DaemonDown or Fault."""
        params: dict[str, Any] = {"job": job}
        answer: Record = self.ask(method, **params)
        return answer

    # --- the history file ------------------------------------------------------------------

    def load_config(self, file: Optional[str] = None) -> Any:
        from .. import config

        try:
            return config.load(file or self.paths.config)
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems[:3])
            raise Unreadable(
                f"the daemon is not running, and its configuration: {problems}"
            ) from None

    def offline_history(self, loaded: Any) -> Any:
        from ..store import open_reader

        return open_reader(loaded, self.paths.history(loaded.settings.history))

    def _offline(self) -> tuple[Any, Any]:
        config = self.load_config()
        try:
            history = self.offline_history(config)
        except HistoryError as exc:
            raise Unreadable(f"the daemon is not running, and {exc}") from None
        return config, history


class _OfflineCtl:
    """What `ctlwatch.offline_runs` needs of a cronplusctl, from a Source."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.clock = source.clock

    def load_config(self) -> Any:
        return self.source.load_config()

    def offline_history(self, loaded: Any) -> Any:
        try:
            return self.source.offline_history(loaded)
        except HistoryError as exc:
            raise Unreadable(f"the daemon is not running, and {exc}") from None


__all__ = ["Answer", "CronplusError", "DaemonDown", "Fault", "Source", "Unreadable"]
