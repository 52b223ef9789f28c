"""Running as a service: sd_notify over a real datagram socket, unit files, config file safety."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Callable

import pytest
from test_end_to_end import DaemonProcess, daemon_factory

from cronplus import config
from cronplus.errors import ConfigError

__all__ = ["daemon_factory"]

ROOT = Path(__file__).resolve().parent.parent


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect_until(self, predicate: Callable[[list[str]], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(socket.timeout):
                self.messages.append(self.sock.recv(4096).decode())
            if predicate(self.messages):
                return
        raise AssertionError(f"never saw it; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_status_watchdog_reload_and_stop(
    tmp_path: Path, daemon_factory: Callable[[str], DaemonProcess]
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = daemon_factory('jobs:\n  tick: {schedule: "0 0 1 1 *", command: "true"}\n')
    daemon.extra_env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    try:
        daemon.start()
        notify.collect_until(lambda m: any(x.startswith("READY=1") for x in m))
        ready = next(x for x in notify.messages if x.startswith("READY=1"))
        assert ready.startswith("READY=1\nSTATUS=1 jobs, 0 running, next: tick at ")
        # the loop pings at half the 0.4 s interval even with nothing to do
        notify.collect_until(lambda m: m.count("WATCHDOG=1") >= 5, timeout=5)

        notify.messages.clear()
        daemon.signal(signal.SIGHUP)
        notify.collect_until(lambda m: any(x.startswith("READY=1") for x in m))
        reloading = [x for x in notify.messages if x.startswith("RELOADING=1")]
        assert len(reloading) == 1
        usec = int(reloading[0].split("MONOTONIC_USEC=")[1])
        assert abs(usec / 1e6 - time.monotonic()) < 10
        assert notify.messages.index(reloading[0]) < notify.messages.index(
            next(x for x in notify.messages if x.startswith("READY=1"))
        )

        daemon.signal(signal.SIGTERM)
        notify.collect_until(lambda m: "STOPPING=1" in m)
        assert daemon.wait_exit() == 0
    finally:
        notify.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronplus.servicemanager import ServiceManager

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    manager = ServiceManager()
    assert not manager.enabled and manager.watchdog_interval is None
    manager.ready("x")  # must not raise


def test_watchdog_for_another_pid_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cronplus.servicemanager import ServiceManager

    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "none"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert ServiceManager().watchdog_interval is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert ServiceManager().watchdog_interval == 0.5


@pytest.mark.skipif(os.geteuid() != 0, reason="checking ownership needs files owned by root")
def test_the_system_daemon_refuses_files_others_could_write(tmp_path: Path) -> None:
    main = tmp_path / "cronplus.yaml"
    main.write_text('jobs:\n  a: {schedule: "@daily", command: "true"}\n')
    main.chmod(0o644)
    assert set(config.load(str(main), "UTC", require_root_owned=True).jobs) == {"a"}

    main.chmod(0o664)
    with pytest.raises(ConfigError) as caught:
        config.load(str(main), "UTC", require_root_owned=True)
    assert str(caught.value) == (
        f"{main}:1:1: refused: writable by group or others (mode 0664), expected mode 0644 or stricter"
    )

    main.chmod(0o644)
    drop = tmp_path / "cronplus.d" / "x.yaml"
    drop.parent.mkdir()
    drop.write_text('jobs:\n  b: {schedule: "@daily", command: "true"}\n')
    os.chown(drop, 65534, 65534)
    with pytest.raises(ConfigError) as caught:
        config.load(str(main), "UTC", require_root_owned=True)
    assert (
        str(caught.value)
        == f"{drop}:1:1: refused: owned by uid 65534, expected a file owned by root"
    )
    # the same files are fine for a per-user instance
    assert set(config.load(str(main), "UTC").jobs) == {"a", "b"}


# What the system unit must not carry: its sandboxing applies to every job the daemon
# starts, and cron takes none of this from root's jobs.
TAKEN_FROM_JOBS = {
    "ProtectSystem": "apt upgrades and backups restore into /usr, /boot and /etc",
    "ProtectHome": "backups read /home and /root",
    "PrivateTmp": "jobs leave files in the /tmp other programs read",
    "PrivateDevices": "smartctl, fstrim and hwclock need /dev",
    "PrivateNetwork": "jobs fetch and send over the network",
    "PrivateUsers": "root jobs must be root on the host",
    "PrivateMounts": "backup jobs mount file systems for everyone",
    "PrivateIPC": "jobs talk to daemons through SysV IPC",
    "ProtectKernelTunables": "sysctl -w and echo 3 > /proc/sys/vm/drop_caches",
    "ProtectKernelModules": "modprobe",
    "ProtectKernelLogs": "dmesg",
    "ProtectClock": "hwclock --systohc, ntpdate, date -s",
    "ProtectControlGroups": "jobs that manage cgroups",
    "ProtectHostname": "hostname changes",
    "ProtectProc": "monitoring jobs look at every process",
    "ProcSubset": "monitoring jobs read /proc/meminfo and /proc/sys",
    "LockPersonality": "setarch and linux32",
    "RestrictRealtime": "chrt",
    "RestrictSUIDSGID": "installers create setuid files",
    "RestrictNamespaces": "unshare, podman and docker run",
    "RestrictAddressFamilies": "ip (netlink), ping, bluetooth tools",
    "RestrictFileSystems": "jobs on any file system",
    "SystemCallArchitectures": "32-bit programs",
    "SystemCallFilter": "any syscall: shutdown -r, swapon, mount",
    "MemoryDenyWriteExecute": "JIT runtimes: Java, node, PyPy",
    "NoNewPrivileges": "sudo, su and other setuid programs",
    "CapabilityBoundingSet": "root jobs with every capability",
    "SecureBits": "root jobs keep root's capabilities across exec",
    "ReadOnlyPaths": "jobs write anywhere",
    "InaccessiblePaths": "jobs read anywhere",
    "TemporaryFileSystem": "jobs see the real file system",
    "NoExecPaths": "jobs run programs from anywhere",
    "IPAddressDeny": "jobs reach any address",
    "SocketBindDeny": "jobs bind any port",
    "DevicePolicy": "jobs open any device",
    "DeviceAllow": "jobs open any device",
}


def _service_settings(unit: str) -> dict[str, str]:
    section, settings = "", {}
    for line in (ROOT / "systemd" / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith(("#", ";")) and section == "[Service]":
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


@pytest.mark.parametrize("unit", ["cronplus.service", "user/cronplus.service"])
def test_the_units_take_nothing_from_jobs_that_cron_gives_them(unit: str) -> None:
    settings = _service_settings(unit)
    assert "ExecStart" in settings  # the parser found the section
    taken = {key: TAKEN_FROM_JOBS[key] for key in settings if key in TAKEN_FROM_JOBS}
    assert taken == {}


def test_the_history_is_roots_and_the_socket_and_umask_are_as_cron_has_them() -> None:
    settings = _service_settings("cronplus.service")
    assert settings["StateDirectoryMode"] == "0700"
    assert settings["RuntimeDirectoryMode"] == "0755"
    assert settings["UMask"] == "0022"
