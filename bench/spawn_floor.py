"""The machine's floor: how fast can any process here start 1,000 tiny programs?

    python bench/spawn_floor.py [--count 1000] [--repeat 5] [--ballast 64]

Each program is the tiny C program of `lateness.py`: it reads CLOCK_REALTIME first
thing and appends it to a file.  A burst's figure is the time from just before the
first spawn to the first instruction of the last program (as `burst.py` measures
cronplus: from the due instant to the last first instruction).  The spawners:

- `python fork+exec`: os.fork then os.execv, one after the other;
- `python posix_spawn`: os.posix_spawn;
- `python subprocess (vfork)` / `(fork)`: subprocess.Popen with and without vfork;
- `C fork+exec`, `C vfork+exec`, `C posix_spawn`: a small C spawner compiled here;
- `C vfork+exec, 2 spawners` / `python posix_spawn, 2 spawners`: two processes, half each;
- `python fork+exec, big process`: the same, from a process holding `--ballast` MiB of
  Python objects (the daemon's size with 10,000 jobs), whose page tables each fork copies;
- `fork server (python)`: that big process asks a small process, forked from it before
  it grew, to fork+exec each program (one request a program, over a pipe);
- `C fork+exec + cgroup`: the C spawner, each child joining a fresh cgroup of its own
  before exec (as every cronplus run does), where a v1 memory or v2 cgroup is writable.

Worst and median of `--repeat` bursts.  A table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from common import median, report, status_field
from lateness import build_stamp

SPAWNER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
/* spawner MODE FIRST COUNT PROGRAM OUT [CGROUP_DIR]: MODE fork | vfork | posix_spawn */
int main(int argc, char **argv) {
    const char *mode = argv[1], *prog = argv[4], *out = argv[5];
    const char *cgroups = argc > 6 ? argv[6] : NULL;
    int first = atoi(argv[2]), count = atoi(argv[3]);
    char name[32], dir[4096], procs[4200];
    for (int i = first; i < first + count; i++) {
        snprintf(name, sizeof name, "j%d", i);
        char *args[] = {(char *)prog, name, (char *)out, NULL};
        pid_t pid;
        if (cgroups) {
            snprintf(dir, sizeof dir, "%s/run-%d", cgroups, i);
            if (mkdir(dir, 0755) != 0) { perror(dir); return 1; }
            snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        }
        if (strcmp(mode, "posix_spawn") == 0) {
            if (posix_spawn(&pid, prog, NULL, NULL, args, environ) != 0) return 1;
            continue;
        }
        pid = strcmp(mode, "vfork") == 0 ? vfork() : fork();
        if (pid == 0) {
            if (cgroups) {
                int fd = open(procs, O_WRONLY);
                if (fd < 0 || write(fd, "0", 1) != 1) _exit(126);
                close(fd);
            }
            setsid();
            execve(prog, args, environ);
            _exit(127);
        }
        if (pid < 0) return 1;
    }
    while (wait(NULL) > 0) {}
    return 0;
}
"""


def build_spawner(directory: Path) -> Path:
    source, binary = directory / "spawner.c", directory / "spawner"
    source.write_text(SPAWNER_C)
    subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def last_start(out: Path, began: float, count: int) -> float:
    """Seconds from `began` to the latest first instruction, once all `count` have written."""
    deadline = time.monotonic() + 30
    while True:
        lines = out.read_text().splitlines() if out.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if len(lines) < count:
        raise RuntimeError(f"only {len(lines)} of {count} programs ran")
    return max(float(line.split()[1]) for line in lines) - began


def reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


Spawn = Callable[[Path, Path, int, int], None]  # (program, out, first, count)


def py_fork_exec(stamp: Path, out: Path, first: int, count: int) -> None:
    path, target = str(stamp), str(out)
    for i in range(first, first + count):
        if os.fork() == 0:
            try:
                os.setsid()
                os.execv(path, [path, f"j{i}", target])
            finally:
                os._exit(127)


def py_posix_spawn(stamp: Path, out: Path, first: int, count: int) -> None:
    path, target, environ = str(stamp), str(out), dict(os.environ)
    for i in range(first, first + count):
        os.posix_spawn(path, [path, f"j{i}", target], environ, setsid=True)


