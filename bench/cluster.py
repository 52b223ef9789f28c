"""A cluster of three nodes on a private PostgreSQL server: bursts, claim cost, takeover.

    python bench/cluster.py [--jobs 1000] [--seconds 30] [--trials 10]   (as root)

- burst: 1,000 `run_on: one` jobs due at one whole minute on three nodes; every one
  started once, how late the last one started, and how they spread over the nodes;
- claim: the lateness of one per-second job on a single node in cluster mode and in
  SQLite mode, side by side (what a claim in the database costs a run);
- takeover: a long job killed with its node (`kill -9`), ten times; the time from the
  kill to its retry running on another node (lease 3 s).
PostgreSQL runs from a temporary directory as its own unprivileged user.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import ROOT, Daemon, median, percentile, report

sys.path.insert(0, str(ROOT / "tests"))
import psycopg
from postgres import PostgresServer, start_server


def node_config(url: str, passfile: Path, name: str, jobs: str, lease: str, workers: int) -> str:
    return (
        f'daemon:\n  max_workers: {workers}\n  cluster: {{store: "{url}", node: {name},'
        f" lease: {lease}, password_file: {passfile}}}\n" + jobs
    )


def daemon_in(folder: Path, text: str) -> Daemon:
    folder.mkdir(parents=True, exist_ok=True)
    return Daemon(text, folder)


def query(url: str, passfile: Path, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, passfile=str(passfile), autocommit=True) as db:
        return list(db.execute(sql).fetchall())


def burst(server: PostgresServer, base: Path, jobs: int) -> dict[str, Any]:
    url = server.fresh_database("burst")
    passfile = server.passfile(base / "pgpass")
    text = "jobs:\n" + "".join(
        f'  j{i:05d}: {{schedule: "* * * * *", command: [/bin/true]}}\n' for i in range(jobs)
    )
    nodes = [
        daemon_in(base / f"n{i}", node_config(url, passfile, f"n{i}", text, "15s", jobs // 2))
        for i in range(3)
    ]
    for node in nodes:
        node.start()
    time.sleep(62 - time.time() % 60 + 8)  # past the next whole minute, with time to finish
    minute = int(time.time() // 60 * 60)
    rows = query(
        url, passfile, f"SELECT job, node, state, started FROM runs WHERE scheduled = {minute}"
    )
    lateness = [(r[3] - minute) * 1000 for r in rows if r[3] is not None]
    for node in nodes:
        node.stop()
    started = [r for r in rows if r[2] in ("succeeded", "running")]
    return {
        "jobs": jobs,
        "started": len(started),
        "doubled": len(started) - len({r[0] for r in started}),
        "last_start_ms": round(max(lateness), 1) if lateness else None,
        "p50_ms": round(median(lateness), 1) if lateness else None,
        "by_node": dict(sorted(Counter(r[1] for r in started).items())),
    }


def claim_cost(server: PostgresServer, base: Path, seconds: float) -> dict[str, Any]:
    url = server.fresh_database("claims")
    passfile = server.passfile(base / "pgpass2")
    tick = 'jobs:\n  tick: {schedule: "* * * * * *", command: [/bin/true]}\n'
    results = {}
    for mode, text in (
        ("sqlite", tick),
        ("postgres", node_config(url, passfile, "solo", tick, "15s", 16)),
    ):
        daemon = daemon_in(base / f"claim-{mode}", text)
        daemon.start()
        time.sleep(seconds)
        daemon.stop()
        sql = "SELECT (started - scheduled) * 1000 FROM runs WHERE started IS NOT NULL ORDER BY id"
        if mode == "sqlite":
            import sqlite3

            with sqlite3.connect(daemon.state / "history.db") as db:
                values = [float(v[0]) for v in db.execute(sql).fetchall()][2:]
        else:
            values = [float(v[0]) for v in query(url, passfile, sql)][2:]
        results[mode] = {
            "runs": len(values),
            "p50_ms": round(median(values), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
        }
    return results


def takeover(server: PostgresServer, base: Path, trials: int) -> dict[str, Any]:
    url = server.fresh_database("takeover")
    passfile = server.passfile(base / "pgpass3")
    text = (
        'jobs:\n  long: {schedule: "* * * * * */2", command: "sleep 600", retries: 100,'
        " retry_backoff: 1s, retry_backoff_max: 1s}\n"
    )
    nodes = {
        f"t{i}": daemon_in(base / f"t{i}", node_config(url, passfile, f"t{i}", text, "3s", 8))
        for i in range(3)
    }
    for node in nodes.values():
        node.start()
    times = []
    for _ in range(trials):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = query(url, passfile, "SELECT node FROM runs WHERE state = 'running'")
            if running:
                break
            time.sleep(0.05)
        victim = str(running[0][0])
        nodes[victim].process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed = time.monotonic()
        while time.monotonic() < killed + 60:
            others = query(
                url, passfile, f"SELECT 1 FROM runs WHERE state = 'running' AND node <> '{victim}'"
            )
            if others:
                break
            time.sleep(0.05)
        times.append(time.monotonic() - killed)
        nodes[victim].process.wait()  # type: ignore[union-attr]
        nodes[victim].start()  # back for the next trial
    for node in nodes.values():
        node.stop()
    return {
        "trials": len(times),
        "p50_s": round(median(times), 2),
        "max_s": round(max(times), 2),
        "lease_s": 3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    server = start_server()
    base = Path(server.directory) / "bench"
    base.mkdir()
    try:
        costs = claim_cost(server, base, args.seconds)
        swap = takeover(server, base, args.trials)
        spread = burst(server, base, args.jobs)
    finally:
        server.stop()
    rows = [
        [
            "per-second job, SQLite (one node)",
            f"{costs['sqlite']['p50_ms']} / {costs['sqlite']['p99_ms']} ms",
        ],
        [
            "per-second job, cluster of one",
            f"{costs['postgres']['p50_ms']} / {costs['postgres']['p99_ms']} ms",
        ],
        [
            f"burst of {spread['jobs']} on 3 nodes: started, twice",
            f"{spread['started']}, {spread['doubled']}",
        ],
        ["burst: p50 / last start", f"{spread['p50_ms']} / {spread['last_start_ms']} ms"],
        ["burst: runs per node", str(spread["by_node"])],
        [
            f"takeover after kill -9, {swap['trials']} trials: p50 / max",
            f"{swap['p50_s']} / {swap['max_s']} s (lease {swap['lease_s']} s)",
        ],
    ]
    report(
        "cluster", ["measure", "value"], rows, {"claims": costs, "burst": spread, "takeover": swap}
    )


if __name__ == "__main__":
    main()
