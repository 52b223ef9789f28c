"""A per-second job's lateness while the daemon does heavy work of its own.

    python bench/loop_under_load.py [--jobs 10000] [--runs 1000000] [--finishing 1000]
                                    [--seconds 20] [--rounds 3]

One real daemon runs a job every second (the tiny program of `lateness.py`, which
records the time of its first instruction) beside `--jobs` jobs of distinct
schedules and zones that are not due, on a history of `--runs` finished runs.  In
turn, for `--seconds` each, it measures the per-second job's lateness with:

- nothing else happening (the baseline);
- reloads of all the jobs, every schedule changed each time, one after another;
- `cronplusctl status` (every job, a million runs in the history), one after another;
- `--finishing` runs ending at one moment, half-way between two of its instants,
  `--rounds` times (the window is the five instants after each ending);
- a prune of half the history: one job with half the runs, `keep_runs` lowered.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from common import Daemon, median, percentile, report
from lateness import build_stamp, stamps

from cronplus.store import SqliteHistory

UNTIL_C = r"""
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    double until = atof(argv[1]);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double left = until - (now.tv_sec + now.tv_nsec / 1e9);
    if (left > 0) {
        struct timespec wait = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        nanosleep(&wait, NULL);
    }
    return 0;
}
"""
KEYS = ("baseline", "reload", "status", "finishing", "prune")
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "Africa/Cairo",
    "Europe/London",
)


def filler(count: int, shift: int) -> list[str]:
    """`count` jobs, each with a schedule and zone of its own, none due for weeks."""
    lines = []
    for i in range(count):
        minute, hour = (i + shift) % 60, (i // 60) % 24
        day, month = 1 + (i // 1440) % 28, 1 + (i // 40320) % 12
        zone = ZONES[i % len(ZONES)]
        lines.append(
            f'  job-{i:05d}: {{schedule: "{minute} {hour} {day} {month} *", timezone: {zone},'
            ' command: "true"}'
        )
    return lines


def config_text(
    stamp: Path,
    out: Path,
    jobs: int,
    shift: int = 0,
    keep: int = 10_000_000,
    extra: tuple[str, ...] = (),
) -> str:
    lines = [f"daemon: {{max_workers: 2000, keep_runs: {keep}}}", "jobs:"]
    lines.append(f'  tick: {{schedule: "* * * * * *", command: ["{stamp}", "tick", "{out}"]}}')
    lines.append('  bulk: {schedule: "0 0 1 1 *", command: "true"}')
    lines += filler(jobs, shift)
    lines += extra
    return "\n".join(lines) + "\n"


def fill(path: str, runs: int, jobs: int) -> None:
    """`runs` finished runs: half of them of `bulk`, the rest spread over the jobs."""
    SqliteHistory(path).close()
    db = sqlite3.connect(path)
    now = time.time()
    insert = (
        "INSERT INTO runs (job, scheduled, trigger, attempt, state, reason, pid, created,"
        " started, ended, exit_code, duration, output, output_bytes)"
        " VALUES (?, ?, 'schedule', 1, ?, '', ?, ?, ?, ?, ?, 1.0, x'6f6b0a', 3)"
    )
    batch = []
    for i in range(runs):
        job = "bulk" if i % 2 else f"job-{(i // 2) % jobs:05d}"
        start = now - (runs - i) * 60
        failed = i % 10 == 0
        batch.append(
            (
                job,
                start,
                "failed" if failed else "succeeded",
                i,
                start,
                start,
                start + 1,
                int(failed),
            )
        )
        if len(batch) == 50_000:
            db.executemany(insert, batch)
            batch.clear()
    db.executemany(insert, batch)
    db.execute(
        "INSERT INTO jobs (name, last_scheduled, last_run)"
        " SELECT job, MAX(scheduled), MAX(id) FROM runs GROUP BY job"
    )
    db.commit()
    db.close()


def lateness(out: Path, start: float, end: float) -> dict[str, float]:
    """The per-second job's lateness for its instants in [start, end]."""
    late = [m - math.floor(m) for job, m in stamps(out) if start <= math.floor(m) <= end]
    expected = int(math.floor(end) - math.ceil(start)) + 1
    return {
        "runs": len(late),
        "missed": max(0, expected - len(late)),
        "p50_ms": round(median(late) * 1000, 2),
        "p99_ms": round(percentile(late, 0.99) * 1000, 2),
        "max_ms": round(max(late) * 1000, 2) if late else float("nan"),
    }


