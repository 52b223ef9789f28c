"""Small converters for config values.

Each raises a plain `ValueError` whose text says what was found and what was
expected; the config reader adds the file, line, column and key path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Optional

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def show(value: object) -> str:
    """A found value the way a message quotes it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return json.dumps(str(value), ensure_ascii=False)


def bad(found: object, expected: str, problem: str = "found") -> ValueError:
    return ValueError(f"{problem} {show(found)}, expected {expected}")


def duration(value: object, minimum: float = 0.0, maximum: Optional[float] = None) -> float:
    """`30s`, `5m`, `2h`, `1d`, `1h30m` or a number of seconds, as seconds."""
    expected = "a duration such as 30s, 5m, 2h or 1d"
    if isinstance(value, bool):
        raise bad(value, expected)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = list(_DURATION_PART.finditer(text))
        if not parts or "".join(p.group(0) for p in parts) != text.replace(" ", ""):
            raise bad(value, expected)
        seconds = sum(float(p.group(1)) * _DURATION_UNITS[p.group(2)] for p in parts)
    else:
        raise bad(value, expected)
    if seconds < minimum or (minimum > 0 and seconds == 0):
        raise bad(value, f"a duration of at least {minimum:g}s")
    if maximum is not None and seconds > maximum:
        raise bad(value, f"a duration of at most {maximum:g}s")
    return seconds


def size(value: object, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """`512K`, `512M`, `2G` (binary multiples) or a number of bytes."""
    expected = "a size such as 512K, 512M or 2G"
    if isinstance(value, bool):
        raise bad(value, expected)
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise bad(value, expected)
        result = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    else:
        raise bad(value, expected)
    if result < minimum:
        raise bad(value, f"a size of at least {minimum} bytes")
    if maximum is not None and result > maximum:
        raise bad(value, f"a size of at most {maximum} bytes")
    return result


def integer(value: object, minimum: int, maximum: int) -> int:
    expected = f"a whole number from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(value, expected)
    if not minimum <= value <= maximum:
        raise bad(value, expected)
    return value


def text(value: object, what: str = "a string", allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise bad(value, what)
    return value


def choice(value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise bad(value, "one of " + ", ".join(options))
    return value


def string_list(value: object, what: str) -> tuple[str, ...]:
    """A list of non-empty strings; a single string is a list of one."""
    if isinstance(value, str) and value.strip():
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise bad(value, what)
