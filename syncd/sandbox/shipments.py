"""Orders API v0 confirmShipment: validated the way Amazon validates it, recorded as a package.

``POST /orders/v0/orders/{orderId}/shipmentConfirmation`` takes a ``ConfirmShipmentRequest``
and returns 204 with an empty body. The checks run in this order, and the first failure
returns 400 ``InvalidInput`` (404 ``NotFound`` for an unknown order):

1. the body is a JSON object whose fields have the model's types (a number where a string
   belongs gets "...fields with invalid type [packageDetail.packageReferenceId].");
2. required fields are present, ``packageReferenceId`` is a string of digits above 0,
   ``carrierCode`` is on :mod:`carriers`' list (``Other`` needs a ``carrierName``),
   ``trackingNumber`` is not empty, ``shipDate`` is an ISO 8601 date-time with ``Z`` or an
   offset and not after the sandbox's now, ``orderItems`` is a non-empty list of
   ``{orderItemId, quantity}`` with string ids and quantities of at least 1;
3. ``marketplaceId`` is a marketplace of the host's region; the order exists for the seller
   (else 404) and belongs to that marketplace;
4. the order is merchant-fulfilled, not a Ship+ (FBM_SHIP_PLUS) order, and UNSHIPPED,
   PARTIALLY_SHIPPED or SHIPPED;
5. every ``orderItemId`` is an item of the order; a new ``packageReferenceId`` on an order
   whose packages already hold every unit gets Amazon's "PackageToUpdateNotFound" error; no
   quantity exceeds the units that the order's other packages leave unshipped.

A valid confirmation records the package (see :mod:`packages`). A ``packageReferenceId``
the order already has edits that package, also on a SHIPPED order.

Messages quoted from public reports of Amazon's responses: the invalid-type message, the
``PackageReferenceId`` and ``OrderItemId`` messages and the "PackageToUpdateNotFound" one.
The others are the sandbox's own texts in the same style, because Amazon's are not public.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.sandbox import apimodels, carriers, clock, marketplaces, orders, packages
from syncd.sandbox.exchange import (
    Operation,
    Reply,
    RequestContext,
    amazon_error,
    reject_invalid_input,
)
from syncd.sandbox.lifecycle import Document, SandboxOrder

MODEL = apimodels.ORDERS_V0_MODEL
OPERATION_ID = "confirmShipment"
PATH = "/orders/v0/orders/{orderId}/shipmentConfirmation"

INVALID_TYPE_MESSAGE = (
    "The input you have submitted is not valid. Please check the fields with invalid type [{}]."
)
MISSING_FIELDS_MESSAGE = (
    "The input you have submitted is not valid. Please check the missing required fields [{}]."
)
PACKAGE_REFERENCE_MESSAGE = "PackageReferenceId: is invalid, must be a positive numeric value."
ORDER_ITEM_MESSAGE = (
    "OrderItemId {} is invalid, please obtain the value through the getOrderItems API or "
    "Manage Orders page"
)
ALREADY_FULFILLED_MESSAGE = (
    "Failed to create package due to not finding a matching package or order already "
    "fulfilled. ErrorMessage(errorCode=GeneralError, errorDescription=Unable to find package "
    "to update for order ({}), errorMetric=PackageToUpdateNotFound, packageIndex=null)"
)
CARRIER_CODE_MESSAGE = (
    "CarrierCode: {} is invalid, it must match a carrier listed in Seller Central exactly. "
    "For a carrier that is not listed, use Other and give its name in CarrierName."
)
CARRIER_NAME_MESSAGE = "CarrierName: is required when CarrierCode is Other."
TRACKING_NUMBER_MESSAGE = "TrackingNumber: is invalid, must not be empty."
SHIP_DATE_FORMAT_MESSAGE = (
    "ShipDate: {} is invalid, must be an ISO 8601 date-time with a time zone, such as "
    "2026-03-03T15:00:00Z."
)
SHIP_DATE_FUTURE_MESSAGE = "ShipDate: {} is invalid, must not be in the future."
QUANTITY_MESSAGE = "Quantity: is invalid for OrderItemId {}, must be a positive numeric value."
QUANTITY_EXCEEDED_MESSAGE = (
    "Quantity: {} for OrderItemId {} is invalid, only {} unit(s) of the item are left to ship."
)
DUPLICATE_ITEM_MESSAGE = "OrderItemId {} is listed more than once in orderItems."
COD_METHOD_MESSAGE = "CodCollectionMethod: {} is invalid, the only value is DirectPayment."
MARKETPLACE_REGION_MESSAGE = (
    "Invalid marketplaceId for this endpoint: {}. It must be a marketplace of the {} region."
)
MARKETPLACE_ORDER_MESSAGE = "The marketplaceId {} is not the marketplace of order {}."
AMAZON_FULFILLED_MESSAGE = (
    "Order {} is fulfilled by Amazon. Amazon confirms the shipment of its orders."
)
SHIP_PLUS_MESSAGE = (
    "Order {} is a Ship+ (FBM_SHIP_PLUS) order. Its shipment cannot be confirmed with "
    "confirmShipment."
)
STATUS_MESSAGE = "Order {} has the status {} and cannot be confirmed as shipped."
BODY_MESSAGE = "The request body must be a JSON object (ConfirmShipmentRequest): {}"

_STRING_FIELDS = ("marketplaceId", "codCollectionMethod")
_PACKAGE_STRING_FIELDS = (
    "packageReferenceId",
    "carrierCode",
    "carrierName",
    "shippingMethod",
    "trackingNumber",
    "shipDate",
    "shipFromSupplySourceId",
)
_COD_METHODS = ("DirectPayment",)
_REFERENCE_ID = re.compile(r"[0-9]+")
# RFC 3339 date-times as Amazon's examples write them: seconds and fractions optional, and a
# zone of Z or a numeric offset (with or without a colon) required.
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})"
)
_SHIPPABLE_STATUSES = packages.SHIPPABLE_STATUSES
_SHIP_PLUS = "FBM_SHIP_PLUS"


@dataclass(frozen=True)
class ShipmentItem:
    """One entry of ``orderItems`` after validation."""

    order_item_id: str
    quantity: int
    transparency_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Confirmation:
    """A confirmShipment request body after the checks that need no order."""

    marketplace_id: str
    package_reference_id: str
    carrier_code: str
    carrier_name: str | None
    shipping_method: str | None
    tracking_number: str
    ship_date: datetime
    items: tuple[ShipmentItem, ...]

    @property
    def carrier(self) -> str:
        """The carrier a v2026 package shows: the code, or the name for ``Other``."""
        if self.carrier_code == carriers.OTHER and self.carrier_name:
            return self.carrier_name
        return self.carrier_code


def confirm_shipment(ctx: RequestContext) -> Reply:
    """Validate a confirmShipment request and record its package on the order (204)."""
    orders.check_declared_parameters(ctx, MODEL)
    confirmation = read_confirmation(ctx.body, ctx.now)
    _check_marketplace_region(confirmation.marketplace_id, ctx.region)
    order_id = ctx.path_params["orderId"]

    with ctx.state.lock:
        order = ctx.state.orderbook.find(ctx.seller.refresh_token, order_id, ctx.region, ctx.now)
        if order is None or not orders.is_retained(order.document, order.marketplace_id, ctx.now):
            return amazon_error(404, "NotFound", f"The order {order_id} was not found.")
        _check_order(order, confirmation)
        package = _build_package(order.document, confirmation, ctx.now)
        ctx.state.orderbook.ship_package(ctx.seller.refresh_token, order_id, package, ctx.now)
    return Reply(204, None)


# -- the body ------------------------------------------------------------------------------------


def read_confirmation(raw: bytes, now: datetime) -> Confirmation:
    """Parse and check a ConfirmShipmentRequest body without looking at the order.

    Raises:
        RequestRejected: 400 ``InvalidInput`` naming the first problem found.
    """
    body = _parse_json_object(raw)
    _check_types(body)
    _check_required(body)
    detail: dict[str, Any] = body["packageDetail"]

    reference_id = detail.get("packageReferenceId")
    if not isinstance(reference_id, str) or not _is_positive_number(reference_id):
        raise reject_invalid_input(PACKAGE_REFERENCE_MESSAGE)
    carrier_code, carrier_name = _carrier(detail)
    tracking_number = str(detail["trackingNumber"])
    if not tracking_number.strip():
        raise reject_invalid_input(TRACKING_NUMBER_MESSAGE)
    ship_date = _ship_date(str(detail["shipDate"]), now)
    cod_method = body.get("codCollectionMethod")
    if cod_method is not None and cod_method not in _COD_METHODS:
        raise reject_invalid_input(COD_METHOD_MESSAGE.format(cod_method))

    return Confirmation(
        marketplace_id=str(body["marketplaceId"]),
        package_reference_id=reference_id,
        carrier_code=carrier_code,
        carrier_name=carrier_name,
        shipping_method=detail.get("shippingMethod"),
        tracking_number=tracking_number,
        ship_date=ship_date,
        items=_items(detail["orderItems"]),
    )


def _parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = f"the body is not valid JSON ({exc})"
        raise reject_invalid_input(BODY_MESSAGE.format(problem)) from exc
    if not isinstance(body, dict):
        raise reject_invalid_input(BODY_MESSAGE.format(f"got a JSON {type(body).__name__}"))
    return body


def _check_types(body: dict[str, Any]) -> None:
    """Reject values of the wrong JSON type, as Amazon's deserializer does since 2026."""
    invalid = [name for name in _STRING_FIELDS if not _is_string_or_null(body.get(name))]
    detail = body.get("packageDetail")
    if detail is not None and not isinstance(detail, dict):
        invalid.append("packageDetail")
    if isinstance(detail, dict):
        invalid.extend(
            f"packageDetail.{name}"
            for name in _PACKAGE_STRING_FIELDS
            if not _is_string_or_null(detail.get(name))
        )
        entries = detail.get("orderItems")
        if isinstance(entries, list):
            invalid.extend(_invalid_item_types(entries))
    if invalid:
        raise reject_invalid_input(INVALID_TYPE_MESSAGE.format(", ".join(invalid)))


