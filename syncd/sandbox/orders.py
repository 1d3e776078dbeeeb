"""Orders API v2026-01-01: searchOrders and getOrder, validated the way Amazon validates them.

searchOrders rules (from the model's parameter descriptions and observed behaviour):

- exactly one of ``createdAfter`` and ``lastUpdatedAfter``; ``created*`` and
  ``lastUpdated*`` are never mixed; ``*Before`` is not earlier than ``*After``;
- ``createdBefore`` / ``lastUpdatedBefore`` at least two minutes before the sandbox's now.
  Without one, the bound is now minus two minutes. The response echoes the bound used;
- dates in ISO 8601; ``marketplaceIds`` required, at most 50, all of the host's region;
- ``maxResultsPerPage`` from 1 to 100 (default 100);
- array values from the model's enums, comma-separated in one parameter. A repeated
  parameter counts with its first value only;
- a ``paginationToken`` continues a search only with the same other parameters (except
  ``maxResultsPerPage`` and ``includedData``) and for 24 hours; the last page has no
  ``pagination`` key;
- orders older than Amazon's retention (two years; JP, AU and SG since 2016) are not found.

Each dataset of an order is returned only when ``includedData`` asks for it. BUYER and
RECIPIENT also depend on the PII setting: ``granted`` returns them, ``omitted`` leaves them
out silently and ``forbidden`` returns 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncd.sandbox import apimodels, clock, datasets, marketplaces, pagination, sellers
from syncd.sandbox.exchange import (
    Operation,
    Reply,
    RequestContext,
    RequestRejected,
    access_denied,
    amazon_error,
    reject_invalid_input,
)

MODEL = apimodels.ORDERS_MODEL
TWO_MINUTES = timedelta(minutes=2)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100

TWO_MINUTE_MESSAGE = (
    "The input you have submitted is not valid. Please provide a date that is at least "
    "2 minutes before current time and try again."
)
PAGINATION_TOKEN_MESSAGE = (
    "The paginationToken you have submitted is not valid. All parameters must match the "
    "original request except maxResultsPerPage."
)

_FULFILLMENT_STATUSES = apimodels.parameter_enum("searchOrders", "fulfillmentStatuses")
_FULFILLED_BY = apimodels.parameter_enum("searchOrders", "fulfilledBy")
_MAX_MARKETPLACES = int(
    (apimodels.find_operation("searchOrders").parameter("marketplaceIds") or {}).get("maxItems", 50)
)
_POSITIVE_INTEGER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class SearchWindow:
    """The time window of a search: which time field, its bounds and the echoed bound."""

    time_field: str  # "createdTime" or "lastUpdatedTime"
    after: datetime
    before: datetime
    bound_name: str  # "createdBefore" or "lastUpdatedBefore"


# -- searchOrders --------------------------------------------------------------------------------


def search_orders(ctx: RequestContext) -> Reply:
    """Return one page of the seller's orders that match the searchOrders filters."""
    check_declared_parameters(ctx)
    page_size = _page_size(ctx)
    included = _included_data(ctx)

    token = ctx.query.get("paginationToken")
    if token is not None:
        return _continue_search(ctx, token, page_size, included)

    window = _search_window(ctx)
    marketplace_ids = _marketplace_ids(ctx)
    statuses = _enum_filter(ctx, "fulfillmentStatuses", _FULFILLMENT_STATUSES)
    fulfilled_by = _enum_filter(ctx, "fulfilledBy", _FULFILLED_BY)

    with ctx.state.lock:
        found = ctx.state.orderbook.orders(ctx.seller.refresh_token, marketplace_ids, ctx.now)
    documents = [
        order.document
        for order in found
        if _is_in_window(order.document, window)
        and is_retained(order.document, order.marketplace_id, ctx.now)
        and (statuses is None or order.status in statuses)
        and (
            fulfilled_by is None or order.document["fulfillment"].get("fulfilledBy") in fulfilled_by
        )
    ]

    parameters_hash = pagination.hash_parameters(ctx.query.params)
    # Amazon documents no order for search results; shuffle, but the same way every time.
    seed = ctx.state.config.seed
    sellers.seeded_random(seed, ctx.seller.seller_id, parameters_hash).shuffle(documents)
    snapshot = pagination.SearchSnapshot(
        documents=tuple(documents),
        bound_name=window.bound_name,
        bound_value=clock.format_time(window.before),
    )
    return _page_reply(
        ctx,
        snapshot=snapshot,
        offset=0,
        page_size=page_size,
        included=included,
        parameters_hash=parameters_hash,
    )


