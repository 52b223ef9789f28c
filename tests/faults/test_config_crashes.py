"""Config content that crashed, hung or slipped through the reader, one test per kind of fault.

Each input here raised something other than ConfigError before (named in the
comment), or was accepted though the daemon could not use it; now it is a
problem that names the file, line and column and says what was expected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

from cronplus import config, configfile
from cronplus.errors import ConfigError

JOB = "schedule: '@daily', command: x"


def problems(tmp_path: Path, text: str) -> list[str]:
    """Every problem of `text` as a file, without the file's name; it must be rejected."""
    file = tmp_path / "cronplus.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), default_zone="UTC")
    for problem in caught.value.problems:
        assert problem.file == str(file) and problem.line >= 1 and problem.column >= 1
        assert problem.message and "\n" not in str(problem)
    return [str(p).removeprefix(str(file)) for p in caught.value.problems]


@contextmanager
def pure_python_yaml() -> Iterator[None]:
    """The loader cronplus falls back to where PyYAML was built without libyaml."""
    with mock.patch.object(configfile, "make_loader", configfile._PureLoader):
        yield


NUMBERS = [
    # (key, the path where it goes, its maximum as the message words it)
    ("every", "jobs.a", "366d"),
    ("timeout", "jobs.a", "366d"),
    ("retry_backoff", "jobs.a", "7d"),
    ("retry_backoff_max", "jobs.a", "30d"),
    ("kill_grace", "jobs.a", "1h"),
    ("jitter", "jobs.a", "1d"),
    ("shutdown_grace", "daemon", "1d"),
    ("timeout", "notifiers.n", "5m"),
]


def _place(key: str, where: str, value: str) -> str:
    if where == "daemon":
        return f"daemon: {{{key}: {value}}}\n"
    if where == "notifiers.n":
        return f"notifiers:\n  n: {{type: command, command: x, {key}: {value}}}\n"
    schedule = "" if key == "every" else "schedule: '@daily', "
    return f"jobs:\n  a: {{{schedule}command: x, {key}: {value}}}\n"


@pytest.mark.parametrize(("key", "where", "maximum"), NUMBERS)
@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "'inf'", "1e999s", "nan"])
def test_no_duration_is_a_nan_or_an_infinity(
    tmp_path: Path, key: str, where: str, maximum: str, value: str
) -> None:
    # every: .nan raised ValueError and every: .inf OverflowError in timedelta();
    # timeout: .nan, jitter: .nan and timeout: .inf were accepted
    [found] = problems(tmp_path, _place(key, where, value))
    assert f": {where}.{key}: found " in found
    expected = (
        rf"expected a duration (such as 30s, 5m, 2h or 1d|of at most {maximum}|of at least .*s)$"
    )
    assert re.search(expected, found), found