def _invalid_item_types(entries: list[Any]) -> list[str]:
    invalid: list[str] = []
    for index, entry in enumerate(entries):
        path = f"packageDetail.orderItems[{index}]"
        if not isinstance(entry, dict):
            invalid.append(path)
            continue
        quantity = entry.get("quantity")
        if quantity is not None and not _is_integer(quantity):
            invalid.append(f"{path}.quantity")
        codes = entry.get("transparencyCodes")
        if codes is not None and not (
            isinstance(codes, list) and all(isinstance(code, str) for code in codes)
        ):
            invalid.append(f"{path}.transparencyCodes")
    return invalid


def _check_required(body: dict[str, Any]) -> None:
    """Reject missing required fields, except the ones that have a message of their own.

    A missing ``packageReferenceId`` gets Amazon's PackageReferenceId message and a missing
    ``orderItemId`` its OrderItemId message, so they are checked later.
    """
    missing = [name for name in ("marketplaceId", "packageDetail") if _is_blank(body.get(name))]
    detail = body.get("packageDetail")
    if isinstance(detail, dict):
        missing.extend(
            f"packageDetail.{name}"
            for name in ("carrierCode", "trackingNumber", "shipDate")
            if detail.get(name) is None
        )
        entries = detail.get("orderItems")
        if entries is None or entries == []:
            missing.append("packageDetail.orderItems")
        elif isinstance(entries, list):
            missing.extend(
                f"packageDetail.orderItems[{index}].quantity"
                for index, entry in enumerate(entries)
                if entry.get("quantity") is None
            )
    if missing:
        raise reject_invalid_input(MISSING_FIELDS_MESSAGE.format(", ".join(missing)))