def _continue_search(
    ctx: RequestContext, token: str, page_size: int, included: frozenset[str]
) -> Reply:
    parameters_hash = pagination.hash_parameters(ctx.query.params)
    with ctx.state.lock:
        cursor = ctx.state.pages.resolve(
            token, ctx.seller.seller_id, ctx.region, parameters_hash, ctx.now
        )
    if cursor is None:
        raise reject_invalid_input(PAGINATION_TOKEN_MESSAGE)
    return _page_reply(
        ctx,
        snapshot=cursor.snapshot,
        offset=cursor.offset,
        page_size=page_size,
        included=included,
        parameters_hash=parameters_hash,
    )


def _page_reply(
    ctx: RequestContext,
    *,
    snapshot: pagination.SearchSnapshot,
    offset: int,
    page_size: int,
    included: frozenset[str],
    parameters_hash: str,
) -> Reply:
    page = snapshot.documents[offset : offset + page_size]
    body: dict[str, Any] = {"orders": [datasets.render_order(doc, included) for doc in page]}

    duplicate = ctx.has_fault("duplicate_pages")
    next_offset = offset if duplicate else offset + page_size
    if duplicate or next_offset < len(snapshot.documents):
        cursor = pagination.PageCursor(
            seller_id=ctx.seller.seller_id,
            region=ctx.region,
            parameters_hash=parameters_hash,
            snapshot=snapshot,
            offset=next_offset,
            issued_at=ctx.now,
        )
        with ctx.state.lock:
            body["pagination"] = {"nextToken": ctx.state.pages.issue(cursor)}
    sent_token = ctx.query.get("paginationToken")
    if ctx.has_fault("repeat_page") and sent_token is not None:
        body["pagination"] = {"nextToken": sent_token}

    body[snapshot.bound_name] = snapshot.bound_value
    return Reply(200, body)


def _search_window(ctx: RequestContext) -> SearchWindow:
    query = ctx.query
    uses_created = query.get("createdAfter") is not None or query.get("createdBefore") is not None
    uses_updated = (
        query.get("lastUpdatedAfter") is not None or query.get("lastUpdatedBefore") is not None
    )
    if uses_created and uses_updated:
        raise reject_invalid_input(
            "createdAfter and createdBefore cannot be combined with lastUpdatedAfter or "
            "lastUpdatedBefore."
        )
    prefix = "created" if uses_created else "lastUpdated"
    after_value = query.get(f"{prefix}After")
    if after_value is None:
        raise reject_invalid_input("Exactly one of createdAfter and lastUpdatedAfter is required.")

    after = _parse_date(f"{prefix}After", after_value)
    latest = ctx.now - TWO_MINUTES
    before_value = query.get(f"{prefix}Before")
    implicit_bound = latest.replace(microsecond=0)
    before = (
        implicit_bound if before_value is None else _parse_date(f"{prefix}Before", before_value)
    )
    # Without a Before, the implicit bound (now - 2 min) must not fall before the After.
    if before > latest or (before_value is None and after > latest):
        raise reject_invalid_input(TWO_MINUTE_MESSAGE)
    if before < after:
        raise reject_invalid_input(f"{prefix}Before must be equal to or after {prefix}After.")

    time_field = "createdTime" if uses_created else "lastUpdatedTime"
    return SearchWindow(time_field, after, before, f"{prefix}Before")


def _parse_date(name: str, value: str) -> datetime:
    parsed = clock.parse_time(value)
    if parsed is None:
        raise reject_invalid_input(f"Invalid {name}: {value!r} is not an ISO 8601 date-time.")
    return parsed


