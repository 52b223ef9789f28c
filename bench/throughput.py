"""Throughput: short jobs started and recorded in the history per second, max_workers 64.

    python bench/throughput.py [--runs 2000] [--workers 64]

`--runs` jobs are due at the same second; the figure is runs recorded as finished,
divided by the time from their instant to the last one's end in the history.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import time

from common import Daemon, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    lines = [f"daemon: {{max_workers: {args.workers}}}", "jobs:"]
    # every job due at second 0 of every minute: one burst in the window measured
    lines += [
        f'  j{i}: {{schedule: "* * * * * 0", command: ["/bin/true"]}}' for i in range(args.runs)
    ]
    daemon = Daemon("\n".join(lines) + "\n")
    try:
        daemon.start()
        instant = math.floor(time.time() / 60) * 60 + 60
        time.sleep(instant - time.time())
        deadline = instant + 120
        db_path = daemon.state / "history.db"
        done = 0
        while time.time() < deadline:
            time.sleep(0.5)
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            done = db.execute(
                "SELECT COUNT(*) FROM runs WHERE scheduled = ? AND state = 'succeeded'", (instant,)
            ).fetchone()[0]
            open_runs = db.execute(
                "SELECT COUNT(*) FROM runs WHERE scheduled = ? AND state IN ('pending', 'running')",
                (instant,),
            ).fetchone()[0]
            last_end = db.execute(
                "SELECT MAX(ended) FROM runs WHERE scheduled = ?", (instant,)
            ).fetchone()[0]
            first_start = db.execute(
                "SELECT MIN(started) FROM runs WHERE scheduled = ?", (instant,)
            ).fetchone()[0]
            total = db.execute(
                "SELECT COUNT(*) FROM runs WHERE scheduled = ?", (instant,)
            ).fetchone()[0]
            db.close()
            if total >= args.runs and open_runs == 0:
                break
    finally:
        daemon.remove()
    span = (last_end or instant) - instant
    rate = done / span if span > 0 else float("nan")
    rows = [
        ["runs due at once", args.runs],
        ["max_workers", args.workers],
        ["recorded as succeeded", done],
        ["first start after the instant", f"{((first_start or instant) - instant) * 1000:.0f} ms"],
        ["last end after the instant", f"{span:.2f} s"],
        ["runs per second", f"{rate:.0f}"],
    ]
    report(
        "throughput",
        ["measure", "value"],
        rows,
        {
            "runs": args.runs,
            "workers": args.workers,
            "succeeded": done,
            "span_s": round(span, 3),
            "runs_per_s": round(rate, 1),
        },
    )


if __name__ == "__main__":
    main()
