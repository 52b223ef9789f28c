"""Spawn overhead of containment: what a cgroup or the subreaper adds to each run.

    python bench/spawn_overhead.py [--runs 300]

Runs `/bin/true` through a real Runner, one at a time, with each mechanism in turn
(interleaved, so that a noisy neighbour hurts them alike): `none` is a bare Popen
with nothing around it, the runner as it was before runs were contained. `spawn`
is the time `Runner.start` takes (group made and joined, fork, group left, limit
set); `cycle` runs from the start to the result (the leader reaped, the group found
empty and removed). Cgroups need root and a writable memory cgroup, else they are
left out.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from typing import Callable, Optional

from common import median, percentile, report

from cronplus.clock import SystemClock
from cronplus.containment import Containment
from cronplus.containment.cgroup_v1 import CgroupV1
from cronplus.containment.cgroup_v2 import CgroupV2
from cronplus.containment.subreaper import Subreaper
from cronplus.model import Job, ScheduleKind, ScheduleSpec
from cronplus.runner import Runner, RunResult

INSTANCE = "bench"


class Bare:
    """No containment at all: the process group alone, as before."""

    kind = "none"
    kernel_limits = False
    polled = False

    def spawn(
        self, run_id: int, start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[subprocess.Popen[bytes], Bare]:
        return start(), self

    path: Optional[str] = None

    def limit(self, limit: int) -> None:
        pass

    def signal(self, signum: int) -> None:
        pass

    def empty(self) -> bool:
        return True

    def usage(self) -> int:
        return 0

    def oom_kills(self) -> int:
        return 0

    def peak(self) -> Optional[int]:
        return None

    def release(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def describe(self) -> dict[str, str]:
        return {"mechanism": self.kind}

    def close(self) -> None:
        pass


def mechanisms() -> list[tuple[str, Containment, Optional[int]]]:
    found: list[tuple[str, Containment, Optional[int]]] = [("none", Bare(), None)]
    v2 = CgroupV2.detect()
    if v2 is not None:
        v2.prepare()
        found += [("cgroup-v2", v2, None), ("cgroup-v2 + memory_limit", v2, 256 << 20)]
    v1 = CgroupV1.detect(INSTANCE)
    if v1 is not None:
        found += [("cgroup-v1", v1, None), ("cgroup-v1 + memory_limit", v1, 256 << 20)]
    found.append(("subreaper", Subreaper(INSTANCE), None))
    return found


async def one_run(
    loop: asyncio.AbstractEventLoop, containment: Containment, job: Job, run_id: int
) -> tuple[float, float]:
    done: asyncio.Future[RunResult] = loop.create_future()
    runner = Runner(loop, SystemClock(), done.set_result, containment, INSTANCE)
    began = time.perf_counter()
    runner.start(run_id, job)
    spawned = time.perf_counter()
    await done
    return (spawned - began) * 1000, (time.perf_counter() - began) * 1000


async def measure(runs: int) -> list[list[object]]:
    loop = asyncio.get_running_loop()
    chosen = mechanisms()
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in chosen}
    jobs = {
        name: Job(
            name="bench",
            schedule=ScheduleSpec(ScheduleKind.CRON, ("* * * * *",)),
            timezone="UTC",
            command=("/bin/true",),
            memory_limit=limit,
        )
        for name, _, limit in chosen
    }
    try:
        for run_id in range(1, runs + 1):
            for name, containment, _ in chosen:
                spawn, cycle = await one_run(loop, containment, jobs[name], run_id)
                times[name][0].append(spawn)
                times[name][1].append(cycle)
    finally:
        for _, containment, _ in chosen:
            containment.close()
    base_spawn, base_cycle = median(times["none"][0]), median(times["none"][1])
    rows: list[list[object]] = []
    for name, (spawns, cycles) in times.items():
        rows.append(
            [
                name,
                f"{median(spawns):.3f}",
                f"{percentile(spawns, 0.9):.3f}",
                f"{median(spawns) - base_spawn:+.3f}",
                f"{median(cycles):.3f}",
                f"{percentile(cycles, 0.9):.3f}",
                f"{median(cycles) - base_cycle:+.3f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.runs))
    headers = [
        "mechanism",
        "spawn ms",
        "p90",
        "vs none",
        "cycle ms",
        "p90",
        "vs none",
    ]
    summary = {
        "runs": args.runs,
        "median_ms": {
            str(r[0]): {"spawn": float(str(r[1])), "cycle": float(str(r[4]))} for r in rows
        },
    }
    report("spawn overhead", headers, rows, summary)


if __name__ == "__main__":
    main()
