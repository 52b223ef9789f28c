"""Import against a port of cron's own reader (tests/cron_reader.py), line by line.

On hand-written crontabs with the cases that trip converters up, on the /etc/cron.d
files of Debian packages (downloaded, never installed), and, as root, against
Debian's own cron: its crontab(1) for which lines it accepts, and its daemon for the
exact bytes a job gets on standard input.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cron_reader
import pytest
from helpers import make_job, run_job

from cronplus import crontab
from cronplus.schedule import CronRule, next_instants

UTC = timezone.utc
START = datetime(2026, 1, 1)
CRON_DEFAULT_PATH = "/usr/bin:/bin"
NOT_KEPT_IN_ENV = {"SHELL", "MAILTO", "MAILFROM", "CRON_TZ", ""}


def cron_instants(line: cron_reader.Line, count: int, days: int = 1500) -> list[datetime]:
    """The wall times cron runs `line` at, from START on: its sets, day by day."""
    minutes, hours = sorted(line.sets[0]), sorted(line.sets[1])
    out: list[datetime] = []
    for offset in range(days):
        day = START + timedelta(days=offset)
        if (
            cron_reader.matches(
                line,
                minutes[0] if minutes else -1,
                hours[0] if hours else -1,
                day.day,
                day.month,
                day.isoweekday() % 7,
            )
            is False
        ):
            if not (minutes and hours):
                return out
            # the time fields are checked on their own below; this tests the day
            if not _day_matches(line, day):
                continue
        out += [day.replace(hour=h, minute=m) for h in hours for m in minutes]
        if len(out) >= count:
            return out[:count]
    return out


def _day_matches(line: cron_reader.Line, day: datetime) -> bool:
    return cron_reader.matches(
        line, min(line.sets[0]), min(line.sets[1]), day.day, day.month, day.isoweekday() % 7
    )


def problem_lines(conversion: crontab.Conversion) -> dict[int, str]:
    return {int(p.split(":", 1)[0].split()[1]): p for p in conversion.problems}


def compare(text: str, system: bool, where: str) -> int:
    """Import and the reference agree on every line; returns the jobs compared."""
    conversion = crontab.parse(text, system=system)
    jobs = {job.line: job for job in conversion.jobs}
    problems = problem_lines(conversion)
    compared = 0
    for line in cron_reader.read(text, system):
        place = f"{where}:{line.number}"
        if line.kind == "env":
            assert line.number not in jobs and line.number not in problems, place
            continue
        if line.kind != "entry":  # cron refuses it, runs it never, or reads it its own way
            assert line.number in problems and line.number not in jobs, (place, line.kind)
            continue
        runs = cron_instants(line, 40)
        user_known = line.user is None or _user_exists(line.user)
        if not runs or not line.command.strip() or not user_known:
            assert line.number in problems and line.number not in jobs, (place, problems)
            continue
        assert line.number in jobs, (place, problems.get(line.number))
        job = jobs[line.number]
        assert (job.command, job.stdin, job.user) == (line.command, line.stdin, line.user), place
        assert job.shell == line.env.get("SHELL", "/bin/sh"), place
        expected_env = {k: v for k, v in line.env.items() if k not in NOT_KEPT_IN_ENV}
        written = {k: v for k, v in job.env.items() if k not in NOT_KEPT_IN_ENV}
        assert written == expected_env, place
        rule = CronRule(job.schedule, "UTC")
        got = next_instants(rule, START.replace(tzinfo=UTC) - timedelta(seconds=1), len(runs))
        assert [g.replace(tzinfo=None) for g in got] == runs, (place, job.schedule)
        compared += 1
    return compared


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


USER_CRONTAB = r"""# m h  dom mon dow   command
MAILTO=ops@example.org
SHELL=/bin/bash
PATH=/usr/local/bin:/usr/bin:/bin
GREETING="  hello  "
  INDENTED = spaced value<SP><SP>
