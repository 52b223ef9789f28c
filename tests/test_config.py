"""The config reader: every key, drop-ins, defaults, and a located message for every mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cronplus import config
from cronplus.errors import ConfigError
from cronplus.model import CatchUp, Overlap, ScheduleKind

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def problems(tmp_path: Path, text: str, name: str = "cronplus.yaml") -> list[str]:
    file = write(tmp_path / name, text)
    with pytest.raises(ConfigError) as caught:
        config.load(file, default_zone="UTC")
    return [str(p) for p in caught.value.problems]


def test_example_config_is_valid() -> None:
    loaded = config.load(str(ROOT / "etc" / "cronplus.yaml"), default_zone="UTC")
    assert set(loaded.jobs) == {"heartbeat", "disk-report", "morning", "stretch", "new-year"}
    assert loaded.jobs["disk-report"].timezone == "America/New_York"
    assert loaded.jobs["disk-report"].command == ("df", "-h", ".")
    assert loaded.jobs["heartbeat"].timezone == "UTC"  # the machine's zone when unset
    assert loaded.jobs["heartbeat"].timeout == 600  # from defaults
    assert loaded.settings.max_workers == 4


def test_every_key_is_read(tmp_path: Path) -> None:
    file = write(
        tmp_path / "cronplus.yaml",
        """
        defaults:
          timezone: Europe/Berlin
          retries: 2
          timeout: 1h
          env: {LANG: C, SHARED: base}
        daemon:
          max_workers: 8
          pools: {db: 2}
          history: state/history.db
          keep_runs: 50
          shutdown_grace: 45s
        notifiers:
          desktop: {type: desktop}
          ops: {type: webhook, url: "https://hooks.example.org/cron", timeout: 5s}
          pager: {type: command, command: [/usr/local/bin/page, --urgent]}
        jobs:
          backup:
            schedule: "30 2 * * *"
            timezone: America/New_York
            command: /usr/local/bin/backup --full
            user: backup
            workdir: /var/backups
            env: {BACKUP_TARGET: s3, SHARED: job}
            retries: 3
            retry_backoff: 1m
            retry_backoff_max: 1h30m
            retry_on: [exit-code, timeout]
            timeout: 2h
            kill_grace: 30s
            memory_limit: 512M
            max_concurrent: 2
            overlap: queue
            pool: db
            priority: 10
            catch_up: once
            catch_up_limit: 3
            jitter: 5m
            on_failure: [desktop, ops]
            on_success: pager
            on_retry: []
            output_limit: 16K
            description: nightly backup
          take-a-break:
            every: 20m
            notify: {title: "Take a break", message: "You are sitting for too long", urgency: low}
          new-year:
            at: 2027-01-01T00:00
            command: [echo, happy new year]
        """,
    )
    loaded = config.load(file, default_zone="UTC")
    backup = loaded.jobs["backup"]
    assert backup.schedule.kind is ScheduleKind.CRON
    assert backup.schedule.expressions == ("30 2 * * *",)
    assert backup.timezone == "America/New_York"
    assert backup.env == {"LANG": "C", "SHARED": "job", "BACKUP_TARGET": "s3"}
    assert (backup.retries, backup.retry_backoff, backup.retry_backoff_max) == (3, 60, 5400)
    assert backup.retry_on == frozenset({"exit-code", "timeout"})
    assert (backup.timeout, backup.kill_grace) == (7200, 30)
    assert backup.memory_limit == 512 * 1024 * 1024
    assert (backup.max_concurrent, backup.overlap, backup.pool) == (2, Overlap.QUEUE, "db")
    assert (backup.priority, backup.catch_up, backup.catch_up_limit) == (10, CatchUp.ONCE, 3)
    assert backup.jitter == 300
    assert (backup.on_failure, backup.on_success, backup.on_retry) == (
        ("desktop", "ops"),
        ("pager",),
        (),
    )
    assert backup.output_limit == 16384
    assert backup.source == f"{file}:17"
    brk = loaded.jobs["take-a-break"]
    assert brk.schedule.every_seconds == 1200
    assert brk.notify is not None and brk.notify.urgency == "low"
    assert brk.timezone == "Europe/Berlin" and brk.retries == 2
    assert loaded.jobs["new-year"].schedule.at_local == "2027-01-01T00:00"
    assert loaded.settings.history == str(tmp_path / "state" / "history.db")
    assert loaded.settings.pools == {"db": 2}
    assert loaded.settings.shutdown_grace == 45
    assert loaded.notifiers["ops"].options["url"] == "https://hooks.example.org/cron"


def test_drop_ins_are_read_from_the_directory_beside_the_file(tmp_path: Path) -> None:
    main = write(
        tmp_path / "cronplus.yaml",
        """
        defaults: {timeout: 5m}
        jobs:
          main-job: {schedule: "@daily", command: "true"}
        """,
    )
    write(
        tmp_path / "cronplus.d" / "10-web.yaml",
        """
        defaults: {retries: 4}
        jobs:
          rotate: {schedule: "@hourly", command: logrotate}
        """,
    )
    write(tmp_path / "cronplus.d" / "ignored.txt", "not: yaml: at all:")
    loaded = config.load(main, default_zone="UTC")
    assert set(loaded.jobs) == {"main-job", "rotate"}
    assert loaded.jobs["rotate"].retries == 4 and loaded.jobs["rotate"].timeout == 300
    assert loaded.jobs["main-job"].retries == 0
    assert len(loaded.files) == 2


def test_include_globs_are_relative_to_the_main_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.yaml", 'include: ["extra/*.yaml"]\n')
    write(tmp_path / "extra" / "a.yaml", 'jobs: {a: {every: 1h, command: "true"}}\n')
    assert set(config.load(main, default_zone="UTC").jobs) == {"a"}


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert config.load(write(tmp_path / "c.yaml", "# nothing yet\n"), default_zone="UTC").jobs == {}


BAD_INPUT = [
    (
        "jobs:\n  a:\n    schedule: '@daily'\n    comand: x\n",
        ':4:5: jobs.a.comand: unknown key "comand", expected a job key (did you mean "command"?)',
    ),
    (
        "job:\n  a: {}\n",
        ':1:1: job: unknown section "job", expected one of include, daemon, defaults, jobs, '
        'notifiers (did you mean "jobs"?)',
    ),
    (
        "jobs:\n  a: {schedule: '61 * * * *', command: x}\n",
        ':2:17: jobs.a.schedule: bad cron expression "61 * * * *"',
    ),
    (
        "jobs:\n  a: {schedule: '0 0 30 2 *', command: x}\n",
        ':2:17: jobs.a.schedule: cron expression "0 0 30 2 *" never matches a date',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, timezone: Europe/Berln}\n",
        ':2:49: jobs.a.timezone: unknown zone "Europe/Berln", expected an IANA zone name such as'
        ' "Europe/Berlin" (did you mean "Europe/Berlin"?)',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, timeout: 2 hours}\n",
        ':2:48: jobs.a.timeout: found "2 hours", expected a duration such as 30s, 5m, 2h or 1d',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, memory_limit: 12Q}\n",
        ':2:53: jobs.a.memory_limit: found "12Q", expected a size such as 512K, 512M or 2G',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, retries: -1}\n",
        ":2:48: jobs.a.retries: found -1, expected a whole number from 0 to 100",
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, max_concurrent: 0}\n",
        ":2:55: jobs.a.max_concurrent: found 0, expected a whole number from 1 to 1000",
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, retries: yes}\n",
        ":2:48: jobs.a.retries: found true, expected a whole number from 0 to 100",
    ),
    (
        "daemon: {pools: {db: 2}}\njobs:\n  a: {schedule: '@daily', command: x, pool: dv}\n",
        ':3:45: jobs.a.pool: unknown pool "dv", expected one of: db',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, on_failure: [ops]}\n",
        ':2:51: jobs.a.on_failure: unknown notifier "ops", expected one of: none defined in notifiers',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', every: 5m, command: x}\n",
        ":2:3: jobs.a: found schedule and every, expected exactly one of schedule, every or at",
    ),
    (
        "jobs:\n  a: {command: x}\n",
        ":2:3: jobs.a: found none, expected exactly one of schedule, every or at",
    ),
    (
        "jobs:\n  a: {schedule: '@daily'}\n",
        ":2:3: jobs.a: found none, expected exactly one of command or notify",
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x}\n  a: {schedule: '@hourly', command: y}\n",
        ":3:3: jobs.a: duplicate key (first on line 2)",
    ),
    (
        "jobs:\n  'bad name!': {schedule: '@daily', command: x}\n",
        ':2:3: jobs.bad name!: bad job name "bad name!", expected letters, digits',
    ),
    (
        "defaults: {schedule: '@daily'}\njobs: {}\n",
        ":1:22: defaults.schedule: a schedule cannot be a default, expected it under each job",
    ),
    (
        "notifiers:\n  ops: {type: webhook}\n",
        ':2:8: notifiers.ops: a webhook notifier needs "url"',
    ),
    (
        "notifiers:\n  ops: {type: pigeon}\n",
        ':2:8: notifiers.ops.type: found "pigeon", expected one of desktop, command, webhook, email',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, env: {'2BAD': x}}\n",
        ':2:44: jobs.a.env: bad variable name "2BAD", expected a variable name such as BACKUP_TARGET',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, env: {CRONPLUS_RUN_ID: '7'}}\n",
        ':2:44: jobs.a.env: reserved name "CRONPLUS_RUN_ID", expected a name not starting with CRONPLUS_',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, overlap: wait}\n",
        ':2:48: jobs.a.overlap: found "wait", expected one of skip, queue, replace',
    ),
    (
        "jobs:\n  a: {every: 0s, command: x}\n",
        ':2:14: jobs.a.every: found "0s", expected a duration of at least 1s',
    ),
    (
        "jobs:\n  a: {at: 'soon', command: x}\n",
        ':2:11: jobs.a.at: "soon" is not a date and time, expected ISO 8601 such as 2027-01-01T09:00',
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: [], user: 'root user'}\n",
        ":2:36: jobs.a.command: found a list, expected a command string or a list of arguments",
    ),
    (
        "jobs:\n  a: {schedule: '@daily', command: x, retry_backoff: 10m, retry_backoff_max: 1m}\n",
        ":2:78: jobs.a.retry_backoff_max: found 60s, expected at least retry_backoff (600s)",
    ),
    ("- just\n- a list\n", ":1:1: expected a mapping with jobs:, daemon:, defaults: ..."),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUT)
def test_bad_input_is_located_and_explained(tmp_path: Path, text: str, message: str) -> None:
    found = problems(tmp_path, text)
    file = str(tmp_path / "cronplus.yaml")
    assert any(p.startswith(file + message) for p in found), found


def test_an_unquoted_star_is_a_syntax_error_with_a_hint(tmp_path: Path) -> None:
    [found] = problems(tmp_path, "jobs:\n  a:\n    schedule: */5 * * * *\n    command: x\n")
    where = f"{tmp_path / 'cronplus.yaml'}:3:16: YAML syntax error: "
    assert found.startswith(where)  # libyaml and pure PyYAML word the problem differently
    assert found.endswith(" (quote a cron expression that starts with *)")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        jobs:
          a: {schedule: "61 * * * *", command: x}
          b: {schedule: "@daily", command: x, timezone: Nowhere/City}
          c: {every: soon, command: x}
          d: {schedule: "@daily", command: x, colour: blue}
        """,
    )
    assert [p.split(": ")[1] for p in found] == [
        "jobs.a.schedule",
        "jobs.b.timezone",
        "jobs.c.every",
        "jobs.d.colour",
    ]


