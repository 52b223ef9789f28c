"""Classic crontab text → cronplus YAML, for `cronplusctl import`.

Follows crontab(5): comments and blank lines, `NAME = value` environment lines
(quoted values keep their blanks) that apply to the lines after them, CRON_TZ and
TZ, MAILTO, SHELL and PATH, five time fields with names, ranges, steps and lists
or an @name, the user field of system crontabs, and the `%` rule.  A line cron
would reject is reported with its number and left out.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from dataclasses import dataclass, field
from typing import Optional

from .errors import ScheduleError
from .schedule import CronRule

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name in cron's messages, lowest, highest, names from lowest)
FIELDS = [
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 7, DAYS),
]
# cron knows these @words in lower case only; @reboot has no cronplus schedule
AT_NAMES = {
    "yearly": "@yearly",
    "annually": "@yearly",
    "monthly": "@monthly",
    "weekly": "@weekly",
    "daily": "@daily",
    "midnight": "@daily",
    "hourly": "@hourly",
}
BLANKS = " \t"
NAME = re.compile(r"[^ \t=]*")
SETTING = re.compile(r"""("[^"]*"|'[^']*'|[A-Za-z_][^ \t=]*)[ \t]*=""")
CRON_PATH = "/usr/bin:/bin"  # what cron(8) gives a job without PATH=
SENDMAIL = "/usr/sbin/sendmail"  # what cron mails through


class Refused(ValueError):
    """A line cron refuses, or accepts and never runs; the text says which."""


@dataclass
class Imported:
    line: int
    original: str
    schedule: str
    command: str
    user: Optional[str]
    env: dict[str, str]
    shell: str
    zone: Optional[str]
    stdin: Optional[str] = None
    name: str = ""
    mail: Optional[str] = None  # the notifier that gets the output, as MAILTO said


@dataclass
class Conversion:
    jobs: list[Imported] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in the output, as comments
    mailers: dict[str, tuple[tuple[str, ...], Optional[str]]] = field(default_factory=dict)


def environment_line(line: str) -> Optional[tuple[str, str]]:
    """(name, value) when cron reads `line` (leading blanks gone) as `NAME = value`.

    A quoted name or value keeps its blanks; a value may have only blanks after its
    closing quote, and an unquoted one may not be empty: cron reads any other line
    as a job line (and then refuses it).
    """
    rest = line.rstrip("\n")
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0:
            return None
        name, rest = rest[1:end], rest[end + 1 :]
    else:
        name = NAME.match(rest).group(0)  # type: ignore[union-attr]  # matches any text
        rest = rest[len(name) :]
    rest = rest.lstrip(BLANKS)
    if not rest.startswith("="):
        return None
    rest = rest[1:].lstrip(BLANKS)
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0 or rest[end + 1 :].strip(BLANKS):
            return None
        return name, rest[1:end]
    value = rest.rstrip(BLANKS)
    return (name, value) if value else None


def _number(text: str, index: int, names: Optional[list[str]]) -> int:
    name, low, high, _ = FIELDS[index]
    if names is not None and text.isalpha():
        if text.lower() in names:
            return names.index(text.lower()) + low
        raise Refused(f'bad {name}: "{text}" is not a number or a three-letter name')
    if not text.isdigit():
        raise Refused(f'bad {name}: "{text}" is not a number')
    value = int(text)
    if not low <= value <= high:
        raise Refused(f"bad {name}: {value} is outside {low}-{high}")
    return value


ITEM = re.compile(r"(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/([A-Za-z0-9]*))?")


