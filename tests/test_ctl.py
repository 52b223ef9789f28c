"""cronplusctl commands that need no daemon: check and next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cronplus.ctl import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "etc" / "cronplus.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_next_with_an_expression_prints_utc_instants_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        "next",
        "--expr",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00Z",
        "-n",
        "5",
        "--json",
    )
    assert code == 0
    # 2026-03-08 02:30 does not exist in New York: that run happens at the jump, 03:00 EDT
    assert json.loads(out) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
        "2026-03-10T06:30:00Z",
        "2026-03-11T06:30:00Z",
        "2026-03-12T06:30:00Z",
    ]


def test_next_as_a_table_shows_the_zone_and_utc(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "next",
        "--expr",
        "0 * * * *",
        "--tz",
        "Asia/Kathmandu",
        "--after",
        "2026-01-01T00:00",
        "-n",
        "2",
    )
    assert code == 0
    assert out.splitlines() == [
        "schedule: 0 * * * *",
        "LOCAL (Asia/Kathmandu)     UTC",
        "2026-01-01 01:00:00+05:45  2025-12-31T19:15:00Z",
        "2026-01-01 02:00:00+05:45  2025-12-31T20:15:00Z",
    ]


def test_next_for_a_configured_job(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "-c",
        EXAMPLE,
        "next",
        "morning",
        "--after",
        "2026-03-27T12:00Z",
        "-n",
        "2",
        "--json",
    )
    assert code == 0
    # Monday 2026-03-30 is the first weekday after Berlin moved to summer time
    assert json.loads(out) == ["2026-03-30T05:30:00Z", "2026-03-31T05:30:00Z"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["next", "--expr", "61 * * * *"], 'bad cron expression "61 * * * *"'),
        (["next", "--expr", "* * * * *", "--tz", "Mars/Base"], 'unknown zone "Mars/Base"'),
        (
            ["next", "--expr", "* * * * *", "--after", "yesterday"],
            '--after "yesterday": expected ISO 8601',
        ),
        (["-c", EXAMPLE, "next", "nosuchjob"], 'no job named "nosuchjob"'),
        (["next"], "give a JOB, --expr EXPRESSION or --schedule YAML"),
    ],
)
def test_next_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err


def test_check_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", EXAMPLE)
    assert code == 0
    assert out == f"{EXAMPLE}: ok, 5 jobs\n"


def test_check_prints_every_problem_and_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('jobs:\n  a: {schedule: "* * *", command: x}\n  b: {every: 5m}\n')
    code, out, err = run(capsys, "check", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f'{bad}:2:17: jobs.a.schedule: "* * *" has 3 fields, expected 5 (minute hour day month weekday) or 6 (the same plus seconds last)',
        f"{bad}:3:3: jobs.b: found none, expected exactly one of command or notify",
        f"{bad}: 2 problems, configuration rejected",
    ]


def test_status_without_a_history_still_lists_jobs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "-c", EXAMPLE, "--state-dir", str(tmp_path), "status", "--json")
    assert code == 3  # LSB: not running
    assert "cronplus is not running" in err and "no history yet" in err
    jobs = {j["job"]: j for j in json.loads(out)}
    assert set(jobs) == {"heartbeat", "disk-report", "morning", "stretch", "new-year"}
    assert jobs["new-year"]["next"] == "2026-12-31T11:00:00Z"
    assert jobs["heartbeat"]["last"] is None


def _status_on_a_terminal(tmp_path: Path, extra_env: dict[str, str]) -> bytes:
    import os
    import pty
    import subprocess
    import sys
    from datetime import datetime, timezone

    from cronplus.model import RunState, Trigger
    from cronplus.store import open_store

    history = open_store(str(tmp_path / "history.db"), datetime.now(timezone.utc), print)
    history.create_run("heartbeat", 1.0, Trigger.SCHEDULE, now=1.0, state=RunState.SUCCEEDED)
    history.flush(datetime.now(timezone.utc))
    history.close()
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(PYTHONPATH=str(ROOT), **extra_env)
    argv = [
        sys.executable,
        "-m",
        "cronplus.ctl",
        "-c",
        EXAMPLE,
        "--state-dir",
        str(tmp_path),
        "status",
    ]
    subprocess.run(argv, stdout=follower, stderr=subprocess.DEVNULL, env=env, timeout=30)
    os.close(follower)
    output = b""
    try:
        while chunk := os.read(leader, 65536):
            output += chunk
    except OSError:
        pass
    os.close(leader)
    return output


def test_colour_only_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert b"\033[32msucceeded" in _status_on_a_terminal(tmp_path / "a", {})
    assert b"\033[" not in _status_on_a_terminal(tmp_path / "b", {"NO_COLOR": "1"})
    code, out, _ = run(capsys, "-c", EXAMPLE, "--state-dir", str(tmp_path / "a"), "status")
    assert code == 3 and "\033[" not in out and "succeeded" in out