def test_a_bad_default_is_reported_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        defaults: {timezone: Nowhere/City}
        jobs:
          a: {schedule: "@daily", command: x}
          b: {schedule: "@daily", command: x}
        """,
    )
    assert len(found) == 1 and ":1:22: defaults.timezone: unknown zone" in found[0]


def test_a_job_defined_twice_across_files_names_both_places(tmp_path: Path) -> None:
    main = write(tmp_path / "cronplus.yaml", 'jobs:\n  a: {schedule: "@daily", command: x}\n')
    drop = write(
        tmp_path / "cronplus.d" / "a.yaml", 'jobs:\n  a: {schedule: "@daily", command: y}\n'
    )
    with pytest.raises(ConfigError) as caught:
        config.load(main, default_zone="UTC")
    assert [str(p) for p in caught.value.problems] == [
        f'{drop}:2:3: jobs.a: job "a" is already defined at {main}:2'
    ]


def test_a_drop_in_cannot_change_the_daemon(tmp_path: Path) -> None:
    main = write(tmp_path / "cronplus.yaml", "jobs: {}\n")
    drop = write(tmp_path / "cronplus.d" / "x.yaml", "daemon: {max_workers: 1000}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(main, default_zone="UTC")
    assert str(caught.value.problems[0]).startswith(
        f'{drop}:1:1: daemon: section "daemon" is not allowed in a drop-in'
    )


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"nope\.yaml:1:1: cannot read: No such file or directory"
    ):
        config.load(str(tmp_path / "nope.yaml"))


def test_machine_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    assert config.machine_zone() == "Asia/Kathmandu"
    monkeypatch.setenv("TZ", ":Europe/Paris")
    assert config.machine_zone() == "Europe/Paris"


def test_daemon_cgroups_is_auto_or_off(tmp_path: Path) -> None:
    jobs = 'jobs:\n  a: {schedule: "@daily", command: "true"}\n'
    default = config.load(write(tmp_path / "a.yaml", jobs), default_zone="UTC")
    off = config.load(write(tmp_path / "b.yaml", "daemon: {cgroups: off}\n" + jobs), "UTC")
    quoted = config.load(write(tmp_path / "c.yaml", 'daemon: {cgroups: "off"}\n' + jobs), "UTC")
    assert (default.settings.cgroups, off.settings.cgroups) == ("auto", "off")  # YAML's false
    assert quoted.settings.cgroups == "off"
    wrong = problems(tmp_path, "daemon: {cgroups: v1}\n" + jobs)
    assert wrong == [
        f'{tmp_path / "cronplus.yaml"}:1:19: daemon.cgroups: found "v1", expected one of auto, off'
    ]


def test_daemon_spawner_is_auto_or_off(tmp_path: Path) -> None:
    jobs = 'jobs:\n  a: {schedule: "@daily", command: "true"}\n'
    default = config.load(write(tmp_path / "a.yaml", jobs), default_zone="UTC")
    off = config.load(write(tmp_path / "b.yaml", "daemon: {spawner: off}\n" + jobs), "UTC")
    assert (default.settings.spawner, off.settings.spawner) == ("auto", "off")
    wrong = problems(tmp_path, "daemon: {spawner: fork}\n" + jobs)
    assert wrong == [
        f'{tmp_path / "cronplus.yaml"}:1:19: daemon.spawner: found "fork", expected one of auto, off'
    ]


def test_a_pool_may_be_counted_across_a_cluster(tmp_path: Path) -> None:
    jobs = 'jobs:\n  a: {schedule: "@daily", command: "true", pool: db}\n'
    loaded = config.load(
        write(
            tmp_path / "a.yaml", "daemon: {pools: {db: {max: 2, scope: cluster}, fs: 3}}\n" + jobs
        ),
        "UTC",
    )
    assert loaded.settings.pools == {"db": 2, "fs": 3}
    assert loaded.settings.cluster_pools == frozenset({"db"})
    wrong = problems(tmp_path, "daemon: {pools: {db: {max: 2, scope: planet}}}\n" + jobs)
    assert wrong == [
        f'{tmp_path / "cronplus.yaml"}:1:22: daemon.pools.db: found "planet", expected one of node, cluster'
    ]
