"""Which jobs follow which (`after:`): the graph and its checks.

Pure: the config reader checks that no chain comes back to where it started;
the daemon's chain watcher reads who follows whom.
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import After, Job

Followers = dict[str, list[tuple[str, After]]]  # job -> (follower, how it follows)


def followers_of(jobs: Mapping[str, Job]) -> Followers:
    """For each job, the jobs that run after it, in name order."""
    out: Followers = {}
    for name in sorted(jobs):
        for after in jobs[name].after:
            out.setdefault(after.job, []).append((name, after))
    return out


def cycles(edges: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Each cycle of `follower -> the jobs it follows`, once, as a path that ends where it
    starts (`[a, b, a]`: a follows b, b follows a), starting at its smallest name."""
    found: dict[frozenset[str], list[str]] = {}
    done: set[str] = set()

    def visit(start: str) -> None:
        path: list[str] = [start]
        on_path = {start: 0}
        stack = [iter(sorted(edges.get(start, ())))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                done.add(path[-1])
                del on_path[path.pop()]
                continue
            if following in on_path:
                loop = path[on_path[following] :]
                first = loop.index(min(loop))
                loop = loop[first:] + loop[:first]
                found.setdefault(frozenset(loop), [*loop, loop[0]])
            elif following not in done and following in edges:
                on_path[following] = len(path)
                path.append(following)
                stack.append(iter(sorted(edges.get(following, ()))))

    for name in sorted(edges):
        if name not in done:
            visit(name)
    return sorted(found.values())
