"""A delegated cgroup v2 subtree (systemd `Delegate=yes`).

No process may sit beside child groups in v2, so the daemon first moves to a
leaf, `daemon`, and runs get siblings, `run-<id>`, with `memory.max`,
`memory.swap.max` 0 and `memory.oom.group`, so the kernel's OOM killer takes
the whole run, not one process of it.
"""

from __future__ import annotations

import os
from typing import Optional

from .cgroup import CgroupTree, Dialect, mount_point, own_path, write

V2 = Dialect(
    version="v2",
    controller="",
    join_file="cgroup.procs",
    limit_files=("memory.max",),
    limit_extras=(("memory.swap.max", "0"), ("memory.oom.group", "1")),
    oom_file="memory.events",
    peak_file="memory.peak",
    kill_file="cgroup.kill",
)


class CgroupV2(CgroupTree):
    def __init__(self, mount: str, base: str) -> None:
        super().__init__(mount, base, V2)

    @classmethod
    def detect(cls) -> Optional[CgroupV2]:
        """The daemon's own v2 cgroup, if it is writable and offers the memory controller."""
        mount = mount_point("cgroup2", "")
        own = own_path("")
        if mount is None or own is None:
            return None
        base = os.path.join(mount, own.lstrip("/"))
        if "memory" not in controllers(base):
            return None  # a hybrid host gives memory to v1; a plain v2 one may not delegate it
        if not os.access(os.path.join(base, "cgroup.subtree_control"), os.W_OK):
            return None
        return cls(mount, base)

    def prepare(self) -> None:
        """Move the daemon to a leaf and hand the memory controller to the runs' groups."""
        leaf = os.path.join(self.runs, "daemon")
        os.makedirs(leaf, exist_ok=True)
        with open(os.path.join(self.runs, "cgroup.procs")) as procs:
            pids = procs.read().split()
        for pid in pids:
            try:
                write(os.path.join(leaf, "cgroup.procs"), pid)
            except OSError:
                continue  # a process that ended or cannot move stays
        if "memory" in controllers(self.runs):
            write(os.path.join(self.runs, "cgroup.subtree_control"), "+memory")


def controllers(path: str) -> list[str]:
    try:
        with open(os.path.join(path, "cgroup.controllers")) as handle:
            return handle.read().split()
    except OSError:
        return []
