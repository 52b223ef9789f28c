"""Send one message read from standard input; run by the daemon as a child process.

A child process, so that a mail server that is down, slow or refusing never holds
up the daemon's loop.  How to send comes in the environment (CRONPLUS_MAIL_*):
through the local sendmail interface, as cron does, or SMTP with STARTTLS or TLS
and, optionally, credentials from a file only its owner may read (USER:PASSWORD on
its first line).  A temporary failure (no connection, a 4xx answer, sendmail's
EX_TEMPFAIL) is retried after 1 s, 2 s, 4 s ... (at most a minute apart) until
CRONPLUS_MAIL_RETRY_FOR seconds have passed; a permanent one (a 5xx answer, bad
credentials, a certificate that does not verify) ends it at once.  Exit 0 when
sent, 1 when not, with the reason on stderr.

Standard library only: run by file with the daemon's Python, it needs nothing of ours.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import stat
import subprocess
import sys
import time
from typing import Optional

TEMPORARY_EXITS = {69, 71, 74, 75}  # sysexits: unavailable, OS error, I/O error, try again
MAX_PAUSE = 60.0


class Temporary(Exception):
    """Worth another attempt."""


class Permanent(Exception):
    """Another attempt would get the same answer."""


def setting(name: str, default: str = "") -> str:
    return os.environ.get(f"CRONPLUS_MAIL_{name}", default)


def credentials(path: str) -> tuple[str, str]:
    """USER:PASSWORD from the first line of a file no one but its owner may read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise Permanent(f"credentials {path}: {exc.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise Permanent(f"credentials {path}: not a regular file only its owner may read")
        with os.fdopen(descriptor, encoding="utf-8", closefd=False) as handle:
            line = handle.readline().rstrip("\r\n")
    finally:
        os.close(descriptor)
    user, colon, password = line.partition(":")
    if not colon or not user:
        raise Permanent(f"credentials {path}: expected USER:PASSWORD on the first line")
    return user, password


def _answer(exc: smtplib.SMTPResponseException) -> Exception:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
    said = f"{exc.smtp_code} {text}".strip()
    return Temporary(said) if 400 <= exc.smtp_code < 500 else Permanent(said)


def by_smtp(message: bytes, sender: str, to: list[str]) -> str:
    host = setting("HOST")
    tls = setting("TLS", "starttls")
    port = int(setting("PORT") or (465 if tls == "tls" else 587 if tls == "starttls" else 25))
    timeout = float(setting("TIMEOUT", "30"))
    context: Optional[ssl.SSLContext] = None
    if tls != "none":
        context = ssl.create_default_context(cafile=setting("CA_FILE") or None)
    try:
        if tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo()
            if tls == "starttls":
                if not client.has_extn("starttls"):
                    raise Permanent(f"{host}:{port} does not offer STARTTLS")
                client.starttls(context=context)
                client.ehlo()
            if setting("CREDENTIALS"):
                client.login(*credentials(setting("CREDENTIALS")))
            # SMTP ends lines with CRLF; smtplib leaves a message given as bytes as it is
            refused = client.sendmail(sender, to, re.sub(rb"\r?\n", b"\r\n", message))
    except smtplib.SMTPRecipientsRefused as exc:
        answers = {k: v[0] for k, v in exc.recipients.items()}
        said = ", ".join(f"{k}: {v}" for k, v in answers.items())
        kind = Temporary if all(400 <= v < 500 for v in answers.values()) else Permanent
        raise kind(f"recipients refused: {said}") from None
    except smtplib.SMTPResponseException as exc:
        raise _answer(exc) from None
    except ssl.SSLCertVerificationError as exc:
        raise Permanent(f"{host}:{port}: {exc.verify_message or exc}") from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, closed
        raise Temporary(f"{host}:{port}: {exc or type(exc).__name__}") from None
    if refused:
        print(f"refused by {host}: {', '.join(refused)}", file=sys.stderr)
    return f"sent to {', '.join(a for a in to if a not in refused)} through {host}:{port}"


def by_sendmail(message: bytes, to: list[str]) -> str:
    program = setting("SENDMAIL", "/usr/sbin/sendmail")
    sender = setting("ENVELOPE_FROM")
    argv = [program, "-i", *(["-f", sender] if sender else []), "--", *to]
    timeout = float(setting("TIMEOUT", "30"))
    try:
        done = subprocess.run(argv, input=message, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise Permanent(
            f"{program}: no such program (is a mail transfer agent installed?)"
        ) from None
    except subprocess.TimeoutExpired:
        raise Temporary(f"{program} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise Temporary(f"{program}: {exc.strerror}") from None
    if done.returncode == 0:
        return f"handed to {program} for {', '.join(to)}"
    said = done.stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
    problem = f"{program} exited {done.returncode}" + (f": {said}" if said else "")
    if done.returncode in TEMPORARY_EXITS or done.returncode < 0:
        raise Temporary(problem)
    raise Permanent(problem)


def main() -> int:
    message = sys.stdin.buffer.read()
    to = [a for a in setting("TO").split(",") if a]
    retry_for = float(setting("RETRY_FOR", "600"))
    deadline = time.monotonic() + retry_for
    pause = 1.0
    for attempt in range(1, 10_000):
        try:
            if setting("TRANSPORT") == "smtp":
                print(by_smtp(message, setting("FROM"), to))
            else:
                print(by_sendmail(message, to))
            return 0
        except Permanent as exc:
            print(f"attempt {attempt}: {exc}", file=sys.stderr)
            return 1
        except Temporary as exc:
            print(f"attempt {attempt}: {exc}", file=sys.stderr)
        if time.monotonic() + pause > deadline:
            print(f"gave up after {attempt} attempts in {retry_for:g}s", file=sys.stderr)
            return 1
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
    return 1


if __name__ == "__main__":
    sys.exit(main())
