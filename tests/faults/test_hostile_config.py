"""Any config content at all: `config.load` returns a Config or raises ConfigError, nothing else.

Hypothesis writes random values of every YAML type into every job key, daemon key
and notifier key, random structures at the top level, and YAML text with tags,
anchors, aliases and merge keys, into a real file.  A rejected file must carry
problems with a file, a line, a column and a one-line message; an accepted one
must be usable by the daemon: finite numbers, and schedules that answer "next
run after T" for any T without raising.  A few runs of the real `cronplusctl
check` must exit 0 or 1 without a traceback, within a minute.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronplus import config, configfile
from cronplus.configkeys import NOTIFIER_KEYS, NOTIFIER_TYPES
from cronplus.errors import ConfigError
from cronplus.model import Job
from cronplus.schedule import build_rule

UTC = timezone.utc
END = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
INSTANTS = [
    datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    END - timedelta(days=1),
    END,
]

PROPERTY = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- values of every YAML type --------------------------------------------------------------

JUNK = [
    "inf", "-inf", "nan", "Infinity", "1e999s", "1e400", "1e-400", ".inf", "9" * 400 + "d",
    "0", "-1s", "1.5", "1.5G", "1.5e9", "64T", "65T", "1P", "99999999999999999999T",
    "367d", "366d", "1w1w1w1w1w", "1h30m", "30 s", "0.0001ms", "", " ", "none", "None", "~",
    "30 2 * * *", "* * * * * *", "@daily", "@reboot", "@never", "H H * * *", "R * * * *",
    "0 0 30 2 *", "0 0 * * 5#9", "*/0 * * * *", "0 0 L * *", "61 * * * *", "a b c d e",
    "2027-01-01T00:00", "9999-12-31T23:59", "0001-01-01T00:00+05:00", "2027-13-01T00:00",
    "Europe/Berlin", "America/New_York", "America", "Nowhere/City", "../../etc/passwd",
    "desktop", "command", "webhook", "http://", "https://example.org/x", "skip", "queue",
    "exit-code", "lost", "root", "nobody", "bad user", "/", "~/x", "/dev/zero", "a\0b",
    "\ud800", "\x07", "\u2028", "\ufeff", "é" * 3, "CRONPLUS_X", "2BAD", "<<",
]  # fmt: skip

CRON_FIELDS = [
    "*", "*/5", "0", "59", "60", "1-5", "5-1", "L", "W", "?", "5#3", "jan", "mon",
    "99999999999", "/", "-", ",", "H", "%",
]  # fmt: skip
cron_like = st.lists(st.sampled_from(CRON_FIELDS), min_size=1, max_size=7).map(" ".join)
duration_like = st.from_regex(
    r"\A[-+]?[0-9]{0,24}(\.[0-9]{0,4})?(e[-+]?[0-9]{1,4})?\s?(ms|s|m|h|d|w|K|M|G|T|KiB|x)?\Z"
)
strings = st.one_of(
    st.sampled_from(JUNK),
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=10),  # control characters, surrogates
    cron_like,
    duration_like,
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**4000), max_value=10**4000),
    st.floats(),  # NaN and both infinities
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**24, 1e308, -0.0, 5e-324]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    strings,
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5))])),
    st.binary(max_size=8),
)
keys = st.one_of(
    st.text(max_size=12), st.integers(), st.booleans(), st.none(), st.sampled_from(JUNK)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def dump(document: Any, flow: bool) -> bytes:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=flow, allow_unicode=True)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate makes the file not UTF-8


# --- the property ---------------------------------------------------------------------------


def loads_or_explains(file: Path, text: bytes) -> None:
    """Write `text` to `file` and load it: a Config fit for the daemon, or located problems."""
    file.write_bytes(text)
    try:
        loaded = config.load(str(file), default_zone="UTC")
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1, problem
            assert problem.message.strip(), problem
            assert "\n" not in str(problem) and "\r" not in str(problem), problem
            str(problem).encode("utf-8")  # printable and loggable
        return
    for job in loaded.jobs.values():
        usable(job)


def usable(job: Job) -> None:
    """What the daemon relies on: finite, bounded numbers and text it can exec."""
    for item in dataclasses.fields(job):
        value = getattr(job, item.name)
        if isinstance(value, float):
            assert math.isfinite(value) and 0 <= value <= 366 * 86400, (item.name, value)
    assert job.memory_limit is None or 1 << 20 <= job.memory_limit <= 64 << 40
    words = [job.command] if isinstance(job.command, str) else list(job.command or ())
    for text in [*words, *job.env, *job.env.values(), job.workdir or ""]:
        assert "\0" not in text
        text.encode("utf-8")
    rule = build_rule(job.schedule, job.timezone)
    for after in INSTANTS:
        found = rule.next_after(after)
        assert found is None or found > after
        if found is not None:  # as the daemon asks once that run fired
            again = rule.next_after(found, found)
            assert again is None or again > found


def with_loader(pure: bool) -> AbstractContextManager[Any]:
    if pure:  # the loader cronplus falls back to where PyYAML lacks libyaml
        return mock.patch.object(configfile, "make_loader", configfile._PureLoader)
    return nullcontext()


# --- job keys, defaults, daemon keys, notifiers, whole documents ---------------------------

JOB_KEYS = sorted(config.JOB_KEYS)
BASE_JOB: dict[str, Any] = {"schedule": "@daily", "command": "true"}


def job_with(key: str, value: Any) -> dict[str, Any]:
    job = dict(BASE_JOB)
    if key in ("every", "at"):
        del job["schedule"]
    if key == "notify":
        del job["command"]
    job[key] = value
    return job


@pytest.mark.parametrize("key", JOB_KEYS)
@settings(PROPERTY, max_examples=40)  # for each of the 27 keys
@given(value=values, flow=st.booleans())
def test_any_value_of_each_job_key(tmp_path: Path, key: str, value: Any, flow: bool) -> None:
    loads_or_explains(tmp_path / "c.yaml", dump({"jobs": {"a": job_with(key, value)}}, flow))


@PROPERTY
@given(
    job=st.dictionaries(st.sampled_from(JOB_KEYS) | keys, values, max_size=6), flow=st.booleans()
)
def test_any_values_of_several_job_keys(tmp_path: Path, job: dict[Any, Any], flow: bool) -> None:
    loads_or_explains(tmp_path / "c.yaml", dump({"jobs": {"a": job, "b": BASE_JOB}}, flow))


@PROPERTY
@given(defaults=st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=5), flow=st.booleans())
def test_any_defaults(tmp_path: Path, defaults: dict[str, Any], flow: bool) -> None:
    document = {"defaults": defaults, "jobs": {"a": BASE_JOB, "b": {"every": "1h", "command": "x"}}}
    loads_or_explains(tmp_path / "c.yaml", dump(document, flow))


@PROPERTY
@given(
    daemon=st.dictionaries(st.sampled_from(sorted(config.DAEMON_KEYS)) | keys, values, max_size=5),
    pools=st.dictionaries(keys, values, max_size=3),
    flow=st.booleans(),
)
def test_any_daemon_section(
    tmp_path: Path, daemon: dict[Any, Any], pools: dict[Any, Any], flow: bool
) -> None:
    if daemon.get("pools") is None:
        daemon["pools"] = pools
    job = {**BASE_JOB, "pool": next(iter(pools), "db")}
    loads_or_explains(tmp_path / "c.yaml", dump({"daemon": daemon, "jobs": {"a": job}}, flow))


@PROPERTY
@given(
    kind=st.sampled_from(sorted(NOTIFIER_TYPES)) | values,
    options=st.dictionaries(st.sampled_from(NOTIFIER_KEYS) | keys, values, max_size=5),
    flow=st.booleans(),
)
def test_any_notifier(tmp_path: Path, kind: Any, options: dict[Any, Any], flow: bool) -> None:
    notifier = {"type": kind, "url": "https://example.org/hook", "command": "true", **options}
    job = {**BASE_JOB, "on_failure": ["n"], "on_retry": "n"}
    document = {"notifiers": {"n": notifier}, "jobs": {"a": job}}
    loads_or_explains(tmp_path / "c.yaml", dump(document, flow))


# include: only globs that stay small; a random one could walk the whole file system
includes = st.sampled_from(
    [None, [], "cronplus.d/*.yaml", ["nope/*", "/dev/null"], "/proc/self/status", 5, {"a": 1}]
)
sections = st.fixed_dictionaries(
    {},
    optional={
        "jobs": st.dictionaries(keys, values, max_size=3),
        "defaults": values,
        "daemon": values,
        "notifiers": st.dictionaries(keys, values, max_size=2),
        "include": includes,
    },
)
documents = st.one_of(values, sections, st.dictionaries(keys, values, max_size=4))


@PROPERTY
@given(document=documents, flow=st.booleans(), pure=st.booleans())
def test_any_document(tmp_path: Path, document: Any, flow: bool, pure: bool) -> None:
    with with_loader(pure):
        loads_or_explains(tmp_path / "c.yaml", dump(document, flow))


# --- YAML text: tags, anchors, aliases, merge keys, directives, junk --------------------------

FRAGMENTS = [
    "jobs:", "  a:", "    every: 1h", "    command: x", "    schedule: '*/5 * * * *'",
    "  b: &j {every: 1h, command: x}", "  c: *j", "  d: {<<: *j}", "    <<: *j",
    "    <<: [*j, *j]", "  e: !!python/object:os.system {}", "    command: !!binary aGVsbG8=",
    "    at: !!timestamp 2027-01-01", "    at: !!timestamp soon", "    retries: !!int 1e3",
    "    retries: !!bool maybe", "    timeout: !!float .inf", "    timeout: .nan",
    "    env: &e {A: *e}", "    env: {<<: {A: b}}", "  ? [a, b]", "  : 1", "  1: x",
    "  true: {every: 1h, command: x}", "  !foo f: {every: 1h, command: x}",
    "  g: {at: '9999-12-31T23:59', command: x, timezone: America/New_York}",
    "  h: {every: 1e999s, command: x}", "  i: {every: .inf, command: x}",
    "defaults: &d", "  env: {A: b}", "  timezone: America", "notifiers:",
    "  n: {type: [webhook], url: *j}", "  m: {type: webhook, url: 'http://x', headers: *j}",
    "daemon:", "  pools: {db: .nan}", "  pools: !!set {a, b}", "include: [/dev/zero, /proc/self/status]",
    "---", "...", "%YAML 1.1", "%TAG !x! tag:yaml.org,2002:", "  k: !x!str 5", "&a x", "*a",
    "*undefined", "  - x", "'", '"\\0"', '"\\ud800"', "{", "[", "]", "}", ":", "? ", "|", ">",
    "\t", "\x07", "\ufeff", "#", "- &l0 [lol]", "- &l1 [*l0, *l0, *l0, *l0, *l0, *l0]",
    "- &l2 [*l1, *l1, *l1, *l1, *l1, *l1]", "- [*l2, *l2, *l2, *l2, *l2, *l2, *l2]",
]  # fmt: skip


@PROPERTY
@given(lines=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14), pure=st.booleans())
def test_any_yaml_text(tmp_path: Path, lines: list[str], pure: bool) -> None:
    text = "\n".join(lines) + "\n"
    with with_loader(pure):
        loads_or_explains(tmp_path / "c.yaml", text.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes(tmp_path: Path, content: bytes) -> None:
    loads_or_explains(tmp_path / "c.yaml", content)


# --- the real cronplusctl --------------------------------------------------------------------


@settings(PROPERTY, max_examples=12)
@given(
    content=st.one_of(
        st.tuples(documents, st.booleans()).map(lambda d: dump(*d)),
        st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map(
            lambda lines: ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        ),
    )
)
def test_cronplusctl_check_exits_0_or_1_without_a_traceback(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "c.yaml"
    file.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "cronplus.ctl", "check", str(file)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    if done.returncode == 1:
        assert done.stderr.endswith("configuration rejected\n"), done.stderr
    else:
        assert done.stdout.startswith(f"{file}: ok, ")
