"""Bursts: 1,000 jobs due at one instant, every one started within a second?

    python bench/burst.py [--jobs 1000] [--bursts 5] [--period 15] [--no-cron]
                          [--no-floor] [--profile FILE] [--spawner auto|off]

Each job runs the tiny C program of `lateness.py`, which reads CLOCK_REALTIME first
thing and appends it to a file.  The daemon runs `--jobs` jobs due every `--period`
seconds (a seconds field), so it sees `--bursts` bursts in one run; a burst's figure
is the time from its instant to the first instruction of its last run (and p50, p99
over its runs).  The worst of the bursts is the figure that counts.  Beside it, in
the same run: the machine's floor (the C spawner of `spawn_floor.py` starting the
same programs, vfork+exec one after the other; and with a cgroup per program where
one can be made), and Debian cron with the same jobs at one whole minute (cron knows
no seconds; one burst, needs root; `--no-cron` leaves it out).  cronplus runs with
`max_workers` equal to the jobs, as cron has no cap.  `--profile FILE` runs the
daemon under cProfile and writes its statistics to FILE.
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


def cronplus_bursts(
    stamp: Path, jobs: int, bursts: int, period: int, profile: Optional[str], spawner: Optional[str]
) -> list[dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="cronplus-burst-"))
    work.chmod(0o755)
    out = work / "stamps"
    spawning = f", spawner: {spawner}" if spawner else ""
    lines = [f"daemon: {{max_workers: {jobs}{spawning}}}", "jobs:"]
    lines += [
        f'  j{i}: {{schedule: "* * * * * */{period}", command: ["{stamp}", "j{i}", "{out}"]}}'
        for i in range(jobs)
    ]
    daemon = Daemon("\n".join(lines) + "\n", work)
    if profile:
        daemon_argv_profile(daemon, profile)
    try:
        daemon.start()
        first = math.floor(time.time() / period) * period + period
        if first - time.time() < 2:  # time to settle after the start
            first += period
        last = first + period * (bursts - 1)
        time.sleep(max(0.0, last + period - 2 - time.time()))
        records = stamps(out)
    finally:
        daemon.remove() if not profile else stop_profiled(daemon)
    figures = []
    for k in range(bursts):
        instant = first + k * period
        late = [moment - instant for _, moment in records if instant <= moment < instant + period]
        figures.append(
            {
                "runs": len(late),
                "p50_ms": round(median(late) * 1000, 1),
                "p99_ms": round(percentile(late, 0.99) * 1000, 1),
                "last_ms": round(max(late) * 1000, 1) if late else float("nan"),
                "first_ms": round(min(late) * 1000, 1) if late else float("nan"),
                "gap_ms": round(max_gap(late) * 1000, 1),
            }
        )
    return figures


def max_gap(moments: list[float]) -> float:
    """The longest pause between two starts of a burst: a stall, not a slow pace."""
    ordered = sorted(moments)
    return max((b - a for a, b in zip(ordered, ordered[1:])), default=0.0)


def daemon_argv_profile(daemon: Daemon, profile: str) -> None:
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


def stop_profiled(daemon: Daemon) -> None:
    daemon.stop()
    shutil.rmtree(daemon.dir, ignore_errors=True)


def floor(stamp: Path, jobs: int, bursts: int, cgroup: bool) -> list[float]:
    """The C spawner starting the same programs, vfork+exec (fork+exec and a cgroup each)."""
    work = Path(tempfile.mkdtemp(prefix="burst-floor-"))
    spawner = build_spawner(work)
    cgroups = writable_cgroup(work) if cgroup else None
    if cgroup and cgroups is None:
        return []
    figures = []
    try:
        for _ in range(bursts):
            out = work / "stamps"
            out.unlink(missing_ok=True)
            mode = "fork" if cgroups is not None else "vfork"
            extra = [str(cgroups)] if cgroups is not None else []
            began = time.time()
            subprocess.run(
                [str(spawner), mode, "0", str(jobs), str(stamp), str(out), *extra], check=True
            )
            figures.append(round(last_start(out, began, jobs) * 1000, 1))
            if cgroups is not None:
                clear_cgroups(cgroups)
    finally:
        if cgroups is not None:
            cgroups.rmdir()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--period", type=int, default=10, help="seconds between bursts")
    parser.add_argument("--no-cron", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--profile", help="write the daemon's cProfile statistics here")
    parser.add_argument(
        "--spawner", default="auto,off", help="daemon.spawner of each daemon, one after the other"
    )
    args = parser.parse_args()
    build = Path(tempfile.mkdtemp(prefix="stamp-"))
    build.chmod(0o755)
    stamp = build_stamp(build)
    rows: list[list[object]] = []
    summary: dict[str, object] = {"jobs": args.jobs, "bursts": args.bursts}
    floors = {}
    if not args.no_floor:
        floors["floor: vfork+exec"] = floor(stamp, args.jobs, args.bursts, False)
        floors["floor: fork+exec + cgroup"] = floor(stamp, args.jobs, args.bursts, True)
    worst_of: dict[str, float] = {}
    for spawner in args.spawner.split(","):
        mine = cronplus_bursts(stamp, args.jobs, args.bursts, args.period, args.profile, spawner)
        worst = max(f["last_ms"] for f in mine)
        worst_of[spawner] = worst
        for k, figure in enumerate(mine):
            rows.append(
                [
                    f"cronplus, spawner: {spawner}",
                    k + 1,
                    *(figure[key] for key in ("runs", "p50_ms", "p99_ms", "last_ms")),
                    *(figure[key] for key in ("first_ms", "gap_ms")),
                    "",
                ]
            )
        summary[f"cronplus_spawner_{spawner}"] = {"bursts": mine, "worst_last_ms": worst}
    for name, figures in floors.items():
        if figures:
            rows.append(
                [name, f"worst of {len(figures)}", args.jobs, "", "", max(figures), "", "", ""]
            )
            summary[name] = {"worst_last_ms": max(figures), "median_last_ms": median(figures)}
    base = max(floors["floor: vfork+exec"]) if floors.get("floor: vfork+exec") else None
    for spawner, worst in worst_of.items():
        if base:
            summary[f"cronplus_spawner_{spawner}_vs_floor"] = round(worst / base, 2)
            rows.append(
                [
                    f"cronplus, spawner: {spawner}: worst / floor",
                    "",
                    "",
                    "",
                    "",
                    worst,
                    "",
                    "",
                    f"{worst / base:.2f}",
                ]
            )
    if not args.no_cron:
        cron = cron_minutes(ensure_cron(), stamp, args.jobs, 1)
        rows.append(
            [
                "Debian cron",
                "1 (whole minute)",
                cron["runs"],
                cron["p50_ms"],
                cron["p99_ms"],
                cron["max_ms"],
                "",
                "",
                "",
            ]
        )
        summary["cron"] = cron
    shutil.rmtree(build, ignore_errors=True)
    report(
        "burst",
        ["who", "burst", "runs", "p50 ms", "p99 ms", "last ms", "first ms", "gap ms", "ratio"],
        rows,
        summary,
    )


if __name__ == "__main__":
    main()
