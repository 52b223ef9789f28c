"""Three real daemons on one PostgreSQL server: each instant once, failover, fencing, catch-up.

Leases are 4 s here so that failures play out in seconds.  A long job appends
`RUN_ID TIME` lines to a file ten times a second while it lives; two copies of
one run overlapping would show as interleaved lines of two run ids.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from harness import Cluster, cluster_factory
from postgres import free_port
from test_end_to_end import child_env, ctl
from test_web import Browser, Dashboard

__all__ = ["cluster_factory"]

TICKS = """
jobs:
  tick: {schedule: "* * * * * *", command: "true"}
  local: {schedule: "* * * * * */2", command: "true", run_on: each}
"""


def long_job(marks: Path) -> str:
    loop = f'while :; do echo "$CRONPLUS_RUN_ID $(date +%s.%N)" >> {marks}; sleep 0.1; done'
    return f"""
jobs:
  long:
    schedule: "* * * * * */3"
    command: '{loop}'
    retries: 3
    retry_backoff: 1s
"""


def lifetimes(marks: Path) -> dict[int, tuple[float, float]]:
    """First and last mark of every run that wrote some."""
    spans: dict[int, tuple[float, float]] = {}
    for line in marks.read_text().splitlines():
        run, stamp = line.split()
        first, last = spans.get(int(run), (float(stamp), float(stamp)))
        spans[int(run)] = (min(first, float(stamp)), max(last, float(stamp)))
    return spans


def assert_never_overlapping(marks: Path) -> None:
    spans = sorted(lifetimes(marks).values())
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start > end, f"two runs of one job overlapped: {spans}"


def running_long(cluster: Cluster) -> list[tuple[int, str]]:
    return [
        (int(r[0]), str(r[1]))
        for r in cluster.query("SELECT id, node FROM runs WHERE job = 'long' AND state = 'running'")
    ]


def test_each_instant_runs_once_across_three_nodes(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(TICKS)
    for name in ("a", "b", "c"):
        cluster.add(name)
    cluster.start()
    time.sleep(12)
    a = cluster.nodes["a"]
    nodes = json.loads(ctl(a.dir, "nodes", "--json").stdout)
    assert [(n["node"], n["state"], n["same_config"]) for n in nodes] == [
        ("a", "alive", True),
        ("b", "alive", True),
        ("c", "alive", True),
    ]
    assert [n["node"] for n in nodes if n["this_node"]] == ["a"]
    history = json.loads(ctl(a.dir, "history", "tick", "--json").stdout)
    assert len({r["node"] for r in history}) >= 2  # every node's runs, from any node
    for node in cluster.nodes.values():
        node.signal(signal.SIGTERM)
    for node in cluster.nodes.values():
        assert node.wait_exit(30) == 0
    rows = cluster.query("SELECT job, scheduled, node, scope, state FROM runs ORDER BY scheduled")
    ticks = [r for r in rows if r[0] == "tick"]
    seconds = [int(r[1]) for r in ticks]
    assert Counter(seconds).most_common(1)[0][1] == 1  # no instant twice
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # none left out
    assert len(seconds) >= 8
    by_node = Counter(r[2] for r in ticks if r[4] == "succeeded")
    assert len(by_node) >= 2, by_node  # spread over the nodes, not all on one
    local = Counter(r[3] for r in rows if r[0] == "local")
    assert set(local) == {"a", "b", "c"}  # run_on: each: every node runs its own
    started = sum(d.events().count("run started") for d in cluster.nodes.values())
    recorded = cluster.query("SELECT count(*) FROM runs WHERE started IS NOT NULL")[0][0]
    assert started == recorded  # no start without its row
    states = cluster.query("SELECT name, state FROM nodes ORDER BY name")
    assert states == [("a", "left"), ("b", "left"), ("c", "left")]


def test_a_killed_node_is_declared_dead_and_its_run_retried_elsewhere(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    cluster = cluster_factory(long_job(marks))
    for name in ("a", "b", "c"):
        cluster.add(name)
    cluster.start()
    cluster.wait_for(lambda: bool(running_long(cluster)))
    [(run_id, node)] = running_long(cluster)
    victim = cluster.nodes[node].process
    assert victim is not None
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    cluster.wait_for(lambda: any(n != node for _, n in running_long(cluster)), timeout=20)
    takeover = time.monotonic() - killed
    lost = cluster.query("SELECT state, reason FROM runs WHERE id = %s", run_id)[0]
    assert lost == ("lost", f"lost: node {node} stopped renewing its lease")
    retried = cluster.query(
        "SELECT node, attempt, first_run FROM runs WHERE job = 'long' AND state = 'running'"
    )
    assert retried[0][0] != node
    time.sleep(1)
    assert_never_overlapping(marks)
    print(f"takeover after kill -9: {takeover:.1f} s (lease 4 s)", file=sys.stderr)
    assert takeover < 4 + 5


def test_a_stopped_node_fences_itself_before_another_takes_over(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    cluster = cluster_factory(long_job(marks))
    for name in ("a", "b"):
        cluster.add(name)
    cluster.start()
    cluster.wait_for(lambda: bool(running_long(cluster)))
    [(_, node)] = running_long(cluster)
    frozen = cluster.nodes[node]
    frozen.signal(signal.SIGSTOP)  # the daemon stops; its run's processes do not
    cluster.wait_for(lambda: any(n != node for _, n in running_long(cluster)), timeout=20)
    frozen.signal(signal.SIGCONT)
    time.sleep(3)
    assert_never_overlapping(marks)
    assert frozen.process is not None and frozen.process.poll() is None  # it lives on
    cluster.wait_for(
        lambda: (
            "joined the cluster" in frozen.events()[-40:]
            or frozen.events().count("joined the cluster") >= 2
        ),
        timeout=20,
    )


def test_a_node_cut_off_from_the_store_fences_itself_and_runs_its_own_jobs_on(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    local = '  local: {schedule: "* * * * * *", command: "true", run_on: each}\n'
    cluster = cluster_factory(long_job(marks) + local)
    cluster.add("a", through_proxy=True)
    cluster.add("b")
    cluster.start("a")
    cluster.wait_for(lambda: running_long(cluster) != [])
    assert running_long(cluster)[0][1] == "a"
    cluster.start("b")
    time.sleep(1)
    cluster.proxies["a"].cut()
    cluster.wait_for(lambda: any(n == "b" for _, n in running_long(cluster)), timeout=20)
    node_a = cluster.nodes["a"]
    assert "cannot reach the cluster's store" in node_a.events()
    locally = sum(1 for r in node_a.records("run started") if r["job"] == "local")
    node_a.wait_for(
        lambda: sum(1 for r in node_a.records("run started") if r["job"] == "local") >= locally + 3
    )  # run_on: each goes on without the store
    time.sleep(1)
    assert_never_overlapping(marks)
    cluster.proxies["a"].heal()
    cluster.wait_for(
        lambda: (
            cluster.query("SELECT count(*) FROM runs WHERE job = 'local' AND scope = 'a'")[0][0]
            >= locally + 3
        )
    )  # written once the store is back
    cluster.wait_for(lambda: node_a.events().count("joined the cluster") >= 2)


def test_instants_missed_while_the_whole_cluster_was_down_are_accounted_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Every node finds the gap when it starts; each instant gets one row, not one per node
    (the latest, reached within a minute, runs late; the others are missed)."""
    jobs = 'jobs:\n  five: {schedule: "* * * * * */5", command: "true", catch_up: once}\n'
    cluster = cluster_factory(jobs)
    for name in ("a", "b", "c"):
        cluster.add(name)
    cluster.start()
    cluster.wait_for(lambda: cluster.query("SELECT count(*) FROM runs")[0][0] >= 2)
    for node in cluster.nodes.values():
        node.signal(signal.SIGTERM)
    for node in cluster.nodes.values():
        node.wait_exit(30)
    time.sleep(12)  # two or three instants pass with every node down
    cluster.start()
    cluster.wait_for(
        lambda: cluster.query("SELECT count(*) FROM runs WHERE state = 'missed'")[0][0] >= 1
    )
    time.sleep(6)
    rows = cluster.query("SELECT scheduled, state, reason FROM runs ORDER BY scheduled")
    instants = [int(r[0]) for r in rows]
    assert Counter(instants).most_common(1)[0][1] == 1  # one row an instant, cluster-wide
    assert instants == list(range(instants[0], instants[-1] + 1, 5))  # and none left out
    missed = [r for r in rows if r[1] == "missed"]
    assert missed and all(r[2] == "missed: the daemon was down" for r in missed)


