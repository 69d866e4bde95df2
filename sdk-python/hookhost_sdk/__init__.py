"""hookhost-sdk — write hookhost plugins in Python.

A hookhost plugin is a WebAssembly component of the ``hookhost:plugin@0.2.0`` world
(``wit/plugin.wit``). hookhost calls its ``handle`` once per canonical event, in a fresh
sandbox, and acts on the actions it returns: deliver to endpoints (in hookhost's envelope, or
as a whole request the plugin shapes: ``deliver_raw``), write to a sink, or drop.

    import hookhost_sdk as hh

    def handle(event):
        payload = hh.payload(event)
        hh.redact_phones(payload)
        return [hh.deliver(event.event_type, payload)]

    WitWorld = hh.export(handle)

Build it with ``python -m hookhost_sdk.build app.py -o plugin.wasm`` (componentize-py) and
upload ``plugin.wasm``. Test ``handle`` natively with ``hookhost_sdk.testing``. The sandbox
grants no filesystem, network, environment or clock but what the host functions here offer.
"""

import json
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

try:  # inside a component: the bindings componentize-py generated
    from componentize_py_types import Err as _Err  # type: ignore[import-not-found]
    from wit_world.imports import host as _host  # type: ignore[import-not-found]
    from wit_world.imports import types as _types  # type: ignore[import-not-found]

    Level = _host.Level
    HttpRequest = _host.HttpRequest
    IN_COMPONENT = True
except ImportError:  # natively (unit tests): the stand-in host of ``testing``
    from . import _standin as _types
    from ._standin import Err as _Err, HttpRequest, Level
    from .testing import host as _host

    IN_COMPONENT = False

Event = _types.Event
KEEP_DIGITS = 4


class PluginFailure(Exception):
    """Raise from ``handle`` to fail the event on purpose; ``retryable`` asks hookhost to try
    the same event again later."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable


def export(handle: Callable[[Any], Iterable[Any]]) -> type:
    """The class componentize-py exports for the ``plugin`` world: assign it to ``WitWorld``
    in the app module."""

    class WitWorld:
        def handle(self, event: Any) -> List[Any]:
            try:
                return list(handle(event))
            except PluginFailure as f:
                raise _Err(_types.PluginError(code=f.code, message=f.message, retryable=f.retryable))

    return WitWorld


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def payload(event: Any) -> Any:
    """The event's payload parsed; one that does not parse fails the event (not retryable)."""
    try:
        return json.loads(event.payload)
    except ValueError as e:
        raise PluginFailure("bad_payload", f"event payload is not JSON: {e}")


def deliver(event_type: str, payload: Any, endpoints: Sequence[str] = ()) -> Any:
    """Deliver ``payload`` as an event of ``event_type`` to every subscribed endpoint (or to
    ``endpoints`` only), in hookhost's envelope."""
    return _types.Action_Deliver(_types.Deliver(event_type, _json(payload), list(endpoints), None))


def deliver_unchanged(event: Any) -> Any:
    """Deliver the event as it came in."""
    return _types.Action_Deliver(_types.Deliver(event.event_type, event.payload, [], None))


def deliver_raw(
    event_type: str,
    body: Any,
    *,
    method: str = "POST",
    path: str = "",
    headers: Sequence[Tuple[str, str]] = (),
    content_type: str = "application/json",
    endpoints: Sequence[str] = (),
) -> Any:
    """Deliver ``body`` as the whole request instead of hookhost's envelope: a ``str`` is sent as
    it is, anything else as JSON (and is then also the payload that keys ordered deliveries).
    ``method`` POST, PUT or PATCH; ``path`` appended to each endpoint's URL (``/more``,
    ``?query``). hookhost refuses its own headers (``host``, ``content-length``,
    ``content-type``, ``webhook-*``, ``x-hookhost-*``, the endpoint's signature names) with the
    reason."""
    text = body if isinstance(body, str) else _json(body)
    keyed = "" if isinstance(body, str) else text
    request = _types.OutboundRequest(method, path, [(n, v) for n, v in headers], content_type, text)
    return _types.Action_Deliver(_types.Deliver(event_type, keyed, list(endpoints), request))


def sink(name: str, external_id: str, record: Any) -> Any:
    """Write ``record`` to the tenant's sink ``name``, keyed by ``external_id``."""
    return _types.Action_Sink(_types.SinkWrite(name, external_id, _json(record)))


def drop(reason: str) -> Any:
    """Drop the event on purpose, recording why."""
    return _types.Action_Drop(reason)


def log(level: Any, message: str) -> None:
    """A log line, captured with the invocation (size-limited). ``level``: ``Level.INFO``…"""
    _host.log(level, message)


def kv_get(key: str) -> Optional[str]:
    """A value of the tenant's key-value store."""
    return _host.kv_get(key)


def kv_set(key: str, value: Optional[str]) -> None:
    """Set (or with ``None`` delete) a key; needs the tenant's ``kv_write`` capability. A refusal
    raises ``RuntimeError`` with the reason."""
    try:
        _host.kv_set(key, value)
    except _Err as e:
        raise RuntimeError(str(e.value))


def now_ms() -> int:
    """The host's wall-clock time, unix milliseconds."""
    return _host.now_ms()


def http_fetch(request: Any) -> Any:
    """Fetch from one of the tenant's ``http_allow`` hosts; a refusal raises ``RuntimeError``."""
    try:
        return _host.http_fetch(request)
    except _Err as e:
        raise RuntimeError(str(e.value))


def is_e164(s: str) -> bool:
    """Whether ``s`` is already E.164: ``+``, then 8 to 15 digits, the first not 0. hookhost
    normalizes ``from``/``to``/``contact`` to E.164 with the tenant's country before a plugin
    sees them."""
    digits = s[1:] if s.startswith("+") else ""
    return 8 <= len(digits) <= 15 and digits.isascii() and digits.isdigit() and digits[0] != "0"


# What Rust's ``str::trim`` strips (Unicode White_Space), which is not quite Python's ``strip``.
_EDGES = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def looks_like_phone(s: str) -> bool:
    """Whether a string looks like a phone number: an optional ``+``, then 7 to 15 digits with
    only spaces, dashes, dots and parentheses between them."""
    t = s.strip(_EDGES)
    body = t[1:] if t.startswith("+") else t
    if not body or not (body[0].isascii() and (body[0].isdigit() or body[0] == "(")):
        return False
    digits = 0
    for c in body:
        if "0" <= c <= "9":
            digits += 1
        elif c not in " -.()":
            return False
    return 7 <= digits <= 15


def mask_phone(s: str) -> str:
    """Every digit but the last four as ``*``; the punctuation kept."""
    total = sum(1 for c in s if "0" <= c <= "9")
    seen, out = 0, []
    for c in s:
        if "0" <= c <= "9":
            seen += 1
            if seen <= total - KEEP_DIGITS:
                c = "*"
        out.append(c)
    return "".join(out)


def redact_phones(value: Any) -> int:
    """Mask every phone-number-looking string in a parsed payload (nested objects and arrays
    too), in place; returns how many were masked. The same rule as the Rust SDK's ``redact``."""
    count = 0
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return 0
    for k, v in list(items):
        if isinstance(v, str):
            if looks_like_phone(v):
                value[k] = mask_phone(v)
                count += 1
        else:
            count += redact_phones(v)
    return count
