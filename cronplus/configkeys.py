"""What each config key accepts: one converter per key of a job, the daemon and a notifier.

A converter takes the value as YAML constructed it and returns the model's value,
or raises `ValueError` saying what it found and what it expected.  Every number
has bounds here; `convert` keeps NaNs and infinities out.
"""

from __future__ import annotations

import difflib
import math
import re
import socket
from datetime import date, datetime
from typing import Any, Callable, Optional

from . import convert
from .calendarrule import parse_moment
from .clock import zone
from .errors import ScheduleError
from .model import (
    LAST_DAY,
    RETRYABLE,
    WEEKDAY_NAMES,
    After,
    CatchUp,
    ClusterSettings,
    Notification,
    Overlap,
)
from .schedule import MAX_INTERVAL_SECONDS
from .schedulespec import SCHEDULE_KEYS, Period

Converter = Callable[[Any], Any]

DAY = 86400
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
URL = re.compile(r"https?://[^\s/]+")
MAX_TIMEOUT = 366 * DAY
MAX_MEMORY = 64 << 40


def _schedule(value: Any) -> tuple[str, ...]:
    return convert.string_list(value, 'a cron expression such as "30 2 * * *" or a list of them')


# `every:` as a calendar period: whole days, weeks or months, each with its bound
_PERIOD = re.compile(r"(\d{1,4})\s*(d|w|mo)")
PERIOD_MAX = {"d": 366, "w": 52, "mo": 120}
_PERIOD_SECONDS = {"d": DAY, "w": 7 * DAY}
_WEEKDAYS = {name: number for number, name in enumerate(WEEKDAY_NAMES)}
_WEEKDAYS.update(
    {
        full: _WEEKDAYS[full[:3]]
        for full in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
)


def _every(value: Any) -> Period:
    """An interval (`20m`), or a calendar period (`2d`, `2w`, `3mo`) for `at`, `on`, `on_day`."""
    match = _PERIOD.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    if match is None or (match.group(2) != "mo" and not 1 <= int(match.group(1)) <= 366):
        return Period(seconds=convert.duration(value, minimum=1, maximum=MAX_INTERVAL_SECONDS))
    count, unit = int(match.group(1)), match.group(2)
    if not 1 <= count <= PERIOD_MAX[unit]:
        raise convert.bad(value, f"from 1{unit} to {PERIOD_MAX[unit]}{unit}")
    seconds = count * _PERIOD_SECONDS[unit] if unit in _PERIOD_SECONDS else None
    return Period(count, unit, seconds)


def _at(value: Any) -> Any:
    """One date and time, or with `every:` a time of day or a list of them."""
    expected = 'a date and time such as 2027-01-01T09:00, or with every: a time such as "09:00"'
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 9:30 as a number of minutes (570): only a quoted time is text
        raise convert.bad(value, expected + ' (quote it: at: "9:30")')
    if isinstance(value, list):
        return convert.string_list(value, 'times of day such as ["09:00", "17:00"]')
    return convert.text(value, expected)


def _weekdays(value: Any) -> tuple[int, ...]:
    expected = "weekday names such as mon or [mon, thu]"
    names = convert.string_list(value, expected)
    out = []
    for name in names:
        if name.strip().lower() not in _WEEKDAYS:
            raise convert.bad(name, expected)
        out.append(_WEEKDAYS[name.strip().lower()])
    return tuple(sorted(set(out)))


def _month_days(value: Any) -> tuple[int, ...]:
    expected = "a day of the month from 1 to 31, or last, or a list of them"
    items = value if isinstance(value, list) and value else [value]
    out = []
    for item in items:
        if item == "last":
            out.append(LAST_DAY)
        elif isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 31:
            out.append(item)
        else:
            raise convert.bad(item, expected)
    return tuple(sorted(set(out)))


def _moment(value: Any) -> str:
    """`start:` or `end:`: a date, a local date and time, or an instant with a UTC offset."""
    expected = "a date such as 2026-01-05, or a date and time such as 2026-01-05T09:00"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = convert.text(value, expected).strip()
    try:
        parse_moment(text)
    except ScheduleError:
        raise convert.bad(value, expected) from None
    return text


AFTER_ON = ("success", "failure", "any")
_AFTER_KEYS = ("job", "on", "within")


def _after(value: Any) -> tuple[After, ...]:
    """`after: backup`, a list of names, or mappings `{job: backup, on: failure, within: 6h}`."""
    expected = "a job name, a mapping such as {job: backup, on: failure}, or a list of them"
    items = value if isinstance(value, list) and value else [value]
    out: list[After] = []
    for item in items:
        if isinstance(item, str):
            out.append(After(_job_name(item)))
            continue
        if not isinstance(item, dict):
            raise convert.bad(item, expected)
        # YAML 1.1 reads the key `on` as true: it is the only key that can have become one
        fields = {"on" if key is True else key: item[key] for key in item}
        for key in fields:
            if key not in _AFTER_KEYS:
                raise convert.bad(key, "job, on or within", "unknown key")
        if "job" not in fields:
            raise ValueError(f"missing job, expected {expected}")
        within = fields.get("within")
        out.append(
            After(
                _job_name(fields["job"]),
                _after_on(fields.get("on", "success")),
                None if within is None else convert.duration(within, minimum=1, maximum=366 * DAY),
            )
        )
    if len({a.job for a in out}) < len(out):
        raise ValueError("a job named twice, expected each job once")
    return tuple(out)


def _after_on(value: Any) -> str:
    try:
        return convert.choice(value, AFTER_ON)
    except ValueError as exc:
        raise ValueError(f"on: {exc}") from None


def _job_name(value: Any) -> str:
    if not isinstance(value, str) or not JOB_NAME.fullmatch(value):
        raise convert.bad(value, "a job name")
    return value


def _timezone(value: Any) -> str:
    name = convert.text(value, 'an IANA zone name such as "Europe/Berlin"')
    try:
        zone(name)
    except ScheduleError:
        raise ValueError(unknown_zone(name)) from None
    return name


def _command(value: Any) -> Any:
    if isinstance(value, list):
        return convert.string_list(value, "a command string or a list of arguments")
    return convert.text(value, "a command string or a list of arguments")


def _notify(value: Any) -> Notification:
    if not isinstance(value, dict):
        raise convert.bad(value, "a mapping with title and message")
    allowed = ("title", "message", "urgency", "icon")
    for key in value:  # in the file's order: keys may be of any type, so no sorting
        if key not in allowed:
            raise convert.bad(key, "title, message, urgency or icon", "unknown key")
    if "title" not in value:
        raise ValueError("missing title, expected a mapping with title and message")
    return Notification(
        title=convert.text(value["title"], "a title"),
        message=convert.text(value.get("message", ""), "a message", allow_empty=True),
        urgency=convert.choice(value.get("urgency", "normal"), ("low", "normal", "critical")),
        icon=convert.text(value.get("icon", ""), "an icon name or path", allow_empty=True),
    )


def _user(value: Any) -> str:
    if not isinstance(value, str) or not USER_NAME.fullmatch(value):
        raise convert.bad(value, "a user name")
    return value


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise convert.bad(value, "a mapping of variable names to values")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise convert.bad(key, "a variable name such as BACKUP_TARGET", "bad variable name")
        if key.startswith("CRONPLUS_"):
            raise convert.bad(
                key, "a name not starting with CRONPLUS_ (kept for cronplus)", "reserved name"
            )
        out[key] = _env_value(key, item)
    return out


def _env_value(key: str, item: object) -> str:
    expected = f"a value for {key} (quote it to pass it as written)"
    if isinstance(item, bool):
        return str(item).lower()
    if isinstance(item, int) and item.bit_length() <= 64:
        return str(item)
    if isinstance(item, float) and math.isfinite(item):
        return str(item)
    if isinstance(item, (str, date)):  # a datetime is a date
        return convert.text(str(item), expected, allow_empty=True)
    raise convert.bad(item, expected)


def _optional_duration(value: Any) -> Optional[float]:
    if value is None or value == "none":
        return None
    return convert.duration(value, minimum=0.001, maximum=MAX_TIMEOUT)


def _retry_on(value: Any) -> frozenset[str]:
    names = convert.string_list(value, "a list of " + ", ".join(sorted(RETRYABLE)))
    for name in names:
        convert.choice(name, sorted(RETRYABLE))
    return frozenset(names)


def _names(value: Any) -> tuple[str, ...]:
    if value == []:
        return ()
    return convert.string_list(value, "a list of notifier names")


def _alerts(value: Any) -> str:
    return convert.choice(value, ("changes", "every-run"))


def _digest(value: Any) -> float:
    if value in (0, "0", "never", False):  # YAML reads a bare never as a string, off as False
        return 0.0
    return convert.duration(value, minimum=60, maximum=30 * DAY)


def _within(value: Any) -> Optional[float]:
    if value is None or value == "none":
        return None
    return convert.duration(value, minimum=1, maximum=MAX_TIMEOUT)


def _mail_output(value: Any) -> str:
    return convert.choice(value, ("always", "on-failure", "never"))


JOB_KEYS: dict[str, Converter] = {
    "schedule": _schedule,
    "every": _every,
    "at": _at,
    "on": _weekdays,
    "on_day": _month_days,
    "start": _moment,
    "end": _moment,
    "after": _after,
    "timezone": _timezone,
    "command": _command,
    "notify": _notify,
    "stdin": lambda v: convert.text(
        v, "the text the command reads on its standard input", allow_empty=True
    ),
    "user": _user,
    "workdir": lambda v: convert.text(v, "a directory"),
    "env": _env,
    "retries": lambda v: convert.integer(v, 0, 100),
    "retry_backoff": lambda v: convert.duration(v, maximum=7 * DAY),
    "retry_backoff_max": lambda v: convert.duration(v, minimum=1, maximum=30 * DAY),
    "retry_on": _retry_on,
    "timeout": _optional_duration,
    "kill_grace": lambda v: convert.duration(v, maximum=3600),
    "memory_limit": lambda v: (
        None if v is None else convert.size(v, minimum=1 << 20, maximum=MAX_MEMORY)
    ),
    "max_concurrent": lambda v: convert.integer(v, 1, 1000),
    "overlap": lambda v: Overlap(convert.choice(v, [o.value for o in Overlap])),
    "pool": lambda v: convert.text(v, "a pool name from daemon.pools"),
    "priority": lambda v: convert.integer(v, -1000, 1000),
    "catch_up": lambda v: CatchUp(convert.choice(v, [c.value for c in CatchUp])),
    "catch_up_limit": lambda v: convert.integer(v, 1, 10000),
    "jitter": lambda v: convert.duration(v, maximum=DAY),
    "on_failure": _names,
    "on_success": _names,
    "on_retry": _names,
    "on_recovery": _names,
    "alerts": _alerts,
    "alert_digest": _digest,
    "grace": lambda v: convert.duration(v, minimum=1, maximum=DAY),
    "no_success_within": _within,
    "mail_to": _names,
    "mail_output": _mail_output,
    "output_limit": lambda v: convert.size(v, minimum=0, maximum=64 << 20),
    "description": lambda v: convert.text(v, "a description", allow_empty=True),
    "run_on": lambda v: convert.choice(v, ("one", "each")),
}
NOT_DEFAULTS = (*SCHEDULE_KEYS, "after")  # each job's own


def pool_size(value: Any) -> tuple[int, str]:
    """`db: 2` (on each node), or `db: {max: 2, scope: cluster}` (across a cluster's nodes)."""
    if isinstance(value, dict):
        for key in value:
            if key not in ("max", "scope"):
                raise convert.bad(key, "max or scope", "unknown key")
        if "max" not in value:
            raise ValueError("missing max, expected the number of runs the pool allows")
        scope = convert.choice(value.get("scope", "node"), ("node", "cluster"))
        return convert.integer(value["max"], 1, 4096), scope
    return convert.integer(value, 1, 4096), "node"


DAEMON_KEYS: dict[str, Converter] = {
    "max_workers": lambda v: convert.integer(v, 1, 4096),
    "pools": pool_size,  # of each entry: the reader goes through them one by one
    "history": lambda v: convert.text(v, "a file path"),
    "keep_runs": lambda v: convert.integer(v, 1, 10_000_000),
    "shutdown_grace": lambda v: convert.duration(v, maximum=DAY),
    "cgroups": lambda v: "off" if v is False else convert.choice(v, ("auto", "off")),  # YAML: off
    "spawner": lambda v: "off" if v is False else convert.choice(v, ("auto", "off")),
    "cluster": lambda v: cluster(v),
    "metrics": lambda v: v,  # a mapping: the reader goes through METRICS_KEYS one by one
}


def listen_address(value: Any) -> tuple[str, int]:
    """`127.0.0.1:9649`, `[::1]:9649` or `localhost:9649` as (host, port)."""
    expected = 'HOST:PORT such as "127.0.0.1:9649"'
    address = convert.text(value, expected)
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    if not colon or not host or not digits or not 1 <= int(port) <= 65535:
        raise convert.bad(value, expected + ", with a port from 1 to 65535")
    if any(c.isspace() for c in host) or "/" in host:
        raise convert.bad(value, expected)
    return host, int(port)


def _textfile(value: Any) -> str:
    path = convert.text(value, "a file path ending in .prom")
    if not path.endswith(".prom"):
        raise convert.bad(value, "a file path ending in .prom (node_exporter reads no other)")
    return path


METRICS_KEYS: dict[str, Converter] = {
    "listen": listen_address,
    "textfile": _textfile,
}

CLUSTER_KEYS = ("store", "node", "lease", "password_file")
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def cluster(value: Any) -> ClusterSettings:
    """`daemon.cluster`: `store` (required), `node`, `lease`, `password_file`."""
    if not isinstance(value, dict):
        raise convert.bad(value, "a mapping with store, node, lease and password_file")
    for key in value:
        if key not in CLUSTER_KEYS:
            raise convert.bad(key, "one of " + ", ".join(CLUSTER_KEYS), "unknown key")
    if "store" not in value:
        raise ValueError("missing store, expected a postgresql:// URL")
    store = convert.text(value["store"], "a postgresql:// URL")
    from .store.postgres import check_url

    wrong = check_url(store)
    if wrong is not None:
        raise ValueError(f"store: found {convert.show(store)}: {wrong}")
    node = value.get("node", socket.gethostname().split(".")[0])
    if not isinstance(node, str) or not NODE_NAME.fullmatch(node):
        raise convert.bad(node, "a node name (letters, digits, '.', '_', '-', at most 63)")
    lease = convert.duration(value.get("lease", 15), minimum=3, maximum=600)
    password_file = value.get("password_file")
    if password_file is not None:
        password_file = convert.text(password_file, "a file path")
    return ClusterSettings(store, node, lease, password_file)


# --- notifiers ----------------------------------------------------------------------------

# each type's keys, and whether the key is required
NOTIFIER_TYPES = {
    "desktop": {"type": False, "user": False},
    "command": {"type": False, "command": True, "timeout": False},
    "webhook": {"type": False, "url": True, "timeout": False, "retries": False, "headers": False},
    "email": {
        "type": False,
        "to": True,
        "from": False,
        "transport": False,
        "sendmail": False,
        "host": False,
        "port": False,
        "tls": False,
        "ca_file": False,
        "credentials": False,
        "timeout": False,
        "retry_for": False,
    },
}
# A mailbox: local@domain, or a local user's name alone (delivered by the local MTA).
ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)?"
)
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
NOTIFIER_KEYS = sorted({key for keys in NOTIFIER_TYPES.values() for key in keys})