def during(seconds: float, action: Callable[[], None]) -> tuple[float, float, int]:
    """Repeat `action` for `seconds`; returns the window measured and how often it ran."""
    start = math.ceil(time.time()) + 1
    time.sleep(start - time.time())
    done = 0
    while time.time() < start + seconds:
        action()
        done += 1
    end = time.time()
    time.sleep(1.5)  # the last instant's run records its stamp
    return start, end, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--finishing", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build = Path(tempfile.mkdtemp(prefix="loop-bench-"))
    build.chmod(0o755)
    stamp = build_stamp(build)
    (build / "until.c").write_text(UNTIL_C)
    until = build / "until"
    subprocess.run(["gcc", "-O2", "-o", str(until), str(build / "until.c")], check=True)
    out = build / "stamps"
    daemon = Daemon(config_text(stamp, out, args.jobs))
    results: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    try:
        daemon.state.mkdir(parents=True)
        fill(str(daemon.state / "history.db"), args.runs, args.jobs)
        daemon.start(timeout=300)
        time.sleep(3)

        start, end, _ = during(args.seconds, lambda: time.sleep(0.2))
        results["baseline"] = lateness(out, start, end)

        shifts = iter(range(1, 1_000_000))

        def reload() -> None:
            daemon.config.write_text(config_text(stamp, out, args.jobs, next(shifts)))
            done = daemon.ctl("reload")
            assert done.returncode == 0, done.stdout + done.stderr

        start, end, counts["reload"] = during(args.seconds, reload)
        results[f"reload of {args.jobs} jobs"] = lateness(out, start, end)

        def status() -> None:
            done = daemon.ctl("status")
            assert done.returncode in (0, 3), done.stderr

        start, end, counts["status"] = during(args.seconds, status)
        results[f"status, {args.runs} runs"] = lateness(out, start, end)

        windows = []
        for _ in range(args.rounds):
            due = math.floor(time.time()) + 8
            ends = due + 12.5  # after the burst of starts (up to a few seconds here)
            at = time.gmtime(due)
            finishing = tuple(
                f'  fin-{i:04d}: {{schedule: "{at.tm_min} {at.tm_hour} * * * {at.tm_sec}",'
                f' timezone: UTC, command: ["{until}", "{ends}"]}}'
                for i in range(args.finishing)
            )
            daemon.config.write_text(config_text(stamp, out, args.jobs, extra=finishing))
            done = daemon.ctl("reload")
            assert done.returncode == 0, done.stdout + done.stderr
            time.sleep(max(0.0, ends + 6.5 - time.time()))
            windows.append((math.floor(ends) + 1, math.floor(ends) + 5))
        late = [
            m - math.floor(m)
            for job, m in stamps(out)
            if any(a <= math.floor(m) <= b for a, b in windows)
        ]
        results[f"{args.finishing} runs finishing at once"] = {
            "runs": len(late),
            "missed": 5 * len(windows) - len(late),
            "p50_ms": round(median(late) * 1000, 2),
            "p99_ms": round(percentile(late, 0.99) * 1000, 2),
            "max_ms": round(max(late) * 1000, 2) if late else float("nan"),
        }
        history = daemon.state / "history.db"
        with sqlite3.connect(history) as db:
            before = db.execute("SELECT count(*) FROM runs WHERE job = 'bulk'").fetchone()[0]
        daemon.config.write_text(config_text(stamp, out, args.jobs, keep=100))
        done = daemon.ctl("reload")
        assert done.returncode == 0, done.stdout + done.stderr
        time.sleep(3)

        def prune() -> None:
            done = daemon.ctl("run", "bulk")
            assert done.returncode == 0, done.stdout + done.stderr
            time.sleep(args.seconds)

        start, end, _ = during(args.seconds, prune)
        with sqlite3.connect(history) as db:
            after = db.execute("SELECT count(*) FROM runs WHERE job = 'bulk'").fetchone()[0]
        results[f"prune of {before - after} runs"] = lateness(out, start, end)
    finally:
        daemon.remove()
        shutil.rmtree(build, ignore_errors=True)
    rows = [
        [name, r["runs"], r["missed"], r["p50_ms"], r["p99_ms"], r["max_ms"]]
        for name, r in results.items()
    ]
    report(
        "loop_under_load",
        ["while", "runs", "missed", "p50 ms", "p99 ms", "max ms"],
        rows,
        {
            "jobs": args.jobs,
            "runs": args.runs,
            "reloads": counts.get("reload", 0),
            "statuses": counts.get("status", 0),
            **{KEYS[i]: r for i, r in enumerate(results.values())},
        },
    )


if __name__ == "__main__":
    main()
