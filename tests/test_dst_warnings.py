"""Daylight-saving warnings for `cronplusctl check` and marks for `cronplusctl next`.

Tables per zone, each transition written out; `dst_notes` and `dst_mark` are pure
functions of (rule, window) and (rule, instant).
"""

from __future__ import annotations

import io
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cronplus.ctl import main
from cronplus.model import ScheduleKind, ScheduleSpec
from cronplus.schedule import CronRule, build_rule, dst_mark, dst_notes, next_instants, transitions

UTC = timezone.utc
START = datetime(2026, 12, 1, tzinfo=UTC)  # the twelve months from here
END = START + timedelta(days=365)


def notes(expression: str, zone_name: str) -> list[tuple[str, str]]:
    return [(n.kind, n.message) for n in dst_notes(CronRule(expression, zone_name), START, END)]


# America/New_York, northern hemisphere:
#   2027-03-14 02:00 EST -> 03:00 EDT (07:00Z): 02:00-02:59 never happen
#   2027-11-07 02:00 EDT -> 01:00 EST (06:00Z): 01:00-01:59 happen twice
NEW_YORK = [
    (
        "30 2 * * *",
        [
            (
                "moved",
                "02:30 does not exist in America/New_York on 2027-03-14; the run moves to 03:00 EDT",
            )
        ],
    ),
    (
        "0 2,3 * * *",
        [
            (
                "merged",
                "02:00 does not exist in America/New_York on 2027-03-14; 02:00 and 03:00 merge into one run at 03:00 EDT",
            )
        ],
    ),
    (
        "15,45 2 * * *",
        [
            (
                "merged",
                "02:15 and 02:45 do not exist in America/New_York on 2027-03-14; 02:15 and 02:45 merge into one run at 03:00 EDT",
            )
        ],
    ),
    (
        "30 1 * * *",
        [
            (
                "repeated",
                "01:30 happens twice in America/New_York on 2027-11-07; the job runs once, at the first (01:30 EDT)",
            )
        ],
    ),
    (
        "*/15 * * * *",
        [
            (
                "more-often",
                "01:00 to 02:00 happens twice in America/New_York on 2027-11-07; the job runs 4 more times that day",
            )
        ],
    ),
    (
        "0 * * * *",
        [
            (
                "more-often",
                "01:00 to 02:00 happens twice in America/New_York on 2027-11-07; the job runs once more that day",
            )
        ],
    ),
    ("0 */2 * * *", []),  # 02:00 never happens, 00:00 and 04:00 do not repeat: nothing moves
    ("30 2 * * 1-5", []),  # 2027-03-14 is a Sunday
    ("0 12 * * *", []),
]

# Australia/Sydney, southern hemisphere:
#   2027-04-04 03:00 AEDT -> 02:00 AEST (16:00Z on the 3rd): 02:00-02:59 happen twice
#   2027-10-03 02:00 AEST -> 03:00 AEDT (16:00Z on the 2nd): 02:00-02:59 never happen
SYDNEY = [
    (
        "30 2 * * *",
        [
            (
                "repeated",
                "02:30 happens twice in Australia/Sydney on 2027-04-04; the job runs once, at the first (02:30 AEDT)",
            ),
            (
                "moved",
                "02:30 does not exist in Australia/Sydney on 2027-10-03; the run moves to 03:00 AEDT",
            ),
        ],
    ),
    (
        "*/20 2 * * *",
        [
            (
                "repeated",
                "02:00 and 02:20 and 02:40 happen twice in Australia/Sydney on 2027-04-04; the job runs once, at the first (02:00 AEDT)",
            ),
            (
                "merged",
                "02:00 and 02:20 and 02:40 do not exist in Australia/Sydney on 2027-10-03; 02:00 and 02:20 and 02:40 merge into one run at 03:00 AEDT",
            ),
        ],
    ),
    (
        "*/30 * * * *",
        [
            (
                "more-often",
                "02:00 to 03:00 happens twice in Australia/Sydney on 2027-04-04; the job runs 2 more times that day",
            )
        ],
    ),
]

# Australia/Lord_Howe, a 30-minute shift:
#   2027-04-04 02:00 +11 -> 01:30 +1030 (15:00Z on the 3rd): 01:30-01:59 happen twice
#   2027-10-03 02:00 +1030 -> 02:30 +11 (15:30Z on the 2nd): 02:00-02:29 never happen
LORD_HOWE = [
    (
        "15 2 * * *",
        [
            (
                "moved",
                "02:15 does not exist in Australia/Lord_Howe on 2027-10-03; the run moves to 02:30 (UTC+11)",
            )
        ],
    ),
    (
        "45 1 * * *",
        [
            (
                "repeated",
                "01:45 happens twice in Australia/Lord_Howe on 2027-04-04; the job runs once, at the first (01:45 (UTC+11))",
            )
        ],
    ),
    ("30 2 * * *", []),  # 02:30 is where the clocks land: it happens once
    ("0 * * * *", []),  # no whole hour in 01:30-01:59
    (
        "*/10 * * * *",
        [
            (
                "more-often",
                "01:30 to 02:00 happens twice in Australia/Lord_Howe on 2027-04-04; the job runs 3 more times that day",
            )
        ],
    ),
]


