"""cronplusctl import: crontab(5) edge cases, real crontab files, and a round trip.

The round trip compares cronplus's next runs of every imported job with the runs a
small reference matcher written here from crontab(5) finds for the original line.
"""

from __future__ import annotations

import glob
import io
import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from cronplus import config, crontab
from cronplus.ctl import main
from cronplus.schedule import CronRule, next_instants

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
NAMES = {n: i for i, n in enumerate(crontab.MONTHS, 1)} | {n: i for i, n in enumerate(crontab.DAYS)}
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def number(token: str) -> int:
    return NAMES[token.lower()] if token.lower() in NAMES else int(token)


def expand(text: str, low: int, high: int) -> set[int]:
    """crontab(5)'s field syntax, written out again on purpose: the reference side."""
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = number(a), number(b)
        else:
            first = last = number(base)
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def cron_runs(line_fields: list[str], start: datetime, count: int) -> list[datetime]:
    """What cron(8) runs, minute by minute in naive local time: the reference matcher."""
    minutes, hours = expand(line_fields[0], 0, 59), expand(line_fields[1], 0, 23)
    doms, months = expand(line_fields[2], 1, 31), expand(line_fields[3], 1, 12)
    dows = {d % 7 for d in expand(line_fields[4], 0, 7)}
    star = line_fields[2].startswith("*") or line_fields[4].startswith("*")
    out: list[datetime] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while len(out) < count:
        dom_ok, dow_ok = day.day in doms, (day.isoweekday() % 7) in dows
        if day.month in months and ((dom_ok and dow_ok) if star else (dom_ok or dow_ok)):
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    moment = day.replace(hour=hour, minute=minute)
                    if moment > start and len(out) < count:
                        out.append(moment)
        day += timedelta(days=1)
    return out


def import_text(text: str, system: bool = False) -> tuple[int, str, str]:
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = (
        io.TextIOWrapper(io.BytesIO(textwrap.dedent(text).encode())),
        io.StringIO(),
        io.StringIO(),
    )
    try:
        code = main(["import", "-", *(["--system"] if system else [])])
        return code, sys.stdout.getvalue(), sys.stderr.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr


def jobs_of(yaml_text: str, tmp_path: Path) -> dict[str, object]:
    file = tmp_path / "imported.yaml"
    file.write_text(yaml_text)
    return dict(config.load(str(file), default_zone="UTC").jobs)


EDGES = """
    # a comment, then blank lines

    SHELL=/bin/bash
    PATH = /usr/local/bin:/usr/bin:/bin
    GREETING = "  spaced out  "
    MAILTO=ops@example.org
    0 9 * * mon-fri echo "$GREETING"
    */20 8-18/2 1,15 jan,jul * /usr/bin/report --weekly
    5 4 */2 * 1 /usr/bin/odd-mondays
    0 0 * * 7 /usr/bin/sunday
    CRON_TZ=Asia/Kathmandu
    30 2 * * * mail -s "daily report" root%Hello,%the numbers are 10\\% up.%
    @weekly /usr/bin/sunday
    @reboot /usr/bin/at-boot
    0 0 * * * \\t/usr/bin/tabbed\\targs
    61 0 * * * /usr/bin/bad-minute
    0 0 31 feb * /usr/bin/never-but-valid-fields
    0 0 * * 8 /usr/bin/bad-day
    0 0 * foo * /usr/bin/bad-month
    0 0 * *
    5-1 0 * * * /usr/bin/backwards
    */0 * * * * /usr/bin/zero-step
"""


