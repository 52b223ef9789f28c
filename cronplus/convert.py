"""Small converters for config values.

Each raises a plain `ValueError` whose text says what was found and what was
expected; the config reader adds the file, line, column and key path.  Every
number has a lower and an upper bound, and no converter lets a NaN or an
infinity through: whatever a file says, the values that leave here are finite
and in range.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import date, datetime

from .model import format_seconds

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SHOWN_CHARACTERS = 60  # of a found string; a message stays one readable line
_SHOWN_BITS = 64  # larger whole numbers are shown by their length


def show(value: object) -> str:
    """A found value the way a message quotes it: short, one line, printable."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > _SHOWN_BITS:  # str() of a 5,000-digit number raises
            return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (set, frozenset)):
        return "a set"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    if isinstance(value, datetime):
        return f"the timestamp {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return _quote(str(value))


def _quote(text: str) -> str:
    if len(text) > _SHOWN_CHARACTERS:
        text = text[: _SHOWN_CHARACTERS - 1] + "…"
    quoted = json.dumps(text, ensure_ascii=False)  # escapes control characters
    return quoted.encode("utf-8", "backslashreplace").decode("utf-8")  # and lone surrogates


def bad(found: object, expected: str, problem: str = "found") -> ValueError:
    return ValueError(f"{problem} {show(found)}, expected {expected}")


def _number(value: float) -> float:
    """A YAML number as a float; an int too large for one is an infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def duration(value: object, minimum: float = 0.0, *, maximum: float) -> float:
    """`30s`, `5m`, `2h`, `1d`, `1h30m` or a number of seconds, as finite seconds."""
    expected = "a duration such as 30s, 5m, 2h or 1d"
    if isinstance(value, bool):
        raise bad(value, expected)
    if isinstance(value, (int, float)):
        seconds = _number(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = list(_DURATION_PART.finditer(text))
        if not parts or "".join(p.group(0) for p in parts) != text.replace(" ", ""):
            raise bad(value, expected)
        # float() of a long run of digits is an infinity, never an error
        seconds = sum(float(p.group(1)) * _DURATION_UNITS[p.group(2)] for p in parts)
    else:
        raise bad(value, expected)
    if math.isnan(seconds):
        raise bad(value, expected)
    if seconds < minimum or (minimum > 0 and seconds == 0):
        raise bad(value, f"a duration of at least {format_seconds(minimum)}")
    if seconds > maximum:
        raise bad(value, f"a duration of at most {format_seconds(maximum)}")
    return seconds


def size(value: object, minimum: int = 0, *, maximum: int) -> int:
    """`512K`, `512M`, `2G` (binary multiples) or a whole number of bytes."""
    expected = "a size such as 512K, 512M or 2G"
    if isinstance(value, bool):
        raise bad(value, expected)
    if isinstance(value, int):
        amount = _number(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise bad(value, expected)
        amount = float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    else:
        raise bad(value, expected)
    if amount < minimum:
        raise bad(value, f"a size of at least {format_size(minimum)}")
    if amount > maximum:  # an infinity too
        raise bad(value, f"a size of at most {format_size(maximum)}")
    return value if isinstance(value, int) else int(amount)


def format_size(count: int) -> str:
    """Bytes the way the config writes them: `1048576` → `1M`."""
    for unit in ("T", "G", "M", "K"):
        if count and count % _SIZE_UNITS[unit] == 0:
            return f"{count // _SIZE_UNITS[unit]}{unit}"
    return f"{count} bytes"


def integer(value: object, minimum: int, maximum: int) -> int:
    expected = f"a whole number from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(value, expected)
    if not minimum <= value <= maximum:
        raise bad(value, expected)
    return value


def text(value: object, what: str = "a string", allow_empty: bool = False) -> str:
    """A string fit to reach the system: no NUL character, no lone surrogate.

    Either would make the exec of a command, a path or an environment fail
    long after the file was accepted.
    """
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise bad(value, what)
    if not _portable(value):
        raise bad(value, f"{what} without NUL characters or lone surrogates")
    return value


def _portable(value: str) -> bool:
    if "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def choice(value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise bad(value, "one of " + ", ".join(options))
    return value


def string_list(value: object, what: str) -> tuple[str, ...]:
    """A list of non-empty strings; a single string is a list of one."""
    if isinstance(value, str) and value.strip():
        return (text(value, what),)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(text(v, what) for v in value)
    raise bad(value, what)
