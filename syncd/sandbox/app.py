"""One Starlette app per region: SP-API operations, LWA (on the NA port) and control routes.

Every SP-API request goes through the same steps, in this order:

1. authenticate ``x-amz-access-token`` (missing, unknown or grantless: 403; expired: 403
   with the expiry text);
2. count the call against the fault rules. A ``slow`` rule waits, and a rule that replaces
   the response (throttle, server error, ...) responds at once. When the sandbox stops
   during the wait, the request gets 503 at once;
3. take a token from the seller's bucket for the operation (429 when empty);
4. return the example's response for an exact match of one of Amazon's static examples
   (the JSON body counts as the parameter ``body``);
5. run the operation's handler;
6. apply the rules that act after the request took effect: ``apply_then_slow`` waits and
   ``apply_then_server_error`` replaces the response with a 5xx.

Every response is JSON with ``x-amzn-RequestId`` (a fresh UUID) and a ``Date`` from the
sandbox clock, except a 204, which has no body. Responses of operations with a usage plan
also carry ``x-amzn-RateLimit-Limit``. The call log records each request, with its JSON
body for operations that take one. API families plug in through :data:`API_MODULES`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from syncd import logs
from syncd.sandbox import control, lwa, orders, shipments, static_examples, throttle
from syncd.sandbox.calls import CallRecord
from syncd.sandbox.exchange import (
    Operation,
    QueryString,
    Reply,
    RequestContext,
    RequestRejected,
    access_denied,
    amazon_error,
    expired_token,
    invalid_input,
    quota_exceeded,
    server_error,
)
from syncd.sandbox.faults import (
    FAULTABLE_OPERATIONS,
    LWA_OPERATION,
    FaultCall,
    FiredFault,
)
from syncd.sandbox.sellers import Seller
from syncd.sandbox.state import SandboxState

logger = logs.get_logger(__name__)

# Each module exports OPERATIONS; add reports, feeds, listings, ... here, one module each.
API_MODULES: tuple[ModuleType, ...] = (orders, shipments)
OPERATION_IDS: tuple[str, ...] = tuple(
    operation.operation_id for module in API_MODULES for operation in module.OPERATIONS
)
UNKNOWN_OPERATION = "unknown"  # the call log's operation for a path the sandbox does not serve
# Every operation name a call log record can have.
CALL_LOG_OPERATIONS: tuple[str, ...] = (LWA_OPERATION, *OPERATION_IDS, UNKNOWN_OPERATION)
if set(OPERATION_IDS) != set(FAULTABLE_OPERATIONS) - {LWA_OPERATION}:
    raise RuntimeError("faults.FAULTABLE_OPERATIONS must list the operations of API_MODULES")
LWA_PATH = "/auth/o2/token"
DATASET_REJECTED_MESSAGE = (
    "The input you have submitted is not valid. Please check your input and try again."
)

SHUTDOWN_MESSAGE = "The sandbox is shutting down."

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Exchange:
    """Bookkeeping of one request, from arrival to the call log."""

    state: SandboxState
    region: str
    operation: str
    request: Request
    query: QueryString
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    arrived: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    seller_id: str | None = None
    fired: list[FiredFault] = field(default_factory=list)
    params: dict[str, str] | None = None  # overrides the query parameters in the call log
    body: Any = None  # the request's JSON body for the call log; None when it sent none

    def respond(self, reply: Reply, rate_limit: str | None = None) -> Response:
        """Serialize a reply, add the common headers and record the call."""
        kinds = {fault.rule.kind for fault in self.fired}
        media_type: str | None = "application/json"
        if reply.status == 204:
            content, media_type = b"", None
        else:
            content = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        if "malformed_json" in kinds:
            content = content[: len(content) // 2]

        headers = {
            "x-amzn-RequestId": self.request_id,
            "Date": format_datetime(self.state.now(), usegmt=True),
            **reply.headers,
        }
        if rate_limit is not None and "omit_rate_limit_header" not in kinds:
            headers["x-amzn-RateLimit-Limit"] = rate_limit
        self._record(reply.status)
        return Response(content, reply.status, headers, media_type=media_type)

    def _record(self, status: int) -> None:
        scope_server = self.request.scope.get("server") or ("", 0)
        with self.state.lock:
            record = CallRecord(
                sequence=self.state.call_log.next_sequence(),
                request_id=self.request_id,
                sandbox_time=self.state.now(),
                wall_time=self.arrived,
                region=self.region,
                port=int(scope_server[1] or 0),
                operation=self.operation,
                method=self.request.method,
                path=self.request.url.path,
                raw_query=self.query.raw,
                params=self.params if self.params is not None else dict(self.query.params),
                params_all=dict(self.query.params_all),
                body=self.body,
                status=status,
                seller_id=self.seller_id,
                faults=tuple(fault.label for fault in self.fired),
                duration_ms=(time.perf_counter() - self.started) * 1000,
            )
            self.state.call_log.append(record)
        logger.debug(
            "sandbox_request_handled",
            operation=self.operation,
            region=self.region,
            status_code=status,
            request_id=self.request_id,
        )


def build_app(
    state: SandboxState,
    region: str,
    *,
    serve_lwa: bool,
    stopping: asyncio.Event | None = None,
) -> Starlette:
    """Build the app of one region's host; the LWA endpoint is served where ``serve_lwa``.

    Setting ``stopping`` ends the waits of ``slow`` faults at once, so that the server can
    stop without cancelling requests; those requests get 503.
    """
    if stopping is None:
        stopping = asyncio.Event()
    routes: list[BaseRoute] = []
    if serve_lwa:
        routes.append(Route(LWA_PATH, _lwa_endpoint(state, region, stopping), methods=["POST"]))
    for module in API_MODULES:
        for operation in module.OPERATIONS:
            endpoint = _operation_endpoint(state, region, operation, stopping)
            routes.append(Route(operation.path, endpoint, methods=[operation.method]))
    routes.extend(control.routes(state, region, CALL_LOG_OPERATIONS))
    routes.append(Route("/{path:path}", _unknown_endpoint(state, region), methods=_ALL_METHODS))
    return Starlette(routes=routes)


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# -- SP-API operations ---------------------------------------------------------------------------


def _operation_endpoint(
    state: SandboxState, region: str, operation: Operation, stopping: asyncio.Event
) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        exchange = _new_exchange(state, region, operation.operation_id, request)
        reply = await _respond_to_operation(exchange, operation, stopping)
        config = state.config
        rate = throttle.rate_limit_header(operation.operation_id, config.speed, config.quotas)
        return exchange.respond(reply, rate)

    return endpoint


async def _respond_to_operation(
    exchange: Exchange, operation: Operation, stopping: asyncio.Event
) -> Reply:
    state = exchange.state
    now = state.now()

    seller, rejection = _authenticate(state, exchange.request, now)
    if rejection is not None or seller is None:
        return rejection or access_denied()
    exchange.seller_id = seller.seller_id

    raw_body = await exchange.request.body()
    exchange.body = _loggable_body(raw_body)
    exchange.fired = _fire_faults(exchange, seller)
    if not await _wait_for_faults(exchange, stopping, "slow"):
        return _shutdown_reply()
    fault_reply = _apply_faults(state, exchange.fired, seller)
    if fault_reply is not None:
        return fault_reply

    if state.config.quotas and not _take_quota(state, seller, exchange.region, operation, now):
        return quota_exceeded()

    path_params = {key: str(value) for key, value in exchange.request.path_params.items()}
    example = static_examples.find_static_example(
        operation.operation_id, operation.model_name, exchange.query, path_params, exchange.body
    )
    if example is not None:
        reply = Reply(example.status, example.response)
    else:
        reply = _run_handler(operation, _context(exchange, operation, seller, raw_body, now))
    return await _apply_faults_after_effect(exchange, reply, stopping)


def _context(
    exchange: Exchange, operation: Operation, seller: Seller, raw_body: bytes, now: datetime
) -> RequestContext:
    path_params = {key: str(value) for key, value in exchange.request.path_params.items()}
    return RequestContext(
        state=exchange.state,
        region=exchange.region,
        operation_id=operation.operation_id,
        query=exchange.query,
        path_params=path_params,
        seller=seller,
        request_id=exchange.request_id,
        now=now,
        fired=exchange.fired,
        body=raw_body,
    )


async def _apply_faults_after_effect(
    exchange: Exchange, reply: Reply, stopping: asyncio.Event
) -> Reply:
    """Apply the rules that act once the request has taken effect (``apply_then_*``)."""
    if not await _wait_for_faults(exchange, stopping, "apply_then_slow"):
        return _shutdown_reply()
    for fault in exchange.fired:
        if fault.rule.kind == "apply_then_server_error":
            return server_error(fault.rule.status)
    return reply


def _loggable_body(raw: bytes) -> Any:
    """Return a request body for the call log: decoded JSON, else text, or None when empty."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return raw.decode("utf-8", errors="replace")


