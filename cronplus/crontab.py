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
# (name, lowest, highest, names from lowest)
FIELDS = [
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
]
AT_NAMES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
CRON_PATH = "/usr/bin:/bin"  # what cron(8) gives a job without PATH=
ENV_LINE = re.compile(r"""^\s*("[^"]*"|'[^']*'|[^\s=]+)\s*=\s*(.*?)\s*$""")


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


@dataclass
class Conversion:
    jobs: list[Imported] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in the output, as comments


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _number(token: str, low: int, high: int, names: Optional[list[str]]) -> int:
    if names is not None and token.lower() in names:
        return names.index(token.lower()) + low
    if not token.isdigit():
        raise ValueError(f'"{token}" is not a number' + (" or a name" if names else ""))
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}-{high}")
    return value


def normalize_field(text: str, index: int) -> str:
    """One time field checked as cron checks it, names turned to numbers; raises ValueError."""
    name, low, high, names = FIELDS[index]
    parts = []
    for item in text.split(","):
        if not item:
            raise ValueError(f"empty list item in the {name} field")
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f'bad step "/{step}" in the {name} field')
        if base == "*":
            out = "*"
        elif "-" in base:
            first, _, last = base.partition("-")
            a, b = _number(first, low, high, names), _number(last, low, high, names)
            if a > b:
                raise ValueError(f"range {a}-{b} runs backwards in the {name} field")
            out = f"{a}-{b}"
        else:
            if step:
                raise ValueError(f'a step needs a range or * in the {name} field ("{item}")')
            out = str(_number(base, low, high, names))
        parts.append(out + (f"/{step}" if step else ""))
    return ",".join(parts)


def split_percent(command: str) -> tuple[str, Optional[str]]:
    """The `%` rule: an unescaped % ends the command; the rest is stdin, % as newlines."""
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
    return "".join(out), stdin


def parse(text: str, system: bool = False, user: Optional[str] = None) -> Conversion:
    """Every line of a crontab, in order; problems name their line."""
    result = Conversion()
    env: dict[str, str] = {}
    shell, zone = "/bin/sh", None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.match(raw)
        if match and not re.match(r"^(@|[\d*])", line):
            name, value = _unquote(match.group(1)), _unquote(match.group(2))
            if name == "CRON_TZ":
                zone = value
            elif name == "MAILTO":
                env[name] = value
                result.notes.append(
                    f"line {number}: MAILTO={value}: cron mailed job output there; cronplus "
                    "keeps it in the history (cronplusctl logs RUN) - add an on_failure "
                    "notifier to hear of failures"
                )
            else:
                if name == "SHELL":
                    shell = value
                if name == "TZ":
                    zone = value
                env[name] = value
            continue
        try:
            job = _entry(raw, line, number, system, user, env, shell, zone)
        except ValueError as exc:
            result.problems.append(f"line {number}: {exc}; skipped: {line}")
            continue
        result.jobs.append(job)
    _name_jobs(result.jobs)
    return result


def _entry(
    raw: str,
    line: str,
    number: int,
    system: bool,
    user: Optional[str],
    env: dict[str, str],
    shell: str,
    zone: Optional[str],
) -> Imported:
    words = line.split()
    if words[0].startswith("@"):
        if words[0].lower() == "@reboot":
            raise ValueError("@reboot has no cronplus schedule (start it from a systemd unit)")
        if words[0].lower() not in AT_NAMES:
            raise ValueError(f'unknown schedule name "{words[0]}"')
        schedule, rest = words[0].lower(), words[1:]
    else:
        if len(words) < 6:
            raise ValueError("expected five time fields and a command")
        schedule = " ".join(normalize_field(words[i], i) for i in range(5))
        try:
            CronRule(schedule, "UTC")
        except ScheduleError as exc:  # cron accepts it and never runs it: say so
            raise ValueError(str(exc)) from None
        rest = words[5:]
    run_as = user
    if system:
        if not rest:
            raise ValueError("expected a user field after the time fields")
        run_as, rest = rest[0], rest[1:]
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise ValueError(f'no such user "{run_as}"') from None
    if not rest:
        raise ValueError("no command")
    # the command is the rest of the raw line, its own spacing kept
    command_text = raw.split(None, len(line.split()) - len(rest))[-1].rstrip("\n")
    command, stdin = split_percent(command_text)
    if not command.strip():
        raise ValueError("no command before %")
    return Imported(number, line, schedule, command.strip(), run_as, dict(env), shell, zone, stdin)


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
    out.append("jobs:")
    if not conversion.jobs:
        out[-1] = "jobs: {}"
    for job in conversion.jobs:
        out.append(f"  # line {job.line}: {job.original}")
        out.append(f"  {job.name}:")
        out.append(f"    schedule: {json.dumps(job.schedule)}")
        if job.zone:
            out.append(f"    timezone: {json.dumps(job.zone)}")
        command = job.command
        if job.stdin is not None:
            command = f"{command} <<'CRONPLUS_INPUT'\n{job.stdin}\nCRONPLUS_INPUT"
        if job.shell == "/bin/sh":
            out.append(f"    command: {json.dumps(command, ensure_ascii=False)}")
        else:
            argv = [job.shell, "-c", command]
            out.append(f"    command: {json.dumps(argv, ensure_ascii=False)}")
        if job.user:
            out.append(f"    user: {json.dumps(job.user)}")
        env = {k: v for k, v in job.env.items() if k not in ("MAILTO", "SHELL")}
        env.setdefault("PATH", CRON_PATH)
        out.append(f"    env: {json.dumps(env, ensure_ascii=False)}")
    return "\n".join(out) + "\n"
