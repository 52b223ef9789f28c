"""`cronplusctl`: one function per subcommand.

Until the control socket exists, `status` and `history` read the history file
read-only; `check` and `next` need no daemon at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from . import __version__, config
from .clock import SystemClock
from .errors import ConfigError, CronplusError, HistoryError, ScheduleError
from .history import History, JobState, Run
from .model import Config, Job
from .paths import resolve
from .schedule import CronRule, Rule, build_rule, next_instants, upcoming, zone

UTC = timezone.utc
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_time(epoch: Optional[float], zone_name: str) -> str:
    """An instant in the job's zone with its offset, as the tables show it."""
    if epoch is None:
        return "-"
    moment = datetime.fromtimestamp(int(epoch), zone(zone_name))
    offset = moment.isoformat()[19:]  # +05:45, -04:00 or +00:00
    name = moment.tzname() or ""
    abbreviation = "" if name[:1] in "+-" else f" {name}"  # "+0545" would repeat the offset
    return f"{moment:%Y-%m-%d %H:%M:%S}{offset}{abbreviation}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def parse_instant(text: str, zone_name: str) -> datetime:
    """ISO 8601; a trailing Z means UTC and a time without offset is in `zone_name`."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise CronplusError(
            f'--after "{text}": expected ISO 8601 such as 2026-03-07T12:00:00Z'
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(zone_name))
    return moment.astimezone(UTC)


class Ctl:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.paths = resolve(args.user, args.config, args.state_dir)
        self.clock = SystemClock()

    def out(self, text: str) -> None:
        print(text)

    def load_config(self, file: Optional[str] = None) -> Config:
        return config.load(file or self.paths.config)

    def open_history(self, settings_history: str) -> History:
        return History(self.paths.history(settings_history), readonly=True)

    # --- subcommands -----------------------------------------------------------------------

    def check(self) -> int:
        file = self.args.file or self.paths.config
        try:
            loaded = self.load_config(file)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            count = len(exc.problems)
            print(
                f"{file}: {count} problem{'s' if count != 1 else ''}, configuration rejected",
                file=sys.stderr,
            )
            return EXIT_ERROR
        drop_ins = len(loaded.files) - 1
        self.out(
            f"{file}: ok, {len(loaded.jobs)} jobs" + (f" ({drop_ins} drop-ins)" if drop_ins else "")
        )
        return EXIT_OK

    def next(self) -> int:
        args = self.args
        if args.expr and args.job:
            raise CronplusError("give a JOB or --expr, not both")
        if args.expr:
            zone_name = args.tz or config.machine_zone()
            rule: Rule = CronRule(args.expr, zone_name)
        elif args.job:
            loaded = self.load_config()
            job = self._job(loaded, args.job)
            zone_name = job.timezone
            rule = build_rule(job.schedule, zone_name)
        else:
            raise CronplusError("give a JOB or --expr EXPRESSION")
        after = parse_instant(args.after, zone_name) if args.after else self.clock.now()
        instants = next_instants(rule, after, args.n)
        if args.json:
            self.out(json.dumps([iso_utc(i) for i in instants]))
            return EXIT_OK
        rows = [[local_time(i.timestamp(), zone_name), iso_utc(i)] for i in instants]
        self.out(table([f"LOCAL ({zone_name})", "UTC"], rows))
        return EXIT_OK

    def status(self) -> int:
        loaded = self.load_config()
        now = self.clock.now()
        states: dict[str, JobState] = {}
        last: dict[str, Run] = {}
        running: dict[str, list[int]] = {}
        try:
            history = self.open_history(loaded.settings.history)
        except HistoryError as exc:
            print(f"cronplusctl: {exc}", file=sys.stderr)
        else:
            try:
                states, last = history.job_states(), history.last_runs()
                for run in history.open_runs():
                    if run.state == "running":
                        running.setdefault(run.job, []).append(run.id)
            finally:
                history.close()
        names = [self.args.job] if self.args.job else sorted(loaded.jobs)
        records = [
            _job_status(self._job(loaded, n), now, states.get(n), last.get(n), running.get(n, []))
            for n in names
        ]
        if self.args.json:
            self.out(json.dumps([r.as_json() for r in records]))
            return EXIT_OK
        rows = [
            [
                r.job.name,
                r.job.schedule.describe(),
                r.job.timezone,
                "paused" if r.paused else local_time(r.next, r.job.timezone),
                f"{r.last.state} {local_time(r.last.ended, r.job.timezone)}" if r.last else "-",
                ",".join(str(i) for i in r.running) or "-",
            ]
            for r in records
        ]
        self.out(table(["JOB", "SCHEDULE", "ZONE", "NEXT", "LAST", "RUNNING"], rows))
        return EXIT_OK

    def history(self) -> int:
        loaded = self.load_config()
        job = self._job(loaded, self.args.job)
        store = self.open_history(loaded.settings.history)
        try:
            runs = store.runs(job.name, self.args.n, self.args.failed)
        finally:
            store.close()
        if self.args.json:
            self.out(json.dumps([_run_json(r) for r in runs]))
            return EXIT_OK
        rows = [
            [
                str(r.id),
                local_time(r.scheduled, job.timezone),
                r.trigger,
                str(r.attempt),
                r.state,
                f"{r.duration:.3f}s" if r.duration is not None else "-",
                _exit_text(r),
                r.reason or "-",
            ]
            for r in runs
        ]
        self.out(
            table(
                ["RUN", "SCHEDULED", "TRIGGER", "TRY", "STATE", "DURATION", "EXIT", "REASON"], rows
            )
        )
        return EXIT_OK

    def _job(self, loaded: Config, name: str) -> Job:
        try:
            return loaded.jobs[name]
        except KeyError:
            raise CronplusError(f'no job named "{name}" in {self.paths.config}') from None


@dataclass(frozen=True)
class JobStatus:
    job: Job
    next: Optional[float]
    paused: bool
    last: Optional[Run]
    running: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job.name,
            "schedule": self.job.schedule.describe(),
            "timezone": self.job.timezone,
            "next": iso_utc(datetime.fromtimestamp(self.next, UTC)) if self.next else None,
            "paused": self.paused,
            "last_state": self.last.state if self.last else None,
            "last_run": self.last.id if self.last else None,
            "running": self.running,
        }


def _job_status(
    job: Job, now: datetime, state: Optional[JobState], last: Optional[Run], running: list[int]
) -> JobStatus:
    paused = bool(state and state.paused)
    upcoming_run = None
    if not paused:
        rule = build_rule(job.schedule, job.timezone)
        found = upcoming(rule, now, state.last_scheduled if state else None)
        upcoming_run = found.timestamp() if found else None
    return JobStatus(job, upcoming_run, paused, last, running)


def _exit_text(run: Run) -> str:
    if run.signal is not None:
        return f"signal {run.signal}"
    return "-" if run.exit_code is None else str(run.exit_code)


def _run_json(run: Run) -> dict[str, Any]:
    record = {k: v for k, v in run.__dict__.items() if k != "output"}
    for key in ("scheduled", "created", "started", "ended"):
        value = record[key]
        record[key] = iso_utc(datetime.fromtimestamp(value, UTC)) if value is not None else None
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cronplusctl", description="Inspect and steer cronplus.")
    parser.add_argument(
        "-c",
        "--config",
        help="config file (default: /etc/cronplus.yaml, "
        "or ~/.config/cronplus/cronplus.yaml with --user)",
    )
    parser.add_argument("--user", action="store_true", help="talk to the per-user instance")
    parser.add_argument("--state-dir", help="where the history lives")
    parser.add_argument("--version", action="version", version=f"cronplusctl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser("check", help="validate a config file and its drop-ins")
    check.add_argument("file", nargs="?", help="the file to check (default: the config)")

    nxt = commands.add_parser("next", help="the next fire instants of a job or an expression")
    nxt.add_argument("job", nargs="?", help="a configured job")
    nxt.add_argument("--expr", help='a cron expression such as "30 2 * * *"')
    nxt.add_argument("--tz", help="zone for --expr (default: the machine's)")
    nxt.add_argument("--after", help="start strictly after this ISO 8601 instant (default: now)")
    nxt.add_argument("-n", type=int, default=5, help="how many (default 5)")
    nxt.add_argument("--json", action="store_true", help="a JSON list of UTC instants")

    status = commands.add_parser("status", help="every job: schedule, next run, last outcome")
    status.add_argument("job", nargs="?")
    status.add_argument("--json", action="store_true")

    history = commands.add_parser("history", help="the runs of a job, newest first")
    history.add_argument("job")
    history.add_argument("-n", type=int, default=20, help="how many runs (default 20)")
    history.add_argument("--failed", action="store_true", help="only runs that did not succeed")
    history.add_argument("--json", action="store_true")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) < 1:
        print("cronplusctl: -n must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    ctl = Ctl(args)
    try:
        return int(getattr(ctl, args.command)())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_ERROR
    except (CronplusError, ScheduleError) as exc:
        print(f"cronplusctl: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
