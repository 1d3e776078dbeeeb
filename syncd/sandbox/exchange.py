"""Request and response types of operation modules, and their route table.

An API family (orders now; reports, feeds, listings later) is one module exporting
``OPERATIONS``, a tuple of :class:`Operation`. The app wraps each handler with what every
SP-API call shares (request id, authentication, faults, quotas, static examples, headers
and the call log), so a handler only validates its parameters and builds its response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from syncd.sandbox.faults import FiredFault
from syncd.sandbox.sellers import Seller

if TYPE_CHECKING:
    from syncd.sandbox.state import SandboxState


@dataclass(frozen=True)
class QueryString:
    """A query string read the way Amazon reads it.

    ``params`` keeps the first occurrence of each parameter, silently ignoring repeats, as
    Amazon does; ``params_all`` keeps every value for the call log. ``+`` decodes to a space,
    as in any form-encoded query, so a token sent without percent-encoding changes.
    """

    raw: str
    params: dict[str, str]
    params_all: dict[str, list[str]]

    @classmethod
    def parse(cls, raw: str) -> QueryString:
        """Parse a raw (still percent-encoded) query string."""
        params: dict[str, str] = {}
        params_all: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True, errors="replace"):
            params.setdefault(name, value)
            params_all.setdefault(name, []).append(value)
        return cls(raw=raw, params=params, params_all=params_all)

    def get(self, name: str) -> str | None:
        """Return the first value of a parameter, or None when it is absent."""
        return self.params.get(name)

    def get_list(self, name: str) -> list[str] | None:
        """Return an array parameter split at commas; ``[]`` for an empty value."""
        value = self.params.get(name)
        if value is None:
            return None
        return value.split(",") if value else []


@dataclass
class Reply:
    """A response before serialization: status, JSON body and extra headers.

    A 204 response is sent without a body, whatever ``body`` holds.
    """

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestContext:
    """One SP-API request after authentication, as passed to a handler."""

    state: SandboxState
    region: str
    operation_id: str
    query: QueryString
    path_params: dict[str, str]
    seller: Seller
    request_id: str
    now: datetime
    fired: list[FiredFault] = field(default_factory=list)
    body: bytes = b""  # the request body as received; empty for GET requests

    def has_fault(self, kind: str) -> bool:
        """Return whether a fault of this kind fired on the request."""
        return any(fault.rule.kind == kind for fault in self.fired)


Handler = Callable[[RequestContext], Reply]


@dataclass(frozen=True)
class Operation:
    """One SP-API operation: its Amazon operation id, HTTP method, path and handler."""

    operation_id: str
    method: str
    path: str  # Starlette path template, the same as the model's
    handler: Handler
    model_name: str  # vendored model that defines it, for static examples


def amazon_error(status: int, code: str, message: str, details: str = "") -> Reply:
    """Return an SP-API error response: ``{"errors": [{"code", "message", "details"}]}``."""
    return Reply(status, {"errors": [{"code": code, "message": message, "details": details}]})


def invalid_input(message: str) -> Reply:
    """Return a 400 ``InvalidInput`` response."""
    return amazon_error(400, "InvalidInput", message)


ACCESS_DENIED_MESSAGE = "Access to requested resource is denied."
EXPIRED_TOKEN_MESSAGE = "The access token you provided has expired."
QUOTA_EXCEEDED_MESSAGE = "You exceeded your quota for the requested resource."


def access_denied() -> Reply:
    """Return the 403 Amazon sends for a missing, unknown or unauthorized access token."""
    reply = amazon_error(403, "Unauthorized", ACCESS_DENIED_MESSAGE)
    reply.headers["x-amzn-ErrorType"] = "AccessDeniedException"
    return reply


def expired_token(text_in: str) -> Reply:
    """Return the 403 for an expired access token, with the text in ``details`` or ``message``."""
    if text_in == "message":
        return amazon_error(403, "Unauthorized", EXPIRED_TOKEN_MESSAGE)
    return amazon_error(403, "Unauthorized", ACCESS_DENIED_MESSAGE, EXPIRED_TOKEN_MESSAGE)


def quota_exceeded() -> Reply:
    """Return the 429 Amazon sends when a usage plan's bucket is empty."""
    return amazon_error(429, "QuotaExceeded", QUOTA_EXCEEDED_MESSAGE)


def server_error(status: int) -> Reply:
    """Return a 5xx with an Amazon error body."""
    if status == 503:
        return amazon_error(503, "ServiceUnavailable", "Service temporarily unavailable.")
    return amazon_error(
        status, "InternalFailure", "We encountered an internal error. Please try again."
    )


class RequestRejected(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a handler's validation step to respond with ``reply`` at once."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__(f"request rejected with HTTP {reply.status}")


def reject_invalid_input(message: str) -> RequestRejected:
    """Return the exception that produces a 400 ``InvalidInput`` with ``message``."""
    return RequestRejected(invalid_input(message))
