"""A config file from disk to YAML nodes, with nothing in it able to block, exhaust or crash us.

* **The file.** It is opened once, without blocking (a FIFO with no writer cannot
  hold the reader up), and every check is made on the open descriptor, so nothing
  can be swapped between a check and the read: it must be a regular file, not on a
  pseudo file system such as /proc or /sys, at most 16 MiB (and all files of a
  configuration together at most 16 MiB), and for the system daemon owned by root
  and writable by root only.  A symlink is followed; the checks are on the file it
  leads to.  A path that stat() says is not a regular file is not even opened:
  opening a device can act (a watchdog starts its timer); that look decides nothing
  the checks on the descriptor do not decide again.
* **A drop-in's directory**, for the system daemon, must be root's and writable by
  root only: whoever may write the directory may put files in it or swap them.
* **The YAML.** All files of a configuration make at most a million nodes (values,
  lists, mappings), counted as they are made.  Aliases may not expand a document by
  more than a million nodes (a
  "billion laughs" is refused before anything is built from it), a value nests at
  most 64 levels deep, and a value PyYAML cannot build becomes a message whatever
  PyYAML raised for it.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Protocol

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from . import convert

MAX_BYTES = 16 << 20  # one file, and all files of a configuration together
MAX_NESTING = 64  # levels of lists and mappings in one value
MAX_ALIAS_NODES = 1_000_000  # nodes that aliases may add to a document
MAX_NODES = 1_000_000  # values, lists and mappings written in all files of a configuration
MAX_DIGITS = 100  # of a YAML integer
# File systems whose files are the kernel's, not a config's: read, some block or act
PSEUDO_FILE_SYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "rpc_pipefs",
    "securityfs", "selinuxfs", "sysfs", "tracefs",
})  # fmt: skip
# What YAML forbids in a stream (as PyYAML's reader words it); found before the parser does,
# so the message can say where
_FORBIDDEN = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Refused(Exception):
    """A file that is not read, or not parsed; the message says why and what was expected."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


@dataclass
class Budget:
    """Bytes read and YAML nodes made so far for one configuration, against their caps.

    `pause`, when given, is called every PAUSE_NODES nodes: a reload read in a worker
    thread waits there while the scheduling loop starts runs (or gives up, superseded).
    """

    total: int = 0
    nodes: int = 0
    pause: Optional[Callable[[], None]] = None


PAUSE_NODES = 64


# --- the file -------------------------------------------------------------------------------


def read_text(path: str, budget: Budget, require_root_owned: bool) -> str:
    """The text of a config file; raises Refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        # Not even opened unless it looks like a regular file: opening a device can act
        # (a watchdog device starts its timer).  The checks that count follow on the
        # descriptor; this one only spares devices an open.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise Refused(f"found {_file_kind(mode)}, expected a regular file")
        fd = os.open(path, flags)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise Refused(f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = _checked_read(fd, budget, require_root_owned)
    except OSError as exc:
        raise Refused(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # what precedes the first bad byte is good
        line, column = _place(before, len(before))
        raise Refused(f"not UTF-8 text: {exc.reason}", line, column) from None


def _checked_read(fd: int, budget: Budget, require_root_owned: bool) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"found {_file_kind(info.st_mode)}, expected a regular file")
    kind = file_system(fd)
    if kind in PSEUDO_FILE_SYSTEMS:
        raise Refused(f"found a file on {kind}, a pseudo file system, expected a regular file")
    if require_root_owned:
        reason = unsafe(info)
        if reason is not None:
            raise Refused(f"refused: {reason}")
    _check_size(info.st_size, budget)
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BYTES:  # the size fstat gave may have grown since
        chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    _check_size(size, budget)
    budget.total += size
    return b"".join(chunks)


def _check_size(size: int, budget: Budget) -> None:
    limit = f"the {MAX_BYTES >> 20} MiB"
    if size > MAX_BYTES:
        raise Refused(f"{_mib(size)} MiB, more than {limit} a config file may have")
    if budget.total + size > MAX_BYTES:
        raise Refused(
            f"{_mib(size)} MiB, which makes the configuration's files more than {limit} "
            "they may have together"
        )


def _mib(size: int) -> int:
    return -(-size // (1 << 20))  # rounded up: a byte over 16 MiB is not "16 MiB"


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def unsafe(info: os.stat_result) -> Optional[str]:
    """Why root must not trust this file or directory, or None: root's, writable by root only."""
    what = "a directory" if stat.S_ISDIR(info.st_mode) else "a file"
    if info.st_uid != 0:
        return f"owned by uid {info.st_uid}, expected {what} owned by root"
    if info.st_mode & 0o022:
        mode = oct(info.st_mode & 0o7777)[2:].zfill(4)
        stricter = "0755" if stat.S_ISDIR(info.st_mode) else "0644"
        return f"writable by group or others (mode {mode}), expected mode {stricter} or stricter"
    return None