BAD="unterminated
STRAY="value"x
EMPTY=
"QUOTED NAME"=1
0 5 * * 1 tar -zcf /var/backups/home.tgz /home/
*/15 9-17 * * Mon-Fri /usr/local/bin/check-queue >/dev/null 2>&1
30 2 1,15 * * mail -s "report %d" ops@example.org%Dear ops,%%see attached\%.%
0 0 * * * echo "stamp $(date +\%Y-\%m-\%d)" >> /tmp/stamps # a comment here is part of the command
5 4 * * SUN,sat /usr/bin/weekend
0 */4 1-7 * 1 /usr/bin/early-days-or-mondays
15 10 * JAN-MAR/2 * /usr/bin/every-other-month
0 0 29 2 * /usr/bin/leap-day
0 0 31 2 * /usr/bin/never
@daily /usr/bin/daily
@Daily /usr/bin/wrong-case
@reboot /usr/bin/at-boot
5/10 * * * * /usr/bin/step-on-a-number
*/5-10 * * * * /usr/bin/read-in-part
0 0 * * * cat%line one%line two\%%
0 0 * * 7 /usr/bin/sunday-as-seven
*/60 * * * * /usr/bin/hourly-by-step
*/40 * */20 * * /usr/bin/long-steps
0 12 * * mon/2 /usr/bin/named-step
5-1 * * * * /usr/bin/backwards
0 0 * * *<TAB>
* * * * * * /usr/bin/six-fields
0 0 * * 0-7 /usr/bin/every-day-by-weekday
1,2-4,*/30 * * * * /usr/bin/mixed-list
	0	3	*	*	*	/usr/bin/tabbed	  args<SP><SP>
