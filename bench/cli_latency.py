"""`cronplusctl status` and `history` latency, whole process, with 1,000,000 runs in the history.

    python bench/cli_latency.py [--runs 1000000] [--jobs 1000] [--repeat 7]

Measured with the daemon answering over its socket, and with the daemon stopped
(read-only from the file).
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from common import Daemon, median, percentile, report

from cronplus.store import SqliteHistory


def fill(path: str, runs: int, jobs: int) -> None:
    """A history with `runs` finished runs spread over `jobs` jobs, written in bulk."""
    SqliteHistory(path).close()
    db = sqlite3.connect(path)
    now = time.time()
    batch = []
    for i in range(runs):
        job = f"job-{i % jobs:05d}"
        start = now - (runs - i) * 60
        batch.append(
            (
                job,
                start,
                "schedule",
                1,
                "succeeded" if i % 10 else "failed",
                "",
                i,
                start,
                start,
                start + 1,
                0 if i % 10 else 1,
                1.0,
                b"ok\n",
                3,
            )
        )
        if len(batch) == 50_000:
            db.executemany(
                "INSERT INTO runs (job, scheduled, trigger, attempt, state, reason, pid, created,"
                " started, ended, exit_code, duration, output, output_bytes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            batch.clear()
    if batch:
        db.executemany(
            "INSERT INTO runs (job, scheduled, trigger, attempt, state, reason, pid, created,"
            " started, ended, exit_code, duration, output, output_bytes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
    db.execute(
        "INSERT INTO jobs (name, last_scheduled, last_run)"
        " SELECT job, MAX(scheduled), MAX(id) FROM runs GROUP BY job"
    )
    db.commit()
    db.close()


def timed(daemon: Daemon, repeat: int, *args: str) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = daemon.ctl(*args)
        out.append(time.perf_counter() - started)
        assert done.returncode in (0, 3), done.stderr
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    lines = ["daemon: {keep_runs: 10000000}", "jobs:"]
    lines += [
        f'  job-{i:05d}: {{schedule: "0 0 1 1 *", command: "true"}}' for i in range(args.jobs)
    ]
    daemon = Daemon("\n".join(lines) + "\n")
    try:
        daemon.state.mkdir(parents=True)
        started = time.perf_counter()
        fill(str(daemon.state / "history.db"), args.runs, args.jobs)
        filled = time.perf_counter() - started
        daemon.start()
        results = {
            "status, daemon up": timed(daemon, args.repeat, "status"),
            "history JOB -n 20, daemon up": timed(daemon, args.repeat, "history", "job-00007"),
            "status --json, daemon up": timed(daemon, args.repeat, "status", "--json"),
        }
        daemon.stop()
        results["status, daemon down"] = timed(daemon, args.repeat, "status")
        results["history JOB -n 20, daemon down"] = timed(
            daemon, args.repeat, "history", "job-00007"
        )
    finally:
        daemon.remove()
    rows = [
        [name, f"{median(v) * 1000:.0f} ms", f"{percentile(v, 1.0) * 1000:.0f} ms"]
        for name, v in results.items()
    ]
    report(
        "cli_latency",
        ["command", "median", "max"],
        rows,
        {
            "runs": args.runs,
            "jobs": args.jobs,
            "fill_s": round(filled, 1),
            **{
                name.replace(" ", "_").replace(",", ""): round(median(v) * 1000, 1)
                for name, v in results.items()
            },
        },
    )


if __name__ == "__main__":
    main()
