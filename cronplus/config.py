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
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from . import configfile, convert
from .chainspec import cycles
from .clock import zone
from .configfile import Budget, Loader
from .configkeys import (
    DAEMON_KEYS,
    JOB_KEYS,
    JOB_NAME,
    METRICS_KEYS,
    NOT_DEFAULTS,
    NOTIFIER_TYPES,
    NOTIFIER_VALUES,
    notifier_type,
    pool_size,
)
from .configreader import Entry, Reader, join
from .errors import ConfigError, ScheduleError
from .model import Config, Job, MetricsSettings, Notifier, Settings
from .schedulespec import SCHEDULE_KEYS, build_spec

__all__ = ["DAEMON_KEYS", "JOB_KEYS", "NOTIFIER_TYPES", "load", "machine_zone"]

DROP_IN_KEYS = ("defaults", "jobs", "notifiers")
MAIN_KEYS = ("include", "daemon", *DROP_IN_KEYS)
MAX_FILES = 1000  # the main file and its drop-ins


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


# --- whole files --------------------------------------------------------------------------


def default_includes(main: str) -> list[str]:
    """Drop-ins live in `<name>.d/*.yaml` beside the main file (/etc/cronplus.d/*.yaml)."""
    path = Path(main)
    return [str(path.with_name(path.stem + ".d") / "*.yaml")]


