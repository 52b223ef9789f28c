"""`cronplusctl`: one function per subcommand, over the control socket.

Read commands fall back to the history file, read-only, when the daemon is not
running, and say so.  `check`, `next --expr` and `next --schedule` need no daemon at
all.  What is printed for people is built in `views`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import __version__
from .clock import SystemClock, iso_utc, zone
from .control import (
    MAX_NEXT,
    MAX_RUNS,
    MAX_WINDOW_HOURS,
    MAX_WINDOW_RUNS,
    METHOD_BY_NAME,
    Client,
    DaemonDown,
    Fault,
    FaultCode,
    describe_methods,
)
from .errors import ConfigError, CronplusError, HistoryError, ScheduleError
from .paths import Paths, add_instance_arguments, resolve
from .views import health_lines, history_table, next_table, status_table, table

if TYPE_CHECKING:
    from .model import Config, Job
    from .store import HistoryReader

# Commands answered by the daemon import no YAML, croniter or SQLite: the modules that
# need them are imported where they are used, so `status` starts in a fraction of the time.
Record = dict[str, Any]

UTC = timezone.utc
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOT_RUNNING_STATUS = 3  # LSB: status of a program that is not running
EXIT_NOT_ALLOWED = 4
EXIT_NO_SUCH = 6
EXIT_NOT_RUNNING = 7  # LSB: an action needs the program running
FAILED_WORDS = ("failed", "timed-out", "memory-limit", "lost", "interrupted", "missed")
COLOURS = {"succeeded": "32", "running": "36", "skipped": "33", "pending": "33", "paused": "33"}
FAULT_EXIT = {
    FaultCode.NOT_ALLOWED: EXIT_NOT_ALLOWED,
    FaultCode.NO_SUCH_JOB: EXIT_NO_SUCH,
    FaultCode.NO_SUCH_RUN: EXIT_NO_SUCH,
}


class NotRunning(CronplusError):
    """An action command needs the daemon."""


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
        self.paths: Paths = resolve(args.user, args.config, args.state_dir, args.runtime_dir)
        self.client = Client(self.paths.socket)
        self.clock = SystemClock()
        self.colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def out(self, text: str) -> None:
        print(text)

    def paint(self, cell: str) -> str:
        """Colour a state word, only on a terminal and never with NO_COLOR."""
        if not self.colour:
            return cell
        word = cell.strip().split(" ")[0]
        code = COLOURS.get(word, "31" if word in FAILED_WORDS else "")
        return f"\033[{code}m{cell}\033[0m" if code else cell

    def ask(self, method: str, **params: Any) -> Any:
        """Ask the daemon; DaemonDown tells read commands to use the history file."""
        try:
            return self.client.call(method, **{k: v for k, v in params.items() if v is not None})
        except DaemonDown:
            if not METHOD_BY_NAME[method].reads:
                raise NotRunning(
                    f"cronplus is not running (no daemon at {self.paths.socket})"
                ) from None
            raise
        except PermissionError:
            raise Fault(
                FaultCode.NOT_ALLOWED, f"permission denied on {self.paths.socket}"
            ) from None
        except OSError as exc:  # reset, timed out, closed without an answer
            raise CronplusError(f"{self.paths.socket}: {exc}") from None

    def _not_running(self) -> str:
        return f"cronplus is not running (no daemon at {self.paths.socket})"

    def not_running_note(self) -> None:
        print(
            f"cronplusctl: cronplus is not running (no daemon at {self.paths.socket}); "
            "reading the history file",
            file=sys.stderr,
        )

    def load_config(self, file: Optional[str] = None) -> Config:
        from . import config

        return config.load(file or self.paths.config)

    def offline_history(self, loaded: Config) -> HistoryReader:
        """The history with no daemon to ask: the file, or in a cluster the shared store."""
        from .store import open_reader

        return open_reader(loaded, self.paths.history(loaded.settings.history))

    def emit(self, value: Any, human: Callable[[], str]) -> None:
        self.out(json.dumps(value) if getattr(self.args, "json", False) else human())

    # --- commands that need no daemon ------------------------------------------------------

    def check(self) -> int:
        file = self.args.file or self.paths.config
        try:
            loaded = self.load_config(file)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            count = len(exc.problems)
            plural = "s" if count != 1 else ""
            print(f"{file}: {count} problem{plural}, configuration rejected", file=sys.stderr)
            return EXIT_ERROR
        warnings = self._dst_warnings(loaded)
        if warnings and self.args.strict:
            plural = "s" if warnings != 1 else ""
            print(f"{file}: {warnings} warning{plural}, rejected (--strict)", file=sys.stderr)
            return EXIT_ERROR
        drop_ins = len(loaded.files) - 1
        for name, job in sorted(loaded.jobs.items()):
            if job.schedule.resolved != job.schedule.expressions:  # hashed values chosen
                self.out(f"{file}: {name}: {job.schedule.describe()}")
        self.out(
            f"{file}: ok, {len(loaded.jobs)} jobs" + (f" ({drop_ins} drop-ins)" if drop_ins else "")
        )
        return self._check_cluster_store(loaded, file)

    def _check_cluster_store(self, loaded: Config, file: str) -> int:
        """In a cluster, whether the store answers: refused credentials or a newer schema are
        errors; a store that does not answer now is a warning (it may later)."""
        cluster = loaded.settings.cluster
        if cluster is None:
            return EXIT_OK
        from .cluster.node import check_store

        problem = check_store(cluster)
        if problem is None:
            self.out(f"{file}: cluster store {cluster.store}: answers")
            return EXIT_OK
        definite = "authentication" in problem or "newer than" in problem
        kind = "error" if definite else "warning"
        print(f"{file}: {kind}: daemon.cluster.store: {problem}", file=sys.stderr)
        return EXIT_ERROR if definite else EXIT_OK

    def _dst_warnings(self, loaded: Config) -> int:
        """Daylight-saving changes of the next 12 months that move, merge or repeat runs."""
        from datetime import timedelta

        from .schedule import build_rule, dst_notes

        now = self.clock.now()
        start = now.replace(minute=0, second=0, microsecond=0)  # shared by every job: cached
        warnings = 0
        for name, job in sorted(loaded.jobs.items()):
            rule = build_rule(job.schedule, job.timezone)
            key = {"cron": "schedule", "every": "every", "at": "at"}[job.schedule.kind.value]
            for note in dst_notes(rule, start, start + timedelta(days=365)):
                level = "warning" if note.warning else "note"
                where = job.schedule_at or job.source
                print(f"{where}: {level}: jobs.{name}.{key}: {note.message}", file=sys.stderr)
                warnings += note.warning
        return warnings

    def next(self) -> int:
        from .schedule import build_rule, dst_mark, next_instants

        args = self.args
        tried = args.expr is not None or args.schedule is not None
        if (args.expr is not None and args.schedule is not None) or (tried and args.job):
            raise CronplusError("give one of JOB, --expr or --schedule")
        if not tried and not args.job:
            raise CronplusError("give a JOB, --expr EXPRESSION or --schedule YAML")
        if not tried and (args.start or args.end or args.name):
            raise CronplusError("--start, --end and --name go with --expr or --schedule")
        if tried:
            from .adhoc import spec_from_arguments
            from .config import machine_zone

            zone_name = args.tz or machine_zone()
            zone(zone_name)  # an unknown zone is said before anything else
            spec, zone_name = spec_from_arguments(
                args.expr, args.schedule, zone_name, args.name, args.start, args.end
            )
            after = parse_instant(args.after, zone_name) if args.after else self.clock.now()
            rule = build_rule(spec, zone_name, shared=False)
            found = next_instants(rule, after, args.n)
            instants = [iso_utc(i.timestamp()) for i in found]
            marks = [dst_mark(rule, i) for i in found]
            described = spec.describe()
        elif args.after:  # a question about the schedule alone: no daemon needed
            job = self._offline_job(args.job)
            zone_name, described = job.timezone, job.schedule.describe()
            rule = build_rule(job.schedule, zone_name)
            after = parse_instant(args.after, zone_name)
            found = next_instants(rule, after, args.n)
            instants = [iso_utc(i.timestamp()) for i in found]
            marks = [dst_mark(rule, i) for i in found]
        else:
            try:
                answer = self.ask("next", job=args.job, count=args.n)
                zone_name, instants = answer["timezone"], answer["next"]
                described = answer.get("schedule", "")
                marks = answer.get("marks") or [None] * len(instants)
            except DaemonDown:
                self.not_running_note()
                zone_name, described, instants, marks = self._offline_next(args.job, args.n)
        value: Any = instants
        if args.marks:
            value = [{"at": i, "dst": m} for i, m in zip(instants, marks)]
        self.emit(value, lambda: next_table(instants, marks, zone_name, described))
        return EXIT_OK

    def _offline_job(self, name: str) -> Job:
        loaded = self.load_config()
        if name not in loaded.jobs:
            raise CronplusError(f'no job named "{name}" in {self.paths.config}')
        return loaded.jobs[name]

    def _offline_next(
        self, name: str, count: int
    ) -> tuple[str, str, list[Optional[str]], list[Optional[str]]]:
        from .schedule import build_rule, dst_mark, upcoming_instants

        job = self._offline_job(name)
        rule = build_rule(job.schedule, job.timezone)
        instants = upcoming_instants(rule, self.clock.now(), self._last_scheduled(name), count)
        marks = [dst_mark(rule, i) for i in instants]
        described = job.schedule.describe()
        return job.timezone, described, [iso_utc(i.timestamp()) for i in instants], marks

    def _last_scheduled(self, name: str) -> Optional[float]:
        try:
            history = self.offline_history(self.load_config())
        except HistoryError:
            return None
        try:
            state = history.job_states().get(name)
        finally:
            history.close()
        return state.last_scheduled if state else None

    # --- read commands ---------------------------------------------------------------------

    def status(self) -> int:
        code = EXIT_OK
        try:
            records = self.ask("status", job=self.args.job)
            self._warn_about_health()
        except DaemonDown:
            self.not_running_note()
            code = EXIT_NOT_RUNNING_STATUS
            records = self._offline_status()
        self.emit(records, lambda: status_table(records, self.paint))
        return code

    def nodes(self) -> int:
        """The cluster's nodes; a node whose config differs from this one's is marked."""
        try:
            answer = self.ask("nodes")
        except DaemonDown:
            raise NotRunning(
                f"cronplus is not running (no daemon at {self.paths.socket})"
            ) from None
        rows = [
            [
                n["node"] + (" (this)" if n["this_node"] else ""),
                n["state"],
                f"{n['lease_age']:.1f}s",
                n["version"],
                f"{n['running']}/{n['max_workers']}",
                n["digest"] + ("" if n["same_config"] else " DIFFERS"),
            ]
            for n in answer
        ]
        headers = ["NODE", "STATE", "LEASE AGE", "VERSION", "RUNNING", "CONFIG"]
        self.emit(answer, lambda: table(headers, rows, str))
        return EXIT_OK

    def health(self) -> int:
        """Whether the daemon writes its history; exit 1 when it does not."""
        try:
            answer = self.ask("health")
        except DaemonDown:
            raise NotRunning(
                f"cronplus is not running (no daemon at {self.paths.socket})"
            ) from None
        self.emit(answer, lambda: "\n".join(health_lines(answer)))
        return EXIT_OK if answer["history"]["written"] else EXIT_ERROR

    def _warn_about_health(self) -> None:
        """`status` says on stderr when the history is not being written."""
        try:
            answer = self.ask("health")
        except (DaemonDown, Fault, CronplusError):
            return
        if not answer["history"]["written"]:
            print(f"cronplusctl: warning: {health_lines(answer)[0]}", file=sys.stderr)

    def _offline_status(self) -> list[Record]:
        loaded = self.load_config()
        names = [self.args.job] if self.args.job else sorted(loaded.jobs)
        for name in names:
            if name not in loaded.jobs:
                raise Fault(FaultCode.NO_SUCH_JOB, f'no job named "{name}"')
        history: Optional[HistoryReader] = None
        try:
            history = self.offline_history(loaded)
        except HistoryError as exc:
            print(f"cronplusctl: {exc}", file=sys.stderr)
        from .report import status_from_history

        try:
            return status_from_history(loaded, history, self.clock.now(), names)
        finally:
            if history is not None:
                history.close()

    def history(self) -> int:
        try:
            answer = self.ask(
                "history", job=self.args.job, limit=self.args.n, failed=self.args.failed or None
            )
        except DaemonDown:
            self.not_running_note()
            answer = self._offline_history_records()
        self.emit(answer["runs"], lambda: history_table(answer, self.paint))
        return EXIT_OK

    def _offline_history_records(self) -> Record:
        loaded = self.load_config()
        job = loaded.jobs.get(self.args.job)
        if job is None:
            raise Fault(FaultCode.NO_SUCH_JOB, f'no job named "{self.args.job}"')
        from .report import name_causes, run_record

        history = self.offline_history(loaded)
        try:
            records = [run_record(r) for r in history.runs(job.name, self.args.n, self.args.failed)]
            name_causes(records, history.job_of)
        finally:
            history.close()
        return {"job": job.name, "timezone": job.timezone, "runs": records}

    def logs(self) -> int:
        try:
            record = self.ask("logs", run_id=self.args.run_id)
        except DaemonDown:
            self.not_running_note()
            record = self._offline_logs()
        if self.args.json:
            self.out(json.dumps(record))
            return EXIT_OK
        shown = len(record["output"].encode())
        note = f", the last {shown} shown" if record["truncated"] else ""
        print(
            f"run {record['id']} of {record['job']}: {record['state']}"
            f"{' (' + record['reason'] + ')' if record['reason'] else ''}, "
            f"{record['output_bytes']} bytes of output{note}",
            file=sys.stderr,
        )
        sys.stdout.write(record["output"])
        return EXIT_OK

    def _offline_logs(self) -> Record:
        loaded = self.load_config()
        history = self.offline_history(loaded)
        try:
            run = history.run(self.args.run_id)
        finally:
            history.close()
        if run is None:
            raise Fault(FaultCode.NO_SUCH_RUN, f"no run {self.args.run_id}")
        from .report import run_record

        return run_record(run, with_output=True)

    def version(self) -> int:
        try:
            answer = self.ask("version")
        except DaemonDown:
            self.not_running_note()
            answer = None
        value = {"cronplusctl": __version__, "daemon": answer}
        daemon_text = (
            f"cronplus {answer['version']} (pid {answer['pid']}, {answer['jobs']} jobs, "
            f"{answer['running']} running, config {answer['config']})"
            if answer
            else "cronplus: not running"
        )
        self.emit(value, lambda: f"cronplusctl {__version__}\n{daemon_text}")
        return EXIT_OK

    def import_(self) -> int:
        """A crontab as cronplus YAML on stdout; lines cron would reject on stderr, exit 1."""
        source = self.args.file or "-"
        if source == "-":
            data, name = sys.stdin.buffer.read(), "standard input"
            text = data.decode("utf-8", "surrogateescape")
        else:
            try:  # as cron reads it: no newline translation
                with open(source, encoding="utf-8", errors="surrogateescape", newline="") as handle:
                    text = handle.read()
            except OSError as exc:
                raise CronplusError(f"{source}: {exc.strerror}") from None
            name = source
        from . import crontab

        system = self.args.system or source == "/etc/crontab" or source.startswith("/etc/cron.d/")
        converted = crontab.parse(text, system=system, user=self.args.as_user)
        sys.stdout.write(crontab.render(converted, name))
        for problem in converted.problems:
            print(f"cronplusctl: {name}: {problem}", file=sys.stderr)
        return EXIT_ERROR if converted.problems else EXIT_OK

    def jobs(self) -> int:
        """Job names one a line, for shell completion; quiet when nothing is known."""
        try:
            names = [r["job"] for r in self.ask("status")]
        except (DaemonDown, Fault):
            try:
                names = sorted(self.load_config().jobs)
            except ConfigError:
                names = []
        if names:
            self.out("\n".join(names))
        return EXIT_OK

    # --- actions ---------------------------------------------------------------------------

    def run(self) -> int:
        answer = self.ask("run", job=self.args.job, chain=self.args.chain or None)
        reason = f" ({answer['reason']})" if answer.get("reason") else ""
        self.emit(
            answer, lambda: f"run {answer['run_id']} of {self.args.job}: {answer['state']}{reason}"
        )
        return EXIT_OK

    def retry(self) -> int:
        answer = self.ask("retry", job=self.args.job, run_id=self.args.run_id)
        self.emit(
            answer,
            lambda: (
                f"run {answer['run_id']}: attempt {answer['attempt']} of run {answer['retries']}"
            ),
        )
        return EXIT_OK

    def pause(self) -> int:
        return self._toggle("pause", "paused")

    def resume(self) -> int:
        return self._toggle("resume", "resumed")

    def _toggle(self, method: str, key: str) -> int:
        if bool(self.args.job) == bool(self.args.all):
            raise CronplusError(f"{method}: give a JOB or --all")
        answer = self.ask(method, job=self.args.job, all=self.args.all or None)
        self.emit(answer, lambda: f"{key}: {', '.join(answer[key]) or 'nothing'}")
        return EXIT_OK

    def reload(self) -> int:
        answer = self.ask("reload")
        self.emit(answer, lambda: f"reloaded: {answer['jobs']} jobs")
        return EXIT_OK

    # --- following what happens (in ctlwatch) ----------------------------------------------

    def runs(self) -> int:
        from . import ctlwatch

        return ctlwatch.runs(self)

    def events(self) -> int:
        from . import ctlwatch

        return ctlwatch.events(self)

    def web(self) -> int:
        from . import ctlwatch

        return ctlwatch.web(self)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronplusctl",
        description="Inspect and steer the cronplus daemon.",
        epilog="daemon methods:\n" + describe_methods(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_instance_arguments(parser, "talk to your per-user instance")
    parser.add_argument("--version", action="version", version=f"cronplusctl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    help_of = {m.name: m.help for m in METHOD_BY_NAME.values()}
    command("status", help_of["status"]).add_argument("job", nargs="?")
    history = command("history", help_of["history"])
    history.add_argument("job")
    history.add_argument("-n", type=int, default=20, help="how many runs (default 20)")
    history.add_argument("--failed", action="store_true", help="only runs that did not succeed")
    command("logs", help_of["logs"]).add_argument("run_id", type=int)
    run = command("run", help_of["run"])
    run.add_argument("job")
    run.add_argument(
        "--chain", action="store_true", help="and the jobs after it when it ends, as when scheduled"
    )
    retry = command("retry", help_of["retry"])
    retry.add_argument("job")
    retry.add_argument("run_id", nargs="?", type=int)
    for name in ("pause", "resume"):
        toggle = command(name, help_of[name])
        toggle.add_argument("job", nargs="?")
        toggle.add_argument("--all", action="store_true", help="every job you may act on")
    nxt = command("next", help_of["next"] + ", or of any --expr")
    nxt.add_argument("job", nargs="?", help="a configured job")
    nxt.add_argument("--expr", help='a cron expression such as "30 2 * * *"')
    nxt.add_argument(
        "--schedule",
        metavar="YAML",
        help="schedule keys as YAML, such as '{every: 2w, on: mon, start: 2026-01-05}'",
    )
    nxt.add_argument("--tz", help="zone for --expr or --schedule (default: the machine's)")
    nxt.add_argument("--name", help="the job name hashed (H) values are chosen from")
    nxt.add_argument("--start", help="no instant before this date or local time")
    nxt.add_argument("--end", help="no instant after this date (the whole day) or local time")
    nxt.add_argument("--after", help="strictly after this ISO 8601 instant (default: now)")
    nxt.add_argument("-n", type=int, default=5, help="how many (default 5)")
    nxt.add_argument(
        "--marks",
        action="store_true",
        help='with --json: objects {"at": ..., "dst": moved|merged|repeated|null}',
    )
    check = command("check", "validate a config file and its drop-ins", json_flag=False)
    check.add_argument("file", nargs="?", help="the file to check (default: the config)")
    check.add_argument(
        "--strict", action="store_true", help="daylight-saving warnings are errors (exit 1)"
    )
    command("reload", help_of["reload"])
    window = command("runs", help_of["runs"])
    window.add_argument(
        "--hours",
        type=int,
        default=24,
        help=f"how far back (default 24, at most {MAX_WINDOW_HOURS})",
    )
    window.add_argument("--job", help="one job only")
    window.add_argument("-n", type=int, default=1000, help="at most this many (default 1000)")
    feed = command("events", help_of["events"])
    feed.add_argument("--after", type=int, default=0, help="after this event number")
    feed.add_argument("--follow", action="store_true", help="keep printing new events")
    web = command("web", "serve the dashboard as you, over the control socket", json_flag=False)
    web.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="HOST:PORT to serve on (default: loopback, a free port)",
    )
    command("version", "versions of cronplusctl and the running daemon")
    command("health", help_of["health"] + " (exit 1 when it does not)")
    command("nodes", help_of["nodes"])
    command("jobs", "job names, one a line (for shell completion)", json_flag=False)
    imports = command("import", "a crontab as cronplus YAML on stdout", json_flag=False)
    imports.add_argument(
        "file", nargs="?", help="a crontab file, or - for standard input (default)"
    )
    imports.add_argument(
        "--system",
        action="store_true",
        help="a system crontab or /etc/cron.d file, with a user field",
    )
    imports.add_argument(
        "--user", dest="as_user", metavar="NAME", help="the user a user crontab's jobs run as"
    )
    return parser


def subcommands() -> list[str]:
    """The names cronplusctl accepts as COMMAND."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    most = {"history": MAX_RUNS, "runs": MAX_WINDOW_RUNS}.get(args.command, MAX_NEXT)
    if not 1 <= getattr(args, "n", 1) <= most:
        print(f"cronplusctl: -n must be from 1 to {most}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= getattr(args, "hours", 1) <= MAX_WINDOW_HOURS:
        print(f"cronplusctl: --hours must be from 1 to {MAX_WINDOW_HOURS}", file=sys.stderr)
        return EXIT_USAGE
    ctl = Ctl(args)
    try:
        return int(getattr(ctl, "import_" if args.command == "import" else args.command)())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_ERROR
    except Fault as fault:
        print(f"cronplusctl: {fault.message}", file=sys.stderr)
        for line in fault.data or ():
            print(line, file=sys.stderr)
        return FAULT_EXIT.get(fault.code, EXIT_ERROR)
    except NotRunning as exc:
        print(f"cronplusctl: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except (CronplusError, ScheduleError) as exc:
        print(f"cronplusctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
