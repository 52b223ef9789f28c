"""Bursts: 1,000 jobs due at one instant, every one started within a second?

    python bench/burst.py [--jobs 1000] [--bursts 5] [--period 12] [--spawner auto,off]
                          [--no-floor] [--no-cron] [--profile FILE] [--user NAME]

Each job runs the tiny C program of `lateness.py`, which reads CLOCK_REALTIME first
thing and appends it to a file.  One daemon per `--spawner` value (`daemon.spawner`)
runs `--jobs` jobs due every `--period` seconds (a seconds field), each daemon at its
own offset in the period, and the machine's floor takes its turn in between: the C
spawner of `spawn_floor.py` starting the same programs one after the other, vfork+exec,
and fork+exec with a cgroup per program where one can be made.  So every contender
sees the same neighbours on a shared machine, burst after burst.  A burst's figure is
the time from its instant to the first instruction of its last program (and p50, p99
over its programs); the worst of `--bursts` is the figure that counts, beside the
floor's worst.  Then Debian cron with the same jobs at one whole minute (cron knows no
seconds; one burst; needs root; `--no-cron` leaves it out).  cronplus runs with
`max_workers` equal to the jobs, as cron has no cap.  `--user NAME` runs every job as
that user (a fork where there was a vfork).  `--profile FILE` runs the first
daemon under cProfile and writes its statistics to FILE.  A table and one JSON line.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from common import Daemon, median, percentile, report
from lateness import build_stamp, cron_minutes, ensure_cron, stamps
from spawn_floor import build_spawner, clear_cgroups, last_start, writable_cgroup


def start_daemon(
    stamp: Path,
    jobs: int,
    period: int,
    offset: int,
    spawner: str,
    profile: Optional[str],
    user: Optional[str],
) -> tuple[Daemon, Path]:
    work = Path(tempfile.mkdtemp(prefix="cronplus-burst-"))
    work.chmod(0o755)
    out = work / "stamps"
    out.touch()
    out.chmod(0o666)  # a job's user may not be the daemon's
    as_user = f", user: {user}, workdir: /" if user else ""
    lines = [f"daemon: {{max_workers: {jobs}, spawner: {spawner}}}", "jobs:"]
    seconds = f"{offset}-59/{period}"
    lines += [
        f'  j{i}: {{schedule: "* * * * * {seconds}", command: ["{stamp}", "j{i}", "{out}"]'
        f"{as_user}}}"
        for i in range(jobs)
    ]
    daemon = Daemon("\n".join(lines) + "\n", work)
    if profile:
        profiled(daemon, profile)
    daemon.start()
    return daemon, out


def figures_of(moments: list[float], instant: float) -> dict[str, float]:
    late = [moment - instant for moment in moments]
    return {
        "runs": len(late),
        "p50_ms": round(median(late) * 1000, 1),
        "p99_ms": round(percentile(late, 0.99) * 1000, 1),
        "last_ms": round(max(late) * 1000, 1) if late else float("nan"),
        "first_ms": round(min(late) * 1000, 1) if late else float("nan"),
        "gap_ms": round(max_gap(late) * 1000, 1),
    }


def max_gap(moments: list[float]) -> float:
    """The longest pause between two starts of a burst: a stall, not a slow pace."""
    ordered = sorted(moments)
    return max((b - a for a, b in zip(ordered, ordered[1:])), default=0.0)


def profiled(daemon: Daemon, profile: str) -> None:
    """Start this daemon under cProfile (its statistics are written when it stops)."""
    original = daemon.start

    def start(timeout: float = 120) -> Daemon:
        real_popen = subprocess.Popen

        def popen(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
            argv = [argv[0], "-m", "cProfile", "-o", profile, *argv[1:]]
            return real_popen(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

        subprocess.Popen = popen  # type: ignore[assignment,misc]
        try:
            return original(timeout)
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]

    daemon.start = start  # type: ignore[method-assign]


class Floor:
    """The C spawner starting the same programs: vfork+exec, or fork+exec into a cgroup each."""

    def __init__(self, stamp: Path, jobs: int, cgroup: bool) -> None:
        self.stamp, self.jobs = stamp, jobs
        self.work = Path(tempfile.mkdtemp(prefix="burst-floor-"))
        self.spawner = build_spawner(self.work)
        self.cgroups = writable_cgroup(self.work) if cgroup else None
        self.usable = self.cgroups is not None or not cgroup

    def burst(self) -> dict[str, float]:
        out = self.work / "stamps"
        out.unlink(missing_ok=True)
        mode = "fork" if self.cgroups is not None else "vfork"
        extra = [str(self.cgroups)] if self.cgroups is not None else []
        began = time.time()
        argv = [str(self.spawner), mode, "0", str(self.jobs), str(self.stamp), str(out), *extra]
        subprocess.run(argv, check=True)
        last_start(out, began, self.jobs)  # waits for all of them
        figures = figures_of([moment for _, moment in stamps(out)], began)
        if self.cgroups is not None:
            clear_cgroups(self.cgroups)
        return figures

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.rmdir()
        shutil.rmtree(self.work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--period", type=int, default=12, help="seconds between two bursts")
    parser.add_argument("--spawner", default="auto,off", help="daemon.spawner of each daemon")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-cron", action="store_true")
    parser.add_argument("--profile", help="write the first daemon's cProfile statistics here")
    parser.add_argument("--user", help="every job runs as this user (the daemon as root)")
    args = parser.parse_args()
    build = Path(tempfile.mkdtemp(prefix="stamp-"))
    build.chmod(0o755)
    stamp = build_stamp(build)
    modes = args.spawner.split(",")
    floors = (
        [] if args.no_floor else [Floor(stamp, args.jobs, False), Floor(stamp, args.jobs, True)]
    )
    floors = [f for f in floors if f.usable]
    slot = args.period // (len(modes) + len(floors))  # each contender's share of a period
    daemons = []
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for k, mode in enumerate(modes):
            profile = args.profile if k == 0 else None
            daemons.append(
                start_daemon(stamp, args.jobs, args.period, k * slot, mode, profile, args.user)
            )
        first = math.floor(time.time() / args.period) * args.period + args.period
        if first - time.time() < 3:  # the daemons settle after their start
            first += args.period
        for burst in range(args.bursts):
            base = first + burst * args.period
            for j, floor in enumerate(floors):
                time.sleep(max(0.0, base + (len(modes) + j) * slot - time.time()))
                name = "floor: vfork+exec" if floor.cgroups is None else "floor: fork+exec + cgroup"
                results.setdefault(name, []).append(floor.burst())
        time.sleep(max(0.0, first + args.bursts * args.period - time.time()))
        for k, (mode, (_, out)) in enumerate(zip(modes, daemons)):
            records = stamps(out)
            for burst in range(args.bursts):
                instant = first + burst * args.period + k * slot
                moments = [m for _, m in records if instant <= m < instant + args.period]
                results.setdefault(f"cronplus, spawner: {mode}", []).append(
                    figures_of(moments, instant)
                )
    finally:
        for daemon, _ in daemons:
            daemon.remove()
        for floor in floors:
            floor.close()
    rows: list[list[object]] = []
    summary: dict[str, object] = {"jobs": args.jobs, "bursts": args.bursts, "user": args.user}
    worst = {name: max(f["last_ms"] for f in bursts) for name, bursts in results.items()}
    base = worst.get("floor: vfork+exec")
    for name, bursts in results.items():
        for k, f in enumerate(bursts):
            values = [
                f[key] for key in ("runs", "p50_ms", "p99_ms", "last_ms", "first_ms", "gap_ms")
            ]
            rows.append([name, k + 1, *values, ""])
        ratio = round(worst[name] / base, 2) if base else None
        rows.append([name, "worst", "", "", "", worst[name], "", "", ratio or ""])
        summary[name] = {"bursts": bursts, "worst_last_ms": worst[name], "vs_floor": ratio}
    if not args.no_cron:
        cron = cron_minutes(ensure_cron(), stamp, args.jobs, 1)
        rows.append(
            [
                "Debian cron",
                "1 (a minute)",
                cron["runs"],
                cron["p50_ms"],
                cron["p99_ms"],
                cron["max_ms"],
                "",
                "",
                round(cron["max_ms"] / base, 2) if base else "",
            ]
        )
        summary["cron"] = cron
    shutil.rmtree(build, ignore_errors=True)
    report(
        "burst",
        ["who", "burst", "runs", "p50 ms", "p99 ms", "last ms", "first ms", "gap ms", "x floor"],
        rows,
        summary,
    )


if __name__ == "__main__":
    main()