def py_subprocess(vfork: bool) -> Spawn:
    def spawn(stamp: Path, out: Path, first: int, count: int) -> None:
        saved = getattr(subprocess, "_USE_VFORK", None)
        if saved is not None:
            subprocess._USE_VFORK = vfork  # type: ignore[attr-defined]
        try:
            kept = []
            for i in range(first, first + count):
                kept.append(
                    subprocess.Popen(
                        [str(stamp), f"j{i}", str(out)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            for process in kept:
                process.wait()
        finally:
            if saved is not None:
                subprocess._USE_VFORK = saved  # type: ignore[attr-defined]

    return spawn


def c_spawner(binary: Path, mode: str, cgroups: Optional[Path] = None) -> Spawn:
    def spawn(stamp: Path, out: Path, first: int, count: int) -> None:
        extra = [str(cgroups)] if cgroups is not None else []
        argv = [str(binary), mode, str(first), str(count), str(stamp), str(out), *extra]
        subprocess.run(argv, check=True)

    return spawn


def in_parallel(spawn: Spawn, spawners: int) -> Spawn:
    """`spawners` processes, forked before the clock starts, each spawning its share."""

    def run(stamp: Path, out: Path, first: int, count: int) -> None:
        share = count // spawners
        for k in range(spawners):
            if os.fork() == 0:
                code = 0
                try:
                    mine = share if k < spawners - 1 else count - k * share
                    spawn(stamp, out, first + k * share, mine)
                    reap_all()
                except BaseException:
                    code = 1
                os._exit(code)

    return run


class ForkServer:
    """A small process, forked before the caller grew, that fork+execs what it is asked."""

    def __init__(self) -> None:
        requests, self.requests = os.pipe()
        if os.fork() == 0:
            os.close(self.requests)
            self._serve(requests)
        os.close(requests)

    @staticmethod
    def _serve(fd: int) -> None:
        code = 0
        try:
            with os.fdopen(fd, "rb", buffering=65536) as pipe:
                for line in pipe:
                    path, name, out = line.decode().split()
                    if os.fork() == 0:
                        try:
                            os.setsid()
                            os.execv(path, [path, name, out])
                        finally:
                            os._exit(127)
                    while True:  # reap what has ended; never block
                        try:
                            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                                break
                        except ChildProcessError:
                            break
            reap_all()
        except BaseException:
            code = 1
        os._exit(code)

    def spawn(self, stamp: Path, out: Path, first: int, count: int) -> None:
        for i in range(first, first + count):
            os.write(self.requests, f"{stamp} j{i} {out}\n".encode())

    def close(self) -> None:
        os.close(self.requests)


def writable_cgroup(work: Path) -> Optional[Path]:
    """A fresh directory for the runs' cgroups under this process's v1 memory or v2 group."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from cronplus.containment.cgroup import mount_point, own_path

    for fstype, controller in (("cgroup2", ""), ("cgroup", "memory")):
        mount, own = mount_point(fstype, controller), own_path(controller)
        if mount is None or own is None:
            continue
        home = Path(mount) / own.lstrip("/")
        if not os.access(home, os.W_OK):
            continue
        candidate = home / f"spawn-floor-{os.getpid()}"
        try:
            candidate.mkdir()
        except OSError:
            continue
        return candidate
    return None


def clear_cgroups(directory: Path) -> None:
    for child in directory.glob("run-*"):
        for _ in range(100):
            try:
                child.rmdir()
                break
            except OSError:
                time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ballast", type=int, default=64, help="MiB the big process holds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spawn-floor-"))
    work.chmod(0o755)
    stamp = build_stamp(work)
    spawner = build_spawner(work)
    server = ForkServer()  # before the ballast: it stays small
    cgroups = writable_cgroup(work)
    ways: list[tuple[str, Spawn]] = [
        ("python fork+exec", py_fork_exec),
        ("python posix_spawn", py_posix_spawn),
        ("python subprocess (vfork)", py_subprocess(True)),
        ("python subprocess (fork)", py_subprocess(False)),
        ("C fork+exec", c_spawner(spawner, "fork")),
        ("C vfork+exec", c_spawner(spawner, "vfork")),
        ("C posix_spawn", c_spawner(spawner, "posix_spawn")),
        ("C vfork+exec, 2 spawners", in_parallel(c_spawner(spawner, "vfork"), 2)),
        ("python posix_spawn, 2 spawners", in_parallel(py_posix_spawn, 2)),
    ]
    if cgroups is not None:
        ways.append(("C fork+exec + cgroup", c_spawner(spawner, "fork", cgroups)))
    ballast: list[object] = []
    big = [("python fork+exec, big process", py_fork_exec), ("fork server (python)", server.spawn)]
    results: dict[str, list[float]] = {}
    try:
        for repeat in range(args.repeat):
            turn = repeat % len(ways)  # each spawner in another place of the order
            order = ways[turn:] + ways[:turn]
            for name, spawn in order:
                results.setdefault(name, []).append(one(spawn, stamp, work, args.count))
                if cgroups is not None and "cgroup" in name:
                    clear_cgroups(cgroups)
        while status_field(os.getpid(), "VmRSS") < args.ballast << 10:  # kB
            ballast.extend({"n": n} for n in range(10000))
        for _ in range(args.repeat):
            for name, spawn in big:
                results.setdefault(name, []).append(one(spawn, stamp, work, args.count))
    finally:
        server.close()
        reap_all()
        if cgroups is not None:
            clear_cgroups(cgroups)
            cgroups.rmdir()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    summary: dict[str, object] = {"count": args.count, "repeat": args.repeat}
    floor = min(max(times) for times in results.values())
    for name, times in results.items():
        worst, mid = max(times) * 1000, median(times) * 1000
        rows.append([name, f"{mid:.0f}", f"{worst:.0f}", f"{worst / (floor * 1000):.2f}"])
        summary[name] = {"median_ms": round(mid, 1), "worst_ms": round(worst, 1)}
    summary["floor_worst_ms"] = round(floor * 1000, 1)
    report(
        "spawn floor",
        ["spawner", f"last of {args.count} ms (median)", "worst", "x floor"],
        rows,
        summary,
    )
    del ballast


def one(spawn: Spawn, stamp: Path, work: Path, count: int) -> float:
    out = work / "stamps"
    out.unlink(missing_ok=True)
    began = time.time()
    spawn(stamp, out, 0, count)
    figure = last_start(out, began, count)
    reap_all_children_except_server()
    return figure


def reap_all_children_except_server() -> None:
    """Reap what has ended (the fork server lives on: never wait for it)."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


if __name__ == "__main__":
    main()
