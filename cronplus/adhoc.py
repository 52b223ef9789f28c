"""Schedules tried on cronplusctl's command line, with no daemon and no config file.

`next --expr` takes a cron expression, `next --schedule` a YAML mapping of any
schedule keys (`{every: 2w, on: mon, at: "09:00", start: 2026-01-05}`); both are
checked by the same converters and cross-key checks as a config file, and a
problem is told with its place in the argument.
"""

from __future__ import annotations

from typing import Any, Optional

from . import configfile
from .configfile import Budget, Refused
from .configkeys import JOB_KEYS
from .configreader import Reader
from .errors import ConfigError, ConfigProblem
from .model import ScheduleSpec
from .schedulespec import SCHEDULE_KEYS, build_spec

TRIED_KEYS = {key: JOB_KEYS[key] for key in (*SCHEDULE_KEYS, "timezone")}


def spec_from_arguments(
    expression: Optional[str],
    schedule: Optional[str],
    zone_name: str,
    name: Optional[str],
    start: Optional[str],
    end: Optional[str],
) -> tuple[ScheduleSpec, str]:
    """The spec and zone of `--expr` or `--schedule`; raises ConfigError with every problem.

    `name` is the job name hashed (H) values are chosen from; `start` and `end` bound
    either.
    """
    reader = Reader()
    where = "--schedule" if schedule is not None else "--expr"
    values: dict[str, Any] = {}
    present: list[str] = []
    places: dict[str, tuple[int, int]] = {}
    if schedule is not None:
        values, present, zone_name, places = _read_mapping(reader, schedule, zone_name)
    elif expression is not None:
        values, present = {"schedule": (expression,)}, ["schedule"]
    for key, text in (("start", start), ("end", end)):
        if text is None:
            continue
        if key in present:
            reader.add(ConfigProblem(where, 1, 1, key, f"given twice, expected --{key} or {key}:"))
            continue
        present.append(key)
        try:
            values[key] = JOB_KEYS[key](text)
        except ValueError as exc:
            reader.add(ConfigProblem(f"--{key}", 1, 1, "", str(exc)))
    if reader.problems:
        raise ConfigError(reader.problems)
    spec, problems = build_spec(values, present, name, zone_name)
    for key, message in problems:
        line, column = places.get(key, (1, 1))
        reader.add(ConfigProblem(where, line, column, key, message))
    if spec is None or reader.problems:
        raise ConfigError(reader.problems)
    return spec, zone_name


def _read_mapping(
    reader: Reader, text: str, zone_name: str
) -> tuple[dict[str, Any], list[str], str, dict[str, tuple[int, int]]]:
    """The schedule keys of a YAML mapping, converted, its zone and where each key is;
    problems go to `reader`."""
    where = "--schedule"
    try:
        node, loader = configfile.parse(text, Budget())
    except Refused as exc:
        reader.add(ConfigProblem(where, exc.line, exc.column, "", exc.message))
        return {}, [], zone_name, {}
    if node is None:
        reader.add(ConfigProblem(where, 1, 1, "", "found nothing, expected {every: 2w, on: mon}"))
        return {}, [], zone_name, {}
    what = "a schedule key (" + ", ".join(TRIED_KEYS) + ")"
    entries = reader.keys(where, loader, node, "", TRIED_KEYS, what)
    zone_entry = entries.pop("timezone", None)
    values = {key: entry.value for key, entry in entries.items()}
    present = [*values, *(key for key in reader.invalid if key in SCHEDULE_KEYS)]
    places = {
        key: (entry.node.start_mark.line + 1, entry.node.start_mark.column + 1)
        for key, entry in entries.items()
    }
    return values, present, zone_entry.value if zone_entry else zone_name, places
