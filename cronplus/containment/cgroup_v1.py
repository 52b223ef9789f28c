"""The cgroup v1 memory controller, where that is what the host offers.

Each run gets `<the daemon's own memory cgroup>/cronplus-<instance>/run-<id>`:
`memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` with the same value
where swap is accounted, so swap cannot stretch the limit.  v1 has no
`cgroup.kill` and its OOM killer takes one process, not the group: the runner
reads the `oom_kill` counter and stops the rest itself.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

from .cgroup import CgroupTree, Dialect, mount_point, own_path

V1 = Dialect(
    version="v1",
    controller="memory",
    join_file="tasks",
    limit_files=("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
    limit_extras=(),
    oom_file="memory.oom_control",
    peak_file="memory.max_usage_in_bytes",
    kill_file=None,
)


class CgroupV1(CgroupTree):
    def __init__(self, mount: str, runs: str) -> None:
        super().__init__(mount, runs, V1)

    @classmethod
    def detect(cls, instance: str) -> Optional[CgroupV1]:
        """Under the daemon's own v1 memory cgroup, when it may make groups there."""
        mount = mount_point("cgroup", "memory")
        own = own_path("memory")
        if mount is None or own is None:
            return None
        home = os.path.join(mount, own.lstrip("/"))
        if not os.access(home, os.W_OK):
            return None
        tree = cls(mount, os.path.join(home, f"cronplus-{instance}"))
        try:
            tree.check()
        except OSError:
            return None
        finally:
            tree.close()  # made again by the first run
        return tree

    def close(self) -> None:
        self._made = False
        with contextlib.suppress(OSError):  # runs that did not end keep it
            os.rmdir(self.runs)
