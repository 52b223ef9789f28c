"""What cronplusctl prints for people: tables and lines built from the JSON records.

The records are the same whether the daemon or the history file answered
(`report`); `--json` prints them as they are, these functions as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Callable, Optional

from .clock import zone
from .model import format_seconds

Record = dict[str, Any]
Paint = Callable[[str], str]


def local_time(stamp: Optional[str], zone_name: str) -> str:
    """An ISO UTC instant shown in the job's zone with its offset."""
    if not stamp:
        return "-"
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone(zone_name))
    moment = moment.replace(microsecond=0)
    name = moment.tzname() or ""
    abbreviation = "" if name[:1] in "+-" else f" {name}"  # "+0545" would repeat the offset
    return f"{moment:%Y-%m-%d %H:%M:%S}{moment.isoformat()[19:]}{abbreviation}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], paint: Paint) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = []
    for line in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(line, widths)]
        if line is not headers:
            cells = [paint(c) for c in cells]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def health_lines(answer: Record) -> list[str]:
    history = answer["history"]
    if history["written"]:
        lines = [f"history: written ({history['path']})"]
    else:
        lines = [
            f"history: NOT WRITTEN since {history['failing_since']}: {history['error']};"
            f" {history['held_in_memory']} records held in memory, {history['dropped']} dropped"
            f" ({history['path']})"
        ]
    jump = answer["last_clock_jump"]
    lines.append(
        f"last clock jump: {jump['what']}, noticed at {jump['at']}"
        if jump
        else "last clock jump: none"
    )
    return lines


def cause_text(run: Record) -> str:
    """How a chained run came about: `chain after backup run 41`."""
    if run.get("caused_by") is None:
        return str(run["trigger"])
    return f"{run['trigger']} after {run.get('cause_job') or 'run'} run {run['caused_by']}"


def status_table(records: Sequence[Record], paint: Paint) -> str:
    rows = []
    for r in records:
        last = r["last"]
        last_text = "-"
        if last:
            last_text = f"{last['state']} {local_time(last['ended'], r['timezone'])}"
            if last.get("caused_by") is not None:
                last_text += f" ({cause_text(last)})"
        rows.append(
            [
                r["job"],
                r["schedule"] or "-",
                r["timezone"],
                "paused" if r["paused"] else local_time(r["next"], r["timezone"]),
                last_text,
                ",".join(str(i) for i in r["running"]) or "-",
                str(r.get("missed_last_day", 0)),
            ]
        )
    headers = ["JOB", "SCHEDULE", "ZONE", "NEXT", "LAST", "RUNNING", "MISSED 24H"]
    text = table(headers, rows, paint)
    chains = chains_table(records)
    return f"{text}\n\n{chains}" if chains else text


def chains_table(records: Sequence[Record]) -> str:
    """What follows what: one row for each `after:` of the jobs shown."""
    rows = [
        [
            a["job"],
            r["job"],
            a["on"],
            format_seconds(a["within"]) if a.get("within") else "-",
        ]
        for r in records
        for a in r.get("after", ())
    ]
    if not rows:
        return ""
    return table(["AFTER", "RUNS", "ON", "WITHIN"], rows, str)


def history_table(answer: Record, paint: Paint) -> str:
    zone_name = answer["timezone"]
    rows = [
        [
            str(r["id"]),
            local_time(r["scheduled"] or r["created"], zone_name),
            cause_text(r),
            str(r["attempt"]),
            r["state"],
            f"{r['duration']:.3f}s" if r["duration"] is not None else "-",
            f"signal {r['signal']}"
            if r["signal"] is not None
            else ("-" if r["exit_code"] is None else str(r["exit_code"])),
            r["reason"] or "-",
        ]
        for r in answer["runs"]
    ]
    headers = ["RUN", "SCHEDULED", "TRIGGER", "TRY", "STATE", "DURATION", "EXIT", "REASON"]
    if any(r.get("node") for r in answer["runs"]):  # a cluster: which node ran each
        headers.insert(5, "NODE")
        for row, record in zip(rows, answer["runs"]):
            row.insert(5, record.get("node") or "-")
    return table(headers, rows, paint)


DST_WORDS = {
    "moved": "moved: its time does not exist that day",
    "merged": "merged: several times land here",
    "repeated": "repeated hour: second pass",
}


def next_table(
    instants: Sequence[Optional[str]],
    marks: Sequence[Optional[str]],
    zone_name: str,
    described: str,
) -> str:
    """The schedule as written (with any hashed value chosen), then its next instants.

    A DST column appears only when daylight saving moved, merged or repeated a run.
    """
    headers = [f"LOCAL ({zone_name})", "UTC"]
    rows = [[local_time(i, zone_name), i or "-"] for i in instants]
    if any(marks):
        headers.append("DST")
        rows = [[*row, DST_WORDS.get(m or "", "")] for row, m in zip(rows, marks)]
    shown = table(headers, rows, str)
    return f"schedule: {described}\n{shown}" if described else shown
