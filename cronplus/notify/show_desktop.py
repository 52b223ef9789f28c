"""Show one desktop notification on the session bus; run by the runner as the job's user.

A child process as that user, because a session bus accepts only its own user
(its EXTERNAL authentication is the connecting process's uid): a root daemon
cannot speak to alice's bus itself.  Run by file path with the daemon's Python,
so it needs nothing of ours on the path; jeepney speaks D-Bus in pure Python,
and notify-send is the fallback where jeepney is missing.

    python show_desktop.py TITLE MESSAGE [URGENCY [ICON]]
"""

from __future__ import annotations

import os
import sys

# Run by file: the libraries installed beside our package (jeepney) are found from here.
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

URGENCY = {"low": 0, "normal": 1, "critical": 2}


def session_address() -> str:
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime}/bus"


def notify(title: str, message: str, urgency: str, icon: str) -> int:
    try:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        argv = ["notify-send", "--app-name=cronplus", f"--urgency={urgency}"]
        argv += [f"--icon={icon}"] if icon else []
        os.execvp("notify-send", [*argv, "--", title, message])
    address = session_address()
    path = address.split("unix:path=", 1)[-1].split(",", 1)[0]
    if address.startswith("unix:path=") and not os.path.exists(path):
        print(f"no session bus at {path}: is the user logged in?", file=sys.stderr)
        return 1
    target = DBusAddress(
        "/org/freedesktop/Notifications",
        bus_name="org.freedesktop.Notifications",
        interface="org.freedesktop.Notifications",
    )
    hints = {"urgency": ("y", URGENCY.get(urgency, 1))}
    call = new_method_call(
        target, "Notify", "susssasa{sv}i", ("cronplus", 0, icon, title, message, [], hints, -1)
    )
    try:
        connection = open_dbus_connection(bus=address)
    except (OSError, ValueError) as exc:
        print(f"cannot connect to the session bus {address}: {exc}", file=sys.stderr)
        return 1
    try:
        reply = connection.send_and_get_reply(call, timeout=10)
    except TimeoutError:
        print("the notification service did not answer within 10 s", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if reply.header.message_type is MessageType.error:
        print(f"the notification service refused: {reply.body}", file=sys.stderr)
        return 1
    print(f"notification {reply.body[0]} shown")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: show_desktop.py TITLE MESSAGE [URGENCY [ICON]]", file=sys.stderr)
        return 2
    title, message = argv[0], argv[1]
    urgency = argv[2] if len(argv) > 2 else "normal"
    icon = argv[3] if len(argv) > 3 else ""
    return notify(title, message, urgency, icon)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