def _shutdown_reply() -> Reply:
    reply = amazon_error(
        503, "ServiceUnavailable", "Service temporarily unavailable.", SHUTDOWN_MESSAGE
    )
    reply.headers["Connection"] = "close"
    return reply


def _authenticate(
    state: SandboxState, request: Request, now: datetime
) -> tuple[Seller | None, Reply | None]:
    access_token = request.headers.get("x-amz-access-token")
    if not access_token:
        return None, access_denied()
    with state.lock:
        grant = state.tokens.lookup(access_token)
        if grant is None or grant.refresh_token is None:
            return None, access_denied()  # unknown, or grantless: Orders needs a seller
        if grant.is_expired(now):
            return None, expired_token(state.config.expired_token_field)
        return state.orderbook.seller(grant.refresh_token), None


def _fire_faults(exchange: Exchange, seller: Seller) -> list[FiredFault]:
    included = exchange.query.get_list("includedData") or []
    call = FaultCall(
        operation=exchange.operation,
        region=exchange.region,
        refresh_token=seller.refresh_token,
        has_page_token=exchange.query.get("paginationToken") is not None,
        included_data=tuple(included),
    )
    with exchange.state.lock:
        return exchange.state.fault_book.fire(call)


async def _wait_for_faults(exchange: Exchange, stopping: asyncio.Event, kind: str) -> bool:
    """Wait the delay of the faults of ``kind`` that fired; return False if the sandbox stopped.

    Ending the wait early lets uvicorn stop without cancelling the request, which it would
    report with a traceback and a bare 500 response.
    """
    delay = sum(fault.rule.delay for fault in exchange.fired if fault.rule.kind == kind)
    if delay <= 0:
        return True
    try:
        async with asyncio.timeout(delay):
            await stopping.wait()
    except TimeoutError:
        return True
    logger.info(
        "sandbox_slow_request_cancelled",
        reason="sandbox stopping",
        fault_kind=kind,
        operation=exchange.operation,
        region=exchange.region,
        request_id=exchange.request_id,
        delay_seconds=delay,
    )
    return False