def _carrier(detail: dict[str, Any]) -> tuple[str, str | None]:
    code = str(detail["carrierCode"])
    if not carriers.is_carrier_code(code):
        raise reject_invalid_input(CARRIER_CODE_MESSAGE.format(code))
    name = detail.get("carrierName")
    if code == carriers.OTHER and (name is None or not str(name).strip()):
        raise reject_invalid_input(CARRIER_NAME_MESSAGE)
    return code, name


def _ship_date(value: str, now: datetime) -> datetime:
    parsed = clock.parse_time(value) if _DATE_TIME.fullmatch(value) else None
    if parsed is None:
        raise reject_invalid_input(SHIP_DATE_FORMAT_MESSAGE.format(value))
    if parsed > now:
        raise reject_invalid_input(SHIP_DATE_FUTURE_MESSAGE.format(value))
    return parsed


def _items(entries: Any) -> tuple[ShipmentItem, ...]:
    # A single object instead of a list: Amazon reads no item id from it, so its message
    # names an empty id (as in a public report of exactly this mistake).
    if not isinstance(entries, list):
        raise reject_invalid_input(ORDER_ITEM_MESSAGE.format(""))

    items: list[ShipmentItem] = []
    seen: set[str] = set()
    for entry in entries:
        item_id = entry.get("orderItemId")
        if not isinstance(item_id, str) or not item_id:
            item_text = "" if item_id is None else json.dumps(item_id)
            raise reject_invalid_input(ORDER_ITEM_MESSAGE.format(item_text))
        if item_id in seen:
            raise reject_invalid_input(DUPLICATE_ITEM_MESSAGE.format(item_id))
        seen.add(item_id)
        quantity = int(entry["quantity"])
        if quantity < 1:
            raise reject_invalid_input(QUANTITY_MESSAGE.format(item_id))
        codes = tuple(entry.get("transparencyCodes") or ())
        items.append(ShipmentItem(item_id, quantity, codes))
    return tuple(items)