def load(
    main: str,
    default_zone: Optional[str] = None,
    require_root_owned: bool = False,
    pause: Optional[Callable[[], None]] = None,
) -> Config:
    """Read and validate `main` and its drop-ins; raises ConfigError with every problem.

    `require_root_owned` refuses any file not owned by root or writable by group or
    others, as the system daemon must: whoever can write the file can run commands as root.
    `pause` is called often (every few dozen values, every job): a reload read in a
    worker thread waits there while the loop starts runs, or stops there by raising.
    """
    reader = Reader(require_root_owned=require_root_owned, budget=Budget(pause=pause))
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
                join("", key),
                f"unknown section {convert.show(key)}, expected one of "
                + ", ".join(MAIN_KEYS)
                + suggestion,
            )

    settings, pool_names = _settings(reader, main, loader, sections.get("daemon"))
    files = [main]
    documents = [(main, loader, sections)]
    include = sections.get("include")
    for pattern in _includes(reader, main, loader, include):
        for file in sorted(glob.glob(pattern)):
            if len(files) == MAX_FILES:
                reader.problem(
                    main,
                    include[1] if include else None,
                    "include",
                    f"more than {MAX_FILES - 1} drop-ins, expected at most {MAX_FILES - 1}",
                )
                break
            loaded = reader.load(file, drop_in=True)
            if loaded is None:
                continue
            drop_root, drop_loader = loaded
            drop = {k: (kn, vn) for k, kn, vn in reader.mapping(file, drop_root, "", "a mapping")}
            for key, (key_node, _) in drop.items():
                if key not in DROP_IN_KEYS:
                    reader.problem(
                        file,
                        key_node,
                        join("", key),
                        f"section {convert.show(key)} is not allowed in a drop-in, expected "
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
    chains: dict[str, Entry] = {}  # job -> its `after:`
    for file, doc_loader, doc in documents:
        defaults = main_defaults
        if file != main:
            defaults = _defaults(reader, file, doc_loader, doc.get("defaults"), main_defaults)
        if "jobs" not in doc:
            continue
        for name, key_node, value_node in reader.mapping(
            file, doc["jobs"][1], "jobs", "a mapping of jobs"
        ):
            path = join("jobs", name)
            if pause is not None:
                pause()
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
            if "after" in entries:
                chains[name] = entries["after"]

    _check_chains(reader, chains, job_nodes)
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(settings=settings, jobs=jobs, notifiers=notifiers, files=tuple(files))


def _check_chains(
    reader: Reader, chains: dict[str, Entry], job_nodes: dict[str, tuple[str, yaml.Node]]
) -> None:
    """Every job an `after:` names exists, and no chain comes back to where it started."""
    edges: dict[str, tuple[str, ...]] = {}
    for name, entry in chains.items():
        path = join(join("jobs", name), "after")
        edges[name] = tuple(a.job for a in entry.value)
        for after in entry.value:
            if after.job not in job_nodes:
                hint = difflib.get_close_matches(after.job, sorted(job_nodes), n=1)
                suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
                reader.problem(
                    entry.file,
                    entry.node,
                    path,
                    f"unknown job {convert.show(after.job)}, expected a job of this"
                    f" configuration{suggestion}",
                )
    for loop in cycles(edges):
        entry = chains[loop[0]]
        reader.problem(
            entry.file,
            entry.node,
            join(join("jobs", loop[0]), "after"),
            "a chain that comes back to where it started: "
            + " -> ".join(loop)
            + " (each follows the next), expected no cycle",
        )


def _includes(
    reader: Reader,
    main: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
) -> list[str]:
    if section is None:
        return default_includes(main)
    ok, patterns = reader.value(main, loader, section[1], "include", _patterns)
    base = os.path.dirname(main)
    return [os.path.join(base, os.path.expanduser(p)) for p in patterns] if ok else []


def _patterns(value: Any) -> tuple[str, ...]:
    if value is None or value == []:
        return ()
    return convert.string_list(value, "a glob or a list of globs")


def _settings(
    reader: Reader,
    file: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
) -> tuple[Settings, dict[str, int]]:
    if section is None:
        return Settings(), {}
    entries = reader.keys(
        file,
        loader,
        section[1],
        "daemon",
        DAEMON_KEYS,
        "a daemon key",
        unbuilt=("pools", "metrics"),
    )
    pools: dict[str, int] = {}
    cluster_pools: set[str] = set()
    rejected: set[str] = set()
    if "pools" in entries:
        pool_node = entries.pop("pools").node
        for name, _, value_node in reader.mapping(
            file, pool_node, "daemon.pools", "a mapping of pool sizes"
        ):
            path = join("daemon.pools", name)
            ok, sized = reader.value(file, loader, value_node, path, pool_size)
            if ok:
                pools[name] = sized[0]
                if sized[1] == "cluster":
                    cluster_pools.add(name)
            else:
                rejected.add(name)  # said once, not again by every job in it
    if "metrics" in entries:
        entry = entries.pop("metrics")
        metrics = reader.keys(
            file, loader, entry.node, "daemon.metrics", METRICS_KEYS, "listen or textfile"
        )
        textfile = metrics["textfile"].value if "textfile" in metrics else ""
        if textfile:
            textfile = os.path.join(os.path.dirname(file), os.path.expanduser(textfile))
        listen = metrics["listen"].value if "listen" in metrics else None
        entries["metrics"] = Entry(MetricsSettings(listen, textfile), entry.node, file)
    values = {k: e.value for k, e in entries.items()}
    if "history" in values:
        values["history"] = os.path.join(
            os.path.dirname(file), os.path.expanduser(values["history"])
        )
    settings = Settings(pools=pools, cluster_pools=frozenset(cluster_pools), **values)
    return settings, {**pools, **dict.fromkeys(rejected, 1)}


def _notifiers(
    reader: Reader,
    file: str,
    loader: Loader,
    node: yaml.Node,
    out: dict[str, Notifier],
    nodes: dict[str, tuple[str, yaml.Node]],
) -> None:
    for name, key_node, value_node in reader.mapping(
        file, node, "notifiers", "a mapping of notifiers"
    ):
        path = join("notifiers", name)
        if not reader.claim(nodes, "notifier", name, file, key_node, path):
            continue
        raw = {
            k: (kn, vn)
            for k, kn, vn in reader.mapping(file, value_node, path, "a mapping with a type")
        }
        try:
            kind = notifier_type(
                configfile.construct(loader, raw["type"][1]) if "type" in raw else None
            )
        except ValueError as exc:
            reader.problem(file, value_node, f"{path}.type", str(exc))
            continue
        allowed = NOTIFIER_TYPES[kind]
        before = len(reader.problems)
        for key, required in allowed.items():
            if required and key not in raw:
                reader.problem(file, value_node, path, f'a {kind} notifier needs "{key}"')
        options: dict[str, Any] = {}
        for key, (key_node_, item_node) in raw.items():
            if key not in allowed:
                reader.problem(
                    file,
                    key_node_,
                    join(path, key),
                    f"unknown key {convert.show(key)} for a {kind} notifier, expected one of "
                    + ", ".join(allowed),
                )
                continue
            _, options[key] = reader.value(
                file, loader, item_node, join(path, key), NOTIFIER_VALUES[key]
            )
        if kind == "email" and len(reader.problems) == before:
            _email(reader, file, value_node, raw, path, options)
        if len(reader.problems) == before:
            out[name] = Notifier(name=name, type=kind, options=options)


SMTP_ONLY = ("host", "port", "tls", "ca_file", "credentials")


def _email(
    reader: Reader,
    file: str,
    node: yaml.Node,
    raw: dict[str, tuple[yaml.Node, yaml.Node]],
    path: str,
    options: dict[str, Any],
) -> None:
    """An email notifier's keys together: a transport and what it needs, private credentials."""
    transport = options.setdefault("transport", "smtp" if "host" in options else "sendmail")
    if transport == "smtp" and "host" not in options:
        reader.problem(file, node, path, 'an email notifier with transport smtp needs "host"')
    if transport == "sendmail":
        for key in SMTP_ONLY:
            if key in options:
                reader.problem(
                    file,
                    raw[key][0],
                    join(path, key),
                    f"{key} is for transport smtp, expected it left out with sendmail",
                )
    elif any("@" not in a for a in options.get("to", ())):
        bare = next(a for a in options["to"] if "@" not in a)
        reader.problem(
            file,
            raw["to"][1],
            join(path, "to"),
            f"bad address {convert.show(bare)} for smtp, expected local@domain"
            " (a local user's name alone needs transport sendmail)",
        )
    if "credentials" in options:
        refusal = private_file(options["credentials"], reader.require_root_owned)
        if refusal is not None:
            reader.problem(file, raw["credentials"][1], join(path, "credentials"), refusal)


def private_file(path: str, root_owned: bool) -> Optional[str]:
    """Why `path` may not hold credentials, or None: a regular file only its owner may read."""
    import stat

    try:
        info = os.stat(path)
    except PermissionError:
        return None  # not ours to look at: the daemon checks again when it sends
    except OSError as exc:
        return f'"{path}": {exc.strerror}, expected a file holding USER:PASSWORD'
    if not stat.S_ISREG(info.st_mode):
        return f'"{path}" is not a regular file, expected one holding USER:PASSWORD'
    if info.st_mode & 0o077:
        mode = oct(stat.S_IMODE(info.st_mode))[2:]
        return f'"{path}" has mode {mode}, expected a file only its owner may read (chmod 600)'
    if root_owned and info.st_uid != 0:
        return f'"{path}" is not owned by root, expected a file only root may read'
    return None


def _defaults(
    reader: Reader,
    file: str,
    loader: Loader,
    section: Optional[tuple[yaml.Node, yaml.Node]],
    inherited: dict[str, Entry],
) -> dict[str, Entry]:
    if section is None:
        return inherited
    entries = reader.keys(file, loader, section[1], "defaults", JOB_KEYS, "a job key")
    for key in NOT_DEFAULTS:
        if key in entries:
            what = "a chain" if key == "after" else "a schedule"
            reader.problem(
                file,
                entries[key].node,
                f"defaults.{key}",
                f"{what} cannot be a default, expected it under each job",
            )
    merged = dict(inherited)
    if "env" in entries and "env" in inherited:
        entries["env"].value = {**inherited["env"].value, **entries["env"].value}
    merged.update(entries)
    return merged


def _job(
    reader: Reader,
    name: str,
    file: str,
    key_node: yaml.Node,
    defaults: dict[str, Entry],
    own: dict[str, Entry],
    default_zone: str,
    pools: dict[str, int],
    notifiers: dict[str, Notifier],
) -> Optional[Job]:
    """Cross-key checks and the final record; None when something was wrong."""
    path = join("jobs", name)
    before = len(reader.problems)
    merged = {k: v for k, v in defaults.items() if k not in NOT_DEFAULTS}
    if "env" in own and "env" in defaults:
        own["env"].value = {**defaults["env"].value, **own["env"].value}
    merged.update(own)

    def given(key: str) -> bool:  # present, even if its value was rejected
        if key in merged:
            return True
        return bool(reader.invalid) and (
            f"{path}.{key}" in reader.invalid or f"defaults.{key}" in reader.invalid
        )

    actions = [k for k in ("command", "notify") if given(k)]
    if len(actions) != 1:
        found = "none" if not actions else " and ".join(actions)
        reader.problem(
            file, key_node, path, f"found {found}, expected exactly one of command or notify"
        )

    if "stdin" in merged and "notify" in merged:
        entry = merged["stdin"]
        reader.problem(
            entry.file,
            entry.node,
            f"{path}.stdin",
            "a notify job reads no input, expected stdin with a command",
        )
    zone_name = merged["timezone"].value if "timezone" in merged else default_zone
    present = [k for k in SCHEDULE_KEYS if k in own or (given(k) and k not in merged)]
    given_values = {k: own[k].value for k in present if k in own}
    spec, problems = build_spec(given_values, present, name, zone_name, follows=given("after"))
    for key, message in problems:
        written = own.get(key)
        if written is None:
            reader.problem(file, key_node, path, message)
        else:
            reader.problem(written.file, written.node, f"{path}.{key}", message)

    if "pool" in merged and merged["pool"].value not in pools:
        entry = merged["pool"]
        known = ", ".join(sorted(pools)) or "none defined in daemon.pools"
        reader.problem(
            entry.file,
            entry.node,
            f"{path}.pool",
            f"unknown pool {convert.show(entry.value)}, expected one of: {known}",
        )
    for key in ("on_failure", "on_success", "on_retry", "on_recovery", "mail_to"):
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
    for notifier in merged["mail_to"].value if "mail_to" in merged else ():
        if notifier in notifiers and notifiers[notifier].type != "email":
            entry = merged["mail_to"]
            reader.problem(
                entry.file,
                entry.node,
                f"{path}.mail_to",
                f"{convert.show(notifier)} is a {notifiers[notifier].type} notifier,"
                " expected an email notifier",
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
    # where daylight-saving warnings point: the first schedule key, else the job's name
    where = next((own[k] for k in present if k in own), None)
    at_file, mark = (where.file, where.node.start_mark) if where else (file, key_node.start_mark)
    return Job(
        name=name,
        schedule=spec,
        timezone=zone_name,
        source=f"{file}:{key_node.start_mark.line + 1}",
        schedule_at=f"{at_file}:{mark.line + 1}:{mark.column + 1}",
        **values,
    )
