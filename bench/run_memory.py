"""Memory per running run: the daemon's resident memory idle, then with N runs going.

    python bench/run_memory.py [--runs 1000] [--spawner auto,off]

N jobs run `sleep` and are due at one instant (a seconds field); the daemon's
resident memory (VmRSS) is read just before the instant and once all N are
running (the history says so), after the start's garbage has been collected (a
few seconds of quiet).  Half a minute before, N other jobs ran `true` at one
instant, so that the idle figure already holds what a burst leaves behind (memory
Python keeps once it has used it) and the difference over N is the memory each
running run costs the daemon.  With spawners, their own resident memory is shown
beside it.  One daemon per `--spawner` value, one after the other.  A table and one
JSON line.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import time

from common import Daemon, report, status_field


def spawners_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() != "cronplus-spawn":
                        continue
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def running(daemon: Daemon) -> int:
    db = sqlite3.connect(f"file:{daemon.state / 'history.db'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM runs WHERE state = 'running'").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def measure(runs: int, spawner: str, period: int = 60) -> dict[str, float]:
    lines = [f"daemon: {{max_workers: {runs}, spawner: {spawner}}}", "jobs:"]
    lines += [  # at 0 s
        f'  j{i}: {{schedule: "* * * * * */{period}", command: ["sleep", "{period - 10}"]}}'
        for i in range(runs)
    ]
    lines += [  # at 30 s: a burst as large that ends at once, so that idle is warm
        f'  w{i}: {{schedule: "* * * * * 30-59/{period}", command: "true"}}' for i in range(runs)
    ]
    daemon = Daemon("\n".join(lines) + "\n")
    try:
        daemon.start()
        instant = math.floor(time.time() / period) * period + period
        if instant - time.time() < 40:  # the warm burst comes after the start
            instant += period
        time.sleep(max(0.0, instant - 3 - time.time()))
        idle = status_field(daemon.pid, "VmRSS")
        helpers = spawners_of(daemon.pid)
        helper_idle = sum(status_field(helper, "VmRSS") for helper in helpers)
        deadline = instant + 30
        while running(daemon) < runs and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # quiet: the burst's garbage collected, the history written
        busy = status_field(daemon.pid, "VmRSS")
        helper_busy = sum(status_field(helper, "VmRSS") for helper in helpers)
        count = running(daemon)
    finally:
        daemon.remove()
    return {
        "running": count,
        "idle_kib": idle,
        "busy_kib": busy,
        "per_run_bytes": round((busy - idle) * 1024 / max(count, 1)),
        "spawners": len(helpers),
        "spawner_idle_kib": helper_idle,
        "spawner_busy_kib": helper_busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--spawner", default="auto,off")
    args = parser.parse_args()
    rows, summary = [], {}
    for spawner in args.spawner.split(","):
        figures = measure(args.runs, spawner)
        summary[f"spawner_{spawner}"] = figures
        helper = (
            f"{figures['spawner_idle_kib'] / 1024:.1f} / {figures['spawner_busy_kib'] / 1024:.1f}"
        )
        rows.append(
            [
                spawner,
                figures["running"],
                f"{figures['idle_kib'] / 1024:.1f}",
                f"{figures['busy_kib'] / 1024:.1f}",
                figures["per_run_bytes"],
                helper,
            ]
        )
    report(
        "run memory",
        ["spawner", "running", "daemon idle MiB", "running MiB", "bytes per run", "spawners' MiB"],
        rows,
        summary,
    )


if __name__ == "__main__":
    main()