def field_values(text: str, index: int) -> set[int]:
    """The values one time field matches, as cron reads it; raises Refused."""
    name, low, high, names = FIELDS[index]
    values: set[int] = set()
    for item in text.split(","):
        match = ITEM.fullmatch(item)
        if match is None:
            if re.fullmatch(r"[*A-Za-z0-9]+(?:[-/][A-Za-z0-9]*)+", item):
                raise Refused(
                    f'"{item}" in the {name} field: cron accepts it but reads only part of it'
                )
            raise Refused(f'bad {name}: "{item}"')
        base, step = match.group(1), match.group(2)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = _number(a, index, names), _number(b, index, names)
            if first > last:
                raise Refused(
                    f"range {a}-{b} in the {name} field runs backwards: cron accepts it and it"
                    " matches nothing"
                )
        else:
            if step is not None:
                raise Refused(f'bad {name}: a step needs a range or * ("{item}")')
            first = last = _number(base, index, names)
        stride = 1
        if step is not None:
            if not step.isdigit() or int(step) == 0:
                raise Refused(f'bad {name}: bad step "/{step}"')
            stride = int(step)
        values.update(range(first, last + 1, stride))
    return values


def normalize_field(text: str, index: int) -> str:
    """One time field as cronplus writes it, names turned to numbers; raises Refused."""
    names = FIELDS[index][3]
    field_values(text, index)
    if names is None:
        return text
    out = re.sub(r"[A-Za-z]+", lambda m: str(_number(m.group(0), index, names)), text.split("/")[0])
    return out + (text[len(text.split("/")[0]) :] if "/" in text else "")


def split_percent(command: str) -> tuple[str, Optional[str]]:
    """The `%` rule: an unescaped % ends the command; the rest is stdin, % as newlines.

    `\\%` is a literal % in both parts; any other backslash stays as written; the input
    ends with a newline, as cron gives it.
    """
    out, rest, i = [], None, 0
    while i < len(command):
        char = command[i]
        if char == "\\" and i + 1 < len(command) and command[i + 1] == "%":
            out.append("%")
            i += 2
            continue
        if char == "%":
            rest = command[i + 1 :]
            break
        out.append(char)
        i += 1
    if rest is None:
        return "".join(out), None
    stdin = rest.replace("\\%", "\0").replace("%", "\n").replace("\0", "%")
    if stdin and not stdin.endswith("\n"):
        stdin += "\n"  # cron ends the input with a newline
    return "".join(out), stdin


def parse(text: str, system: bool = False, user: Optional[str] = None) -> Conversion:
    """Every line of a crontab, in order; problems name their line and what cron would do."""
    result = Conversion()
    env: dict[str, str] = {}
    shell, zone = "/bin/sh", None
    mailto: Optional[str] = None
    mailfrom: Optional[str] = None
    mail_line = 0
    lines = text.split("\n")
    unterminated = lines.pop()  # after the last newline: empty, or a line cron never runs
    numbered = [(n, raw, True) for n, raw in enumerate(lines, start=1)]
    if unterminated.strip(BLANKS + "\r"):
        numbered.append((len(lines) + 1, unterminated, False))
    for number, raw, whole in numbered:
        line = raw.lstrip(BLANKS)
        if not line.strip() or line.startswith("#"):
            continue
        if not whole:
            result.problems.append(
                f"line {number}: the file does not end in a newline, and cron never runs its"
                f" last line; skipped: {line.strip()}"
            )
            continue
        assignment = environment_line(line)
        if assignment is not None:
            name, value = assignment
            if name in ("CRON_TZ", "TZ") and value != zone:
                result.notes.append(
                    f"line {number}: {name}={value}: the jobs after it are scheduled in {value};"
                    " Debian's cron schedules in the machine's zone and only hands TZ to the"
                    " command (drop their timezone: to keep cron's times)"
                )
            if name == "CRON_TZ":
                zone = value
            elif name == "MAILTO":
                mailto, mail_line = value, number
            elif name == "MAILFROM":
                mailfrom, mail_line = value, number
            elif name:
                if name == "SHELL":
                    shell = value
                if name == "TZ":
                    zone = value
                env[name] = value
            continue
        try:
            job = _entry(line, number, system, user, env, shell, zone)
        except ValueError as exc:
            said = str(exc)
            if SETTING.match(line):
                said = (
                    "not a setting as cron reads NAME=value (a quote left open, text after the"
                    f" closing quote, or no value), so a job line, and {said}"
                )
            result.problems.append(f"line {number}: {said}; skipped: {line.strip()}")
            continue
        job.mail = _mailer(result, mailto, mailfrom, mail_line)
        result.jobs.append(job)
    _name_jobs(result.jobs)
    return result


