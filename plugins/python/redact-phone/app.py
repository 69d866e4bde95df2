"""Masks every phone-number field of the payload but its last 4 digits, then delivers it: the
Python twin of plugins/redact-phone (the same actions on the same events, checked by the
conformance test)."""

import hookhost_sdk as hh


def handle(event):
    payload = hh.payload(event)
    masked = hh.redact_phones(payload)
    hh.log(hh.Level.DEBUG, f"masked {masked} phone fields")
    return [hh.deliver(event.event_type, payload)]


WitWorld = hh.export(handle)
