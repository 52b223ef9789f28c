"""A port of how Debian's cron reads a crontab, written for the tests from its documented
behaviour (crontab(5)) and from what its crontab(1) accepts and refuses (see
test_cron_reader_agrees_with_debians_crontab); not from its source.

It reads character by character, as cron does, and says for each active line what
cron makes of it: an environment setting, an entry with the sets of values each
time field matches, or an error.  Import is compared against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

BLANK = " \t"
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (what cron calls the field in its errors, first, last, names)
TIME_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, MONTH_NAMES),
    ("day-of-week", 0, 7, DAY_NAMES),
)
SPECIAL = {
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
    "monthly": "0 0 1 * *",
    "weekly": "0 0 * * 0",
    "daily": "0 0 * * *",
    "midnight": "0 0 * * *",
    "hourly": "0 * * * *",
}


@dataclass
class Line:
    number: int
    kind: str  # env, entry, reboot, error, quirk, unterminated
    error: str = ""
    name: str = ""  # env
    value: str = ""  # env
    sets: tuple[frozenset[int], ...] = ()  # entry: minutes, hours, days of month, months, weekdays
    dom_star: bool = False
    dow_star: bool = False
    user: Optional[str] = None
    command: str = ""
    stdin: Optional[str] = None
    env: dict[str, str] = field(default_factory=dict)


class Cursor:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.at += 1 if char else 0
        return char

    def blanks(self) -> None:
        while self.peek() and self.peek() in BLANK:
            self.at += 1

    def rest(self) -> str:
        return self.text[self.at :]


def read_env(text: str) -> Optional[tuple[str, str]]:
    cursor = Cursor(text)
    cursor.blanks()
    if cursor.peek() in ("'", '"'):
        quote = cursor.take()
        name = ""
        while cursor.peek() and cursor.peek() != quote:
            name += cursor.take()
        if cursor.take() != quote:
            return None
    else:
        name = ""
        while cursor.peek() and cursor.peek() not in BLANK + "=":
            name += cursor.take()
    cursor.blanks()
    if cursor.take() != "=":
        return None
    cursor.blanks()
    if cursor.peek() in ("'", '"'):
        quote = cursor.take()
        value = ""
        while cursor.peek() and cursor.peek() != quote:
            value += cursor.take()
        if cursor.take() != quote:
            return None
        cursor.blanks()
        return (name, value) if not cursor.peek() else None
    value = cursor.rest().rstrip(BLANK)
    return (name, value) if value else None


class Refusal(Exception):
    pass


class Quirk(Exception):
    pass


def number(cursor: Cursor, index: int, names: Optional[tuple[str, ...]]) -> int:
    what, first, last, _ = TIME_FIELDS[index]
    word = ""
    while cursor.peek().isalnum():
        word += cursor.take()
    if word.isdigit():
        value = int(word)
    elif names is not None and word.lower() in names:
        value = names.index(word.lower()) + first
    else:
        raise Refusal(f"bad {what}")
    if not first <= value <= last:
        raise Refusal(f"bad {what}")
    return value


def time_field(cursor: Cursor, index: int) -> tuple[frozenset[int], bool]:
    what, first, last, names = TIME_FIELDS[index]
    star = cursor.peek() == "*"
    values: set[int] = set()
    while True:
        if cursor.peek() == "*":
            cursor.take()
            low, high, ranged = first, last, True
        else:
            low = high = number(cursor, index, names)
            ranged = False
            if cursor.peek() == "-":
                cursor.take()
                high = number(cursor, index, names)
                ranged = True
        step = 1
        if cursor.peek() == "/":
            cursor.take()
            if not ranged:
                raise Refusal(f"bad {what}")
            digits = ""
            while cursor.peek().isalnum():
                digits += cursor.take()
            if not digits.isdigit() or int(digits) == 0:
                raise Refusal(f"bad {what}")
            step = int(digits)
        values.update(range(low, high + 1, step))
        if cursor.peek() == ",":
            cursor.take()
            continue
        if cursor.peek() and cursor.peek() not in BLANK:
            raise Quirk(f"{what}: cron reads part of it and goes on")
        return frozenset(values), star


def read_entry(text: str, system: bool) -> Line:
    cursor = Cursor(text)
    cursor.blanks()
    line = Line(0, "entry")
    if cursor.peek() == "@":
        cursor.take()
        word = ""
        while cursor.peek() and cursor.peek() not in BLANK:
            word += cursor.take()
        if word == "reboot":
            line.kind = "reboot"
        elif word in SPECIAL:
            fields = SPECIAL[word].split()
            sets = []
            for index, item in enumerate(fields):
                values, star = time_field(Cursor(item), index)
                sets.append(values)
                line.dom_star |= index == 2 and star
                line.dow_star |= index == 4 and star
            line.sets = tuple(sets)
        else:
            raise Refusal("bad time specifier")
    else:
        sets = []
        for index in range(5):
            cursor.blanks()
            if not cursor.peek():
                raise Refusal(f"bad {TIME_FIELDS[index][0]}")
            values, star = time_field(cursor, index)
            sets.append(frozenset(v % 7 for v in values) if index == 4 else values)
            line.dom_star |= index == 2 and star
            line.dow_star |= index == 4 and star
        line.sets = tuple(sets)
    cursor.blanks()
    if system:
        user = ""
        while cursor.peek() and cursor.peek() not in BLANK:
            user += cursor.take()
        if not user:
            raise Refusal("bad username")
        line.user = user
        cursor.blanks()
    if cursor.peek() == "*":
        raise Refusal("bad command")
    raw = cursor.rest()
    command, stdin, i = "", None, 0
    while i < len(raw):  # cron's % rule
        if raw[i] == "\\" and raw[i + 1 : i + 2] == "%":
            command += "%"
            i += 2
        elif raw[i] == "%":
            stdin = ""
            j = i + 1
            while j < len(raw):
                if raw[j] == "\\" and raw[j + 1 : j + 2] == "%":
                    stdin += "%"
                    j += 2
                else:
                    stdin += "\n" if raw[j] == "%" else raw[j]
                    j += 1
            if stdin and not stdin.endswith("\n"):
                stdin += "\n"  # cron ends the input with a newline (seen from its daemon)
            break
        else:
            command += raw[i]
            i += 1
    line.command, line.stdin = command, stdin
    return line


def read(text: str, system: bool = False) -> list[Line]:
    """What cron makes of each active line of `text`."""
    out: list[Line] = []
    env: dict[str, str] = {}
    pieces = text.split("\n")
    for number_, piece in enumerate(pieces, start=1):
        last = number_ == len(pieces)
        stripped = piece.lstrip(BLANK)
        if not stripped or stripped.startswith("#"):
            continue
        if last:  # no newline after it
            out.append(Line(number_, "unterminated"))
            continue
        assignment = read_env(piece)
        if assignment is not None:
            env[assignment[0]] = assignment[1]
            out.append(Line(number_, "env", name=assignment[0], value=assignment[1]))
            continue
        try:
            line = read_entry(piece, system)
        except Refusal as exc:
            out.append(Line(number_, "error", error=str(exc)))
            continue
        except Quirk as exc:
            out.append(Line(number_, "quirk", error=str(exc)))
            continue
        line.number, line.env = number_, dict(env)
        out.append(line)
    return out


def matches(line: Line, minute: int, hour: int, day: int, month: int, weekday: int) -> bool:
    """Whether cron runs `line` at this wall time (weekday 0 is Sunday)."""
    minutes, hours, days, months, weekdays = line.sets
    if minute not in minutes or hour not in hours or month not in months:
        return False
    if line.dom_star or line.dow_star:
        return day in days and weekday in weekdays
    return day in days or weekday in weekdays