def _mailer(
    result: Conversion, mailto: Optional[str], mailfrom: Optional[str], number: int
) -> Optional[str]:
    """The email notifier that stands for MAILTO (and MAILFROM) on this line, made once."""
    if not mailto:  # MAILTO="" : cron sends no mail
        return None
    to = tuple(a.strip() for a in mailto.split(",") if a.strip())
    name = "mail-" + re.sub(r"[^a-z0-9]+", "-", "-".join(to).lower()).strip("-")[:60]
    if mailfrom:
        name += "-from-" + re.sub(r"[^a-z0-9]+", "-", mailfrom.lower()).strip("-")[:30]
    if name not in result.mailers:
        result.mailers[name] = (to, mailfrom)
        result.notes.append(
            f"line {number}: MAILTO={mailto}"
            + (f" MAILFROM={mailfrom}" if mailfrom else "")
            + f": notifier {name} mails a run's output when it prints anything, as cron does"
        )
    return name


def _entry(
    line: str,
    number: int,
    system: bool,
    user: Optional[str],
    env: dict[str, str],
    shell: str,
    zone: Optional[str],
) -> Imported:
    if line.startswith("@"):
        word, rest = _word(line[1:])
        if word == "reboot":
            raise Refused("@reboot has no cronplus schedule (start it from a systemd unit)")
        if word not in AT_NAMES:
            known = ", ".join(f"@{w}" for w in AT_NAMES)
            raise Refused(f'bad time specifier "@{word}": cron knows only {known} and @reboot')
        schedule = AT_NAMES[word]
    else:
        fields = []
        rest = line
        for index in range(5):
            item, rest = _word(rest)
            if not item:
                raise Refused(f"bad {FIELDS[index][0]}: expected five time fields and a command")
            normalize_field(item, index)  # the first bad field is the one cron names
            fields.append(item)
        schedule = " ".join(normalize_field(fields[i], i) for i in range(5))
        schedule = _faithful(schedule, fields)
        try:
            CronRule(schedule, "UTC")
        except ScheduleError as exc:  # cron accepts it and never runs it: say so
            raise Refused(f"{exc}: cron accepts it and never runs it") from None
    run_as = user
    if system:
        run_as, rest = _word(rest)
        if not run_as:
            raise Refused("bad username: expected a user field after the time fields")
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise Refused(f'no such user "{run_as}": cron skips the line') from None
    command_text = rest.lstrip(BLANKS)
    if command_text.startswith("*"):
        raise Refused("bad command: it starts with *, a sixth time field?")
    command, stdin = split_percent(command_text)
    if not command.strip():
        raise Refused("no command: cron runs nothing")
    return Imported(number, line.strip(), schedule, command, run_as, dict(env), shell, zone, stdin)


def _word(text: str) -> tuple[str, str]:
    """The next blank-separated word of `text`, and what follows it."""
    text = text.lstrip(BLANKS)
    match = re.match(r"[^ \t]*", text)
    word = match.group(0) if match else ""
    return word, text[len(word) :]


def _faithful(schedule: str, written: list[str]) -> str:
    """Fields croniter would read otherwise than cron (a step longer than the field) written out."""
    from croniter import croniter

    fields = schedule.split()
    expanded = croniter(schedule).expanded
    for index, (name, low, high, _) in enumerate(FIELDS):
        values = field_values(written[index], index)
        if index == 4:
            values = {v % 7 for v in values}
            low, high = 0, 6
        theirs = expanded[index]
        got = (
            set(range(low, high + 1))
            if theirs == ["*"]
            else {int(v) % 7 if index == 4 else int(v) for v in theirs}
        )
        if got != values:
            if index in (2, 4) and written[index].startswith("*"):
                raise Refused(
                    f'"{written[index]}" in the {name} field cannot be kept as cron reads it'
                )
            fields[index] = ",".join(str(v) for v in sorted(values))
    return " ".join(fields)


