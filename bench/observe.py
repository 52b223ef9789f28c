"""What the metrics and the dashboard cost: memory and scrapes with many jobs, and the
runs of a window of time from a large history.

    python bench/observe.py [--jobs 10000] [--runs 1000000] [--repeat 5]

Metrics: the daemon's resident memory with `daemon.metrics` off and on, and the time and
size of a scrape of /metrics. Runs: `runs_between` for the last day and the last week of
a history of --runs runs (one a minute), with the index on `ended` (migration 5) and
without it.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from cli_latency import fill
from common import Daemon, many_jobs, median, report, status_field

from cronplus.store import SqliteHistory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def resident_mib(config: str) -> tuple[float, Daemon]:
    daemon = Daemon(config).start()
    time.sleep(3)  # start-up work, and the metrics' read of the history
    return status_field(daemon.pid, "VmRSS") / 1024, daemon


def metrics(jobs: int, repeat: int) -> tuple[list[list[str]], dict[str, object]]:
    plain = many_jobs(jobs, "*/7 0 1 1 *")
    without, daemon = resident_mib(plain)
    daemon.remove()
    port = free_port()
    listen = (
        f'daemon: {{max_workers: 64, keep_runs: 1000000, metrics: {{listen: "127.0.0.1:{port}"}}}}'
    )
    config = plain.replace("daemon: {max_workers: 64, keep_runs: 1000000}", listen)
    with_metrics, daemon = resident_mib(config)
    try:
        times, size = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
                size = len(answer.read())
            times.append(time.perf_counter() - started)
    finally:
        daemon.remove()
    scrape = median(times)
    rows = [
        ["resident memory, metrics off", f"{without:.1f} MiB"],
        ["resident memory, metrics on", f"{with_metrics:.1f} MiB"],
        [f"scrape of /metrics ({size / 1024:.0f} KiB)", f"{scrape * 1000:.0f} ms"],
    ]
    return rows, {
        "rss_off_mib": round(without, 1),
        "rss_on_mib": round(with_metrics, 1),
        "scrape_ms": round(scrape * 1000),
        "scrape_kib": round(size / 1024),
    }


def window(runs: int, repeat: int) -> tuple[list[list[str]], dict[str, object]]:
    directory = Path(tempfile.mkdtemp(prefix="cronplus-bench-"))
    path = str(directory / "history.db")
    try:
        fill(path, runs, 1000)
        until = time.time()
        found: dict[str, float] = {}
        counts: dict[str, int] = {}
        for indexed in (True, False):
            if not indexed:
                SqliteHistory(path).db.execute("DROP INDEX runs_by_end")
            reader = SqliteHistory(path, readonly=True)
            for name, hours in (("day", 24), ("week", 168)):
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    found_runs = reader.runs_between(until - hours * 3600, until, None, 10_000)
                    times.append(time.perf_counter() - started)
                counts[name] = len(found_runs)
                found[f"{name}_{'indexed' if indexed else 'scan'}"] = median(times)
            reader.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    rows = [
        [
            f"runs of the last {name} ({counts[name]} runs)",
            f"{found[name + '_indexed'] * 1000:.1f} ms with the index,"
            f" {found[name + '_scan'] * 1000:.0f} ms without",
        ]
        for name in ("day", "week")
    ]
    return rows, {k + "_ms": round(v * 1000, 1) for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows, summary = metrics(args.jobs, args.repeat)
    more, other = window(args.runs, args.repeat)
    report(
        "observe",
        ["measure", "value"],
        [[f"{args.jobs} jobs", ""], *rows, [f"{args.runs} runs in the history", ""], *more],
        {"jobs": args.jobs, "runs": args.runs, **summary, **other},
    )


if __name__ == "__main__":
    main()