@pytest.mark.parametrize(("expression", "expected"), NEW_YORK)
def test_new_york(expression: str, expected: list[tuple[str, str]]) -> None:
    assert notes(expression, "America/New_York") == expected


@pytest.mark.parametrize(("expression", "expected"), SYDNEY)
def test_sydney(expression: str, expected: list[tuple[str, str]]) -> None:
    assert notes(expression, "Australia/Sydney") == expected


@pytest.mark.parametrize(("expression", "expected"), LORD_HOWE)
def test_lord_howe(expression: str, expected: list[tuple[str, str]]) -> None:
    assert notes(expression, "Australia/Lord_Howe") == expected


def test_transitions_are_found_to_the_second() -> None:
    found = transitions("Australia/Lord_Howe", START, END)
    assert [(t.at.isoformat(), t.before, t.after) for t in found] == [
        ("2027-04-03T15:00:00+00:00", timedelta(hours=11), timedelta(hours=10, minutes=30)),
        ("2027-10-02T15:30:00+00:00", timedelta(hours=10, minutes=30), timedelta(hours=11)),
    ]
    assert transitions("UTC", START, END) == ()


def test_a_zone_without_daylight_saving_and_an_interval_job_say_nothing() -> None:
    assert notes("30 2 * * *", "Asia/Tokyo") == []
    every = build_rule(ScheduleSpec(ScheduleKind.EVERY, every_seconds=600), "America/New_York")
    assert dst_notes(every, START, END) == []


def test_an_at_in_a_gap_is_moved() -> None:
    rule = build_rule(
        ScheduleSpec(ScheduleKind.AT, at_local="2027-03-14T02:30"), "America/New_York"
    )
    assert [n.message for n in dst_notes(rule, START, END)] == [
        "02:30 does not exist in America/New_York on 2027-03-14; the run moves to 03:00 EDT"
    ]


@pytest.mark.parametrize(
    ("expression", "after", "marks"),
    [
        # New York, 2026-03-08 02:00 EST -> 03:00 EDT
        ("30 2 * * *", "2026-03-07T12:00:00Z", ["moved", None]),
        ("0 2,3 * * *", "2026-03-07T12:00:00Z", ["merged", None]),
        # New York, 2026-11-01 02:00 EDT -> 01:00 EST: the second 01:00 and 01:30 of */30
        ("*/30 * * * *", "2026-11-01T04:59:00Z", [None, None, "repeated", "repeated", None]),
        ("30 1 * * *", "2026-10-31T12:00:00Z", [None, None]),  # once, at the first
    ],
)
def test_next_marks_moved_merged_and_repeated_instants(
    expression: str, after: str, marks: list[str | None]
) -> None:
    rule = CronRule(expression, "America/New_York")
    start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    assert [dst_mark(rule, i) for i in next_instants(rule, start, len(marks))] == marks


def run_ctl(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(list(args))
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


CONFIG = """
jobs:
  backup:
    schedule: "30 2 * * *"
    timezone: America/New_York
    command: /usr/local/bin/backup
  ticker: {schedule: "*/15 * * * *", timezone: Europe/Berlin, command: "true"}
  quiet: {schedule: "30 2 * * *", timezone: UTC, command: "true"}
"""


def test_check_warns_on_stderr_with_the_place_and_exits_0_unless_strict(tmp_path: Path) -> None:
    file = tmp_path / "cronplus.yaml"
    file.write_text(textwrap.dedent(CONFIG))
    code, out, err = run_ctl("-c", str(file), "check")
    assert (code, out) == (0, f"{file}: ok, 3 jobs\n")
    lines = err.splitlines()
    # the next twelve months from today: every year has these changes
    assert len(lines) == 2, err
    assert lines[0].startswith(
        f"{file}:4:15: warning: jobs.backup.schedule: 02:30 does not exist in America/New_York on "
    )
    assert lines[0].endswith("; the run moves to 03:00 EDT")
    assert lines[1].startswith(
        f"{file}:7:22: note: jobs.ticker.schedule: 02:00 to 03:00 happens twice in Europe/Berlin on "
    )
    strict, out, err = run_ctl("-c", str(file), "check", "--strict")
    assert (strict, out) == (1, "")
    assert err.splitlines()[-1] == f"{file}: 1 warning, rejected (--strict)"


def test_next_table_and_json_keep_their_shape_and_add_marks_on_request() -> None:
    base = [
        "next",
        "--expr",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00Z",
        "-n",
        "2",
    ]
    _, plain, _ = run_ctl(*base, "--json")
    assert plain.strip() == '["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]'
    _, marked, _ = run_ctl(*base, "--json", "--marks")
    assert (
        marked.strip()
        == '[{"at": "2026-03-08T07:00:00Z", "dst": "moved"}, {"at": "2026-03-09T06:30:00Z", "dst": null}]'
    )
    _, shown, _ = run_ctl(*base)
    assert shown.splitlines() == [
        "schedule: 30 2 * * *",
        "LOCAL (America/New_York)       UTC                   DST",
        "2026-03-08 03:00:00-04:00 EDT  2026-03-08T07:00:00Z  moved: its time does not exist that day",
        "2026-03-09 02:30:00-04:00 EDT  2026-03-09T06:30:00Z",
    ]