WRAPPERS = {"nice", "ionice", "nohup", "exec", "sudo", "chronic", "time", "command", "env"}


def job_name_base(command: str) -> str:
    """What a command does, for its job's name: the program of its last step.

    `test -x /usr/sbin/anacron || run-parts /etc/cron.daily` is `cron-daily`:
    guards come first and the work last, and run-parts is named by its directory.
    """
    steps = [s for s in re.split(r"&&|\|\||;|[{}()]", command) if s.strip()]
    words: list[str] = []
    for word in (steps[-1] if steps else command).split("|")[0].split():
        if re.match(r"^[A-Za-z_]\w*=", word) and not words:
            continue  # an assignment before the program
        if word.startswith(("-", ">", "<", "2>", "&")) or os.path.basename(word) in WRAPPERS:
            continue
        if word.isdigit() and not words:  # a wrapper's argument, as in nice -n 10
            continue
        words.append(word.strip("'\""))
    if not words:
        return "job"
    program = os.path.basename(words[0])
    if program == "run-parts" and len(words) > 1:
        program = os.path.basename(words[-1].rstrip("/"))
    base = re.sub(r"[^a-z0-9]+", "-", program.lower()).strip("-")[:40]
    return base or "job"


def _name_jobs(jobs: list[Imported]) -> None:
    """Names from the commands, unique in the file and the same on every import."""
    taken: dict[str, int] = {}
    for job in jobs:
        base = job_name_base(job.command)
        count = taken.get(base, 0) + 1
        taken[base] = count
        job.name = base if count == 1 else f"{base}-{count}"


def render(conversion: Conversion, source: str) -> str:
    """The YAML, each job under the line it came from."""
    out = [
        f"# Imported from {source} by cronplusctl import.",
        "# Unlike cron, cronplus skips a run while the job's previous run is still going;",
        "# give a job max_concurrent and overlap: queue to let runs pile up as cron does.",
        "",
    ]
    for note in conversion.notes:
        out.append(f"# {note}")
    if conversion.notes:
        out.append("")
    if conversion.mailers:
        out.append("notifiers:")
        for name, (to, sender) in conversion.mailers.items():
            options = {"type": "email", "transport": "sendmail", "to": list(to)}
            if sender:
                options["from"] = sender
            out.append(f"  {name}: {json.dumps(options, ensure_ascii=False)}")
        out.append("")
    out.append("jobs:")
    if not conversion.jobs:
        out[-1] = "jobs: {}"
    for job in conversion.jobs:
        out.append(f"  # line {job.line}: {job.original}")
        out.append(f"  {job.name}:")
        out.append(f"    schedule: {json.dumps(job.schedule)}")
        if job.zone:
            out.append(f"    timezone: {json.dumps(job.zone)}")
        if job.shell == "/bin/sh":
            out.append(f"    command: {json.dumps(job.command, ensure_ascii=False)}")
        else:
            argv = [job.shell, "-c", job.command]
            out.append(f"    command: {json.dumps(argv, ensure_ascii=False)}")
        if job.stdin is not None:
            out.append(f"    stdin: {json.dumps(job.stdin, ensure_ascii=False)}")
        if job.user:
            out.append(f"    user: {json.dumps(job.user)}")
        env = {k: v for k, v in job.env.items() if k != "SHELL"}
        env.setdefault("PATH", CRON_PATH)
        out.append(f"    env: {json.dumps(env, ensure_ascii=False)}")
        if job.mail:
            out.append(f"    mail_to: [{job.mail}]")
            out.append("    mail_output: always")
    return "\n".join(out) + "\n"
