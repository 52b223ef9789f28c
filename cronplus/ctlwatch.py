"""The cronplusctl commands that follow what happens: `runs` over a window, the `events`
feed, and the `web` dashboard."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Any

from .control import DaemonDown
from .ctl import EXIT_ERROR, EXIT_OK, Ctl
from .errors import CronplusError, HistoryError
from .views import local_time, table

UTC = timezone.utc
FOLLOW_EVERY = 1.0  # seconds between two questions of `events --follow`


def runs(ctl: Ctl) -> int:
    args = ctl.args
    try:
        answer = ctl.ask("runs", hours=args.hours, job=args.job, limit=args.n)
    except DaemonDown:
        ctl.not_running_note()
        answer = offline_runs(ctl, args.hours, args.job, args.n)
    zones: dict[str, str] = answer["timezones"]
    rows = [
        [
            r["job"],
            str(r["id"]),
            local_time(r["started"] or r["scheduled"] or r["created"], zones.get(r["job"], "UTC")),
            r["state"],
            f"{r['duration']:.3f}s" if r["duration"] is not None else "-",
            r["reason"] or "-",
        ]
        for r in answer["runs"]
    ]
    ctl.emit(
        answer["runs"],
        lambda: table(["JOB", "RUN", "STARTED", "STATE", "DURATION", "REASON"], rows, ctl.paint),
    )
    if answer["truncated"]:
        print(f"cronplusctl: only the latest {args.n} runs that ended are shown", file=sys.stderr)
    return EXIT_OK


def offline_runs(ctl: Any, hours: int, job: str | None, limit: int) -> dict[str, Any]:
    """`runs` from the history file, for when the daemon is down (`ctl`: a Ctl, or what
    the dashboard gives in its place: load_config, offline_history and clock)."""
    from .control import Fault, FaultCode
    from .report import run_record

    loaded = ctl.load_config()
    if job is not None and job not in loaded.jobs:
        raise Fault(FaultCode.NO_SUCH_JOB, f'no job named "{job}"')
    names = [job] if job else sorted(loaded.jobs)
    until = ctl.clock.now().timestamp()
    since = until - hours * 3600.0
    try:
        history = ctl.offline_history(loaded)
    except HistoryError as exc:
        raise CronplusError(str(exc)) from None
    try:
        found = history.runs_between(since, until, names, limit)
    finally:
        history.close()
    found.sort(key=lambda r: r.id, reverse=True)
    return {
        "since": datetime.fromtimestamp(since, UTC).isoformat(),
        "until": datetime.fromtimestamp(until, UTC).isoformat(),
        "truncated": sum(1 for r in found if r.ended is not None) >= limit,
        "timezones": {name: loaded.jobs[name].timezone for name in names},
        "runs": [run_record(r) for r in found],
    }


def events(ctl: Ctl) -> int:
    """The latest events; with --follow, new ones as they come, until interrupted."""
    args = ctl.args
    after = args.after
    try:
        while True:
            answer = ctl.ask("events", after=after)
            if not answer["complete"] and after:
                print("cronplusctl: some events were missed", file=sys.stderr)
            for event in answer["events"]:
                if args.json:
                    ctl.out(_json(event))
                else:
                    ctl.out(_line(event))
            sys.stdout.flush()
            after = answer["seq"]
            if not args.follow:
                return EXIT_OK
            time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        return EXIT_OK


def _json(event: dict[str, Any]) -> str:
    import json

    return json.dumps(event)


def _line(event: dict[str, Any]) -> str:
    what = event["what"]
    if event["job"] is None:
        return f"{event['at']}  {what}: the configuration"
    state = f" {event['state']}" if what == "ended" and event["state"] else ""
    run = f" run {event['run_id']}" if event["run_id"] is not None else ""
    return f"{event['at']}  {what}{state}: {event['job']}{run}"


def web(ctl: Ctl) -> int:
    """Serve the dashboard as the calling user until interrupted."""
    try:
        from .web.serve import serve
    except ImportError as exc:
        print(
            "cronplusctl: the dashboard needs packages that are not installed"
            f" ({exc.name}): pip install 'cronplus[web]'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return serve(ctl.paths, ctl.args.listen)
