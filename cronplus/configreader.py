"""Located reading of YAML mappings: every problem with its file, line, column and key path.

The reader walks the structure of a config (sections, jobs, keys) node by node and
builds only the values, through the converters of `configkeys`, so that each problem
points at the node it is about; it collects every problem of every file before the
configuration is rejected.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from . import configfile, convert
from .configfile import Budget, Loader, Refused
from .configkeys import Converter
from .errors import ConfigProblem

MAP_TAG = "tag:yaml.org,2002:map"
# A key is a name, read as the text written: `1:`, `true:` or `2027-01-01:` name a job as
# well as `backup:` does (cronplusctl import writes `true:` for a job running `true`)
_NAME_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "timestamp")
)


@dataclass
class Entry:
    """A key's converted value and the YAML node it came from."""

    value: Any
    node: yaml.Node
    file: str


@dataclass
class Reader:
    problems: list[ConfigProblem] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)  # key paths present but rejected
    require_root_owned: bool = False  # the system daemon, as cron does for crontabs
    budget: Budget = field(default_factory=Budget)
    _seen: set[ConfigProblem] = field(default_factory=set)
    _directories: dict[str, Optional[str]] = field(default_factory=dict)

    def problem(self, file: str, node: Optional[yaml.Node], path: str, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.add(ConfigProblem(file, line, column, path, message))

    def add(self, found: ConfigProblem) -> None:
        if found not in self._seen:  # a bad default is reported once, not once per job
            self._seen.add(found)
            self.problems.append(found)

    def load(self, file: str, drop_in: bool = False) -> Optional[tuple[yaml.MappingNode, Loader]]:
        """A file's root mapping and its loader, or None when it was refused (and said why)."""
        if drop_in and self.require_root_owned:
            directory = os.path.dirname(file)
            if directory not in self._directories:
                self._directories[directory] = configfile.unsafe_directory(directory)
            refusal = self._directories[directory]
            if refusal is not None:
                self.add(ConfigProblem(file, 1, 1, "", refusal))
                return None
        try:
            source = configfile.read_text(file, self.budget, self.require_root_owned)
            node, loader = configfile.parse(source, self.budget)
        except Refused as exc:
            self.add(ConfigProblem(file, exc.line, exc.column, "", exc.message))
            return None
        if node is None:
            return yaml.MappingNode(MAP_TAG, []), loader
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
            self.problem(
                file, node, path, f"{kind} {convert.show(name)} is already defined at {where}"
            )
            return False
        seen[name] = (file, node)
        return True

    def mapping(
        self, file: str, node: yaml.Node, path: str, what: str
    ) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The (key, key node, value node) triples of a mapping; duplicates are problems.

        Keys are names, read as written; a list, a mapping, a merge key `<<` or a key
        with a tag of its own is a problem, not a name.
        """
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.problem(file, node, path, f"found {_node_kind(node)}, expected {what}")
            return []
        if node.tag != MAP_TAG:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self.problem(file, node, path, f"found a mapping tagged {tag}, expected {what}")
            return []
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _NAME_TAGS:
                self.problem(file, key_node, path, _bad_key(key_node))
                continue
            key = key_node.value
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.problem(
                    file, key_node, join(path, key), f"duplicate key (first on line {first})"
                )
                continue
            seen[key] = key_node
            out.append((key, key_node, value_node))
        return out

    def value(
        self, file: str, loader: Loader, node: yaml.Node, path: str, converter: Converter
    ) -> tuple[bool, Any]:
        """(True, the converted value) or (False, None) when it was rejected, and said why."""
        try:
            return True, converter(configfile.construct(loader, node))
        except ValueError as exc:
            self.problem(file, node, path, str(exc))
            self.invalid.add(path)
            return False, None

    def keys(
        self,
        file: str,
        loader: Loader,
        node: yaml.Node,
        path: str,
        converters: dict[str, Converter],
        what: str,
        unbuilt: tuple[str, ...] = (),
    ) -> dict[str, Entry]:
        """Convert each key of a mapping; unknown keys and bad values become problems.

        The keys in `unbuilt` keep their node for the caller to read entry by entry.
        """
        out: dict[str, Entry] = {}
        for key, key_node, value_node in self.mapping(file, node, path, what):
            if key in unbuilt:
                out[key] = Entry(None, value_node, file)
                continue
            converter = converters.get(key)
            if converter is None:
                hint = difflib.get_close_matches(key, list(converters), n=1)
                suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.problem(
                    file,
                    key_node,
                    join(path, key),
                    f"unknown key {convert.show(key)}, expected {what}{suggestion}",
                )
                continue
            ok, value = self.value(file, loader, value_node, join(path, key), converter)
            if ok:
                out[key] = Entry(value, value_node, file)
        return out


def join(path: str, key: str) -> str:
    """A key path; a key that would garble a one-line message is shown quoted."""
    if not key.isprintable() or len(key) > 100:
        key = convert.show(key)
    return f"{path}.{key}" if path else key


def _bad_key(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return f"found {_node_kind(node)} as a key, expected a name"
    if node.tag == "tag:yaml.org,2002:merge":
        return (
            'found the merge key "<<", expected the keys written out '
            "(defaults: gives keys to every job)"
        )
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return f"found {convert.show(node.value)} tagged {tag} as a key, expected a name"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return convert.show(node.value)
