"""A filter: drops test events and every event but missed calls, each with a recorded reason:
the Python twin of plugins/keep-missed-calls."""

import hookhost_sdk as hh


def handle(event):
    if event.is_test:
        return [hh.drop("test event")]
    if event.event_type != "call.missed":
        return [hh.drop(f"{event.event_type} is not a missed call")]
    return [hh.deliver_unchanged(event)]


WitWorld = hh.export(handle)
