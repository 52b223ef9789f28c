"""A small org.freedesktop.Notifications service for tests: records every Notify call.

    python notification_service.py BUS_ADDRESS RECORD_FILE

Writes "ready" to RECORD_FILE.ready once it owns the name, then one JSON line per
notification: app, summary, body, urgency and the uid of the caller as the bus
daemon reports it.
"""

from __future__ import annotations

import json
import sys

from jeepney import HeaderFields, MessageType, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection


def main(address: str, record: str) -> None:
    connection = open_dbus_connection(bus=address)
    connection.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications"))
    with open(record + ".ready", "w") as ready:
        ready.write("ready\n")
    serial = 0
    while True:
        message = connection.receive()
        fields = message.header.fields
        if message.header.message_type is not MessageType.method_call:
            continue
        if fields.get(HeaderFields.member) != "Notify":
            continue
        app, _, icon, summary, body, _, hints, _ = message.body
        sender = fields[HeaderFields.sender]
        uid = connection.send_and_get_reply(message_bus.GetConnectionUnixUser(sender)).body[0]
        serial += 1
        with open(record, "a") as out:
            entry = {
                "app": app,
                "summary": summary,
                "body": body,
                "icon": icon,
                "urgency": hints.get("urgency", ("y", None))[1],
                "uid": uid,
            }
            out.write(json.dumps(entry) + "\n")
        connection.send(new_method_return(message, "u", (serial,)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