def _marketplace_ids(ctx: RequestContext) -> list[str]:
    ids = ctx.query.get_list("marketplaceIds")
    if not ids:
        raise reject_invalid_input("marketplaceIds is required: give at least one marketplace id.")
    if len(ids) > _MAX_MARKETPLACES:
        raise reject_invalid_input(
            f"marketplaceIds accepts at most {_MAX_MARKETPLACES} ids; {len(ids)} were given."
        )
    invalid = [mid for mid in ids if not _is_region_marketplace(mid, ctx.region)]
    if invalid:
        raise reject_invalid_input(
            f"Invalid marketplaceIds for this endpoint: {', '.join(invalid)}. Every id must be "
            f"a marketplace of the {ctx.region.upper()} region."
        )
    return list(dict.fromkeys(ids))


def _is_region_marketplace(marketplace_id: str, region: str) -> bool:
    marketplace = marketplaces.find_marketplace(marketplace_id)
    return marketplace is not None and marketplace.region == region


def _enum_filter(ctx: RequestContext, name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    values = ctx.query.get_list(name)
    if not values:
        return None
    invalid = [value for value in values if value not in allowed]
    if invalid:
        invalid_text = ", ".join(map(repr, invalid))
        raise reject_invalid_input(
            f"Invalid {name} value {invalid_text}: use one of {', '.join(allowed)}."
        )
    return frozenset(values)


def _is_in_window(document: dict[str, Any], window: SearchWindow) -> bool:
    moment = clock.parse_time(document[window.time_field])
    return moment is not None and window.after <= moment <= window.before


def is_retained(document: dict[str, Any], marketplace_id: str, now: datetime) -> bool:
    """Return whether Amazon still returns an order, by its creation time and marketplace."""
    marketplace = marketplaces.find_marketplace(marketplace_id)
    created = clock.parse_time(document["createdTime"])
    if marketplace is None or created is None:
        return False
    return created >= marketplace.retention_start(now)


# -- getOrder ------------------------------------------------------------------------------------


def get_order(ctx: RequestContext) -> Reply:
    """Return one of the seller's orders (getOrder) if it belongs to the host's region."""
    check_declared_parameters(ctx)
    included = _included_data(ctx)
    order_id = ctx.path_params["orderId"]

    with ctx.state.lock:
        order = ctx.state.orderbook.find(ctx.seller.refresh_token, order_id, ctx.region, ctx.now)
    if order is None or not is_retained(order.document, order.marketplace_id, ctx.now):
        return amazon_error(404, "NotFound", f"The order {order_id} was not found.")
    return Reply(200, {"order": datasets.render_order(order.document, included)})


# -- shared checks -------------------------------------------------------------------------------


def check_declared_parameters(ctx: RequestContext, model_name: str = MODEL) -> None:
    """Reject a query parameter that the operation does not declare in ``model_name``.

    Does nothing when the ``strict_parameters`` setting is off.

    Raises:
        RequestRejected: 400 ``InvalidInput`` naming the parameter.
    """
    if not ctx.state.config.strict_parameters:
        return
    operation = apimodels.find_operation(ctx.operation_id, model_name)
    for name in ctx.query.params:
        definition = operation.parameter(name)
        if definition is None or definition.get("in") != "query":
            raise reject_invalid_input(
                f"Unknown parameter {name!r}: {ctx.operation_id} does not accept it."
            )


def _page_size(ctx: RequestContext) -> int:
    value = ctx.query.get("maxResultsPerPage")
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not _POSITIVE_INTEGER.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise reject_invalid_input(
            f"maxResultsPerPage must be an integer from 1 to {MAX_PAGE_SIZE}; got {value!r}."
        )
    return int(value)


def _included_data(ctx: RequestContext) -> frozenset[str]:
    included = _enum_filter(ctx, "includedData", datasets.INCLUDED_DATA) or frozenset()
    asks_pii = bool(included & datasets.PII_DATASETS)
    roles = ctx.state.config.pii_roles
    if asks_pii and roles == "forbidden":
        raise RequestRejected(access_denied())
    if roles == "omitted":
        return included - datasets.PII_DATASETS
    return included


OPERATIONS: tuple[Operation, ...] = (
    Operation("searchOrders", "GET", "/orders/2026-01-01/orders", search_orders, MODEL),
    Operation("getOrder", "GET", "/orders/2026-01-01/orders/{orderId}", get_order, MODEL),
)
