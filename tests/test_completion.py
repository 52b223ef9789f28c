"""Shell completion offers job names from the config named on the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def complete_bash(tmp_path: Path, words: list[str]) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "cronplusctl"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m cronplus.ctl "$@"\n')
    wrapper.chmod(0o755)
    script = (
        f"source {ROOT / 'completion' / 'cronplusctl.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_cronplusctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_commands_and_job_names(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        'jobs:\n  backup: {schedule: "@daily", command: x}\n  beacon: {every: 1m, command: x}\n'
        "  report: {every: 1h, command: x}\n"
    )
    state = str(tmp_path / "state")
    assert complete_bash(tmp_path, ["cronplusctl", "hi"]) == ["history"]
    words = ["cronplusctl", "-c", str(config), "--state-dir", state, "history", "b"]
    assert complete_bash(tmp_path, words) == ["backup", "beacon"]
    words = ["cronplusctl", "-c", str(config), "--state-dir", state, "run", ""]
    assert complete_bash(tmp_path, words) == ["backup", "beacon", "report"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_parses() -> None:
    done = subprocess.run(
        ["zsh", "-n", str(ROOT / "completion" / "_cronplusctl")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