def unsafe_directory(path: str) -> Optional[str]:
    """Why the system daemon must not read drop-ins from directory `path`, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # then its files cannot be read either, and say so
    try:
        reason = unsafe(os.fstat(fd))
    finally:
        os.close(fd)
    return None if reason is None else f"refused: its directory {path} is {reason}"


def file_system(fd: int) -> Optional[str]:
    """The type of the file system `fd` is on, where Linux tells it (/proc), else None."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as fdinfo:
            found = re.search(r"^mnt_id:\s*(\d+)", fdinfo.read(), re.MULTILINE)
        if found is None:
            return None
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if fields and fields[0] == found.group(1) and "-" in fields:
                    return fields[fields.index("-") + 1]
    except (OSError, IndexError):
        return None
    return None


# --- the YAML -------------------------------------------------------------------------------


class Loader(Protocol):
    """What we use of a PyYAML loader, the C one (libyaml) or the pure-Python one."""

    failing: Optional[yaml.Node]
    node_limit: int

    def count_nodes(self, pause: Optional[Callable[[], None]] = None) -> None: ...

    def counted(self) -> int: ...

    def get_single_node(self) -> Optional[yaml.Node]: ...

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any: ...


class _Bounded(SafeConstructor):
    """PyYAML's safe constructor with a bound on nesting and on the digits of a number."""

    nesting = 0
    failing: Optional[yaml.Node] = None  # the innermost node whose construction raised

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if self.nesting >= MAX_NESTING:
            raise ConstructorError(
                None, None, f"nested more than {MAX_NESTING} levels deep", node.start_mark
            )
        self.nesting += 1
        try:
            return super().construct_object(node, deep)
        except Exception:
            self.failing = self.failing or node
            raise
        finally:
            self.nesting -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_DIGITS:
            raise ConstructorError(
                None,
                None,
                f"found a number of {len(node.value)} characters, expected at most {MAX_DIGITS}",
                node.start_mark,
            )
        return super().construct_yaml_int(node)

    yaml_constructors: ClassVar[dict[Optional[str], Any]] = {
        **SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:int": construct_yaml_int,
    }


class _TooManyNodes(Exception):
    pass


class _Counted(yaml.resolver.Resolver):
    """Counts nodes as they are made, and stops at a limit: a 16 MiB file of one-letter
    values would make eight million nodes, a few gigabytes of Python objects.

    The resolver is asked once for every node, by libyaml too; `count_nodes` wraps the
    loader's own bound method, as an override through the class chain cost a third of
    the time of reading a 10,000-job file.
    """

    nodes = 0
    node_limit = MAX_NODES

    def count_nodes(self, pause: Optional[Callable[[], None]] = None) -> None:
        resolve = self.resolve
        counter = itertools.count(1)
        limit = self.node_limit

        def counting(kind: Any, value: Any, implicit: Any) -> Any:
            if next(counter) > limit:
                raise _TooManyNodes
            return resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

        def pausing(kind: Any, value: Any, implicit: Any) -> Any:
            made = next(counter)
            if made > limit:
                raise _TooManyNodes
            if pause is not None and made % PAUSE_NODES == 0:
                pause()
            return resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

        if pause is not None:
            counting = pausing

        self.resolve = counting  # type: ignore[method-assign]
        self._counter = counter

    def counted(self) -> int:
        made: int = next(self._counter) - 1
        return made