def _check_marketplace_region(marketplace_id: str, region: str) -> None:
    marketplace = marketplaces.find_marketplace(marketplace_id)
    if marketplace is None or marketplace.region != region:
        raise reject_invalid_input(
            MARKETPLACE_REGION_MESSAGE.format(marketplace_id, region.upper())
        )


# -- the order -----------------------------------------------------------------------------------


def _check_order(order: SandboxOrder, confirmation: Confirmation) -> None:
    """Check the order's state and the confirmation's items against it.

    Raises:
        RequestRejected: 400 ``InvalidInput`` naming the first problem found.
    """
    order_id = order.order_id
    if confirmation.marketplace_id != order.marketplace_id:
        raise reject_invalid_input(
            MARKETPLACE_ORDER_MESSAGE.format(confirmation.marketplace_id, order_id)
        )
    if not order.is_merchant_fulfilled:
        raise reject_invalid_input(AMAZON_FULFILLED_MESSAGE.format(order_id))
    if _SHIP_PLUS in order.document.get("programs", []):
        raise reject_invalid_input(SHIP_PLUS_MESSAGE.format(order_id))
    if order.status not in _SHIPPABLE_STATUSES:
        raise reject_invalid_input(STATUS_MESSAGE.format(order_id, order.status))

    document = order.document
    ordered = packages.ordered_quantities(document)
    for item in confirmation.items:
        if item.order_item_id not in ordered:
            raise reject_invalid_input(ORDER_ITEM_MESSAGE.format(item.order_item_id))

    reference_id = confirmation.package_reference_id
    is_new = packages.find_package(document, reference_id) is None
    if is_new and packages.is_fully_packed(document):
        raise reject_invalid_input(ALREADY_FULFILLED_MESSAGE.format(order_id))
    remaining = packages.remaining_quantities(document, excluding=reference_id)
    for item in confirmation.items:
        left = remaining[item.order_item_id]
        if item.quantity > left:
            raise reject_invalid_input(
                QUANTITY_EXCEEDED_MESSAGE.format(item.quantity, item.order_item_id, left)
            )


def _build_package(document: Document, confirmation: Confirmation, now: datetime) -> Document:
    """Return the v2026-01-01 package that a confirmation records; an edit keeps createdTime."""
    existing = packages.find_package(document, confirmation.package_reference_id)
    created = existing["createdTime"] if existing and "createdTime" in existing else None
    package: Document = {
        "packageReferenceId": confirmation.package_reference_id,
        "createdTime": created or clock.format_time(now),
        # Amazon returns packageStatus.status only; detailedStatus never comes back.
        "packageStatus": {"status": "IN_TRANSIT"},
        "carrier": confirmation.carrier,
        "shipTime": clock.format_time(confirmation.ship_date),
    }
    if confirmation.shipping_method:
        package["shippingService"] = confirmation.shipping_method
    package["trackingNumber"] = confirmation.tracking_number
    package["packageItems"] = [_package_item(item) for item in confirmation.items]
    return package


def _package_item(item: ShipmentItem) -> Document:
    entry: Document = {"orderItemId": item.order_item_id, "quantity": item.quantity}
    if item.transparency_codes:
        entry["transparencyCodes"] = list(item.transparency_codes)
    return entry


# -- small predicates ----------------------------------------------------------------------------


def _is_string_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_blank(value: Any) -> bool:
    return value is None or value == ""


def _is_positive_number(value: str) -> bool:
    return bool(_REFERENCE_ID.fullmatch(value)) and int(value) > 0


OPERATIONS: tuple[Operation, ...] = (
    Operation(OPERATION_ID, "POST", PATH, confirm_shipment, MODEL),
)
