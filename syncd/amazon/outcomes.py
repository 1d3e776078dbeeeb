"""The one table that decides what every SP-API outcome means for the caller.

Each outcome (an HTTP response, or a failure that produced none) is matched against
:data:`RULES` from top to bottom, keyed by status, Amazon error code, message text, the
operation's idempotency and the failure kind. The first matching rule gives the action and
the exception class. An outcome that no rule matches is fatal: guessing that an unknown error is
transient is how retry storms start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

from syncd import errors
from syncd.amazon.clock import TWO_MINUTE_RULE
from syncd.amazon.operations import Operation


class Action(StrEnum):
    """The caller's next step after an outcome."""

    SUCCESS = "success"
    RETRY = "retry"  # wait with backoff, then send the same request again
    FIX_WINDOW = "fix_window"  # clamp the window to the two-minute rule, send once more
    REFRESH_AND_REPLAY = "refresh_and_replay"  # new access token, same request, once
    OUTCOME_UNKNOWN = "outcome_unknown"  # look the resource up before sending again
    FATAL = "fatal"


class Failure(StrEnum):
    """A call that produced no usable HTTP response."""

    NOT_SENT = "not_sent"  # connect error or timeout, TLS handshake, proxy refusal, pool full
    NO_RESPONSE = "no_response"  # sent, then the read timed out or the connection dropped
    MALFORMED_BODY = "malformed_body"  # a 2xx whose body is not the JSON it promised


@dataclass(frozen=True)
class AmazonError:
    """One entry of an SP-API error list."""

    code: str | None
    message: str
    details: str = ""


@dataclass(frozen=True)
class Outcome:
    """Everything the table looks at."""

    operation: Operation
    status: int | None
    errors: tuple[AmazonError, ...] = ()
    failure: Failure | None = None
    query: Mapping[str, str] | None = None  # the request's decoded query parameters
    amazon_now: datetime | None = None  # from the response's Date header
    request_id: str | None = None
    retry_after: float | None = None

    @property
    def first_error(self) -> AmazonError | None:
        """The first error of the body, which SP-API uses for the main cause."""
        return self.errors[0] if self.errors else None

    @property
    def text(self) -> str:
        """Every message and details text of the body, for pattern matching."""
        return " ".join(f"{error.message} {error.details}" for error in self.errors)


@dataclass(frozen=True)
class Rule:
    """One row of the table; unset conditions match anything."""

    action: Action
    error_class: type[errors.ApiError]
    reason: str
    statuses: frozenset[int] | None = None
    failures: frozenset[Failure] | None = None
    codes: frozenset[str] | None = None
    text: re.Pattern[str] | None = None
    idempotent: bool | None = None
    needs_window: bool = False
    predicate: Callable[[Outcome], bool] | None = None

    def matches(self, outcome: Outcome) -> bool:
        """True when every condition of this rule holds for ``outcome``."""
        first = outcome.first_error
        checks = (
            self.statuses is None or outcome.status in self.statuses,
            self.failures is None or outcome.failure in self.failures,
            self.codes is None or (first is not None and first.code in self.codes),
            self.text is None or bool(self.text.search(outcome.text)),
            self.idempotent is None or outcome.operation.idempotent == self.idempotent,
            not self.needs_window or bool(outcome.operation.window_bounds),
            self.predicate is None or self.predicate(outcome),
        )
        return all(checks)


def _sent_too_recent_bound(outcome: Outcome) -> bool:
    """True when a window bound of the request broke the two-minute rule by Amazon's clock.

    Amazon has reported the rule with a generic "input is not valid" message, so this
    compares the bound we sent with the outcome's own Date header.
    """
    if outcome.amazon_now is None or not outcome.query:
        return False
    for name in outcome.operation.window_bounds:
        value = outcome.query.get(name)
        if value is None:
            continue
        try:
            bound = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        # One extra second: the Date header is truncated to whole seconds.
        if bound.tzinfo is not None and bound > outcome.amazon_now - TWO_MINUTE_RULE + _ONE_SECOND:
            return True
    return False


_ONE_SECOND = timedelta(seconds=1)
_EXPIRED_TOKEN = re.compile(r"token[^.]*\bexpired\b|\bexpired\b[^.]*token", re.IGNORECASE)
_TWO_MINUTES = re.compile(r"at least (2|two) minutes|minutes? before (the )?current time", re.I)
_GENERIC_INVALID = re.compile(r"input you have submitted is not valid", re.IGNORECASE)
_BAD_PAGE_TOKEN = re.compile(
    r"(pagination ?token|next ?token)[^.]*(not valid|invalid|could not decode|expired)"
    r"|(invalid|could not decode|expired)[^.]*(pagination ?token|next ?token)",
    re.IGNORECASE,
)
_SERVER_ERRORS = frozenset(range(500, 600))