def _apply_faults(state: SandboxState, fired: list[FiredFault], seller: Seller) -> Reply | None:
    for fault in fired:
        rule = fault.rule
        if rule.kind == "revoke":
            state.revoke(rule.refresh_token or seller.refresh_token)
        elif rule.kind == "throttle":
            return quota_exceeded()
        elif rule.kind == "server_error":
            return server_error(rule.status)
        elif rule.kind == "expired_token":
            return expired_token(rule.field)
        elif rule.kind == "access_denied":
            return access_denied()
        elif rule.kind == "reject_dataset":
            return invalid_input(DATASET_REJECTED_MESSAGE)
    return None


def _take_quota(
    state: SandboxState, seller: Seller, region: str, operation: Operation, now: datetime
) -> bool:
    with state.lock:
        speed = state.config.speed
        return state.throttle.try_acquire(
            seller.seller_id, region, operation.operation_id, now, speed
        )


def _run_handler(operation: Operation, context: RequestContext) -> Reply:
    try:
        return operation.handler(context)
    except RequestRejected as rejection:
        return rejection.reply
    except Exception:
        # A bug in the sandbox still gets a 500 response, as at Amazon, and a logged traceback.
        logger.exception(
            "sandbox_handler_failed",
            operation=operation.operation_id,
            request_id=context.request_id,
        )
        return server_error(500)


# -- LWA and unknown paths -----------------------------------------------------------------------


def _lwa_endpoint(state: SandboxState, region: str, stopping: asyncio.Event) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        exchange = _new_exchange(state, region, LWA_OPERATION, request)
        body = await request.body()
        try:
            fields = lwa.parse_token_request(body, request.headers.get("content-type", ""))
        except lwa.TokenRequestError as exc:
            return exchange.respond(lwa.lwa_error(400, "invalid_request", str(exc)))
        exchange.params = lwa.redact(fields)

        refresh_token = fields.get("refresh_token")
        with state.lock:
            exchange.fired = state.fault_book.fire(FaultCall(LWA_OPERATION, region, refresh_token))
        if not await _wait_for_faults(exchange, stopping, "slow"):
            reply = lwa.lwa_error(503, "server_error", SHUTDOWN_MESSAGE)
            reply.headers["Connection"] = "close"
            return exchange.respond(reply)
        reply, exchange.seller_id = lwa.respond_to_token_request(
            state, fields, exchange.fired, state.now()
        )
        return exchange.respond(reply)

    return endpoint


def _unknown_endpoint(state: SandboxState, region: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        exchange = _new_exchange(state, region, UNKNOWN_OPERATION, request)
        message = f"No resource at {request.method} {request.url.path}."
        return exchange.respond(amazon_error(404, "NotFound", message))

    return endpoint


def _new_exchange(state: SandboxState, region: str, operation: str, request: Request) -> Exchange:
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    return Exchange(state, region, operation, request, QueryString.parse(raw_query))