class _PureLoader(_Bounded, _Counted, yaml.SafeLoader):
    """The pure-Python loader; its composer recurses, so nesting is bounded there too."""

    def compose_node(self, parent: Optional[yaml.Node], index: int) -> Optional[yaml.Node]:
        if self.nesting >= MAX_NESTING:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # stubs lack it
            problem = f"nested more than {MAX_NESTING} levels deep"
            raise yaml.composer.ComposerError(None, None, problem, mark)
        self.nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.nesting -= 1


if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(_Bounded, _Counted, yaml.CSafeLoader):
        """libyaml: ten times faster on a 10,000-job file; it bounds nesting itself (1,000)."""


def make_loader(source: str) -> Loader:
    """libyaml where PyYAML has it, else the pure-Python loader; both bounded."""
    if getattr(yaml, "__with_libyaml__", False):
        return _CLoader(source)
    return _PureLoader(source)


def parse(source: str, budget: Budget) -> tuple[Optional[yaml.Node], Loader]:
    """The document's root node (None when empty) and its loader; raises Refused."""
    forbidden = _FORBIDDEN.search(source)
    if forbidden is not None:
        line, column = _place(source, forbidden.start())
        code = f"U+{ord(forbidden.group()):04X}"
        raise Refused(
            f"YAML syntax error: found the character {code}, expected printable text", line, column
        )
    loader = make_loader(source)
    loader.node_limit = MAX_NODES - budget.nodes
    loader.count_nodes(budget.pause)
    try:
        node = loader.get_single_node()
    except _TooManyNodes:
        raise Refused(
            f"YAML: more than {MAX_NODES} values, lists and mappings in the configuration, "
            f"expected at most {MAX_NODES}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        line, column, message = describe(exc)
        if "alias" in f"{exc.context} {exc.problem}":
            message += " (quote a cron expression that starts with *)"
        raise Refused(f"YAML syntax error: {message}", line, column) from None
    except yaml.YAMLError as exc:
        raise Refused(f"YAML error: {_one_line(str(exc))}") from None
    budget.nodes += loader.counted()
    if node is not None and "&" in source:  # no anchor, no alias
        _check_aliases(node)
    return node, loader


def construct(loader: Loader, node: yaml.Node) -> Any:
    """The value of a node; a ValueError saying why when YAML cannot build it.

    PyYAML's constructors raise what they meet (KeyError for `!!bool maybe`,
    AttributeError for `!!timestamp soon`, ValueError for a 13th month): all of it
    is a fault of the file, so all of it becomes a message here.
    """
    loader.failing = None
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise ValueError(describe(exc)[2]) from None
    except Exception:  # see above: anything PyYAML raises is the file's fault
        failing = loader.failing or node
        tag = _short_tag(failing.tag)
        found = convert.show(failing.value) if isinstance(failing, yaml.ScalarNode) else "a value"
        raise ValueError(f"found {found} tagged {tag}, expected a value of that type") from None


def describe(exc: yaml.MarkedYAMLError) -> tuple[int, int, str]:
    """Line, column and one-line message of a YAML error."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = exc.problem or exc.context or "unreadable YAML"
    if exc.problem and exc.context:
        context_mark = exc.context_mark
        if context_mark is not None and mark is not None and context_mark.line != mark.line:
            message += f" ({exc.context} on line {context_mark.line + 1})"
    tag = re.search(r"constructor for the tag '([^']*)'", message)
    if tag:
        message = f"found the tag {_short_tag(tag.group(1))}, expected a value without a tag"
    return line, column, _one_line(message)


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _place(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `text[index]`."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it by more than MAX_ALIAS_NODES nodes.

    Counts what full expansion would hold without expanding: one pass over the
    distinct nodes, each node's expanded size from its children's.  An alias
    inside the node it names expands without end and is refused too.
    """
    sizes: dict[int, int] = {}
    path: set[int] = set()  # the nodes being counted, root to here: a cycle comes back to one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        key = id(node)
        if counted:
            path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, MAX_ALIAS_NODES * 2)  # keeps the sums small
            continue
        if key in sizes:
            continue
        if key in path:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
            raise Refused(
                "YAML: an alias refers to a node that contains it, expected aliases "
                "to nodes outside themselves",
                line,
                column,
            )
        path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] - len(sizes) > MAX_ALIAS_NODES:
        raise Refused(
            f"YAML: aliases expand this document by more than {MAX_ALIAS_NODES} nodes "
            '(a "billion laughs"), expected aliases that repeat far less'
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