def notifier_type(value: Any) -> str:
    return convert.choice(value, NOTIFIER_TYPES)


def _url(value: Any) -> str:
    url = convert.text(value, "an http(s) URL")
    if not URL.match(url):
        raise convert.bad(value, "an http(s) URL")
    return url


def _headers(value: Any) -> dict[str, str]:
    expected = "a mapping of HTTP header names to values"
    if not isinstance(value, dict):
        raise convert.bad(value, expected)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not HEADER_NAME.fullmatch(key):
            raise convert.bad(key, "a header name such as Authorization", "bad header name")
        line = convert.text(item, f"a one-line value for {key}", allow_empty=True)
        if "\r" in line or "\n" in line:
            raise convert.bad(item, f"a one-line value for {key}")
        out[key] = line
    return out


def address(value: Any) -> str:
    """One mailbox; a name with spaces or angle brackets is not taken (no header can be forged)."""
    expected = "an address such as ops@example.org, or a local user's name"
    if not isinstance(value, str) or not ADDRESS.fullmatch(value) or len(value) > 254:
        raise convert.bad(value, expected, "bad address")
    return value


def _addresses(value: Any) -> tuple[str, ...]:
    names = convert.string_list(value, "an address or a list of addresses")
    return tuple(address(name) for name in names)


