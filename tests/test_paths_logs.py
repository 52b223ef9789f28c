"""Where an instance keeps its files, and the log formats."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from cronplus import logs
from cronplus.paths import resolve


def test_system_instance_paths() -> None:
    paths = resolve(user_mode=False)
    assert (paths.config, paths.state_dir, paths.runtime_dir) == (
        "/etc/cronplus.yaml",
        "/var/lib/cronplus",
        "/run/cronplus",
    )
    assert paths.history() == "/var/lib/cronplus/history.db"
    assert paths.history("/srv/h.db") == "/srv/h.db"


def test_user_instance_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "/home/alice/.cfg")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/alice/.st")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    paths = resolve(user_mode=True)
    assert paths.config == "/home/alice/.cfg/cronplus/cronplus.yaml"
    assert paths.state_dir == "/home/alice/.st/cronplus"
    assert paths.runtime_dir == "/run/user/1000/cronplus"


def test_user_instance_defaults_without_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/bob")
    paths = resolve(user_mode=True)
    assert paths.config == "/home/bob/.config/cronplus/cronplus.yaml"
    assert paths.state_dir == paths.runtime_dir == "/home/bob/.local/state/cronplus"


def test_flags_override() -> None:
    paths = resolve(False, config="/tmp/c.yaml", state_dir="/tmp/s")
    assert (paths.config, paths.state_dir, paths.runtime_dir) == ("/tmp/c.yaml", "/tmp/s", "/tmp/s")


def _log_line(fmt: str, monkeypatch: pytest.MonkeyPatch, journal: bool = False) -> str:
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    logs.configure(fmt, stream=stream)
    structlog.get_logger().warning("run finished", job="backup", run_id=7, reason="exit code 3")
    return stream.getvalue().strip()


def test_journal_lines_have_a_priority_and_no_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _log_line("auto", monkeypatch, journal=True)
    assert line == '<4>run finished job=backup run_id=7 reason="exit code 3"'


def test_json_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    record = json.loads(_log_line("auto", monkeypatch))
    assert (record["event"], record["job"], record["run_id"], record["level"]) == (
        "run finished",
        "backup",
        7,
        "warning",
    )
    assert record["timestamp"].endswith("Z")