RULES: tuple[Rule, ...] = (
    # -- calls that never reached Amazon, got no response, or got an unreadable one
    Rule(
        Action.RETRY,
        errors.RetryableApiError,
        "request not sent",
        failures=frozenset({Failure.NOT_SENT}),
    ),
    Rule(
        Action.RETRY,
        errors.RetryableApiError,
        "no usable response to an idempotent call",
        failures=frozenset({Failure.NO_RESPONSE, Failure.MALFORMED_BODY}),
        idempotent=True,
    ),
    Rule(
        Action.OUTCOME_UNKNOWN,
        errors.OutcomeUnknownError,
        "no usable response to a call that creates something",
        failures=frozenset({Failure.NO_RESPONSE, Failure.MALFORMED_BODY}),
        idempotent=False,
    ),
    Rule(Action.SUCCESS, errors.ApiError, "success", statuses=frozenset(range(200, 300))),
    # -- throttling: Amazon rejected the call before running it, so any call may be repeated
    Rule(Action.RETRY, errors.ThrottledError, "throttled", statuses=frozenset({429})),
    # -- access tokens
    Rule(
        Action.REFRESH_AND_REPLAY,
        errors.AccessDeniedError,
        "access token expired",
        statuses=frozenset({403}),
        text=_EXPIRED_TOKEN,
    ),
    Rule(
        Action.FATAL,
        errors.AccessDeniedError,
        "access denied: missing role or grant",
        statuses=frozenset({403}),
    ),
    Rule(
        Action.FATAL,
        errors.FatalApiError,
        "malformed authorization header",
        statuses=frozenset({401}),
    ),
    # -- the two-minute rule, in Amazon's newer wording and in its generic one
    Rule(
        Action.FIX_WINDOW,
        errors.WindowTooRecentError,
        "window bound too recent",
        statuses=frozenset({400}),
        codes=frozenset({"InvalidInput"}),
        text=_TWO_MINUTES,
        needs_window=True,
    ),
    Rule(
        Action.FIX_WINDOW,
        errors.WindowTooRecentError,
        "window bound too recent",
        statuses=frozenset({400}),
        codes=frozenset({"InvalidInput"}),
        text=_GENERIC_INVALID,
        needs_window=True,
        predicate=_sent_too_recent_bound,
    ),
    Rule(
        Action.FATAL,
        errors.PaginationTokenError,
        "page token rejected",
        statuses=frozenset({400}),
        text=_BAD_PAGE_TOKEN,
    ),
    # -- server errors: a read is repeated, a create is looked up first
    Rule(
        Action.RETRY,
        errors.RetryableApiError,
        "server error",
        statuses=_SERVER_ERRORS,
        idempotent=True,
    ),
    Rule(
        Action.OUTCOME_UNKNOWN,
        errors.OutcomeUnknownError,
        "server error on a call that creates something",
        statuses=_SERVER_ERRORS,
        idempotent=False,
    ),
)
FALLBACK = Rule(Action.FATAL, errors.FatalApiError, "not in the table")


def classify(outcome: Outcome) -> Rule:
    """Return the first rule of :data:`RULES` that matches, else the fatal fallback."""
    for rule in RULES:
        if rule.matches(outcome):
            return rule
    return FALLBACK


def build_error(rule: Rule, outcome: Outcome) -> errors.ApiError:
    """Build the exception of ``rule`` from the outcome's status, error code, message and ids."""
    first = outcome.first_error
    if first is not None:
        message, code, details = first.message, first.code, first.details
    else:
        message, code, details = (outcome.failure or rule.reason), None, ""
    return rule.error_class(
        outcome.operation.name,
        outcome.status,
        code,
        message,
        outcome.request_id,
        details=details,
        retry_after=outcome.retry_after,
    )


# -- reading responses --------------------------------------------------------------------------

_MAX_TEXT = 300  # characters of a non-JSON error body kept as its message


def parse_errors(content: bytes) -> tuple[AmazonError, ...]:
    """Read an error body in either style the SP-API models use.

    Newer APIs return ``{"errors": [...]}``; older ones wrap the same list next to a
    ``payload`` key. A body that is not JSON (a proxy's HTML page, say) becomes one error
    without a code whose message is the start of the text.
    """
    try:
        body = json.loads(content) if content else None
    except ValueError:
        text = content.decode("utf-8", "replace").strip()
        return (AmazonError(None, text[:_MAX_TEXT]),) if text else ()
    if not isinstance(body, dict):
        return ()
    if "errors" not in body and isinstance(body.get("message"), str):
        # A gateway in front of SP-API returns {"message": "..."} without an error list.
        return (AmazonError(None, body["message"]),)
    raw = body.get("errors")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        return ()
    return tuple(
        AmazonError(
            code=_text_or_none(item.get("code")),
            message=str(item.get("message") or ""),
            details=str(item.get("details") or ""),
        )
        for item in raw
        if isinstance(item, dict)
    )


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def parse_http_date(value: str | None) -> datetime | None:
    """Parse an HTTP ``Date`` header into an aware UTC datetime; None when absent or bad."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header given in seconds; None for dates, absence or junk."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def outcome_from_response(
    operation: Operation, response: httpx.Response, failure: Failure | None = None
) -> Outcome:
    """Describe a received response for :func:`classify`."""
    query = dict(response.request.url.params) if response.request is not None else None
    return Outcome(
        operation=operation,
        status=response.status_code,
        errors=() if response.is_success else parse_errors(response.content),
        failure=failure,
        query=query,
        amazon_now=parse_http_date(response.headers.get("date")),
        request_id=response.headers.get("x-amzn-requestid"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def failure_of(exc: httpx.TransportError) -> Failure:
    """Tell whether a transport error happened before or after the request left."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Failure.NOT_SENT
    if isinstance(exc, httpx.ProxyError):
        return Failure.NOT_SENT
    return Failure.NO_RESPONSE
