"""100,000 jobs, each with a schedule and a zone of its own: check, start, memory, idle, status.

    python bench/hundred_thousand.py [--jobs 100000] [--idle 300] [--repeat 3]

Every job has a distinct six-field expression (second, minute, hour and day of
January) and one of the machine's IANA zones in turn, so nothing is shared between
jobs: no cached rule, no repeated zone.  None is due while this runs.  Measured:
`cronplusctl check` of the file as a whole process, the daemon's start until it
listens, its resident memory, its CPU time while idle (as CPU-seconds an hour),
and `cronplusctl status` (every job) as a whole process with the daemon up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zoneinfo

from common import ROOT, Daemon, cpu_seconds, env, median, report, status_field


def config_text(count: int) -> str:
    zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z)
    lines = ["daemon: {max_workers: 64}", "jobs:"]
    for i in range(count):
        second, minute, hour = i % 60, (i // 60) % 60, (i // 3600) % 24
        day = 1 + (i // 86400) % 28
        lines.append(
            f'  job-{i:06d}: {{schedule: "{minute} {hour} {day} 1 * {second}",'
            f' timezone: {zones[i % len(zones)]}, command: "true"}}'
        )
    return "\n".join(lines) + "\n"


def whole_process(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env(), cwd=ROOT)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--idle", type=float, default=300, help="seconds of idle measured")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    daemon = Daemon(config_text(args.jobs))
    try:
        check = [
            whole_process([sys.executable, "-m", "cronplus.ctl", "check", str(daemon.config)])
            for _ in range(args.repeat)
        ]
        started = time.perf_counter()
        daemon.start(timeout=600)
        startup = time.perf_counter() - started
        time.sleep(5)  # settled: the first turns and writes are done
        rss_mib = status_field(daemon.pid, "VmRSS") / 1024
        hwm_mib = status_field(daemon.pid, "VmHWM") / 1024
        cpu_before, idle_started = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = cpu_seconds(daemon.pid) - cpu_before
        idle_seconds = time.monotonic() - idle_started
        ctl = [
            sys.executable,
            "-m",
            "cronplus.ctl",
            "-c",
            str(daemon.config),
            "--state-dir",
            str(daemon.state),
            "status",
        ]
        status = [whole_process(ctl) for _ in range(args.repeat)]
    finally:
        daemon.remove()
    per_hour = idle_cpu / idle_seconds * 3600
    rows = [
        ["cronplusctl check (whole process)", f"{median(check):.2f} s", f"{max(check):.2f} s"],
        ["daemon start, until it listens", f"{startup:.2f} s", ""],
        ["resident memory, settled / peak", f"{rss_mib:.1f} MiB", f"{hwm_mib:.1f} MiB"],
        [f"idle CPU ({idle_seconds:.0f} s window)", f"{per_hour:.2f} CPU-s/hour", ""],
        [
            "cronplusctl status, every job (daemon up)",
            f"{median(status):.2f} s",
            f"{max(status):.2f} s",
        ],
    ]
    report(
        "hundred_thousand",
        ["measure", "median", "worst"],
        rows,
        {
            "jobs": args.jobs,
            "check_s": round(median(check), 2),
            "check_worst_s": round(max(check), 2),
            "start_s": round(startup, 2),
            "rss_mib": round(rss_mib, 1),
            "peak_rss_mib": round(hwm_mib, 1),
            "idle_cpu_s_per_hour": round(per_hour, 3),
            "status_s": round(median(status), 2),
            "status_worst_s": round(max(status), 2),
        },
    )


if __name__ == "__main__":
    main()
