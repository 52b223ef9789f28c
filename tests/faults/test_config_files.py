"""What `include:` may bring in: regular files only, each opened once, 16 MiB at most.

FIFOs, devices, directories and files on /proc are problems, reported and never
read; the system daemon also refuses drop-ins whose directory others may write.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cronplus import config, configfile
from cronplus.errors import ConfigError

MIB = 1 << 20
JOB = 'jobs:\n  {name}: {{every: 1h, command: "true"}}\n'
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")


def check(file: Path) -> subprocess.CompletedProcess[str]:
    """`cronplusctl check FILE` as a user runs it; a hang fails after a minute."""
    return subprocess.run(
        [sys.executable, "-m", "cronplus.ctl", "check", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def rejected(main: Path, **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(str(main), "UTC", **options)
    return [str(p) for p in caught.value.problems]


def test_a_fifo_is_a_problem_and_never_blocks(tmp_path: Path) -> None:
    # open() of a FIFO without a writer blocked `cronplusctl check` and a reload for ever
    os.mkfifo(tmp_path / "cronplus.d.yaml")
    (tmp_path / "cronplus.yaml").write_text('include: ["cronplus.d.yaml"]\n')
    done = check(tmp_path / "cronplus.yaml")
    assert done.returncode == 1
    assert f"{tmp_path}/cronplus.d.yaml:1:1: found a FIFO, expected a regular file\n" in done.stderr

    done = check(tmp_path / "cronplus.d.yaml")  # the main file itself
    assert (done.returncode, "Traceback" in done.stderr) == (1, False)
    assert "found a FIFO, expected a regular file" in done.stderr


class Access:
    """How often each path is opened (os.open or open()) and read through os.read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: Counter[str] = Counter()
        self.read: Counter[str] = Counter()
        fds: dict[int, str] = {}
        real_os_open, real_open, real_read = os.open, open, os.read

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            self.opened[os.fsdecode(path)] += 1
            fd = real_os_open(path, flags, *args, **kwargs)
            fds[fd] = os.fsdecode(path)
            return fd

        def builtin_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, (str, bytes, os.PathLike)):
                self.opened[os.fsdecode(path)] += 1
            return real_open(path, *args, **kwargs)

        def os_read(fd: int, size: int) -> bytes:
            self.read[fds.get(fd, "")] += 1
            return real_read(fd, size)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "read", os_read)
        monkeypatch.setattr("builtins.open", builtin_open)


@pytest.fixture
def access(monkeypatch: pytest.MonkeyPatch) -> Access:
    return Access(monkeypatch)


def test_devices_directories_and_proc_files_are_problems_never_read(
    tmp_path: Path, access: Access
) -> None:
    (tmp_path / "cronplus.d" / "sub.yaml").mkdir(parents=True)
    (tmp_path / "cronplus.d" / "environ.yaml").symlink_to("/proc/self/environ")
    (tmp_path / "cronplus.d" / "zero.yaml").symlink_to("/dev/zero")
    main = tmp_path / "cronplus.yaml"
    main.write_text('include: ["cronplus.d/*.yaml", /dev/null, /proc/self/status]\n')
    drop = tmp_path / "cronplus.d"
    assert rejected(main) == [
        f"{drop}/environ.yaml:1:1: found a file on proc, a pseudo file system, expected a regular file",
        f"{drop}/sub.yaml:1:1: found a directory, expected a regular file",
        f"{drop}/zero.yaml:1:1: found a character device, expected a regular file",
        "/dev/null:1:1: found a character device, expected a regular file",
        "/proc/self/status:1:1: found a file on proc, a pseudo file system, expected a regular file",
    ]
    # devices and directories are not even opened; a /proc file is opened, never read
    for path in (f"{drop}/sub.yaml", f"{drop}/zero.yaml", "/dev/null"):
        assert access.opened[path] == 0, path
    for path in (f"{drop}/environ.yaml", "/proc/self/status"):
        assert (access.opened[path], access.read[path]) == (1, 0), path
    assert access.read[str(main)] > 0


def test_each_config_file_is_opened_once(tmp_path: Path, access: Access) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text(JOB.format(name="a"))
    for name in ("b", "c"):
        (tmp_path / "cronplus.d").mkdir(exist_ok=True)
        (tmp_path / "cronplus.d" / f"{name}.yaml").write_text(JOB.format(name=name))
    assert set(config.load(str(main), "UTC").jobs) == {"a", "b", "c"}
    files = [str(main), *(str(tmp_path / "cronplus.d" / f"{n}.yaml") for n in "bc")]
    assert [access.opened[f] for f in files] == [1, 1, 1]


