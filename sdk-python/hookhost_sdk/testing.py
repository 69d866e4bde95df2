"""Test helpers for plugin authors: build events, run ``handle`` natively against a stand-in
host whose key-value store, clock, HTTP answers and captured logs the test controls.

    from hookhost_sdk import testing
    import app

    testing.reset()
    testing.kv["owner"] = "ada"
    actions = testing.run(app.handle, testing.event("call.missed", {"call_id": "CA1"}))
    assert testing.delivered(actions)[0][1]["owner"] == "ada"

The same plugin built as a component runs in hookhost's sandbox with ``hookhost plugin run
--component … --event …``.
"""

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _standin

kv: Dict[str, str] = {}
logs: List[Tuple[str, str]] = []
now: List[int] = [1_760_084_505_000]
kv_write: List[bool] = [False]
http: Dict[str, Tuple[int, str]] = {}


def reset() -> None:
    """Forget every key, log line and HTTP answer; the clock back to its start."""
    kv.clear()
    logs.clear()
    http.clear()
    now[0] = 1_760_084_505_000
    kv_write[0] = False


def event(event_type: str, payload: Any, is_test: bool = False) -> _standin.Event:
    """An event as hookhost hands it to ``handle``."""
    return _standin.Event(
        id="evt_test",
        tenant_id="ten_test",
        event_type=event_type,
        occurred_at=1_760_084_505,
        source="test",
        is_test=is_test,
        payload=json.dumps(payload),
    )


def run(handle: Callable, event: _standin.Event) -> list:
    """Call ``handle`` as the component would; a ``PluginFailure`` is raised as it is."""
    return list(handle(event))


def delivered(actions: list) -> List[Tuple[str, Any]]:
    """The deliver actions as ``(event type, payload parsed)``."""
    return [
        (a.value.event_type, json.loads(a.value.payload) if a.value.payload else None)
        for a in actions
        if type(a).__name__ == "Action_Deliver"
    ]


def requests(actions: list) -> List[Tuple[str, Any]]:
    """The deliver actions that shape their request, as ``(event type, request)``."""
    return [
        (a.value.event_type, a.value.request)
        for a in actions
        if type(a).__name__ == "Action_Deliver" and a.value.request is not None
    ]


class _Host:
    """The host functions as the SDK calls them outside a component."""

    @staticmethod
    def log(level: _standin.Level, message: str) -> None:
        logs.append((level.name.lower(), message))

    @staticmethod
    def kv_get(key: str) -> Optional[str]:
        return kv.get(key)

    @staticmethod
    def kv_set(key: str, value: Optional[str]) -> None:
        if not kv_write[0]:
            raise _standin.Err("kv_write is not granted to this tenant's plugins")
        if value is None:
            kv.pop(key, None)
        else:
            kv[key] = value

    @staticmethod
    def now_ms() -> int:
        return now[0]

    @staticmethod
    def http_fetch(request: _standin.HttpRequest) -> _standin.HttpResponse:
        if request.url not in http:
            raise _standin.Err(f"no answer scripted for {request.url}")
        status, body = http[request.url]
        return _standin.HttpResponse(status=status, headers=[], body=body)


host = _Host()