def test_a_database_restart_loses_no_claimed_run_and_starts_none_twice(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(TICKS, lease="10s")
    for name in ("a", "b"):
        cluster.add(name)
    cluster.start()
    time.sleep(3)
    cluster.server.restart()
    time.sleep(6)
    for node in cluster.nodes.values():
        node.signal(signal.SIGTERM)
    for node in cluster.nodes.values():
        assert node.wait_exit(30) == 0
    ticks = [int(r[0]) for r in cluster.query("SELECT scheduled FROM runs WHERE job = 'tick'")]
    assert Counter(ticks).most_common(1)[0][1] == 1
    started = sum(
        1 for d in cluster.nodes.values() for r in d.records("run started") if r["job"] == "tick"
    )
    recorded = cluster.query(
        "SELECT count(*) FROM runs WHERE job = 'tick' AND started IS NOT NULL"
    )[0][0]
    assert started == recorded


def test_bad_stores_are_messages(cluster_factory: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = cluster_factory(TICKS)
    first = cluster.add("a")
    first.start()
    twin = cluster.add("twin")
    twin.write(cluster.config("a"))  # a second node with the first one's name
    twin.start()
    twin.wait_for(lambda: "cannot join the cluster" in twin.events())
    [refusal] = twin.records("cannot join the cluster")
    assert 'node name "a" is held by another live node' in str(refusal["problem"])

    cluster.query("UPDATE schema_version SET version = 99")
    newer = subprocess.run(
        [
            sys.executable,
            "-m",
            "cronplus.daemon",
            "-c",
            str(tmp_path / "a" / "cronplus.yaml"),
            "--state-dir",
            str(tmp_path / "newer"),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert newer.returncode == 1 and "Traceback" not in newer.stderr
    assert "schema version 99 is newer than this cronplus understands" in newer.stderr


def test_check_and_reading_the_shared_history_with_the_daemon_down(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(TICKS)
    node = cluster.add("a")
    node.start()
    node.wait_for(lambda: node.events().count("run finished") >= 3)
    node.signal(signal.SIGTERM)
    assert node.wait_exit(30) == 0
    check = ctl(node.dir, "check")
    assert check.returncode == 0 and "answers" in check.stdout, check.stderr
    status = ctl(node.dir, "status", "--json")
    assert status.returncode == 3  # the daemon is down: read from the shared store
    assert {r["job"]: r["last"]["state"] for r in json.loads(status.stdout)}["tick"] == "succeeded"
    history = ctl(node.dir, "history", "tick", "-n", "2")
    assert history.returncode == 0 and "NODE" in history.stdout.splitlines()[0]

    wrong = tmp_path / "wrong-pgpass"
    wrong.write_text("*:*:*:cronplus:not-the-password\n")
    wrong.chmod(0o600)
    node.write(cluster.config("a").replace(str(cluster.passfile), str(wrong)))
    refused = ctl(node.dir, "check")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "password authentication failed" in refused.stderr

    node.write(cluster.config("a", port=free_port()))
    away = ctl(node.dir, "check")
    assert away.returncode == 0 and "warning: daemon.cluster.store" in away.stderr

    node.write(cluster.config("a").replace("cronplus@", "cronplus:secret@"))
    inline = ctl(node.dir, "check")
    assert inline.returncode == 1
    assert "a password in the URL, expected it in a password file or PGPASSFILE" in inline.stderr


def test_pause_and_retry_from_any_node_act_on_the_cluster(
    cluster_factory: Callable[..., Cluster],
) -> None:
    jobs = """
jobs:
  tick: {schedule: "* * * * * *", command: "true"}
  fails: {schedule: "0 0 1 1 *", command: "exit 3"}
"""
    cluster = cluster_factory(jobs)
    a, b = cluster.add("a"), cluster.add("b")
    cluster.start()
    cluster.wait_for(
        lambda: cluster.query("SELECT count(*) FROM runs WHERE job = 'tick'")[0][0] >= 3
    )
    assert ctl(a.dir, "pause", "tick").returncode == 0
    time.sleep(6)  # a few lease renewals: node b has heard of it
    since = time.time() - 2
    recent = cluster.query(
        "SELECT state, node FROM runs WHERE job = 'tick' AND scheduled > %s", since
    )
    assert recent and {state for state, _ in recent} == {"skipped"}, recent

    first = json.loads(ctl(b.dir, "run", "fails", "--json").stdout)["run_id"]
    cluster.wait_for(
        lambda: cluster.query("SELECT state FROM runs WHERE id = %s", first) == [("failed",)]
    )
    retried = ctl(a.dir, "retry", "fails", "--json")  # the failed run is node b's
    assert retried.returncode == 0, retried.stderr
    answer = json.loads(retried.stdout)
    assert (answer["retries"], answer["attempt"]) == (first, 2)
    logs = ctl(a.dir, "logs", str(first))
    assert logs.returncode == 0 and "exit code 3" in logs.stderr


def test_alarms_are_raised_once_for_the_cluster_and_any_node_success_ends_them(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """And each node's metrics carry its name (a textfile beside each node's config)."""
    told, fixed = tmp_path / "told", tmp_path / "fixed"
    jobs = f"""
  metrics: {{textfile: metrics.prom}}
notifiers:
  note: {{type: command, command: 'echo "$CRONPLUS_EVENT $CRONPLUS_JOB" >> {told}'}}
jobs:
  flaky: {{schedule: "* * * * * *", command: "test -e {fixed}", on_failure: [note]}}
  quiet:
    schedule: "0 0 1 1 *"
    command: "true"
    on_failure: [note]
    no_success_within: 4s
"""
    cluster = cluster_factory(jobs)
    cluster.add("a"), cluster.add("b")
    cluster.start()

    def lines() -> list[str]:
        return told.read_text().splitlines() if told.exists() else []

    def troubles() -> int:  # a start of trouble: a failure, or a missed instant (a slow start)
        return lines().count("failure flaky") + lines().count("missed flaky")

    cluster.wait_for(lambda: "no-success quiet" in lines() and troubles() > 0)
    time.sleep(6)  # a few renewals: a second node would have raised its own no-success
    failing = cluster.query("SELECT DISTINCT node FROM runs WHERE job = 'flaky'")
    assert lines().count("no-success quiet") == 1, lines()
    # each node tells the start of the trouble it saw, once, then counts for the digest
    assert 1 <= troubles() <= len(failing), lines()

    fixed.touch()
    cluster.wait_for(lambda: lines().count("recovery flaky") == troubles(), timeout=20)
    assert ctl(cluster.nodes["a"].dir, "run", "quiet").returncode == 0
    cluster.wait_for(lambda: "recovery quiet" in lines(), timeout=20)
    time.sleep(6)
    shown = Counter(lines())
    logs = "\n".join(d.log.read_text() for d in cluster.nodes.values())
    assert shown["recovery flaky"] == troubles(), (lines(), logs)
    # quiet may be overdue again 4 s after its success; it recovered once
    assert shown["recovery quiet"] == 1, lines()
    for name, node in cluster.nodes.items():
        exported = (node.dir / "metrics.prom").read_text()
        ran = cluster.query(
            "SELECT count(*) FROM runs WHERE job = 'flaky' AND node = %s AND state = 'succeeded'",
            name,
        )[0][0]
        line = f'cronplus_job_runs_total{{job="flaky",node="{name}",state="succeeded"}}'
        if ran:
            assert line in exported, exported
        assert f'cronplus_up{{node="{name}"}} 1.0' in exported, exported
    # the dashboard on one node shows where each of the job's runs ran
    dashboard = Dashboard(cluster.nodes["a"])
    try:
        browser = Browser(dashboard)
        browser.log_in()
        code, page, _ = browser.get("/jobs/flaky?n=200")
    finally:
        dashboard.stop()
    assert code == 200 and '<th scope="col">Node</th>' in page
    assert set(re.findall(r"<td>([ab])</td>", page)) == {str(n) for (n,) in failing}, page