def _comments(path: Path, size: int) -> None:
    line = "#" * 1023 + "\n"
    path.write_text(line * (size // 1024) + "#" * (size % 1024))


def test_a_config_file_may_have_16_mib(tmp_path: Path) -> None:
    main = tmp_path / "cronplus.yaml"
    _comments(main, 16 * MIB)
    assert config.load(str(main), "UTC").jobs == {}

    _comments(main, 16 * MIB + 1)
    assert rejected(main) == [f"{main}:1:1: 17 MiB, more than the 16 MiB a config file may have"]


def test_a_configuration_may_have_16_mib_in_all_its_files(tmp_path: Path) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text("jobs: {}\n")
    (tmp_path / "cronplus.d").mkdir()
    for name in ("a", "b"):
        _comments(tmp_path / "cronplus.d" / f"{name}.yaml", 8 * MIB)
    assert rejected(main) == [
        f"{tmp_path}/cronplus.d/b.yaml:1:1: 8 MiB, which makes the configuration's files more "
        "than the 16 MiB they may have together"
    ]


def test_a_configuration_has_at_most_999_drop_ins(tmp_path: Path) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text('include: "cronplus.d/*.yaml"\n')
    (tmp_path / "cronplus.d").mkdir()
    for number in range(1000):
        (tmp_path / "cronplus.d" / f"{number:04d}.yaml").write_text("# empty\n")
    assert rejected(main) == [f"{main}:1:10: include: more than 999 drop-ins, expected at most 999"]
    (tmp_path / "cronplus.d" / "0999.yaml").unlink()
    assert len(config.load(str(main), "UTC").files) == 1000


@needs_root
def test_the_system_daemon_refuses_drop_ins_from_a_directory_others_may_write(
    tmp_path: Path,
) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text(JOB.format(name="a"))
    main.chmod(0o644)
    drop = tmp_path / "cronplus.d"
    drop.mkdir(mode=0o755)
    for name in ("b", "c"):
        (drop / f"{name}.yaml").write_text(JOB.format(name=name))
        (drop / f"{name}.yaml").chmod(0o644)
    assert set(config.load(str(main), "UTC", require_root_owned=True).jobs) == {"a", "b", "c"}

    drop.chmod(0o777)
    assert rejected(main, require_root_owned=True) == [
        f"{drop}/{name}.yaml:1:1: refused: its directory {drop} is writable by group or others "
        "(mode 0777), expected mode 0755 or stricter"
        for name in ("b", "c")
    ]
    drop.chmod(0o755)
    os.chown(drop, 65534, 65534)
    assert rejected(main, require_root_owned=True) == [
        f"{drop}/{name}.yaml:1:1: refused: its directory {drop} is owned by uid 65534, "
        "expected a directory owned by root"
        for name in ("b", "c")
    ]
    # a per-user instance reads what its user may write
    assert set(config.load(str(main), "UTC").jobs) == {"a", "b", "c"}


@needs_root
def test_a_symlink_is_judged_by_the_file_it_leads_to(tmp_path: Path) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text("jobs: {}\n")
    main.chmod(0o644)
    (tmp_path / "cronplus.d").mkdir(mode=0o755)
    target = tmp_path / "elsewhere.yaml"
    target.write_text(JOB.format(name="b"))
    target.chmod(0o644)
    link = tmp_path / "cronplus.d" / "b.yaml"
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)  # the link's own owner does not matter
    assert set(config.load(str(main), "UTC", require_root_owned=True).jobs) == {"b"}

    os.chown(target, 65534, 65534)
    assert rejected(main, require_root_owned=True) == [
        f"{link}:1:1: refused: owned by uid 65534, expected a file owned by root"
    ]


def test_a_configuration_has_at_most_a_million_yaml_nodes(tmp_path: Path) -> None:
    # 16 MiB of one-letter values made eight million nodes, gigabytes of Python objects
    main = tmp_path / "cronplus.yaml"
    main.write_text("jobs: [" + "a," * 999_997 + "a]\n")  # with the root, its key and the list
    assert rejected(main) == [
        f"{main}:1:1: YAML: more than 1000000 values, lists and mappings in the configuration, "
        "expected at most 1000000"
    ]


def test_the_yaml_nodes_are_counted_for_all_files_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(configfile, "MAX_NODES", 100)
    main = tmp_path / "cronplus.yaml"
    main.write_text("jobs: [" + "a," * 96 + "a]\n")  # 100 nodes with the root, its key and the list
    assert rejected(main) == [f"{main}:1:7: jobs: found a list, expected a mapping of jobs"]

    main.write_text(
        "jobs: {}\ndefaults: {env: {" + ", ".join(f"A{i}: x" for i in range(30)) + "}}\n"
    )
    (tmp_path / "cronplus.d").mkdir()
    drop = tmp_path / "cronplus.d" / "a.yaml"
    drop.write_text("defaults: {env: {" + ", ".join(f"B{i}: x" for i in range(30)) + "}}\n")
    assert rejected(main) == [
        f"{drop}:1:1: YAML: more than 100 values, lists and mappings in the configuration, "
        "expected at most 100"
    ]
    drop.write_text("defaults: {env: {B: x}}\n")
    assert config.load(str(main), "UTC").jobs == {}


def test_a_path_with_a_nul_character_is_a_problem() -> None:
    # os.stat() raised ValueError: embedded null byte
    with pytest.raises(ConfigError, match="cannot read: embedded null byte"):
        config.load("/etc/cronplus\0.yaml", "UTC")
