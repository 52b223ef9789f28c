"""Start lateness: from a run's scheduled instant to the first instruction of its process.

    python bench/lateness.py [--counts 1,100,1000] [--minutes 1] [--seconds 60] [--no-cron]

Each job runs a tiny C program that reads CLOCK_REALTIME first thing and appends it
to a file.  For N jobs due at the same whole minute, cronplus and Debian's cron run
one after the other in the same script (cron is installed if missing, and runs from
a file in /etc/cron.d, so this needs root).  A per-second run of one cronplus job
gives enough samples for its p99.  Missed and doubled runs are counted per
(job, instant).  cronplus runs with max_workers at least N, as cron has no cap.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import Daemon, median, percentile, report

STAMP_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[160];
    int n = snprintf(line, sizeof line, "%s %ld.%09ld\n", argv[1], (long)now.tv_sec, now.tv_nsec);
    int fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, line, n) != n) return 1;
    return close(fd);
}
"""
CRON_FILE = Path("/etc/cron.d/cronplus-bench")


def build_stamp(directory: Path) -> Path:
    source, binary = directory / "stamp.c", directory / "stamp"
    source.write_text(STAMP_C)
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    binary.chmod(0o755)
    return binary


def wait_for_minutes(minutes: int) -> tuple[float, float]:
    """Sleep through `minutes` whole-minute boundaries; returns the first and last boundary."""
    first = math.floor(time.time() / 60) * 60 + 60
    last = first + 60 * (minutes - 1)
    time.sleep(max(0.0, last + 5 - time.time()))  # 5 s for N runs to finish
    return first, last


def stamps(file: Path) -> list[tuple[str, float]]:
    if not file.exists():
        return []
    out = []
    for line in file.read_text().splitlines():
        job, moment = line.split()
        out.append((job, float(moment)))
    return out


def summarize(
    records: list[tuple[str, float]], instants: list[float], jobs: int, period: float
) -> dict[str, float]:
    late = []
    seen: Counter[tuple[str, float]] = Counter()
    for job, moment in records:
        instant = math.floor(moment / period) * period
        if instants[0] <= instant <= instants[-1]:
            late.append(moment - instant)
            seen[(job, instant)] += 1
    expected = jobs * len(instants)
    return {
        "runs": len(late),
        "p50_ms": round(median(late) * 1000, 2),
        "p99_ms": round(percentile(late, 0.99) * 1000, 2),
        "max_ms": round(max(late) * 1000, 2) if late else float("nan"),
        "missed": expected - len(seen),
        "doubled": sum(1 for count in seen.values() if count > 1),
    }


def cronplus_minutes(stamp: Path, count: int, minutes: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="cronplus-late-"))
    out = work / "stamps"
    lines = [f"daemon: {{max_workers: {max(count, 16)}}}", "jobs:"]
    lines += [
        f'  j{i}: {{schedule: "* * * * *", command: ["{stamp}", "j{i}", "{out}"]}}'
        for i in range(count)
    ]
    daemon = Daemon("\n".join(lines) + "\n", work)
    try:
        daemon.start()
        first, _ = wait_for_minutes(minutes)
        records = stamps(out)
    finally:
        daemon.remove()
    return summarize(records, [first + 60 * k for k in range(minutes)], count, 60)


def cronplus_seconds(stamp: Path, seconds: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="cronplus-late-"))
    out = work / "stamps"
    config = f'jobs:\n  j0: {{schedule: "* * * * * *", command: ["{stamp}", "j0", "{out}"]}}\n'
    daemon = Daemon(config, work)
    try:
        daemon.start()
        first = math.floor(time.time()) + 2
        time.sleep(first + seconds + 1 - time.time())
        records = stamps(out)
    finally:
        daemon.remove()
    return summarize(records, [first + k for k in range(seconds)], 1, 1)


def ensure_cron() -> str:
    path = shutil.which("cron") or "/usr/sbin/cron"
    if not os.path.exists(path):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "cron"], check=True, stdout=subprocess.DEVNULL
        )
    return path


def cron_minutes(cron: str, stamp: Path, count: int, minutes: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="cron-late-"))
    out = work / "stamps"
    work.chmod(0o755)
    CRON_FILE.write_text("".join(f"* * * * * root {stamp} j{i} {out}\n" for i in range(count)))
    CRON_FILE.chmod(0o644)
    subprocess.run(["pkill", "-x", "cron"], check=False)
    process = subprocess.Popen(
        [cron, "-f", "-L", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1)
        first, _ = wait_for_minutes(minutes)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        CRON_FILE.unlink()
    records = stamps(out)
    shutil.rmtree(work, ignore_errors=True)
    return summarize(records, [first + 60 * k for k in range(minutes)], count, 60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,100,1000")
    parser.add_argument("--minutes", type=int, default=1, help="whole minutes per N and daemon")
    parser.add_argument(
        "--seconds", type=int, default=60, help="per-second samples of one cronplus job"
    )
    parser.add_argument("--no-cron", action="store_true")
    args = parser.parse_args()
    build = Path(tempfile.mkdtemp(prefix="stamp-"))
    build.chmod(0o755)
    stamp = build_stamp(build)
    cron = None if args.no_cron else ensure_cron()
    rows, summary = [], {}
    one = cronplus_seconds(stamp, args.seconds)
    rows.append(
        [
            "cronplus",
            "1 (every second)",
            *(one[k] for k in ("runs", "p50_ms", "p99_ms", "max_ms", "missed", "doubled")),
        ]
    )
    summary["cronplus_1_per_second"] = one
    for count in [int(c) for c in args.counts.split(",")]:
        mine = cronplus_minutes(stamp, count, args.minutes)
        rows.append(
            [
                "cronplus",
                count,
                *(mine[k] for k in ("runs", "p50_ms", "p99_ms", "max_ms", "missed", "doubled")),
            ]
        )
        summary[f"cronplus_{count}"] = mine
        if cron is not None:
            theirs = cron_minutes(cron, stamp, count, args.minutes)
            rows.append(
                [
                    "cron",
                    count,
                    *(
                        theirs[k]
                        for k in ("runs", "p50_ms", "p99_ms", "max_ms", "missed", "doubled")
                    ),
                ]
            )
            summary[f"cron_{count}"] = theirs
    shutil.rmtree(build, ignore_errors=True)
    report(
        "lateness",
        ["daemon", "N", "runs", "p50 ms", "p99 ms", "max ms", "missed", "doubled"],
        rows,
        summary,
    )


if __name__ == "__main__":
    main()
