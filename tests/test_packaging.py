"""What a distribution ships: man pages, unit files, launchd plists and `make install`."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cronplus.config import DAEMON_KEYS, JOB_KEYS
from cronplus.ctl import subcommands

ROOT = Path(__file__).resolve().parent.parent
MAN_PAGES = ["cronplus.8", "cronplusctl.1", "cronplus.yaml.5"]


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_pages_render_without_a_warning(page: str) -> None:
    done = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(ROOT / "man" / page)], capture_output=True, text=True
    )
    assert (done.returncode, done.stderr) == (0, "")


def _section(page: str, title: str) -> str:
    text = (ROOT / "man" / page).read_text()
    return text.split(f".SH {title}\n", 1)[1].split("\n.SH ", 1)[0]


def test_the_man_page_lists_exactly_the_commands_cronplusctl_has() -> None:
    entries = re.findall(r"^\.TP\n\.BR? (\S+)", _section("cronplusctl.1", "COMMANDS"), re.MULTILINE)
    assert sorted(entries) == sorted(subcommands())


def test_the_config_man_page_documents_every_key() -> None:
    jobs = re.findall(r"^\.TP\n\.B (\S+)$", _section("cronplus.yaml.5", "JOB KEYS"), re.MULTILINE)
    daemon = re.findall(
        r"^\.TP\n\.B (\S+)$", _section("cronplus.yaml.5", "DAEMON KEYS"), re.MULTILINE
    )
    assert sorted(jobs) == sorted(JOB_KEYS)
    assert sorted(daemon) == sorted(DAEMON_KEYS)


@pytest.fixture
def unit_tree(tmp_path: Path) -> Path:
    """Executables where the units expect them and the man pages their Documentation= names."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("cronplus", "cronplusctl"):
        wrapper = bin_dir / name
        module = "cronplus.daemon" if name == "cronplus" else "cronplus.ctl"
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m {module} "$@"\n')
        wrapper.chmod(0o755)
    for page in MAN_PAGES:
        section = tmp_path / "man" / f"man{page[-1]}"
        section.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "man" / page, section)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return tmp_path


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
@pytest.mark.parametrize(
    ("unit", "scope"), [("cronplus.service", []), ("user/cronplus.service", ["--user"])]
)
def test_systemd_units_verify(unit_tree: Path, unit: str, scope: list[str]) -> None:
    text = (ROOT / "systemd" / unit).read_text().replace("/usr/bin/", f"{unit_tree}/bin/")
    target = unit_tree / "cronplus.service"
    target.write_text(text)
    env = {
        **os.environ,
        "MANPATH": str(unit_tree / "man"),
        "XDG_RUNTIME_DIR": str(unit_tree / "run"),
    }
    done = subprocess.run(
        ["systemd-analyze", *scope, "verify", str(target)], capture_output=True, text=True, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    for key in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "ExecReload=",
        "Delegate=yes",
        "KillMode=mixed",
        "Documentation=man:cronplus(8)",
    ):
        assert key in text


@pytest.mark.parametrize(
    ("name", "flag"),
    [("org.cronplus.cronplus.plist", "--config"), ("org.cronplus.cronplus-agent.plist", "--user")],
)
def test_launchd_plists(name: str, flag: str) -> None:
    with open(ROOT / "launchd" / name, "rb") as handle:
        plist = plistlib.load(handle)
    assert plist["Label"] == name.removesuffix(".plist")
    assert plist["ProgramArguments"][0].endswith("/cronplus")
    assert flag in plist["ProgramArguments"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_install_and_uninstall(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    work = tmp_path / "src"
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", ".*cache"),
    )
    install = subprocess.run(
        ["make", "install", f"DESTDIR={stage}", "PREFIX=/usr", f"PYTHON={sys.executable}"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    expected = [
        "usr/bin/cronplus",
        "usr/bin/cronplusctl",
        "usr/lib/systemd/system/cronplus.service",
        "usr/lib/systemd/user/cronplus.service",
        "usr/share/man/man1/cronplusctl.1",
        "usr/share/man/man5/cronplus.yaml.5",
        "usr/share/man/man8/cronplus.8",
        "usr/share/bash-completion/completions/cronplusctl",
        "etc/cronplus.yaml",
    ]
    for path in expected:
        assert os.path.lexists(stage / path), path
    assert os.readlink(stage / "usr/bin/cronplusctl") == "/usr/lib/cronplus/bin/cronplusctl"
    assert (
        "ExecStart=/usr/bin/cronplus "
        in (stage / "usr/lib/systemd/system/cronplus.service").read_text()
    )
    script = (stage / "usr/lib/cronplus/bin/cronplusctl").read_text().splitlines()[0]
    assert script == "#!/usr/lib/cronplus/bin/python"
    python = stage / "usr/lib/cronplus/bin/python"
    check = subprocess.run(
        [str(python), "-m", "cronplus.ctl", "check", str(stage / "etc/cronplus.yaml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    web = subprocess.run(  # the dashboard, its templates and its stylesheet came along
        [str(python), "-c", "import cronplus.web.app as a; a.make_app(None, 't')"],
        capture_output=True,
        text=True,
    )
    assert web.returncode == 0, web.stderr
    installed = subprocess.run(
        [
            str(python),
            "-c",
            "import cronplus.web, os; print(os.path.dirname(cronplus.web.__file__))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    for shipped in ("templates/jobs.html", "static/style.css", "static/live.js"):
        assert os.path.exists(os.path.join(installed, shipped)), shipped
    assert oct((stage / "etc/cronplus.yaml").stat().st_mode & 0o777) == "0o644"

    (stage / "etc/cronplus.yaml").write_text("# edited by the admin\n")
    uninstall = subprocess.run(
        ["make", "uninstall", f"DESTDIR={stage}", "PREFIX=/usr"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert uninstall.returncode == 0, uninstall.stderr
    assert not os.path.lexists(stage / "usr/bin/cronplusctl")
    assert not (stage / "usr/lib/cronplus").exists()
    assert (stage / "etc/cronplus.yaml").read_text() == "# edited by the admin\n"