@pytest.mark.parametrize(("key", "where", "maximum"), NUMBERS)
@pytest.mark.parametrize("value", ["99999999999999999999999999d", "1" + "0" * 30, "1.0e+300"])
def test_no_duration_is_beyond_its_maximum(
    tmp_path: Path, key: str, where: str, maximum: str, value: str
) -> None:
    # every: 10**24 raised OverflowError ("Python int too large to convert to C int")
    [found] = problems(tmp_path, _place(key, where, value))
    assert f": {where}.{key}: found " in found
    assert found.endswith(f"expected a duration of at most {maximum}"), found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # int(float("9" * 400)) raised OverflowError
        (f"memory_limit: '{'9' * 400}'", "expected a size of at most 64T"),
        ("memory_limit: 99999999999999999999999T", "expected a size of at most 64T"),
        ("memory_limit: .inf", "found .inf, expected a size such as 512K, 512M or 2G"),
        ("output_limit: .nan", "found .nan, expected a size such as 512K, 512M or 2G"),
        ("retries: .inf", "found .inf, expected a whole number from 0 to 100"),
        ("priority: 1.0e+400", "found .inf, expected a whole number from -1000 to 1000"),
        ("max_concurrent: 2.0", "found 2.0, expected a whole number from 1 to 1000"),
        ("catch_up_limit: 99999999999999999999999", "expected a whole number from 1 to 10000"),
        # int() of 5,000 digits raised ValueError from Python's integer string limit
        (f"retries: {'9' * 5000}", "found a number of 5000 characters, expected at most 100"),
    ],
)
def test_no_size_or_count_is_non_finite_or_beyond_its_maximum(
    tmp_path: Path, text: str, message: str
) -> None:
    [found] = problems(tmp_path, f"jobs:\n  a: {{{JOB}, {text}}}\n")
    assert found.startswith(":2:") and found.endswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("daemon: {pools: {db: .inf}}", "daemon.pools.db: found .inf, expected a whole number"),
        ("daemon: {pools: {db: .nan}}", "daemon.pools.db: found .nan, expected a whole number"),
        ("daemon: {max_workers: -.inf}", "daemon.max_workers: found -.inf, expected a whole"),
        ("daemon: {keep_runs: 1.0e+999}", "daemon.keep_runs: found .inf, expected a whole"),
        ("notifiers: {n: {type: webhook, url: 'http://x', retries: .nan}}", "retries: found .nan"),
    ],
)
def test_no_daemon_pool_or_notifier_number_is_non_finite(
    tmp_path: Path, text: str, message: str
) -> None:
    [found] = problems(tmp_path, text + "\n")
    assert message in found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "every: 367d, command: x",
            'jobs.a.every: found "367d", expected a duration of at most 366d',
        ),
        # year 10000 in UTC: OverflowError from astimezone()
        ("at: '9999-12-31T23:59', timezone: America/New_York, command: x", "jobs.a.at: "),
        ("at: '9999-12-31T23:59-05:00', command: x", "jobs.a.at: "),
        # year 0 in UTC: OverflowError
        ("at: '0001-01-01T00:00+05:00', command: x", "jobs.a.at: "),
        ("at: '0001-01-01T00:00', timezone: Asia/Tokyo, command: x", "jobs.a.at: "),
        ("at: 0001-01-01 00:00:00+05:00, command: x", "jobs.a.at: "),
    ],
)
def test_schedules_beyond_the_calendar_are_problems(
    tmp_path: Path, text: str, message: str
) -> None:
    [found] = problems(tmp_path, f"jobs:\n  a: {{{text}}}\n")
    assert message in found
    if "at:" in text:
        assert found.endswith("expected an instant from year 1 to 9999 in UTC")


def test_an_at_with_a_utc_offset_is_that_instant(tmp_path: Path) -> None:
    file = tmp_path / "cronplus.yaml"
    file.write_text("jobs:\n  a: {at: '2027-01-01T00:00+05:00', command: x}\n")
    assert config.load(str(file), "UTC").jobs["a"].schedule.at_local == "2027-01-01T00:00+05:00"


