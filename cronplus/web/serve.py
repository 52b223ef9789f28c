"""`cronplusctl web`: the dashboard served as the calling user until interrupted."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys

from aiohttp import web

from ..configkeys import listen_address
from ..paths import Paths
from .app import make_app
from .source import Source

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; raises OSError with the system's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT, where port 0 lets the kernel pick a free one; raises ValueError."""
    host, colon, port = listen.rpartition(":")
    if port == "0" and colon:
        host, _ = listen_address(f"{host}:1")
        return host, 0
    return listen_address(listen)


def serve(paths: Paths, listen: str) -> int:
    try:
        host, port = parse_listen(listen)
    except ValueError:
        print(
            f'cronplusctl: --listen "{listen}": expected HOST:PORT such as 127.0.0.1:8080',
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"cronplusctl: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    token = secrets.token_urlsafe(24)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(host):
        print(
            f"cronplusctl: warning: serving on {shown}, reachable from other machines;"
            " the token is the only lock, and the traffic is not encrypted",
            file=sys.stderr,
        )
    url = f"http://{shown}:{bound}/jobs?token={token}"
    print(f"cronplus dashboard for {_user()}: {url}", flush=True)
    print("(Ctrl-C stops it)", file=sys.stderr, flush=True)
    app = make_app(Source(paths), token)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)
    return EXIT_OK


def _user() -> str:
    import os
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
