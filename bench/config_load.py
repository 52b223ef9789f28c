"""Config load and validation time for 10,000 jobs, and reload time, as whole processes.

    python bench/config_load.py [--jobs 10000] [--repeat 5]

Schedules vary as in a real file: 1,440 distinct expressions (every minute of a day).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import ROOT, Daemon, env, median, report


def config_text(count: int) -> str:
    lines = ["daemon: {max_workers: 64}", "jobs:"]
    for i in range(count):
        minute, hour = i % 60, (i // 60) % 24
        lines.append(
            f'  job-{i:05d}: {{schedule: "{minute} {hour} * * *", command: "true", timeout: 1h}}'
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    daemon = Daemon(config_text(args.jobs))
    try:
        checks = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "cronplus.ctl", "check", str(daemon.config)],
                capture_output=True,
                text=True,
                env=env(),
                cwd=ROOT,
            )
            checks.append(time.perf_counter() - started)
            assert done.returncode == 0, done.stderr
        started = time.perf_counter()
        daemon.start()
        startup = time.perf_counter() - started
        reloads = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = daemon.ctl("reload")
            reloads.append(time.perf_counter() - started)
            assert done.returncode == 0, done.stderr
    finally:
        daemon.remove()
    rows = [
        [
            "cronplusctl check (whole process)",
            f"{median(checks):.2f} s",
            f"{min(checks):.2f}-{max(checks):.2f}",
            "< 2 s",
        ],
        ["daemon start until listening", f"{startup:.2f} s", "one run", ""],
        [
            "cronplusctl reload (whole process)",
            f"{median(reloads):.2f} s",
            f"{min(reloads):.2f}-{max(reloads):.2f}",
            "",
        ],
    ]
    report(
        "config_load",
        ["measure", "median", "range", "target"],
        rows,
        {
            "jobs": args.jobs,
            "repeat": args.repeat,
            "check_s": round(median(checks), 3),
            "start_s": round(startup, 3),
            "reload_s": round(median(reloads), 3),
        },
    )


if __name__ == "__main__":
    main()