0 0 * * * /usr/bin/no-newline-after-me""".replace("<SP>", " ").replace("<TAB>", "\t")

SYSTEM_CRONTAB = """SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
MAILTO=""
*/5 * * * * nobody [ -x /usr/bin/true ] && /usr/bin/true
0 3 * * * no-such-user-here /bin/true
0 3 * * *
"""


def test_import_agrees_with_crons_reader_on_a_user_crontab() -> None:
    assert compare(USER_CRONTAB, system=False, where="user") >= 14


def test_import_agrees_with_crons_reader_on_a_system_crontab() -> None:
    assert compare(SYSTEM_CRONTAB, system=True, where="system") == 5


def test_what_import_says_of_the_lines_it_leaves_out() -> None:
    said = crontab.parse(USER_CRONTAB).problems
    for expected in (
        'line 7: not a setting as cron reads NAME=value (a quote left open, text after the closing quote, or no value), so a job line, and bad minute: "BAD="unterminated"; skipped: BAD="unterminated',
        'line 21: bad time specifier "@Daily": cron knows only @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly and @reboot; skipped: @Daily /usr/bin/wrong-case',
        'line 23: bad minute: a step needs a range or * ("5/10"); skipped: 5/10 * * * * /usr/bin/step-on-a-number',
        'line 24: "*/5-10" in the minute field: cron accepts it but reads only part of it; skipped: */5-10 * * * * /usr/bin/read-in-part',
        "line 30: range 5-1 in the minute field runs backwards: cron accepts it and it matches nothing; skipped: 5-1 * * * * /usr/bin/backwards",
        "line 32: bad command: it starts with *, a sixth time field?; skipped: * * * * * * /usr/bin/six-fields",
        "line 36: the file does not end in a newline, and cron never runs its last line; skipped: 0 0 * * * /usr/bin/no-newline-after-me",
    ):
        assert expected in said, (expected, said)


# Packages of Debian that ship /etc/cron.d files, small ones; only downloaded and unpacked.
CRON_D_PACKAGES = (
    "anacron",
    "atop",
    "certbot",
    "cron-apt",
    "dma",
    "e2fsprogs",
    "logcheck",
    "mailman3",
    "mdadm",
    "munin-node",
    "ntpsec",
    "php-common",
    "sa-exim",
    "sysstat",
    "tiger",
    "amavisd-new",
)


@pytest.fixture(scope="session")
def debian_cron_d(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("not a Debian machine: no apt-get or dpkg-deb")
    debs = tmp_path_factory.mktemp("debs")
    done = subprocess.run(
        ["apt-get", "download", "-q", *CRON_D_PACKAGES],
        cwd=debs,
        capture_output=True,
        text=True,
        timeout=300,
    )
    files: list[Path] = []
    for deb in sorted(debs.glob("*.deb")):
        unpacked = debs / deb.stem
        unpacked.mkdir()
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
        ) as tar_stream:
            assert tar_stream.stdout is not None
            with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as archive:
                for member in archive:
                    if member.isfile() and member.name.startswith("./etc/cron.d/"):
                        target = unpacked / Path(member.name).name
                        source = archive.extractfile(member)
                        assert source is not None
                        target.write_bytes(source.read())
                        files.append(target)
    if not files:
        pytest.skip(f"no package could be downloaded: {done.stderr.strip()[-300:]}")
    return files


def test_import_agrees_with_crons_reader_on_debian_packages_cron_d(
    debian_cron_d: list[Path],
) -> None:
    compared = 0
    for file in debian_cron_d:
        text = file.read_bytes().decode("utf-8", "surrogateescape")
        compared += compare(text, system=True, where=f"{file.parent.name}/{file.name}")
    assert len(debian_cron_d) >= 10 and compared >= 0


# --- Debian's cron itself, as root -------------------------------------------------------

PROBES = [
    "5/10 * * * * true",
    "@Daily true",
    "@daily true",
    "0 0 * * MON true",
    "0 0 * * monday true",
    "0 0 * * mon-fri true",
    "0 0 * jan-mar/2 * true",
    "5-1 * * * * true",
    "*/0 * * * * true",
    'FOO="bar"x',
    'FOO="bar"  ',
    "FOO='bar",
    "0 0 0 * * true",
    "0 0 * 0 * true",
    "0 0 * * 8 true",
    "FOO = a b  ",
    "0 0 * * *",
    "0,*/5 * * * * true",
    "1,,2 * * * * true",
    "-5 * * * * true",
    "*/5-10 * * * * true",
    "1-5-7 * * * * true",
    "@REBOOT true",
    '"A B"=1',
    "A B=1",
    "FOO=",
    "0 0 * * 1/2 true",
    "* * * * * * true",
    "0 0 * * * *true",
    "0 0 31 2 * true",
    "0 0 * 13 * true",
    "0\t0\t*\t*\t*\ttrue",
    "@hourly",
    "@ true",
]


@pytest.fixture
def crontab_command() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("crontab") is None:
        pytest.skip("needs root and Debian's crontab(1)")
    saved = subprocess.run(["crontab", "-u", "nobody", "-l"], capture_output=True)
    yield "crontab"
    if saved.returncode == 0:
        subprocess.run(["crontab", "-u", "nobody", "-"], input=saved.stdout, check=True)
    else:
        subprocess.run(["crontab", "-u", "nobody", "-r"], capture_output=True)


def test_cron_reader_agrees_with_debians_crontab(crontab_command: str, tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    for text in PROBES:
        probe.write_text(text + "\n")
        accepted = (
            subprocess.run(
                [crontab_command, "-u", "nobody", str(probe)], capture_output=True
            ).returncode
            == 0
        )
        [line] = cron_reader.read(text + "\n")
        assert (line.kind != "error") == accepted, (text, line.kind)
    probe.write_text("0 0 * * * true")  # no newline at the end
    assert (
        subprocess.run(
            [crontab_command, "-u", "nobody", str(probe)], capture_output=True
        ).returncode
        != 0
    )
    assert [line.kind for line in cron_reader.read("0 0 * * * true")] == ["unterminated"]


STDIN_CASES = {
    "plain": "od -An -c%one%two",
    "escaped": r"od -An -c%50\% done%next\%%",
    "pipeline": "tr a-z A-Z | od -An -c%shout this%and this",
    "comment": "od -An -c # a shell comment%input after it",
    "trailing": "od -An -c%ends in a newline%",
    "backslash": r"od -An -c%a \ back\slash and \n stays%",
    "empty": "od -An -c%",
    "double": "od -An -c%two newlines%%",
}


@pytest.fixture
def cron_daemon() -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("cron") is None:
        pytest.skip("needs root and Debian's cron")
    if subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0:
        pytest.skip("a cron daemon is already running on this machine")
    drop_in = Path("/etc/cron.d/cronplus-fidelity-test")
    process = subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield drop_in
    drop_in.unlink(missing_ok=True)
    process.send_signal(signal.SIGTERM)
    process.wait(10)


def test_the_stdin_key_gives_a_job_the_bytes_cron_gives_it(
    cron_daemon: Path, tmp_path: Path
) -> None:
    """Debian's cron runs each line once, at the next minute; cronplus runs the import."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    lines = [
        f"* * * * * root {command.replace(' -c', f' -c >{out}/cron-{name}', 1) if '|' not in command else command.replace('od -An -c', f'od -An -c >{out}/cron-{name}', 1)}"
        for name, command in STDIN_CASES.items()
    ]
    text = "SHELL=/bin/sh\n" + "\n".join(lines) + "\n"
    cron_daemon.write_text(text)
    cron_daemon.chmod(0o644)
    imported = crontab.parse(text, system=True)
    assert imported.problems == []
    for name, job in zip(STDIN_CASES, imported.jobs):
        result = run_job(
            make_job(
                command=job.command.replace(f"cron-{name}", f"cronplus-{name}"), stdin=job.stdin
            )
        )
        assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 75  # cron reads the file, then runs it at the next whole minute
    while not all((out / f"cron-{n}").exists() for n in STDIN_CASES):
        assert time.monotonic() < deadline, "Debian's cron did not run the lines"
        time.sleep(0.5)
    time.sleep(1)  # od writes and exits at once
    for name in STDIN_CASES:
        assert (out / f"cronplus-{name}").read_bytes() == (out / f"cron-{name}").read_bytes(), name
