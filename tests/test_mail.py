"""The email notifier against a real SMTP server (aiosmtpd, in this process) and a real MTA.

The message is made by the daemon's side (`notify.mail`) and sent by the real child
process (`notify/send_mail.py`), as the daemon starts it: its argv, environment and
standard input come from the notifier's Delivery.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Optional

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from cronplus import config
from cronplus.errors import ConfigError
from cronplus.model import (
    Config,
    Notifier,
)
from cronplus.notify import Event, notifier_command
from cronplus.notify.mail import message

HOST = "cronbox"
FAILURE = Event(
    kind="failure",
    job="backup",
    run_id=17,
    state="failed",
    attempt=2,
    reason="exit code 2",
    exit_code=2,
    timezone="America/New_York",
    scheduled=1_780_295_400.0,  # 2026-06-01T06:30:00Z
    started=1_780_295_400.5,
    ended=1_780_295_463.75,
    duration=63.25,
    output="Sauvegarde échouée: disque plein ✗\n".encode() * 3,
    output_bytes=5000,
)


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_message_has_the_facts_machine_mail_headers_and_utf8_safe_encoding() -> None:
    notifier = Notifier(
        "ops", "email", {"to": ("ops@example.org", "root"), "from": "cron@example.org"}
    )
    raw = message(notifier, FAILURE, HOST).encode()
    assert raw.isascii()  # quoted-printable: any mail system carries it unchanged
    mail = parse(raw)
    assert mail["Subject"] == "[cronplus] backup failed on cronbox"
    assert (mail["From"], mail["To"]) == ("cron@example.org", "ops@example.org, root")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] == "Mon, 01 Jun 2026 06:31:03 +0000"
    assert mail["Message-ID"].endswith("@cronbox>")
    assert (mail["X-Cronplus-Job"], mail["X-Cronplus-Run"]) == ("backup", "17")
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    text = mail.get_content()
    assert text.startswith("backup failed: exit code 2 (run 17, attempt 2)\n")
    for line in (
        "job:       backup",
        "run:       17 (attempt 2)",
        "state:     failed",
        "reason:    exit code 2",
        "exit code: 2",
        "duration:  63.250s (1m3s)",
        "zone:      America/New_York",
        "scheduled: 2026-06-01 02:30:00 EDT (2026-06-01T06:30:00Z)",
        "ended:     2026-06-01 02:31:03 EDT (2026-06-01T06:31:03Z)",
        f"The last {len(FAILURE.output)} of the 5000 bytes it printed:",
    ):
        assert line in text.splitlines(), line
    assert text.endswith("Sauvegarde échouée: disque plein ✗\n")


class Recorder:
    """An SMTP handler that keeps what it is given; `answers` are said to DATA first."""

    def __init__(self, answers: Optional[list[str]] = None) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.answers = list(answers or [])
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.answers:
            return self.answers.pop(0)
        assert isinstance(envelope.content, bytes)
        self.messages.append((envelope.mail_from or "", list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield recorder, controller.port
    controller.stop()


def send(options: dict[str, Any], event: Event = FAILURE) -> subprocess.CompletedProcess[str]:
    """The child as the daemon starts it."""
    delivery = notifier_command(Notifier("ops", "email", options), event, HOST)
    return subprocess.run(
        delivery.argv,
        input=delivery.stdin,
        env=delivery.env,
        capture_output=True,
        text=True,
        timeout=delivery.timeout,
    )


def smtp_options(port: int, **more: Any) -> dict[str, Any]:
    return {
        "transport": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "to": ("ops@example.org",),
        **more,
    }


def test_smtp_delivers_the_message_as_made(smtp: tuple[Recorder, int]) -> None:
    recorder, port = smtp
    done = send(smtp_options(port, **{"from": "cron@example.org"}))
    assert done.returncode == 0, done.stderr
    [(sender, to, raw)] = recorder.messages
    assert (sender, to) == ("cron@example.org", ["ops@example.org"])
    mail = parse(raw)
    assert mail["Subject"] == "[cronplus] backup failed on cronbox"
    assert "Sauvegarde échouée" in mail.get_content()


def test_a_temporary_refusal_is_retried_with_backoff(smtp: tuple[Recorder, int]) -> None:
    recorder, port = smtp
    recorder.answers = ["451 4.3.0 try again later", "421 4.3.2 busy"]
    done = send(smtp_options(port, retry_for=30))
    assert done.returncode == 0, done.stderr
    assert recorder.attempts == 3 and len(recorder.messages) == 1
    assert done.stderr.splitlines() == [
        "attempt 1: 451 4.3.0 try again later",
        "attempt 2: 421 4.3.2 busy",
    ]


def test_a_permanent_refusal_is_not_retried(smtp: tuple[Recorder, int]) -> None:
    recorder, port = smtp
    recorder.answers = ["554 5.7.1 no thanks"]
    done = send(smtp_options(port, retry_for=30))
    assert done.returncode == 1
    assert recorder.attempts == 1
    assert done.stderr.strip() == "attempt 1: 554 5.7.1 no thanks"


def test_a_server_that_is_down_is_retried_for_a_bounded_time() -> None:
    port = free_port()  # nothing listens
    started = time.monotonic()
    done = send(smtp_options(port, retry_for=3, timeout=1))
    took = time.monotonic() - started
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and lines[-1] == "gave up after 2 attempts in 3s", (
        lines
    )  # 0 s, 1 s, then 3 s passed
    assert all("Connection refused" in line for line in lines[:-1])
    assert took < 10


def test_a_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        done = send(smtp_options(silent.getsockname()[1], retry_for=0, timeout=1))
    assert done.returncode == 1
    assert "timed out" in done.stderr


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_starttls_with_credentials_from_a_private_file(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3:cr3t", handled=False)

    recorder = Recorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        secret = tmp_path / "smtp.secret"
        secret.write_text("cronplus:s3:cr3t\n")
        secret.chmod(0o600)
        options = smtp_options(
            controller.port, tls="starttls", ca_file=str(cert), credentials=str(secret)
        )
        done = send(options)
        assert done.returncode == 0, done.stderr
        assert logins == [(b"cronplus", b"s3:cr3t")]
        assert len(recorder.messages) == 1
        secret.write_text("cronplus:wrong\n")
        refused = send({**options, "retry_for": 30})
        assert (
            refused.returncode == 1
            and "535" in refused.stderr
            and "attempt 2" not in refused.stderr
        )
        secret.chmod(0o644)
        exposed = send(options)
        assert exposed.returncode == 1
        assert "not a regular file only its owner may read" in exposed.stderr
        untrusted = send({**options, "ca_file": "/etc/ssl/certs/ca-certificates.crt"})
        assert untrusted.returncode == 1 and "certificate" in untrusted.stderr
    finally:
        controller.stop()


def load(tmp_path: Path, text: str) -> Config:
    file = tmp_path / "cronplus.yaml"
    file.write_text(textwrap.dedent(text))
    return config.load(str(file), default_zone="UTC")


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(p).split("cronplus.yaml", 1)[1] for p in caught.value.problems]


def test_mail_settings_are_checked_with_their_place(tmp_path: Path) -> None:
    loose = tmp_path / "loose.secret"
    loose.write_text("a:b\n")
    loose.chmod(0o640)
    assert problems(
        tmp_path,
        f"""
        notifiers:
          a: {{type: email, to: "ops example.org"}}
          b: {{type: email, to: ops@example.org, host: smtp.example.org, tls: ssl}}
          c: {{type: email, to: ops@example.org, transport: smtp}}
          d: {{type: email, to: root, host: smtp.example.org}}
          e: {{type: email, to: ops@example.org, tls: tls}}
          f: {{type: email, to: ops@example.org, host: smtp.example.org, credentials: {loose}}}
          g: {{type: email, to: "ops@example.org>, evil@example.org"}}
          w: {{type: webhook, url: "https://hooks.example.org"}}
        jobs:
          j: {{schedule: "0 0 * * *", command: "true", mail_to: [w]}}
          k: {{schedule: "0 0 * * *", command: "true", mail_output: sometimes}}
        """,
    ) == [
        ':3:24: notifiers.a.to: bad address "ops example.org", expected an address such as ops@example.org, or a local user\'s name',
        ':4:70: notifiers.b.tls: found "ssl", expected one of none, starttls, tls',
        ':5:6: notifiers.c: an email notifier with transport smtp needs "host"',
        ':6:24: notifiers.d.to: bad address "root" for smtp, expected local@domain (a local user\'s name alone needs transport sendmail)',
        ":7:41: notifiers.e.tls: tls is for transport smtp, expected it left out with sendmail",
        f':8:78: notifiers.f.credentials: "{loose}" has mode 640, expected a file only its owner may read (chmod 600)',
        ':9:24: notifiers.g.to: bad address "ops@example.org>, evil@example.org", expected an address such as ops@example.org, or a local user\'s name',
        ':12:56: jobs.j.mail_to: "w" is a webhook notifier, expected an email notifier',
        ':13:60: jobs.k.mail_output: found "sometimes", expected one of always, on-failure, never',
    ]


@pytest.fixture
def mailbox_user() -> Iterator[str]:
    """A real user with a home, whose mail the local MTA delivers to /var/mail/NAME."""
    if os.geteuid() != 0:
        pytest.skip("making a user needs root")
    name = "cpmailbox"
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["useradd", "-m", name], check=True)
    yield name
    subprocess.run(["userdel", "-r", name], capture_output=True)
    Path(f"/var/mail/{name}").unlink(missing_ok=True)


def test_the_sendmail_interface_delivers_through_debians_mta_to_a_local_mailbox(
    mailbox_user: str,
) -> None:
    sendmail = Path("/usr/sbin/sendmail")
    if not sendmail.exists() or shutil.which("exim4") is None:
        pytest.skip("no mail transfer agent (exim4-daemon-light) installed")
    done = send({"transport": "sendmail", "to": (mailbox_user,)})
    assert done.returncode == 0, done.stderr
    spool = Path(f"/var/mail/{mailbox_user}")
    deadline = time.monotonic() + 20
    while not (spool.exists() and spool.stat().st_size):
        assert time.monotonic() < deadline, "the MTA delivered nothing"
        time.sleep(0.1)
    import mailbox

    [delivered] = list(mailbox.mbox(str(spool)))
    mail = parse(delivered.as_bytes())
    assert mail["Subject"] == "[cronplus] backup failed on cronbox"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Cronplus-Job"] == "backup"
    assert mail.get_content().endswith("Sauvegarde échouée: disque plein ✗\n")


def test_a_missing_sendmail_is_a_clear_failure(tmp_path: Path) -> None:
    done = send({"transport": "sendmail", "sendmail": str(tmp_path / "sendmail"), "to": ("root",)})
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"attempt 1: {tmp_path}/sendmail: no such program (is a mail transfer agent installed?)"
    )


def test_implicit_tls_with_a_private_authority(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    controller.start()
    try:
        done = send(smtp_options(controller.port, tls="tls", ca_file=str(cert)))
        assert done.returncode == 0, done.stderr
        assert len(recorder.messages) == 1
        plain = send(smtp_options(controller.port, tls="none", timeout=2, retry_for=0))
        assert plain.returncode == 1  # a TLS port does not speak plain SMTP
    finally:
        controller.stop()