def test_edge_cases_convert_as_crontab_5_says(tmp_path: Path) -> None:
    code, out, err = import_text(EDGES)
    assert code == 1  # lines were skipped
    skipped = [line.split(": ", 2)[2] for line in err.splitlines()]
    assert skipped == [
        "line 15: @reboot has no cronplus schedule (start it from a systemd unit); skipped: @reboot /usr/bin/at-boot",
        "line 17: bad minute: 61 is outside 0-59; skipped: 61 0 * * * /usr/bin/bad-minute",
        'line 18: cron expression "0 0 31 2 *" never matches a date: cron accepts it and never runs it; skipped: 0 0 31 feb * /usr/bin/never-but-valid-fields',
        "line 19: bad day-of-week: 8 is outside 0-7; skipped: 0 0 * * 8 /usr/bin/bad-day",
        'line 20: bad month: "foo" is not a number or a three-letter name; skipped: 0 0 * foo * /usr/bin/bad-month',
        "line 21: bad day-of-week: expected five time fields and a command; skipped: 0 0 * *",
        "line 22: range 5-1 in the minute field runs backwards: cron accepts it and it matches nothing; skipped: 5-1 0 * * * /usr/bin/backwards",
        'line 23: bad minute: bad step "/0"; skipped: */0 * * * * /usr/bin/zero-step',
    ]
    assert (
        "# line 7: MAILTO=ops@example.org: notifier mail-ops-example-org mails a run's output"
        " when it prints anything, as cron does" in out
    )
    assert '  # line 8: 0 9 * * mon-fri echo "$GREETING"' in out
    data = yaml.safe_load(out)["jobs"]
    assert list(data) == [
        "echo",
        "report",
        "odd-mondays",
        "sunday",
        "mail",
        "sunday-2",
        "tabbed-targs",
    ]
    echo = data["echo"]
    assert echo["schedule"] == "0 9 * * 1-5"
    assert echo["command"] == ["/bin/bash", "-c", 'echo "$GREETING"']
    assert echo["env"] == {"PATH": "/usr/local/bin:/usr/bin:/bin", "GREETING": "  spaced out  "}
    assert data["report"]["schedule"] == "*/20 8-18/2 1,15 1,7 *"
    assert data["sunday"]["schedule"] == "0 0 * * 7"
    mail = data["mail"]
    assert mail["timezone"] == "Asia/Kathmandu" and "timezone" not in data["echo"]
    assert mail["command"] == ["/bin/bash", "-c", 'mail -s "daily report" root']
    assert mail["stdin"] == "Hello,\nthe numbers are 10% up.\n"
    assert yaml.safe_load(out)["notifiers"] == {
        "mail-ops-example-org": {
            "type": "email",
            "transport": "sendmail",
            "to": ["ops@example.org"],
        }
    }
    assert {(j["mail_to"][0], j["mail_output"]) for j in data.values()} == {
        ("mail-ops-example-org", "always")
    }
    assert data["sunday-2"]["schedule"] == "@weekly"
    # every imported line passes check, and the file parses in full
    assert list(jobs_of(out, tmp_path)) == list(data)


def test_the_percent_rule() -> None:
    assert crontab.split_percent("date +\\%Y") == ("date +%Y", None)
    assert crontab.split_percent("cat%a%b") == ("cat", "a\nb\n")  # cron ends it with a newline
    assert crontab.split_percent("cat%") == ("cat", "")
    assert crontab.split_percent("cat%a\\%b%") == ("cat", "a%b\n")


def test_system_crontab_lines_carry_a_user() -> None:
    code, out, err = import_text(
        """
        17 * * * * root cd / && run-parts --report /etc/cron.hourly
        25 6 * * * nobody test -x /usr/sbin/anacron || echo no anacron
        0 1 * * * no-such-user-here /bin/true
        0 1 * * * root
        """,
        system=True,
    )
    assert code == 1
    assert 'line 4: no such user "no-such-user-here"' in err
    assert "line 5: no command" in err
    data = yaml.safe_load(out)["jobs"]
    assert [(j["user"], j["command"]) for j in data.values()] == [
        ("root", "cd / && run-parts --report /etc/cron.hourly"),
        ("nobody", "test -x /usr/sbin/anacron || echo no anacron"),
    ]
    assert list(data) == ["cron-hourly", "echo"]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("cd / && run-parts --report /etc/cron.hourly", "cron-hourly"),
        (
            "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
            "cron-daily",
        ),
        ("test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r", "e2scrub-all"),
        ("/usr/local/bin/backup --full > /dev/null 2>&1", "backup"),
        ("nice -n 10 /usr/bin/updatedb | logger", "updatedb"),
        ('mail -s "report" root', "mail"),
        (">/dev/null", "job"),
    ],
)
def test_names_say_what_the_command_does(command: str, name: str) -> None:
    assert crontab.job_name_base(command) == name


