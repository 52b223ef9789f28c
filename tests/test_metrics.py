"""Prometheus metrics: values checked against a known run history, parsed by the client library.

The loop is driven with the injected clock for exact values; a real daemon serves
the endpoint and leaves the textfile; promtool checks the shipped alert rules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest
from helpers import history_file
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_steps import T0, make_daemon
from test_end_to_end import DaemonProcess, daemon_factory

from cronplus.daemon import Daemon
from cronplus.metrics import Metrics
from cronplus.metrics.exporter import GatedRegistry, write_textfile
from cronplus.metrics.series import SERIES
from cronplus.model import Outcome, RunState, Trigger
from cronplus.store import open_readonly

__all__ = ["daemon_factory"]
ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels, through the client's own parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def metrics_of(daemon: Daemon) -> Metrics:
    found = [w for w in daemon.watchers.watchers if isinstance(w, Metrics)]
    assert len(found) == 1
    return found[0]


def scrape_registry(metrics: Metrics) -> Samples:
    from prometheus_client import generate_latest

    assert metrics.exporting is not None
    return parse(generate_latest(metrics.exporting.registry).decode())


TWO_JOBS = """
daemon:
  metrics: {{textfile: {textfile}}}
  max_workers: 1
jobs:
  tick: {{schedule: "* * * * * */10", command: "true", retries: 1, retry_backoff: 5s}}
  other: {{schedule: "0 0 1 1 *", command: "true"}}
