"""The email notifier: a message with the facts, handed to the `send_mail` child.

The message is made here, in the daemon, and reaches the child on its standard
input; how to send it (sendmail or SMTP, TLS, where the credentials are) reaches
it in its environment.  Headers mark it as machine mail (Auto-Submitted), the body
is UTF-8, quoted-printable where it is not plain ASCII, so any mail system
carries it unchanged.
"""

from __future__ import annotations

import functools
import socket
import sys
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..model import Notifier, format_seconds
from . import send_mail
from .facts import Delivery, Event

UTC = timezone.utc
MAX_OUTPUT = 256 << 10  # of a run's output tail in one message
DEFAULT_TIMEOUT = 30.0  # seconds, one attempt
DEFAULT_RETRY_FOR = 600.0  # seconds of retrying before delivery is given up
SUBJECTS = {
    "failure": "{job} failed on {host}",
    "recovery": "{job} recovered on {host}",
    "digest": "{job} is still failing on {host}",
    "missed": "{job} did not run on {host}",
    "no-success": "{job} has not succeeded for too long on {host}",
    "success": "{job} succeeded on {host}",
    "retry": "{job} failed on {host}, retrying",
    "output": "{job} output on {host}",
}


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    """This machine's name, read once (never a DNS lookup on the loop)."""
    return socket.gethostname() or "localhost"


def subject(event: Event, host: str) -> str:
    template = SUBJECTS.get(event.kind, "{job}: {kind} on {host}")
    return "[cronplus] " + template.format(job=event.job, host=host, kind=event.kind)


def _when(stamp: Optional[float], zone_name: str) -> str:
    if stamp is None:
        return "-"
    moment = datetime.fromtimestamp(stamp, UTC)
    try:
        local = moment.astimezone(ZoneInfo(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        local = moment
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({moment:%Y-%m-%dT%H:%M:%SZ})"


def body(event: Event, host: str) -> str:
    """The facts, one a line, then the end of what the run printed."""
    lines = [event.summary(), ""]
    facts = [
        ("job", event.job),
        ("host", host),
        ("event", event.kind),
    ]
    if event.run_id > 0:
        facts += [("run", f"{event.run_id} (attempt {event.attempt})"), ("state", event.state)]
    facts += [("reason", event.reason or "-")]
    if event.exit_code is not None:
        facts.append(("exit code", str(event.exit_code)))
    if event.duration is not None:
        facts.append(
            ("duration", f"{event.duration:.3f}s ({format_seconds(round(event.duration))})")
        )
    facts.append(("zone", event.timezone))
    for name, stamp in (
        ("scheduled", event.scheduled),
        ("started", event.started),
        ("ended", event.ended),
    ):
        if stamp is not None:
            facts.append((name, _when(stamp, event.timezone)))
    if event.next_attempt:
        facts.append(("next attempt", event.next_attempt))
    width = max(len(name) for name, _ in facts) + 1
    lines += [f"{name + ':':<{width}} {value}" for name, value in facts]
    if event.detail:
        lines += ["", event.detail]
    if event.output_bytes:
        tail = event.output[-MAX_OUTPUT:]
        kept = len(tail)
        said = (
            f"What it printed ({event.output_bytes} bytes):"
            if kept >= event.output_bytes
            else f"The last {kept} of the {event.output_bytes} bytes it printed:"
        )
        lines += ["", said, "", tail.decode("utf-8", "replace").rstrip("\n")]
    return "\n".join(lines) + "\n"


def message(notifier: Notifier, event: Event, host: str) -> str:
    """The whole message, headers and body, with LF line ends."""
    options = notifier.options
    to = [str(a) for a in options["to"]]  # type: ignore[attr-defined]
    sender = str(options.get("from") or f"cronplus@{host}")
    mail = EmailMessage(policy=default_policy)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = subject(event, host)
    stamp = event.ended or event.started or event.scheduled or 0.0
    mail["Date"] = format_datetime(datetime.fromtimestamp(stamp, UTC))
    mail["Message-ID"] = make_msgid("cronplus", domain=host)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Cronplus-Job"] = event.job
    mail["X-Cronplus-Event"] = event.kind
    if event.run_id > 0:
        mail["X-Cronplus-Run"] = str(event.run_id)
    text = body(event, host)
    encoding = "7bit" if text.isascii() else "quoted-printable"
    mail.set_content(text, charset="utf-8", cte=encoding)
    return mail.as_string()


def delivery(notifier: Notifier, event: Event, host: str) -> Delivery:
    """The `send_mail` child with the message on its stdin and the transport in its environment."""
    options = notifier.options
    timeout = float(options.get("timeout", DEFAULT_TIMEOUT))  # type: ignore[arg-type]
    retry_for = float(options.get("retry_for", DEFAULT_RETRY_FOR))  # type: ignore[arg-type]
    env = {
        **event.environment(),
        "CRONPLUS_MAIL_TRANSPORT": str(options.get("transport", "sendmail")),
        "CRONPLUS_MAIL_TO": ",".join(str(a) for a in options["to"]),  # type: ignore[attr-defined]
        "CRONPLUS_MAIL_FROM": str(options.get("from") or f"cronplus@{host}"),
        "CRONPLUS_MAIL_ENVELOPE_FROM": str(options.get("from", "")),
        "CRONPLUS_MAIL_TIMEOUT": str(timeout),
        "CRONPLUS_MAIL_RETRY_FOR": str(retry_for),
    }
    for key in ("sendmail", "host", "port", "tls", "ca_file", "credentials"):
        if key in options:
            env[f"CRONPLUS_MAIL_{key.upper()}"] = str(options[key])
    argv = [sys.executable, send_mail.__file__]
    # bounded: every attempt may take its timeout, the waits between them retry_for
    return Delivery(argv, env, message(notifier, event, host), retry_for + 2 * timeout + 30)