def _host(value: Any) -> str:
    if not isinstance(value, str) or not HOST.fullmatch(value) or len(value) > 253:
        raise convert.bad(value, "a host name or address such as smtp.example.org")
    return value


def _file(value: Any) -> str:
    path = convert.text(value, "an absolute file path")
    if not path.startswith("/"):
        raise convert.bad(value, "an absolute file path")
    return path


NOTIFIER_VALUES: dict[str, Converter] = {
    "type": notifier_type,
    "command": lambda v: list(_command(v)) if isinstance(v, list) else _command(v),
    "timeout": lambda v: convert.duration(v, minimum=0.1, maximum=300),
    "retries": lambda v: convert.integer(v, 0, 10),
    "user": _user,
    "url": _url,
    "headers": _headers,
    "to": _addresses,
    "from": address,
    "transport": lambda v: convert.choice(v, ("sendmail", "smtp")),
    "sendmail": _file,
    "host": _host,
    "port": lambda v: convert.integer(v, 1, 65535),
    "tls": lambda v: "none" if v is False else convert.choice(v, ("none", "starttls", "tls")),
    "ca_file": _file,
    "credentials": _file,
    "retry_for": lambda v: convert.duration(v, minimum=0, maximum=3600),
}


def unknown_zone(name: str) -> str:
    import zoneinfo

    hint = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
    expected = 'an IANA zone name such as "Europe/Berlin"'
    return f"unknown zone {convert.show(name)}, expected {expected}{suggestion}"
