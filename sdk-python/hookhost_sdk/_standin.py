"""The WIT types as plain dataclasses, for code running outside a component (unit tests).

Inside a component, componentize-py generates the same classes in ``wit_world.imports.types``
and ``wit_world.imports.host``; the SDK uses those there. Field names and order follow
``wit/plugin.wit`` (hookhost:plugin@0.2.0).
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Tuple, Union


@dataclass
class Event:
    id: str
    tenant_id: str
    event_type: str
    occurred_at: int
    source: str
    is_test: bool
    payload: str


@dataclass
class OutboundRequest:
    method: str
    path: str
    headers: List[Tuple[str, str]]
    content_type: str
    body: str


@dataclass
class Deliver:
    event_type: str
    payload: str
    endpoints: List[str]
    request: Optional[OutboundRequest]


@dataclass
class SinkWrite:
    sink: str
    external_id: str
    data: str


@dataclass
class Action_Deliver:
    value: Deliver


@dataclass
class Action_Sink:
    value: SinkWrite


@dataclass
class Action_Drop:
    value: str


Action = Union[Action_Deliver, Action_Sink, Action_Drop]


@dataclass
class PluginError:
    code: str
    message: str
    retryable: bool


class Level(Enum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


@dataclass
class HttpRequest:
    method: str
    url: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: Optional[str] = None


@dataclass
class HttpResponse:
    status: int
    headers: List[Tuple[str, str]]
    body: str


class Err(Exception):
    """What componentize-py's ``Err`` is inside a component: the plugin's own error."""

    def __init__(self, value: PluginError):
        super().__init__(value)
        self.value = value
