"""The value converters: every number finite and in range, every message one short line."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest

from cronplus import convert

DAY = 86400.0
NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", [*NON_FINITE, "inf", "nan", "1e999s", "Infinity"])
def test_a_duration_is_never_a_nan_or_an_infinity(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        convert.duration(value, maximum=DAY)


@pytest.mark.parametrize(
    "value",
    [
        10**24,  # float() fine, timedelta() overflowed
        10**400,  # float() raised OverflowError
        "9" * 400 + "d",  # float() of the digits is an infinity
        "99999999999999999999d",
        "367d",
        1e308,
    ],
)
def test_a_duration_beyond_its_maximum_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration of at most 366d$"):
        convert.duration(value, maximum=366 * DAY)


def test_a_duration_within_its_bounds_is_seconds() -> None:
    assert convert.duration("1h30m", maximum=DAY) == 5400
    assert convert.duration(366 * DAY, maximum=366 * DAY) == 366 * DAY
    assert convert.duration("250ms", minimum=0.001, maximum=1) == 0.25
    with pytest.raises(ValueError, match=r"expected a duration of at least 0\.001s"):
        convert.duration(0, minimum=0.001, maximum=1)


@pytest.mark.parametrize("value", [*NON_FINITE, 1.5, "1.5e9", "inf"])
def test_a_size_is_a_whole_number_or_a_size_string(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size such as 512K"):
        convert.size(value, maximum=1 << 40)


@pytest.mark.parametrize("value", ["9" * 400, "9" * 40 + "T", 10**400, "2T", (1 << 40) + 1])
def test_a_size_beyond_its_maximum_is_refused(value: object) -> None:
    # 400 digits made float() an infinity and int() of it raised OverflowError
    with pytest.raises(ValueError, match=r"expected a size of at most 1T$"):
        convert.size(value, maximum=1 << 40)


def test_a_size_within_its_bounds_is_bytes() -> None:
    assert convert.size("1.5G", maximum=1 << 40) == 3 << 29
    assert convert.size(4096, maximum=1 << 40) == 4096
    with pytest.raises(ValueError, match=r"expected a size of at least 1M$"):
        convert.size("512K", minimum=1 << 20, maximum=1 << 40)


@pytest.mark.parametrize("value", [*NON_FINITE, 2.0, 10**400, -(10**400), "3", True])
def test_an_integer_is_a_whole_number_in_range(value: object) -> None:
    with pytest.raises(ValueError, match=r"expected a whole number from 0 to 100$"):
        convert.integer(value, 0, 100)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (math.nan, ".nan"),
        (math.inf, ".inf"),
        (-math.inf, "-.inf"),
        # str() of it raises ValueError
        pytest.param(10**5000, "a number of about 5001 digits", id="10**5000"),
        (b"\x00\x01", "binary data"),
        ({"a", "b"}, "a set"),
        (date(2027, 1, 1), "the date 2027-01-01"),
        (datetime(2027, 1, 1, 9, 30), "the timestamp 2027-01-01T09:30:00"),
        ("a\nb\x00", '"a\\nb\\u0000"'),
        ("\ud800", '"\\ud800"'),  # a lone surrogate cannot be printed or logged
        ("x" * 1000, '"' + "x" * 59 + '…"'),
    ],
)
def test_a_found_value_is_shown_on_one_short_printable_line(value: object, shown: str) -> None:
    assert convert.show(value) == shown
    shown.encode("utf-8")


@pytest.mark.parametrize("value", ["a\0b", "\udc80", "ok\ud800"])
def test_text_refuses_nul_characters_and_lone_surrogates(value: str) -> None:
    # exec() of a command, path or environment holding them raised ValueError in the daemon
    with pytest.raises(ValueError, match="without NUL characters or lone surrogates"):
        convert.text(value, "a command")
    with pytest.raises(ValueError, match="without NUL characters or lone surrogates"):
        convert.string_list(["fine", value], "a list of arguments")
