"""Idle cost: CPU seconds and wakeups per hour, and resident memory, with 10,000 jobs not due.

python bench/idle.py [--jobs 10000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import time

from common import Daemon, cpu_seconds, many_jobs, report, status_field, wakeups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    # yearly jobs spread over the minutes of New Year's Day: none is due during the window
    daemon = Daemon(many_jobs(args.jobs, "*/7 0 1 1 *"))
    try:
        daemon.start()
        time.sleep(2)  # let start-up work finish
        cpu0, wake0, t0 = cpu_seconds(daemon.pid), wakeups(daemon.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wake1, t1 = cpu_seconds(daemon.pid), wakeups(daemon.pid), time.monotonic()
        rss_kib = status_field(daemon.pid, "VmRSS")
    finally:
        daemon.remove()
    hours = (t1 - t0) / 3600
    cpu_per_hour = (cpu1 - cpu0) / hours
    wakeups_per_hour = (wake1 - wake0) / hours
    rows = [
        ["jobs", args.jobs, ""],
        ["window", f"{t1 - t0:.0f} s", ""],
        ["CPU per hour", f"{cpu_per_hour:.2f} s", "target < 1 s"],
        ["wakeups per hour", f"{wakeups_per_hour:.0f}", ""],
        ["resident memory", f"{rss_kib / 1024:.1f} MiB", "target < 80 MB"],
    ]
    report(
        "idle",
        ["measure", "value", "target"],
        rows,
        {
            "jobs": args.jobs,
            "window_s": round(t1 - t0, 1),
            "cpu_s_per_hour": round(cpu_per_hour, 3),
            "wakeups_per_hour": round(wakeups_per_hour),
            "rss_mib": round(rss_kib / 1024, 1),
        },
    )


if __name__ == "__main__":
    main()