"""


def test_values_follow_a_known_history(tmp_path: Path) -> None:
    textfile = tmp_path / "out" / "cronplus.prom"
    textfile.parent.mkdir()
    daemon, clock, runner = make_daemon(tmp_path, TWO_JOBS.format(textfile=textfile))
    metrics = metrics_of(daemon)
    # run 1 at 10 s, started 0.3 s late, succeeds after 1 s (FakeRunner's duration)
    clock.advance(10.3)
    daemon.step(clock.now())
    started = clock.now().timestamp()
    clock.advance(0.7)
    runner.finish(1)
    daemon.step(clock.now())
    # run 2 at 20 s, exits 3; its retry (run 3) is due 5 s later and runs on time
    clock.advance(9)
    daemon.step(clock.now())
    clock.advance(1)
    runner.finish(2, Outcome.EXIT_CODE, 3)
    daemon.step(clock.now())
    failed_at = clock.now().timestamp()
    # run 3 (the retry) starts; a manual run of `other` waits for the only worker
    clock.advance(5)
    daemon.step(clock.now())
    daemon.submit(daemon.config.jobs["other"], None, Trigger.MANUAL, clock.now())  # type: ignore[union-attr]
    daemon.step(clock.now())
    samples = scrape_registry(metrics)
    assert value(samples, "cronplus_job_running", job="tick") == 1
    assert value(samples, "cronplus_runs_waiting") == 1
    # the loop stalls over 30 s, 40 s and 50 s: run 4 at 30 s overlaps run 3 (skipped),
    # the instants at 40 s and 50 s are missed... the stall ends at 55 s
    clock.advance(30)
    daemon.step(clock.now())
    runner.finish(3)
    daemon.step(clock.now())

    samples = scrape_registry(metrics)
    runs = {
        state: value(samples, "cronplus_job_runs_total", job="tick", state=state)
        for state in ("succeeded", "failed", "skipped")
    }
    assert daemon.history is not None
    rows = daemon.history.runs("tick", 100)
    history = {state: sum(1 for r in rows if r.state == state) for state in runs}
    assert runs == history == {"succeeded": 2, "failed": 1, "skipped": 1}
    missed = sum(r.instants for r in rows if r.state == "missed")
    assert value(samples, "cronplus_job_missed_runs_total", job="tick") == missed == 2
    assert value(samples, "cronplus_job_run_duration_seconds_count", job="tick") == 3
    assert value(samples, "cronplus_job_run_duration_seconds_sum", job="tick") == 3.0
    # lateness: run 1 was 0.3 s late, run 2 on time, the retry on time (its due time)
    assert value(samples, "cronplus_job_lateness_seconds_count", job="tick") == 3
    assert value(samples, "cronplus_job_lateness_seconds_sum", job="tick") == pytest.approx(0.3)
    assert value(samples, "cronplus_job_lateness_seconds_bucket", job="tick", le="0.25") == 2
    assert value(samples, "cronplus_job_lateness_seconds_bucket", job="tick", le="0.5") == 3
    assert value(samples, "cronplus_job_last_start_timestamp_seconds", job="tick") > started
    assert value(samples, "cronplus_job_last_failure_timestamp_seconds", job="tick") == failed_at
    assert value(samples, "cronplus_job_last_success_timestamp_seconds", job="tick") == (
        clock.now().timestamp()
    )
    next_tick = daemon.timer.next_of("tick")
    assert next_tick is not None
    assert value(samples, "cronplus_job_next_run_timestamp_seconds", job="tick") == (
        next_tick.timestamp()
    )
    assert value(samples, "cronplus_job_running", job="tick") == 0
    assert value(samples, "cronplus_jobs") == 2 and value(samples, "cronplus_up") == 1

    # a reload that drops `other` and one that is refused
    (tmp_path / "cronplus.yaml").write_text(TWO_JOBS.format(textfile=textfile).split("  other:")[0])
    assert daemon.reload(clock.now()) is None
    (tmp_path / "cronplus.yaml").write_text("jobs: [")
    assert daemon.reload(clock.now()) is not None
    samples = scrape_registry(metrics)
    assert value(samples, "cronplus_config_reloads_total") == 1
    assert value(samples, "cronplus_config_reload_rejections_total") == 1
    assert value(samples, "cronplus_config_last_reload_successful") == 0
    assert not any(dict(labels).get("job") == "other" for _, labels in samples)

    # the daemon stops: the textfile is left saying so, readable by its directory's group only
    daemon.watchers.stopped(clock.now())
    left = parse(textfile.read_text())
    assert value(left, "cronplus_up") == 0
    assert value(left, "cronplus_job_runs_total", job="tick", state="succeeded") == 2
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o640
    assert textfile.stat().st_gid == textfile.parent.stat().st_gid
    assert [p.name for p in textfile.parent.iterdir()] == ["cronplus.prom"]  # no temporary left


def test_last_instants_come_from_the_history_after_a_restart(tmp_path: Path) -> None:
    succeeded_at = (T0 - timedelta(hours=3)).timestamp()
    with history_file(tmp_path / "state" / "history.db") as store:
        run_id = store.create_run("tick", succeeded_at - 60, Trigger.SCHEDULE, succeeded_at - 60)
        store.transition(run_id, RunState.RUNNING, [RunState.PENDING], started=succeeded_at - 60)
        store.transition(run_id, RunState.SUCCEEDED, [RunState.RUNNING], ended=succeeded_at)
        other = store.create_run("gone", None, Trigger.MANUAL, succeeded_at)
        store.transition(other, RunState.FAILED, [RunState.PENDING], ended=succeeded_at)
    textfile = tmp_path / "cronplus.prom"
    daemon, _, _ = make_daemon(tmp_path, TWO_JOBS.format(textfile=textfile))
    exporting = metrics_of(daemon).exporting
    assert exporting is not None
    path = str(tmp_path / "state" / "history.db")
    exporting.seed(lambda: open_readonly(path)).join(10)
    samples = scrape_registry(metrics_of(daemon))
    assert value(samples, "cronplus_job_last_success_timestamp_seconds", job="tick") == (
        succeeded_at
    )
    assert value(samples, "cronplus_job_last_start_timestamp_seconds", job="tick") == (
        succeeded_at - 60
    )
    # a job no longer configured gets no series; a job that never failed has no failure
    assert not any(dict(labels).get("job") == "gone" for _, labels in samples)
    assert ("cronplus_job_last_failure_timestamp_seconds", (("job", "tick"),)) not in samples


def test_no_metrics_configured_imports_no_client_and_exports_nothing(tmp_path: Path) -> None:
    daemon, clock, runner = make_daemon(
        tmp_path, 'jobs:\n  tick: {schedule: "* * * * * */10", command: "true"}\n'
    )
    metrics = metrics_of(daemon)
    clock.advance(10)
    daemon.step(clock.now())
    assert metrics.exporting is None and metrics.running == {1: "tick"}
    runner.finish(1)
    daemon.step(clock.now())
    assert metrics.running == {}


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    path.write_text("old\n")
    seen = os.stat(path).st_ino
    write_textfile(str(path), b"new\n")
    assert path.read_text() == "new\n" and os.stat(path).st_ino != seen  # a rename, not a rewrite


def test_the_gated_registry_waits_while_the_loop_starts_runs() -> None:
    import threading

    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from cronplus.controlserver import Gate

    registry = CollectorRegistry()
    Gauge("cronplus_example", "x", registry=registry).set(3)
    gate = Gate()
    gate.close()
    out: list[bytes] = []
    reader = threading.Thread(
        target=lambda: out.append(generate_latest(GatedRegistry(registry, gate)))
    )
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and out == []  # held at the gate
    gate.open()
    reader.join(5)
    assert b"cronplus_example 3.0" in out[0]


# --- a real daemon -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return parse(answer.read().decode())


def test_a_real_daemon_serves_the_endpoint_and_leaves_the_textfile(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    port = free_port()
    daemon = daemon_factory(
        f"""
        daemon:
          metrics: {{listen: "127.0.0.1:{port}", textfile: cronplus.prom}}
        notifiers:
          broken: {{type: command, command: "exit 7"}}
          fine: {{type: command, command: "true"}}
        jobs:
          ok: {{schedule: "* * * * * *", command: "true"}}
          bad: {{schedule: "* * * * * *", command: "exit 3", on_failure: [broken, fine]}}
        """
    ).start()
    daemon.wait_for(lambda: len([r for r in daemon.runs("bad") if r["state"] == "failed"]) >= 2)
    daemon.wait_for(
        lambda: value(scrape(port), "cronplus_notifier_failures_total", notifier="broken") >= 1
    )
    live = scrape(port)
    assert value(live, "cronplus_notifier_failures_total", notifier="fine") == 0
    assert value(live, "cronplus_up") == 1
    assert value(live, "cronplus_job_runs_total", job="bad", state="failed") >= 1
    assert value(live, "cronplus_process_resident_memory_bytes") > 0
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    with pytest.raises(OSError):
        scrape(port)
    left = parse((tmp_path / "cronplus.prom").read_text())
    assert value(left, "cronplus_up") == 0
    db = sqlite3.connect(daemon.runs_file)
    for job, state in (("ok", "succeeded"), ("bad", "failed"), ("ok", "failed")):
        (count,) = db.execute(
            "SELECT COUNT(*) FROM runs WHERE job = ? AND state = ?", (job, state)
        ).fetchone()
        assert value(left, "cronplus_job_runs_total", job=job, state=state) == count
    db.close()


def test_a_busy_port_stops_nothing_and_a_reload_turns_metrics_on(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    text = 'daemon:\n  metrics: {{listen: "127.0.0.1:{}"}}\njobs:\n  ok: {{schedule: "* * * * * *", command: "true"}}\n'
    daemon = daemon_factory(text.format(port)).start()
    daemon.wait_for(lambda: len(daemon.runs("ok")) >= 2)  # scheduling goes on
    assert daemon.records("metrics endpoint not opened")[0]["listen"] == f"127.0.0.1:{port}"
    busy.close()
    other = free_port()
    daemon.write(text.format(other))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: "metrics endpoint listening" in daemon.events())
    assert value(scrape(other), "cronplus_job_runs_total", job="ok", state="succeeded") >= 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "daemon: {metrics: {listen: 9649}}\n",
            ":1:28: daemon.metrics.listen: found 9649, expected HOST:PORT",
        ),
        (
            'daemon: {metrics: {listen: "x:99999"}}\n',
            ':1:28: daemon.metrics.listen: found "x:99999"',
        ),
        (
            "daemon: {metrics: {textfile: a.txt}}\n",
            ':1:30: daemon.metrics.textfile: found "a.txt", expected a file path ending in .prom',
        ),
        (
            "daemon: {metrics: {listn: x}}\n",
            ':1:20: daemon.metrics.listn: unknown key "listn", expected listen or textfile (did you mean "listen"?)',
        ),
    ],
)
def test_metrics_settings_are_checked_with_their_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    from cronplus import config
    from cronplus.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(text + "jobs:\n  a: {schedule: '@daily', command: x}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert any(str(p).startswith(f"{path}{expected}") for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]


def test_ipv6_listen_and_a_relative_textfile(tmp_path: Path) -> None:
    from cronplus import config

    path = tmp_path / "c.yaml"
    path.write_text(
        'daemon: {metrics: {listen: "[::1]:9649", textfile: m/c.prom}}\n'
        "jobs:\n  a: {schedule: '@daily', command: x}\n"
    )
    settings = config.load(str(path)).settings.metrics
    assert settings.listen == ("::1", 9649)
    assert settings.textfile == str(tmp_path / "m" / "c.prom")


# --- what ships: alert rules, the dashboard, the README's list ------------------------------


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules_and_they_fire_as_tested() -> None:
    rules = ROOT / "contrib" / "prometheus" / "alerts.yml"
    checked = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=rules.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def exported_names() -> set[str]:
    names = set()
    for series in SERIES:
        if series.kind == "histogram":
            names |= {series.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(series.name)
    return names


def test_rules_and_the_grafana_dashboard_use_only_exported_series() -> None:
    known = exported_names()
    rules = (ROOT / "contrib" / "prometheus" / "alerts.yml").read_text()
    dashboard = json.loads((ROOT / "contrib" / "grafana" / "cronplus.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    for text in [rules, *exprs]:
        for name in re.findall(r"\bcronplus_[a-z_]+", text):
            assert name in known or name.startswith("cronplus_process_"), name


def test_the_readme_lists_every_series() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(cronplus_[a-z_*]+)`", readme, re.MULTILINE))
    assert listed == {s.name for s in SERIES}
