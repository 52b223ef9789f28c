"""YAML and drop-ins → validated model objects.

Every problem of every file is collected with its file, line, column and key
path before the configuration is rejected, so one `cronplusctl check` shows
them all.  A configuration is either accepted whole or not at all.
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import yaml

from . import convert
from .clock import zone
from .errors import ConfigError, ConfigProblem, ScheduleError
from .model import (
    RETRYABLE,
    CatchUp,
    Config,
    Job,
    Notification,
    Notifier,
    Overlap,
    ScheduleKind,
    ScheduleSpec,
    Settings,
)
from .schedule import build_rule


class Loader(Protocol):
    """What we use of a PyYAML loader, the C one (libyaml) or the pure-Python one."""

    def get_single_node(self) -> Optional[yaml.Node]: ...

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any: ...


def make_loader(source: str) -> Loader:
    """libyaml where PyYAML has it: ten times faster on a 10,000-job file."""
    if getattr(yaml, "__with_libyaml__", False):
        return yaml.CSafeLoader(source)
    return yaml.SafeLoader(source)


JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
NOTIFIER_TYPES = {
    "desktop": {"type": False, "user": False},
    "command": {"type": False, "command": True, "timeout": False},
    "webhook": {"type": False, "url": True, "timeout": False, "retries": False, "headers": False},
}
DROP_IN_KEYS = ("defaults", "jobs", "notifiers")
MAIN_KEYS = ("include", "daemon", *DROP_IN_KEYS)


def machine_zone() -> str:
    """The machine's zone name: $TZ, then /etc/localtime, then /etc/timezone, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in localtime:
        candidates.append(localtime.split("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for name in candidates:
        if name:
            try:
                zone(name)
                return name
            except ScheduleError:
                continue
    return "UTC"


# --- value converters for job keys -------------------------------------------------------

Converter = Callable[[Any], Any]


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
        raise ValueError(_unknown_zone(name)) from None
    return name


def _command(value: Any) -> Any:
    if isinstance(value, list):
        return convert.string_list(value, "a command string or a list of arguments")
    return convert.text(value, "a command string or a list of arguments")


def _notify(value: Any) -> Notification:
    if not isinstance(value, dict):
        raise convert.bad(value, "a mapping with title and message")
    unknown = set(value) - {"title", "message", "urgency", "icon"}
    if unknown:
        raise convert.bad(sorted(unknown)[0], "title, message, urgency or icon", "unknown key")
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
        if isinstance(item, (dict, list)) or item is None:
            raise convert.bad(item, f"a value for {key}")
        out[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def _optional_duration(value: Any) -> Optional[float]:
    if value is None or value == "none":
        return None
    return convert.duration(value, minimum=0.001)


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
    "every": lambda v: convert.duration(v, minimum=1),
    "at": _at,
    "timezone": _timezone,
    "command": _command,
    "notify": _notify,
    "user": _user,
    "workdir": lambda v: convert.text(v, "a directory"),
    "env": _env,
    "retries": lambda v: convert.integer(v, 0, 100),
    "retry_backoff": lambda v: convert.duration(v, maximum=7 * 86400),
    "retry_backoff_max": lambda v: convert.duration(v, minimum=1, maximum=30 * 86400),
    "retry_on": _retry_on,
    "timeout": _optional_duration,
    "kill_grace": lambda v: convert.duration(v, maximum=3600),
    "memory_limit": lambda v: None if v is None else convert.size(v, minimum=1 << 20),
    "max_concurrent": lambda v: convert.integer(v, 1, 1000),
    "overlap": lambda v: Overlap(convert.choice(v, [o.value for o in Overlap])),
    "pool": lambda v: convert.text(v, "a pool name from daemon.pools"),
    "priority": lambda v: convert.integer(v, -1000, 1000),
    "catch_up": lambda v: CatchUp(convert.choice(v, [c.value for c in CatchUp])),
    "catch_up_limit": lambda v: convert.integer(v, 1, 10000),
    "jitter": lambda v: convert.duration(v, maximum=86400),
    "on_failure": _names,
    "on_success": _names,
    "on_retry": _names,
    "output_limit": lambda v: convert.size(v, minimum=0, maximum=64 << 20),
    "description": lambda v: convert.text(v, "a description", allow_empty=True),
}
SCHEDULE_KEYS = ("schedule", "every", "at")

NOTIFIER_VALUES: dict[str, Converter] = {
    "command": lambda v: list(_command(v)) if isinstance(v, list) else _command(v),
    "timeout": lambda v: convert.duration(v, minimum=0.1, maximum=300),
    "retries": lambda v: convert.integer(v, 0, 10),
    "user": _user,
}

DAEMON_KEYS: dict[str, Converter] = {
    "max_workers": lambda v: convert.integer(v, 1, 4096),
    "pools": lambda v: v,  # checked entry by entry below
    "history": lambda v: convert.text(v, "a file path"),
    "keep_runs": lambda v: convert.integer(v, 1, 10_000_000),
    "shutdown_grace": lambda v: convert.duration(v, maximum=86400),
    "cgroups": lambda v: "off" if v is False else convert.choice(v, ("auto", "off")),  # YAML: off
}


# --- the reader ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """A key's converted value and the YAML node it came from."""

    value: Any
    node: yaml.Node
    file: str


@dataclass
class _Reader:
    problems: list[ConfigProblem] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)  # key paths present but rejected
    require_root_owned: bool = False  # the system daemon, as cron does for crontabs

    def problem(self, file: str, node: Optional[yaml.Node], path: str, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        found = ConfigProblem(file, line, column, path, message)
        if found not in self.problems:  # a bad default is reported once, not once per job
            self.problems.append(found)

    def unsafe(self, file: str) -> Optional[str]:
        """Why root must not read this file, or None: it must be root's, writable by root only."""
        try:
            info = os.stat(file)
        except OSError:
            return None  # reported when it is read
        if info.st_uid != 0:
            return f"refused: owned by uid {info.st_uid}, expected a file owned by root"
        if info.st_mode & 0o022:
            mode = oct(info.st_mode & 0o777)[2:].zfill(4)
            expected = "expected mode 0644 or stricter"
            return f"refused: writable by group or others (mode {mode}), {expected}"
        return None

    def load(self, file: str) -> Optional[tuple[yaml.MappingNode, Loader]]:
        refusal = self.unsafe(file) if self.require_root_owned else None
        if refusal is not None:
            self.problems.append(ConfigProblem(file, 1, 1, "", refusal))
            return None
        try:
            with open(file, encoding="utf-8") as stream:
                source = stream.read()
        except OSError as exc:
            self.problems.append(ConfigProblem(file, 1, 1, "", f"cannot read: {exc.strerror}"))
            return None
        except UnicodeDecodeError as exc:
            self.problems.append(ConfigProblem(file, 1, 1, "", f"not UTF-8 text: {exc.reason}"))
            return None
        loader = make_loader(source)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = f"YAML syntax error: {exc.problem or exc.context}"
            if "alias" in f"{exc.context} {exc.problem}":
                message += " (quote a cron expression that starts with *)"
            self.problems.append(ConfigProblem(file, line, column, "", message))
            return None
        except yaml.YAMLError as exc:
            self.problems.append(ConfigProblem(file, 1, 1, "", f"YAML error: {exc}"))
            return None
        if node is None:
            return yaml.MappingNode("tag:yaml.org,2002:map", []), loader
        if not isinstance(node, yaml.MappingNode):
            self.problem(file, node, "", "expected a mapping with jobs:, daemon:, defaults: ...")
            return None
        return node, loader

    def claim(
        self,
        seen: dict[str, tuple[str, yaml.Node]],
        kind: str,
        name: str,
        file: str,
        node: yaml.Node,
        path: str,
    ) -> bool:
        """Take `name` for this definition; a second one, in any file, is a problem."""
        if name in seen:
            other_file, other = seen[name]
            where = f"{other_file}:{other.start_mark.line + 1}"
            self.problem(file, node, path, f'{kind} "{name}" is already defined at {where}')
            return False
        seen[name] = (file, node)
        return True

    def mapping(
        self, file: str, node: yaml.Node, path: str, what: str
    ) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The (key, key node, value node) triples of a mapping; duplicates are problems."""
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.problem(file, node, path, f"found {_node_kind(node)}, expected {what}")
            return []
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(file, key_node, path, f"found {_node_kind(key_node)} as a key")
                continue
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.problem(
                    file, key_node, _join(path, key), f"duplicate key (first on line {first})"
                )
                continue
            seen[key] = key_node
            out.append((key, key_node, value_node))
        return out

    def keys(
        self,
        file: str,
        loader: Loader,
        node: yaml.Node,
        path: str,
        converters: dict[str, Converter],
        what: str,
    ) -> dict[str, _Entry]:
        """Convert each key of a mapping; unknown keys and bad values become problems."""
        out: dict[str, _Entry] = {}
        for key, key_node, value_node in self.mapping(file, node, path, what):
            converter = converters.get(key)
            if converter is None:
                hint = difflib.get_close_matches(key, list(converters), n=1)
                suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.problem(
                    file,
                    key_node,
                    _join(path, key),
                    f'unknown key "{key}", expected {what}{suggestion}',
                )
                continue
            try:
                value = converter(loader.construct_object(value_node, deep=True))
            except (ValueError, yaml.YAMLError) as exc:
                self.problem(file, value_node, _join(path, key), str(exc))
                self.invalid.add(_join(path, key))
                continue
            out[key] = _Entry(value, value_node, file)
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return convert.show(node.value)


# --- whole files --------------------------------------------------------------------------


def default_includes(main: str) -> list[str]:
    """Drop-ins live in `<name>.d/*.yaml` beside the main file (/etc/cronplus.d/*.yaml)."""
    path = Path(main)
    return [str(path.with_name(path.stem + ".d") / "*.yaml")]


def load(main: str, default_zone: Optional[str] = None, require_root_owned: bool = False) -> Config:
    """Read and validate `main` and its drop-ins; raises ConfigError with every problem.

    `require_root_owned` refuses any file not owned by root or writable by group or
    others, as the system daemon must: whoever can write the file can run commands as root.
    """
    reader = _Reader(require_root_owned=require_root_owned)
    main = os.path.abspath(main)
    loaded = reader.load(main)
    if loaded is None:
        raise ConfigError(reader.problems)
    root, loader = loaded
    sections = {k: (kn, vn) for k, kn, vn in reader.mapping(main, root, "", "a mapping")}
    for key, (key_node, _) in sections.items():
        if key not in MAIN_KEYS:
            hint = difflib.get_close_matches(key, MAIN_KEYS, n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            reader.problem(
                main,
                key_node,
                key,
                f'unknown section "{key}", expected one of ' + ", ".join(MAIN_KEYS) + suggestion,
            )

    settings, pool_names = _settings(reader, main, loader, sections.get("daemon"))
    files = [main]
    documents = [(main, loader, sections)]
    for pattern in _includes(reader, main, loader, sections.get("include")):
        for file in sorted(glob.glob(pattern)):
            loaded = reader.load(file)
            if loaded is None:
                continue
            drop_root, drop_loader = loaded
            drop = {k: (kn, vn) for k, kn, vn in reader.mapping(file, drop_root, "", "a mapping")}
            for key, (key_node, _) in drop.items():
                if key not in DROP_IN_KEYS:
                    reader.problem(
                        file,
                        key_node,
                        key,
                        f'section "{key}" is not allowed in a drop-in, expected '
                        + ", ".join(DROP_IN_KEYS),
                    )
            files.append(file)
            documents.append((file, drop_loader, drop))

    notifiers: dict[str, Notifier] = {}
    notifier_nodes: dict[str, tuple[str, yaml.Node]] = {}
    for file, doc_loader, doc in documents:
        if "notifiers" in doc:
            _notifiers(reader, file, doc_loader, doc["notifiers"][1], notifiers, notifier_nodes)

    zone_name = default_zone or machine_zone()
    main_defaults = _defaults(reader, main, loader, sections.get("defaults"), {})
    jobs: dict[str, Job] = {}
    job_nodes: dict[str, tuple[str, yaml.Node]] = {}
    for file, doc_loader, doc in documents:
        defaults = main_defaults
        if file != main:
            defaults = _defaults(reader, file, doc_loader, doc.get("defaults"), main_defaults)
        if "jobs" not in doc:
            continue
        for name, key_node, value_node in reader.mapping(
            file, doc["jobs"][1], "jobs", "a mapping of jobs"
        ):
            path = f"jobs.{name}"
            if not reader.claim(job_nodes, "job", name, file, key_node, path):
                continue
            if not JOB_NAME.fullmatch(name):
                reader.problem(
                    file,
                    key_node,
                    path,
                    f"bad job name {convert.show(name)}, expected letters, digits, '.', '_', '-' "
                    "or '@', starting with a letter or digit",
                )
                continue
            entries = reader.keys(file, doc_loader, value_node, path, JOB_KEYS, "a job key")
            job = _job(
                reader, name, file, key_node, defaults, entries, zone_name, pool_names, notifiers
            )
            if job is not None:
                jobs[name] = job

    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(settings=settings, jobs=jobs, notifiers=notifiers, files=tuple(files))


def _includes(
    reader: _Reader,
    main: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
) -> list[str]:
    if section is None:
        return default_includes(main)
    try:
        value = loader.construct_object(section[1], deep=True)
        patterns = (
            () if value in (None, []) else convert.string_list(value, "a glob or a list of globs")
        )
    except ValueError as exc:
        reader.problem(main, section[1], "include", str(exc))
        return []
    base = os.path.dirname(main)
    return [os.path.join(base, os.path.expanduser(p)) for p in patterns]


def _settings(
    reader: _Reader,
    file: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
) -> tuple[Settings, dict[str, int]]:
    if section is None:
        return Settings(), {}
    entries = reader.keys(file, loader, section[1], "daemon", DAEMON_KEYS, "a daemon key")
    pools: dict[str, int] = {}
    if "pools" in entries:
        pool_node = entries.pop("pools").node
        for name, _, value_node in reader.mapping(
            file, pool_node, "daemon.pools", "a mapping of pool sizes"
        ):
            try:
                pools[name] = convert.integer(loader.construct_object(value_node), 1, 4096)
            except ValueError as exc:
                reader.problem(file, value_node, f"daemon.pools.{name}", str(exc))
    values = {k: e.value for k, e in entries.items()}
    if "history" in values:
        values["history"] = os.path.join(
            os.path.dirname(file), os.path.expanduser(values["history"])
        )
    return Settings(pools=pools, **values), pools


def _notifiers(
    reader: _Reader,
    file: str,
    loader: Loader,
    node: yaml.Node,
    out: dict[str, Notifier],
    nodes: dict[str, tuple[str, yaml.Node]],
) -> None:
    for name, key_node, value_node in reader.mapping(
        file, node, "notifiers", "a mapping of notifiers"
    ):
        path = f"notifiers.{name}"
        if not reader.claim(nodes, "notifier", name, file, key_node, path):
            continue
        raw = reader.mapping(file, value_node, path, "a mapping with a type")
        values = {k: loader.construct_object(v, deep=True) for k, _, v in raw}
        kind = values.get("type")
        if kind not in NOTIFIER_TYPES:
            reader.problem(
                file,
                value_node,
                f"{path}.type",
                f"found {convert.show(kind)}, expected one of " + ", ".join(NOTIFIER_TYPES),
            )
            continue
        allowed = NOTIFIER_TYPES[kind]
        bad = False
        for key, key_node_, _ in raw:
            if key not in allowed:
                reader.problem(
                    file,
                    key_node_,
                    f"{path}.{key}",
                    f'unknown key "{key}" for a {kind} notifier, expected one of '
                    + ", ".join(allowed),
                )
                bad = True
        for key, required in allowed.items():
            if required and key not in values:
                reader.problem(file, value_node, path, f'a {kind} notifier needs "{key}"')
                bad = True
        url = values.get("url")
        if url is not None and not (isinstance(url, str) and re.match(r"https?://[^\s/]+", url)):
            reader.problem(
                file,
                value_node,
                f"{path}.url",
                f"found {convert.show(url)}, expected an http(s) URL",
            )
            bad = True
        for key, converter in NOTIFIER_VALUES.items():
            if key in values:
                try:
                    values[key] = converter(values[key])
                except ValueError as exc:
                    reader.problem(file, value_node, f"{path}.{key}", str(exc))
                    bad = True
        if not bad:
            out[name] = Notifier(name=name, type=kind, options=values)


def _defaults(
    reader: _Reader,
    file: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
    inherited: dict[str, _Entry],
) -> dict[str, _Entry]:
    if section is None:
        return inherited
    entries = reader.keys(file, loader, section[1], "defaults", JOB_KEYS, "a job key")
    for key in SCHEDULE_KEYS:
        if key in entries:
            reader.problem(
                file,
                entries[key].node,
                f"defaults.{key}",
                "a schedule cannot be a default, expected it under each job",
            )
    merged = dict(inherited)
    if "env" in entries and "env" in inherited:
        entries["env"].value = {**inherited["env"].value, **entries["env"].value}
    merged.update(entries)
    return merged


def _job(
    reader: _Reader,
    name: str,
    file: str,
    key_node: yaml.Node,
    defaults: dict[str, _Entry],
    own: dict[str, _Entry],
    default_zone: str,
    pools: dict[str, int],
    notifiers: dict[str, Notifier],
) -> Optional[Job]:
    """Cross-key checks and the final record; None when something was wrong."""
    path = f"jobs.{name}"
    before = len(reader.problems)
    merged = {k: v for k, v in defaults.items() if k not in SCHEDULE_KEYS}
    if "env" in own and "env" in defaults:
        own["env"].value = {**defaults["env"].value, **own["env"].value}
    merged.update(own)

    def given(key: str) -> bool:  # present, even if its value was rejected
        if key in merged:
            return True
        return bool(reader.invalid) and (
            f"{path}.{key}" in reader.invalid or f"defaults.{key}" in reader.invalid
        )

    kinds = [k for k in SCHEDULE_KEYS if k in own or (given(k) and k not in merged)]
    if len(kinds) != 1:
        found = "none" if not kinds else " and ".join(kinds)
        reader.problem(
            file, key_node, path, f"found {found}, expected exactly one of schedule, every or at"
        )
    actions = [k for k in ("command", "notify") if given(k)]
    if len(actions) != 1:
        found = "none" if not actions else " and ".join(actions)
        reader.problem(
            file, key_node, path, f"found {found}, expected exactly one of command or notify"
        )

    zone_name = merged["timezone"].value if "timezone" in merged else default_zone
    spec = None
    if len(kinds) == 1 and kinds[0] in own:
        kind = kinds[0]
        entry = own[kind]
        if kind == "schedule":
            spec = ScheduleSpec(ScheduleKind.CRON, expressions=entry.value)
        elif kind == "every":
            spec = ScheduleSpec(ScheduleKind.EVERY, every_seconds=entry.value)
        else:
            spec = ScheduleSpec(ScheduleKind.AT, at_local=entry.value)
        try:
            build_rule(spec, zone_name)
        except ScheduleError as exc:
            reader.problem(entry.file, entry.node, f"{path}.{kind}", str(exc))

    if "pool" in merged and merged["pool"].value not in pools:
        entry = merged["pool"]
        known = ", ".join(sorted(pools)) or "none defined in daemon.pools"
        reader.problem(
            entry.file,
            entry.node,
            f"{path}.pool",
            f"unknown pool {convert.show(entry.value)}, expected one of: {known}",
        )
    for key in ("on_failure", "on_success", "on_retry"):
        for notifier in merged[key].value if key in merged else ():
            if notifier not in notifiers:
                entry = merged[key]
                known = ", ".join(sorted(notifiers)) or "none defined in notifiers"
                reader.problem(
                    entry.file,
                    entry.node,
                    f"{path}.{key}",
                    f"unknown notifier {convert.show(notifier)}, expected one of: {known}",
                )
    backoff = merged["retry_backoff"].value if "retry_backoff" in merged else None
    backoff_max = merged["retry_backoff_max"].value if "retry_backoff_max" in merged else None
    if backoff is not None and backoff_max is not None and backoff_max < backoff:
        entry = merged["retry_backoff_max"]
        reader.problem(
            entry.file,
            entry.node,
            f"{path}.retry_backoff_max",
            f"found {backoff_max:g}s, expected at least retry_backoff ({backoff:g}s)",
        )
    if len(reader.problems) > before or spec is None:
        return None

    values = {k: e.value for k, e in merged.items() if k not in SCHEDULE_KEYS and k != "timezone"}
    if "workdir" in values:
        values["workdir"] = os.path.join(
            os.path.dirname(file), os.path.expanduser(values["workdir"])
        )
    return Job(
        name=name,
        schedule=spec,
        timezone=zone_name,
        source=f"{file}:{key_node.start_mark.line + 1}",
        **values,
    )


def _unknown_zone(name: str) -> str:
    import zoneinfo

    hint = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
    suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
    expected = 'an IANA zone name such as "Europe/Berlin"'
    return f"unknown zone {convert.show(name)}, expected {expected}{suggestion}"
