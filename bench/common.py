"""Shared pieces of the benchmarks: a daemon to measure, process counters, output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: the package beside bench/
    sys.path.insert(0, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env() -> dict[str, str]:
    """The children's environment: the checkout's package, with its bytecode cached as an
    installed package has it (a shell that forbids writing it would time the compiler)."""
    kept = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**kept, "PYTHONPATH": str(ROOT)}


class Daemon:
    """cronplus as a child process on a config the benchmark writes."""

    def __init__(self, config_text: str, workdir: Optional[Path] = None) -> None:
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="cronplus-bench-"))
        self.config = self.dir / "cronplus.yaml"
        self.config.write_text(config_text)
        self.state = self.dir / "state"
        self.log = self.dir / "daemon.log"
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 120) -> Daemon:
        argv = [
            sys.executable,
            "-m",
            "cronplus.daemon",
            "-c",
            str(self.config),
            "--state-dir",
            str(self.state),
            "--log-format",
            "json",
            "--log-level",
            "warning",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, env=env())
        deadline = time.monotonic() + timeout
        while not (self.state / "control.sock").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {self.log.read_text()}")
            time.sleep(0.01)
        return self

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "cronplus.ctl",
            "-c",
            str(self.config),
            "--state-dir",
            str(self.state),
        ]
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, env=env(), check=False
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def wakeups(pid: int) -> int:
    """Context switches of every thread: each is the process waking or being woken."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as status:
            for line in status:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    name: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], summary: dict[str, Any]
) -> None:
    """A table for people, then one JSON line for machines."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print(f"== {name}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(json.dumps({"bench": name, **summary}, sort_keys=True))


def many_jobs(count: int, schedule: str = "0 0 1 1 *", command: str = "true") -> str:
    """A config of `count` jobs, none due soon unless the schedule says so."""
    lines = ["daemon: {max_workers: 64, keep_runs: 1000000}", "jobs:"]
    for i in range(count):
        lines.append(f'  job-{i:05d}: {{schedule: "{schedule}", command: "{command}"}}')
    return "\n".join(lines) + "\n"
