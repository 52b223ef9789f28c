"""What each config key accepts: one converter per key of a job, the daemon and a notifier.

A converter takes the value as YAML constructed it and returns the model's value,
or raises `ValueError` saying what it found and what it expected.  Every number
has bounds here; `convert` keeps NaNs and infinities out.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import date, datetime
from typing import Any, Callable, Optional

from . import convert
from .clock import zone
from .errors import ScheduleError
from .model import RETRYABLE, CatchUp, Notification, Overlap
from .schedule import MAX_INTERVAL_SECONDS

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


def _at(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    return convert.text(value, "a date and time such as 2027-01-01T09:00")


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


JOB_KEYS: dict[str, Converter] = {
    "schedule": _schedule,
    "every": lambda v: convert.duration(v, minimum=1, maximum=MAX_INTERVAL_SECONDS),
    "at": _at,
    "timezone": _timezone,
    "command": _command,
    "notify": _notify,
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
    "output_limit": lambda v: convert.size(v, minimum=0, maximum=64 << 20),
    "description": lambda v: convert.text(v, "a description", allow_empty=True),
}
SCHEDULE_KEYS = ("schedule", "every", "at")


def pool_size(value: Any) -> int:
    return convert.integer(value, 1, 4096)


DAEMON_KEYS: dict[str, Converter] = {
    "max_workers": lambda v: convert.integer(v, 1, 4096),
    "pools": pool_size,  # of each entry: the reader goes through them one by one
    "history": lambda v: convert.text(v, "a file path"),
    "keep_runs": lambda v: convert.integer(v, 1, 10_000_000),
    "shutdown_grace": lambda v: convert.duration(v, maximum=DAY),
    "cgroups": lambda v: "off" if v is False else convert.choice(v, ("auto", "off")),  # YAML: off
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


# --- notifiers ----------------------------------------------------------------------------

# each type's keys, and whether the key is required
NOTIFIER_TYPES = {
    "desktop": {"type": False, "user": False},
    "command": {"type": False, "command": True, "timeout": False},
    "webhook": {"type": False, "url": True, "timeout": False, "retries": False, "headers": False},
}
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


NOTIFIER_VALUES: dict[str, Converter] = {
    "type": notifier_type,
    "command": lambda v: list(_command(v)) if isinstance(v, list) else _command(v),
    "timeout": lambda v: convert.duration(v, minimum=0.1, maximum=300),
    "retries": lambda v: convert.integer(v, 0, 10),
    "user": _user,
    "url": _url,
    "headers": _headers,
}


def unknown_zone(name: str) -> str:
    import zoneinfo

    hint = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
    expected = 'an IANA zone name such as "Europe/Berlin"'
    return f"unknown zone {convert.show(name)}, expected {expected}{suggestion}"