@pytest.mark.parametrize(
    "value",
    ["[desktop]", "{desktop: 1}", "[[a]]", "!!binary ZGVza3RvcA==", "2027-01-01", "true", "~"],
)
def test_a_notifier_type_of_the_wrong_kind_is_a_problem(tmp_path: Path, value: str) -> None:
    # a list or a mapping raised TypeError: unhashable type, from `kind not in NOTIFIER_TYPES`
    [found] = problems(tmp_path, f"notifiers:\n  n: {{type: {value}}}\n")
    assert found.startswith(":2:6: notifiers.n.type: found ")
    assert found.endswith("expected one of desktop, command, webhook, email")


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("!!python/object:os.system x", "found the tag !!python/object:os.system"),
        ("!!python/name:os.system ''", "found the tag !!python/name:os.system"),
        ("!!bool maybe", 'found "maybe" tagged !!bool'),  # KeyError
        ("!!timestamp soon", 'found "soon" tagged !!timestamp'),  # AttributeError
        ("!!int abc", 'found "abc" tagged !!int'),  # ValueError
        ("!!float abc", 'found "abc" tagged !!float'),
        ("2027-13-45", 'found "2027-13-45" tagged !!timestamp'),  # ValueError: month
        ("[1, !!bool maybe]", 'found "maybe" tagged !!bool'),
        ("!!set [a]", "expected a mapping node"),
    ],
)
@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("jobs:\n  a: {{schedule: '@daily', command: x, retries: {}}}\n", "jobs.a.retries"),
        ("defaults: {{env: {}}}\n", "defaults.env"),
        ("notifiers:\n  n: {{type: command, command: {}}}\n", "notifiers.n.command"),
        ("notifiers:\n  n: {{type: {}}}\n", "notifiers.n.type"),
        ("daemon: {{pools: {{db: {}}}}}\n", "daemon.pools.db"),
        ("include: {}\n", "include"),
    ],
)
def test_a_value_yaml_cannot_build_is_a_problem_wherever_it_is(
    tmp_path: Path, value: str, found: str, template: str, path: str
) -> None:
    # PyYAML's constructors raise ConstructorError, KeyError, AttributeError or ValueError;
    # for a notifier value, a pool and include none of them was caught
    reported = problems(tmp_path, template.format(value))
    assert any(f": {path}: " in p and found in p for p in reported), reported


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs:\n  ? [a, b]\n  : {}\n", ":2:5: jobs: found a list as a key, expected a name"),
        ("jobs:\n  ? {a: 1}\n  : {}\n", ":2:5: jobs: found a mapping as a key, expected a name"),
        ("? [a, b]\n: 1\n", ":1:3: found a list as a key, expected a name"),
        ("jobs:\n  a: {<<: {command: x}, every: 1h}\n", ':2:7: jobs.a: found the merge key "<<"'),
        ("jobs:\n  !foo a: {}\n", ':2:3: jobs: found "a" tagged !foo as a key, expected a name'),
        ("jobs:\n  !!binary YQ==: {}\n", ':2:3: jobs: found "YQ==" tagged !!binary as a key'),
        ("jobs: !!set {a, b}\n", ":1:7: jobs: found a mapping tagged !!set, expected a mapping"),
        ("jobs: !!python/object:x {}\n", ":1:7: jobs: found a mapping tagged !!python/object:x"),
        ("jobs: [a, b]\n", ":1:7: jobs: found a list, expected a mapping of jobs"),
        ("jobs: 5\n", ':1:7: jobs: found "5", expected a mapping of jobs'),
        ("jobs:\n  a: [every, 1h]\n", ":2:6: jobs.a: found a list, expected a job key"),
        ("1: x\n", ':1:1: 1: unknown section "1", expected one of include, daemon'),
        (
            f"jobs:\n  a: {{{JOB}, notify: {{1: x, b: y, title: t}}}}\n",
            # sorting the unknown keys 1 and "b" raised TypeError
            ":2:3",
        ),
    ],
)
def test_keys_and_sections_of_the_wrong_kind_are_problems(
    tmp_path: Path, text: str, message: str
) -> None:
    reported = problems(tmp_path, text)
    assert any(p.startswith(message) for p in reported), reported


def test_a_key_is_a_name_as_written(tmp_path: Path) -> None:
    file = tmp_path / "cronplus.yaml"
    file.write_text("jobs:\n  true: {every: 1h, command: 'true'}\n  1: {every: 1h, command: x}\n")
    assert set(config.load(str(file), "UTC").jobs) == {"true", "1"}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('command: "rm\\0 -rf"', "jobs.a.command"),
        ('command: [echo, "a\\0b"]', "jobs.a.command"),
        ('workdir: "/tmp\\0x"', "jobs.a.workdir"),
        ('env: {A: "x\\0y"}', "jobs.a.env"),
        ('description: "\\0"', "jobs.a.description"),
    ],
)
def test_text_with_a_nul_character_is_a_problem(tmp_path: Path, text: str, path: str) -> None:
    # accepted before; the daemon's exec then raised ValueError: embedded null byte
    job = f"schedule: '@daily', {text}" if text.startswith("command") else f"{JOB}, {text}"
    [found] = problems(tmp_path, f"jobs:\n  a: {{{job}}}\n")
    assert f": {path}: " in found and "without NUL characters or lone surrogates" in found


def test_a_lone_surrogate_is_a_problem_with_the_pure_python_loader(tmp_path: Path) -> None:
    # libyaml refuses "\ud800"; the pure-Python loader builds it, and exec() cannot encode it
    with pure_python_yaml():
        [found] = problems(tmp_path, f'jobs:\n  a: {{{JOB}, workdir: "\\ud800"}}\n')
    assert found.endswith(
        'found "\\ud800", expected a directory without NUL characters or lone surrogates'
    )


def test_a_url_with_a_nul_character_is_a_problem(tmp_path: Path) -> None:
    [found] = problems(tmp_path, 'notifiers:\n  n: {type: webhook, url: "http://x\\0y"}\n')
    assert ": notifiers.n.url: found " in found and "NUL" in found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[a]", "found a list, expected a mapping of HTTP header names to values"),
        ("{'bad name': x}", 'bad header name "bad name", expected a header name'),
        ('{X-A: "a\\r\\nInjected: 1"}', "expected a one-line value for X-A"),
    ],
)
def test_webhook_headers_are_checked(tmp_path: Path, value: str, message: str) -> None:
    text = f"notifiers:\n  n: {{type: webhook, url: 'https://x', headers: {value}}}\n"
    [found] = problems(tmp_path, text)
    assert ": notifiers.n.headers: " in found and message in found


