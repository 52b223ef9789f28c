"""Keeping each run's processes together, so that none escapes its limits.

A child that calls setsid() or forks twice leaves its process group, so a
process group cannot be what a timeout, a replace, a shutdown or a memory
limit acts on.  `choose` takes the best the kernel offers:

1. a delegated cgroup v2 (`cgroup_v2`), memory limit and OOM group by the kernel;
2. the cgroup v1 memory controller under the daemon's own memory cgroup
   (`cgroup_v1`), where that is what the host offers and it is writable;
3. elsewhere, or with `daemon.cgroups: off`, the daemon as child subreaper
   tracking every descendant through /proc (`subreaper`), memory by the
   runner's watchdog.

Every run is contained, with or without a memory limit, and a run lasts until
its last process ends: a process that outlives the leader still counts against
the job's caps, timeout and memory limit, and is stopped with the run.

**Born inside.** A run must be in its group from its first instruction; one
joined after `Popen` returns (after exec) could already have forked a child
that stays outside.  The spawning thread therefore joins the run's group for
the fork and leaves it right after (`tasks` in v1 moves that one thread,
`cgroup.procs` in v2 the daemon process), under a lock so that births do not
interleave; the child inherits the group at fork.  The memory limit is written
only after the daemon is back in its own group, so the daemon is never held to
a run's limit and never OOM-killed in it; v1 refuses a limit below what the
group already holds, and the run is then stopped as `memory-limit`.  Rejected:
a `preexec_fn` that writes the child's pid (unsafe in a threaded daemon, and it
takes subprocess off its vfork path); clone3 with CLONE_INTO_CGROUP (v2 only,
not reachable from subprocess); a wrapper that joins the group and execs the
command (one more exec per run, and the job's user could not write the file).
Joining and leaving cost two small writes per run.
"""

from __future__ import annotations

from typing import Callable

from .base import Containment, OverLimit, RunGroup
from .cgroup import discard_group
from .cgroup_v1 import CgroupV1
from .cgroup_v2 import CgroupV2
from .identity import LostRun, leftover_processes
from .procfs import boot_id, process_start_ticks
from .subreaper import Subreaper

MODES = ("auto", "off")


def choose(
    mode: str, instance: str, warn: Callable[[str], None] = lambda _: None, group: str = ""
) -> Containment:
    """`auto`: v2 delegated, else v1 memory, else the subreaper; `off`: the subreaper.

    `warn` hears of a cgroup that looked usable and was not.  `group` names the v1
    group when `instance` may be shared by several daemons of one host (cluster nodes).
    """
    if mode == "auto":
        v2 = CgroupV2.detect()
        if v2 is not None:
            try:
                v2.prepare()
                v2.check()
                return v2
            except OSError as exc:
                warn(f"cgroup v2 at {v2.runs} unusable: {exc.strerror or exc}")
        v1 = CgroupV1.detect(group or instance)
        if v1 is not None:
            return v1
    return Subreaper(instance)


__all__ = [
    "MODES",
    "Containment",
    "LostRun",
    "OverLimit",
    "RunGroup",
    "boot_id",
    "choose",
    "discard_group",
    "leftover_processes",
    "process_start_ticks",
]