def test_names_are_unique_and_stable() -> None:
    text = "0 * * * * /usr/bin/sync-a\n0 * * * * /usr/bin/sync-a --full\n5 * * * * /opt/sync-a\n"
    first = crontab.parse(text)
    again = crontab.parse(text)
    assert [j.name for j in first.jobs] == ["sync-a", "sync-a-2", "sync-a-3"]
    assert [j.name for j in first.jobs] == [j.name for j in again.jobs]


ROUND_TRIP = [
    "0 9 * * mon-fri",
    "*/20 8-18/2 1,15 jan,jul *",
    "5 4 */2 * 1",
    "0 0 1,15 * 3",
    "0 0 * * 7",
    "15 3 * * sun",
    "0 12 29 2 *",
    "1-59/7 */5 * * *",
    "0 0 1 */3 *",
]


@pytest.mark.parametrize("fields", ROUND_TRIP)
def test_round_trip_gives_the_instants_cron_would(fields: str, tmp_path: Path) -> None:
    zone_name = config.machine_zone()
    code, out, _ = import_text(f"{fields} /bin/true\n")
    assert code == 0
    [job] = jobs_of(out, tmp_path).values()
    rule = CronRule(job.schedule.expressions[0], zone_name)  # type: ignore[attr-defined]
    start = datetime(2026, 5, 1, 12, 0)
    expected = cron_runs(fields.split(), start, 25)
    from cronplus.clock import zone

    tz = zone(zone_name)
    got = next_instants(rule, start.replace(tzinfo=tz), 25)
    assert [g.astimezone(tz).replace(tzinfo=None) for g in got] == expected


def real_crontabs() -> list[str]:
    return sorted(glob.glob("/etc/cron.d/*") + glob.glob("/etc/crontab"))


@pytest.mark.skipif(not real_crontabs(), reason="no crontab files on this machine")
def test_the_machines_own_crontabs_import_and_check(tmp_path: Path) -> None:
    entry = re.compile(r"^\s*(@\w+|[\d*])")
    for file in real_crontabs():
        done = subprocess.run(
            [sys.executable, "-m", "cronplus.ctl", "import", file],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode in (0, 1), done.stderr
        for problem in done.stderr.splitlines():
            assert "@reboot" in problem or "no such user" in problem, problem
        imported = jobs_of(done.stdout, tmp_path)
        entries = [line for line in Path(file).read_text().splitlines() if entry.match(line)]
        assert len(imported) + len(done.stderr.splitlines()) == len(entries), file
        for line in entries:
            fields = line.split()
            if fields[0].startswith("@"):
                continue
            rule = CronRule(" ".join(fields[:5]), "UTC")
            start = datetime(2026, 5, 1, 12, 0)
            expected = cron_runs(fields[:5], start, 10)
            got = next_instants(rule, start.replace(tzinfo=UTC), 10)
            assert [g.replace(tzinfo=None) for g in got] == expected, line


def test_a_user_crontab_imported_for_a_named_user(tmp_path: Path) -> None:
    crontab_file = tmp_path / "alice.crontab"
    crontab_file.write_text("TZ=Europe/Paris\n0 7 * * 1-5 /usr/bin/wake-up\n")
    done = subprocess.run(
        [sys.executable, "-m", "cronplus.ctl", "import", str(crontab_file), "--user", "nobody"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert (
        "# line 1: TZ=Europe/Paris: the jobs after it are scheduled in Europe/Paris; Debian's cron"
        " schedules in the machine's zone" in done.stdout
    )
    job = yaml.safe_load(done.stdout)["jobs"]["wake-up"]
    assert (job["user"], job["timezone"], job["env"]["TZ"]) == (
        "nobody",
        "Europe/Paris",
        "Europe/Paris",
    )