@pytest.mark.parametrize("loader", ["libyaml", "pure Python"])
@pytest.mark.parametrize(
    "text",
    [
        f"jobs:\n  a:\n    every: 1h\n    command: {'[' * 900}{']' * 900}\n",
        f"jobs:\n  a: {{{JOB}, env: {'{a: ' * 900}1{'}' * 900}}}\n",
        f"notifiers:\n  n: {{type: webhook, url: 'https://x', headers: {'[' * 500}{']' * 500}}}\n",
    ],
    ids=["command", "env", "notifier"],
)
def test_deep_nesting_is_a_problem(tmp_path: Path, loader: str, text: str) -> None:
    # construction recursed until RecursionError (and the pure-Python composer did too)
    if loader == "pure Python":
        with pure_python_yaml():
            reported = problems(tmp_path, text)
    else:
        reported = problems(tmp_path, text)
    assert any("nested more than 64 levels deep" in p or "nesting depth" in p for p in reported)


def _billion_laughs(levels: int) -> str:
    lines = ["jobs:", "  a:", "    every: 1h", "    command:", "      - &l0 [lol, lol]"]
    for level in range(1, levels + 1):
        lines.append(f"      - &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int) -> str:
    lines = ["jobs:", "  a:", "    every: 1h", "    command: x", "    env:", "      A: &m0 {a: 1}"]
    for level in range(1, levels + 1):
        lines.append(
            f"      B{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: 1}}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", ["libyaml", "pure Python"])
@pytest.mark.parametrize(
    "text", [_billion_laughs(30), _merge_bomb(60)], ids=["billion laughs", "merge keys"]
)
def test_an_alias_bomb_is_refused_quickly(tmp_path: Path, loader: str, text: str) -> None:
    # 9**30 nodes once expanded: anything that walked the expansion would never end
    started = time.monotonic()
    if loader == "pure Python":
        with pure_python_yaml():
            reported = problems(tmp_path, text)
    else:
        reported = problems(tmp_path, text)
    assert reported == [
        ":1:1: YAML: aliases expand this document by more than 1000000 nodes "
        '(a "billion laughs"), expected aliases that repeat far less'
    ]
    assert time.monotonic() - started < 10


def test_aliases_that_repeat_a_little_are_fine(tmp_path: Path) -> None:
    file = tmp_path / "cronplus.yaml"
    jobs = [f"  j{i}: {{every: 1h, command: x, env: *env}}" for i in range(200)]
    file.write_text(
        "jobs:\n  base: {every: 1h, command: x, env: &env {A: '1', B: '2'}}\n" + "\n".join(jobs)
    )
    loaded = config.load(str(file), "UTC")
    assert len(loaded.jobs) == 201 and loaded.jobs["j199"].env == {"A": "1", "B": "2"}


def test_an_alias_inside_the_node_it_names_is_a_problem(tmp_path: Path) -> None:
    reported = problems(tmp_path, "jobs:\n  a: &a {every: 1h, command: x, env: {A: *a}}\n")
    assert reported == [
        ":2:6: YAML: an alias refers to a node that contains it, expected aliases to nodes "
        "outside themselves"
    ]


def test_a_forbidden_control_character_is_located(tmp_path: Path) -> None:
    # reported at 1:1 with PyYAML's "position 9" on a second line before
    assert problems(tmp_path, "jobs: {}\n# \x07\n") == [
        ":2:3: YAML syntax error: found the character U+0007, expected printable text"
    ]


def test_many_problems_are_collected_in_linear_time(tmp_path: Path) -> None:
    # each problem was compared with every earlier one: 40,000 of them took minutes
    keys = "\n".join(f"    k{i}: 1" for i in range(40_000))
    started = time.monotonic()
    reported = problems(tmp_path, f"jobs:\n  a:\n    every: 1h\n    command: x\n{keys}\n")
    assert len(reported) == 40_000
    assert time.monotonic() - started < 60


def test_a_byte_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    file = tmp_path / "cronplus.yaml"
    file.write_bytes('jobs:\n  a: {every: 1h, command: "éé'.encode() + b'\xff"}\n')
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), "UTC")
    assert str(caught.value) == f"{file}:2:30: not UTF-8 text: invalid start byte"
