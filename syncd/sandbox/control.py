"""Control endpoints under ``/_sandbox/``: drive the sandbox over HTTP, JSON in and out.

Every port serves them and they act on the one shared state; where a call has a region,
the host's region is the default. Control calls are not recorded in the call log. Field
names are snake_case; order documents keep Amazon's camelCase. An error returns
``{"error": "<message>"}`` with 400 (invalid input), 404 (unknown control path, order or
fault) or 405 (method not allowed on the path). An invalid fault rule or setting also lists
each problem in ``"problems"``.

=========================  ===================================================================
``GET /_sandbox/``         region, sandbox time, clock offset, settings and these routes
``GET /_sandbox/settings`` the configuration in force
``POST .../settings``      change runtime settings: ``speed``, ``quotas``, ``token_lifetime``,
                           ``pii_roles``, ``check_client``, ``client_secret``,
                           ``retiring_client_secrets``, ``expired_token_field``
``GET /_sandbox/faults``   fault rules in force with ``id``, ``matched``, ``fired``
``POST .../faults``        add one rule (the rule object) or several (``{"rules": [...]}``);
                           returns ``{"ids": [...]}``
``DELETE .../faults``      remove every rule; ``DELETE .../faults/{id}`` removes one
``GET /_sandbox/clock``    ``now`` and ``offset_seconds``
``POST .../clock``         ``{"offset_seconds": s}`` sets the offset, ``{"advance_seconds": s}``
                           moves the clock forward (both: offset first)
``POST .../revocations``   ``{"refresh_token": t}`` revokes; with ``"revoked": false`` restores
``GET /_sandbox/orders``   a seller's orders with every dataset: ``?refresh_token=t`` and
                           optionally ``region`` or ``marketplace_ids=A,B``
``POST .../orders``        create ``{"refresh_token", "marketplace_id", "order": {partial}}``
``GET .../orders/{id}``    one order with every dataset: ``?refresh_token=t``
``PATCH .../orders/{id}``  ``{"refresh_token", "status"?, "changes"?}`` (JSON merge patch)
``GET .../{id}/packages``  an order's packages: ``?refresh_token=t``
``POST .../{id}/packages`` record a package as if confirmed in Seller Central, without quota:
                           ``{"refresh_token", "package"?: {partial package}}``
``POST .../orders/evolve`` ``{"refresh_token", "count"?, "region"?, "marketplace_ids"?, "ago"?}``
``GET /_sandbox/calls``    call log, filtered by ``operation``, ``region``, ``status``
``DELETE .../calls``       empty the call log
``POST /_sandbox/reset``   fresh world from the configuration of the last reset, which at
                           first is the start configuration. A body of ``SandboxConfig``
                           fields changes it, for this and later resets
=========================  ===================================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from syncd import logs
from syncd.sandbox import clock, marketplaces, problems
from syncd.sandbox.faults import FaultRule
from syncd.sandbox.orderbook import OrderNotFoundError
from syncd.sandbox.state import SandboxConfig, SandboxState

logger = logs.get_logger(__name__)

PREFIX = "/_sandbox"

ControlHandler = Callable[[SandboxState, str, Request], Awaitable[Response]]


# Models whose validation errors the control API turns into problem lists, by class name.
_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model for model in (FaultRule, SandboxConfig)
}


class ControlError(Exception):
    """Error of a control request that cannot be carried out; the response has ``status``."""

    def __init__(
        self, message: str, status: int = 400, details: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.details = details or {}
        super().__init__(message)


def routes(state: SandboxState, region: str, operations: Sequence[str]) -> list[BaseRoute]:
    """Return the control routes of one region's app.

    Args:
        state: the state the routes act on.
        region: the host's region, the default of calls that take one.
        operations: the operation names the call log records, which ``GET .../calls``
            accepts as its ``operation`` filter.
    """
    handlers: list[tuple[str, list[str], ControlHandler]] = [
        ("/settings", ["GET", "POST"], _settings),
        ("/faults", ["GET", "POST", "DELETE"], _faults),
        ("/faults/{fault_id}", ["DELETE"], _fault),
        ("/clock", ["GET", "POST"], _clock),
        ("/revocations", ["POST"], _revocations),
        ("/orders", ["GET", "POST"], _orders),
        ("/orders/evolve", ["POST"], _evolve),
        ("/orders/{order_id}", ["GET", "PATCH"], _order),
        ("/orders/{order_id}/packages", ["GET", "POST"], _packages),
        ("/calls", ["GET", "DELETE"], _calls_handler(tuple(operations))),
        ("/reset", ["POST"], _reset),
    ]
    paths = [PREFIX + "/", *(PREFIX + path for path, _methods, _handler in handlers)]
    table = [("/", ["GET"], _index_handler(paths)), *handlers]
    known = [
        Route(PREFIX + path, _wrap(state, region, handler), methods=methods)
        for path, methods, handler in table
    ]
    # The bare prefix shows the index too; any other path under it gets the control API's
    # 404 or 405 rather than Amazon's error shape.
    bare = Route(PREFIX, _wrap(state, region, _index_handler(paths)), methods=["GET"])
    fallback = Route(
        PREFIX + "/{path:path}",
        _wrap(state, region, _unknown_handler(known, paths)),
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    )
    return [*known, bare, fallback]


def _wrap(
    state: SandboxState, region: str, handler: ControlHandler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(state, region, request)
        except ControlError as exc:
            headers = {"Allow": exc.details["allow"]} if "allow" in exc.details else None
            return JSONResponse({"error": str(exc), **exc.details}, exc.status, headers)
        except OrderNotFoundError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        except ValidationError as exc:
            found = _problems(exc)
            return JSONResponse({"error": "; ".join(found), "problems": found}, 400)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return endpoint


def _problems(error: ValidationError, prefix: str = "") -> list[str]:
    """Return one message per problem of a fault rule or settings validation error."""
    model = _MODELS.get(error.title)
    found = problems.describe(error, model) if model is not None else [str(error)]
    return [prefix + problem for problem in found]


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ControlError("the request body must be a JSON object")
    return body


def _required(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is None or value == "":
        raise ControlError(f"missing field {name!r}")
    return value


def _marketplace_ids(value: Any, region: str) -> list[str]:
    if value is None:
        return [m.marketplace_id for m in marketplaces.marketplaces_of(region)]
    ids = value.split(",") if isinstance(value, str) else list(value)
    unknown = [mid for mid in ids if marketplaces.find_marketplace(str(mid)) is None]
    if unknown:
        raise ControlError(f"unknown marketplace ids: {', '.join(map(str, unknown))}")
    return [str(mid) for mid in ids]


def _region(value: Any, default: str) -> str:
    region = str(value or default)
    if region not in marketplaces.REGIONS:
        raise ControlError(f"unknown region {region!r}: use one of na, eu, fe")
    return region


# -- handlers ------------------------------------------------------------------------------------


def _index_handler(paths: list[str]) -> ControlHandler:
    async def handler(state: SandboxState, region: str, request: Request) -> Response:
        return JSONResponse(
            {
                "region": region,
                "now": clock.format_time(state.now()),
                "offset_seconds": state.clock.offset_seconds,
                "settings": state.config.model_dump(mode="json"),
                "control": paths,
            }
        )

    return handler


def _unknown_handler(known: list[Route], paths: list[str]) -> ControlHandler:
    async def handler(state: SandboxState, region: str, request: Request) -> Response:
        method, path = request.method, request.url.path
        allowed = sorted(
            {
                allowed_method
                for route in known
                if route.matches(request.scope)[0] == Match.PARTIAL
                for allowed_method in route.methods or ()
                if allowed_method != "HEAD"
            }
        )
        if allowed:
            raise ControlError(
                f"{method} is not allowed on {path}: use {' or '.join(allowed)}",
                405,
                {"allow": ", ".join(allowed)},
            )
        raise ControlError(
            f"no control endpoint at {method} {path}; GET {PREFIX}/ lists the control paths",
            404,
            {"control": paths},
        )

    return handler


async def _settings(state: SandboxState, region: str, request: Request) -> Response:
    if request.method == "POST":
        changes = await _json_body(request)
        state.update_settings(**changes)
        logger.info("sandbox_settings_changed", settings=sorted(changes))
    return JSONResponse(state.config.model_dump(mode="json"))


async def _faults(state: SandboxState, region: str, request: Request) -> Response:
    if request.method == "DELETE":
        state.clear_faults()
        return JSONResponse({"faults": []})
    if request.method == "POST":
        body = await _json_body(request)
        several = "rules" in body
        rules = body["rules"] if several else [body]
        if not isinstance(rules, list):
            raise ControlError("rules must be a list of fault rules")
        parsed: list[FaultRule] = []
        found: list[str] = []
        for index, rule in enumerate(rules):
            try:
                parsed.append(FaultRule.model_validate(rule))
            except ValidationError as exc:
                found.extend(_problems(exc, f"rules[{index}]: " if several else ""))
        if found:  # no rule is added unless every rule is valid
            raise ControlError("; ".join(found), 400, {"problems": found})
        ids = [state.add_fault(rule) for rule in parsed]
        logger.info("sandbox_faults_added", fault_ids=ids)
        return JSONResponse({"ids": ids})
    return JSONResponse({"faults": state.faults()})


async def _fault(state: SandboxState, region: str, request: Request) -> Response:
    fault_id = request.path_params["fault_id"]
    if not state.remove_fault(fault_id):
        raise ControlError(f"no fault rule with id {fault_id!r}", 404)
    return JSONResponse({"removed": fault_id})


async def _clock(state: SandboxState, region: str, request: Request) -> Response:
    if request.method == "POST":
        body = await _json_body(request)
        if "offset_seconds" in body:
            state.set_clock_offset(float(body["offset_seconds"]))
        if "advance_seconds" in body:
            state.advance_clock(float(body["advance_seconds"]))
        logger.info("sandbox_clock_changed", offset_seconds=state.clock.offset_seconds)
    return JSONResponse(
        {"now": clock.format_time(state.now()), "offset_seconds": state.clock.offset_seconds}
    )


async def _revocations(state: SandboxState, region: str, request: Request) -> Response:
    body = await _json_body(request)
    refresh_token = str(_required(body, "refresh_token"))
    revoked = bool(body.get("revoked", True))
    if revoked:
        state.revoke(refresh_token)
    else:
        state.restore(refresh_token)
    return JSONResponse({"seller_id": state.seller_id(refresh_token), "revoked": revoked})


async def _orders(state: SandboxState, region: str, request: Request) -> Response:
    if request.method == "POST":
        return await _create_order(state, request)

    params = request.query_params
    refresh_token = params.get("refresh_token")
    if not refresh_token:
        raise ControlError("missing query parameter 'refresh_token'")
    chosen_region = _region(params.get("region"), region)
    ids = _marketplace_ids(params.get("marketplace_ids"), chosen_region)
    found = state.orders(refresh_token, marketplace_ids=ids)
    return JSONResponse({"seller_id": state.seller_id(refresh_token), "orders": found})


async def _create_order(state: SandboxState, request: Request) -> Response:
    body = await _json_body(request)
    refresh_token = str(_required(body, "refresh_token"))
    partial = body.get("order")
    if partial is None:
        partial = {}
    if not isinstance(partial, dict):
        raise ControlError("order must be a JSON object")
    created = state.create_order(refresh_token, str(_required(body, "marketplace_id")), partial)
    return JSONResponse({"order": created}, 201)


async def _order(state: SandboxState, region: str, request: Request) -> Response:
    order_id = request.path_params["order_id"]
    if request.method == "GET":
        refresh_token = _refresh_token_parameter(request)
        order = state.order(refresh_token, order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return JSONResponse({"order": order})

    body = await _json_body(request)
    refresh_token = str(_required(body, "refresh_token"))
    changes = body.get("changes")
    if changes is not None and not isinstance(changes, dict):
        raise ControlError("changes must be a JSON object (a JSON merge patch)")
    try:
        patched = state.patch_order(
            refresh_token,
            order_id,
            status=body.get("status"),
            changes=changes,
        )
    except OrderNotFoundError as exc:
        raise ControlError(str(exc), 404) from exc
    return JSONResponse({"order": patched})


async def _packages(state: SandboxState, region: str, request: Request) -> Response:
    order_id = request.path_params["order_id"]
    if request.method == "GET":
        refresh_token = _refresh_token_parameter(request)
        found = state.packages(refresh_token, order_id)
        return JSONResponse({"order_id": order_id, "packages": found})

    body = await _json_body(request)
    refresh_token = str(_required(body, "refresh_token"))
    partial = body.get("package")
    if partial is not None and not isinstance(partial, dict):
        raise ControlError("package must be a JSON object of v2026-01-01 package fields")
    package = state.add_package(refresh_token, order_id, partial)
    logger.info("sandbox_package_added", order_id=order_id)
    order = state.order(refresh_token, order_id)
    return JSONResponse({"package": package, "order": order}, 201)


def _refresh_token_parameter(request: Request) -> str:
    refresh_token = request.query_params.get("refresh_token")
    if not refresh_token:
        raise ControlError("missing query parameter 'refresh_token'")
    return refresh_token


async def _evolve(state: SandboxState, region: str, request: Request) -> Response:
    body = await _json_body(request)
    refresh_token = str(_required(body, "refresh_token"))
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise ControlError("count must be a positive integer")
    chosen_region = _region(body.get("region"), region)
    ids = _marketplace_ids(body.get("marketplace_ids"), chosen_region)
    ago = body.get("ago", 0)
    if not isinstance(ago, int | float) or isinstance(ago, bool) or ago < 0:
        raise ControlError("ago must be a number of seconds, zero or more")
    changes = state.evolve(refresh_token, count, marketplace_ids=ids, ago=float(ago))
    return JSONResponse({"changes": changes})


def _calls_handler(operations: tuple[str, ...]) -> ControlHandler:
    async def handler(state: SandboxState, region: str, request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_calls()
            return JSONResponse({"calls": []})
        params = request.query_params
        operation = params.get("operation")
        if operation is not None and operation not in operations:
            raise ControlError(
                f"unknown operation {operation!r}: use one of {', '.join(operations)}"
            )
        chosen_region = params.get("region")
        if chosen_region is not None:
            _region(chosen_region, region)
        status = params.get("status")
        if status is not None and not status.isdigit():
            raise ControlError("status must be an HTTP status code")
        records = state.calls(
            operation=operation,
            region=chosen_region,
            status=int(status) if status is not None else None,
        )
        calls = [record.to_json() for record in records]
        return JSONResponse({"count": len(records), "calls": calls})

    return handler


async def _reset(state: SandboxState, region: str, request: Request) -> Response:
    changes = await _json_body(request)
    config = state.reset(**changes)
    logger.info("sandbox_reset", settings=sorted(changes))
    return JSONResponse(
        {"now": clock.format_time(state.now()), "settings": config.model_dump(mode="json")}
    )
