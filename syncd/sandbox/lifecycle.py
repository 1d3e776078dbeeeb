"""Order status changes: what appears, disappears and moves when an order changes status.

Documents are copy-on-write: every change builds a new document and replaces the old one,
so a page snapshot that refers to the old document keeps returning it unchanged.

The rules follow Amazon's documentation of the Orders API:

- A PENDING order has no prices, no proceeds, no buyer and no delivery address; they are
  withheld and appear when the order becomes UNSHIPPED.
- Item quantities move from ``quantityUnfulfilled`` to ``quantityFulfilled`` when shipped,
  and a merchant-fulfilled order gets one package per shipment (``packages`` is only
  returned for merchant-fulfilled orders).
- A cancelled order keeps nothing unfulfilled and loses its proceeds.
- Every change bumps ``lastUpdatedTime``, never backwards.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from syncd.sandbox import clock

Document = dict[str, Any]
JsonTree = TypeVar("JsonTree")

PENDING_STATUSES = frozenset({"PENDING", "PENDING_AVAILABILITY"})
OPEN_STATUSES = frozenset({"PENDING", "PENDING_AVAILABILITY", "UNSHIPPED", "PARTIALLY_SHIPPED"})
SETTABLE_STATUSES = (
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
)

# Parts of an order and of its items that Amazon does not show while the order is pending.
_WITHHELD_ORDER_KEYS = ("buyer", "recipient", "proceeds", "payment", "tax")
_WITHHELD_ITEM_KEYS = ("proceeds", "tax", "expense")
_DIGITS = re.compile(r"[0-9]+")
_CANCEL_REASONS = (
    ("BUYER", "Buyer canceled"),
    ("MERCHANT", "Out of stock"),
    ("AMAZON", "Payment not authorized"),
)


@dataclass
class SandboxOrder:
    """One order in the sandbox: Amazon's full document plus what is withheld while pending."""

    seller_id: str
    marketplace_id: str
    document: Document  # every dataset; replaced on change, never mutated once published
    withheld: Document | None = None

    @property
    def order_id(self) -> str:
        """Amazon's order id."""
        return str(self.document["orderId"])

    @property
    def status(self) -> str:
        """The order's ``fulfillment.fulfillmentStatus``."""
        return str(self.document["fulfillment"]["fulfillmentStatus"])

    @property
    def is_merchant_fulfilled(self) -> bool:
        """Whether the seller ships the order (MFN) rather than Amazon (FBA)."""
        return bool(self.document["fulfillment"].get("fulfilledBy") == "MERCHANT")


@dataclass(frozen=True)
class Shipper:
    """Ship-from address and carriers of a seller's merchant-fulfilled orders."""

    ship_from: Document  # Amazon's MerchantAddress shape
    carriers: tuple[str, ...]
    services: tuple[str, ...] = ("Standard", "Expedited")


def set_status(
    order: SandboxOrder, status: str, at: datetime, rng: random.Random, shipper: Shipper
) -> None:
    """Move an order to ``status`` at time ``at``, keeping every dependent field consistent.

    Raises:
        ValueError: ``status`` is not a fulfillment status Amazon uses.
    """
    if status not in SETTABLE_STATUSES:
        raise ValueError(f"unknown fulfillment status {status!r}")
    document = copy_document(order.document)

    if status in PENDING_STATUSES:
        _withhold(order, document)
        _set_quantities(document, shipped=None)
        document.pop("packages", None)
    elif status == "CANCELLED":
        _cancel(order, document, rng)
    elif status == "UNFULFILLABLE":
        _restore(order, document)
    else:
        _restore(order, document)
        status = _ship(order, document, status, at, rng=rng, shipper=shipper)

    document["fulfillment"]["fulfillmentStatus"] = status
    touch(document, at)
    order.document = document


def copy_document(value: JsonTree) -> JsonTree:
    """Copy a JSON tree (dicts, lists, scalars); much faster than :func:`copy.deepcopy`."""
    return cast("JsonTree", _copy_tree(value))


def _copy_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    return value


def touch(document: Document, at: datetime) -> None:
    """Set ``lastUpdatedTime`` to ``at`` unless the document was already updated later."""
    current = clock.parse_time(document["lastUpdatedTime"])
    if current is None or at > current:
        document["lastUpdatedTime"] = clock.format_time(at)


def _withhold(order: SandboxOrder, document: Document) -> None:
    if order.withheld is not None:
        return
    withheld: Document = {"order": {}, "items": {}}
    for key in _WITHHELD_ORDER_KEYS:
        if key in document:
            withheld["order"][key] = document.pop(key)
    for item in document["orderItems"]:
        parts = {key: item.pop(key) for key in _WITHHELD_ITEM_KEYS if key in item}
        price = item.get("product", {}).pop("price", None)
        if price is not None:
            parts["price"] = price
        withheld["items"][item["orderItemId"]] = parts
    order.withheld = withheld


def _restore(order: SandboxOrder, document: Document) -> None:
    if order.withheld is None:
        return
    document.update(order.withheld["order"])
    for item in document["orderItems"]:
        parts = dict(order.withheld["items"].get(item["orderItemId"], {}))
        price = parts.pop("price", None)
        if price is not None:
            item.setdefault("product", {})["price"] = price
        item.update(parts)
    order.withheld = None


def _cancel(order: SandboxOrder, document: Document, rng: random.Random) -> None:
    # An order cancelled while pending never shows prices; a later cancel loses its proceeds.
    if order.withheld is None:
        document.pop("proceeds", None)
        document.pop("payment", None)
    cancelled_by, reason = rng.choice(_CANCEL_REASONS)
    for item in document["orderItems"]:
        item.pop("proceeds", None)
        fulfillment = item.setdefault("fulfillment", {})
        fulfillment.setdefault("quantityFulfilled", 0)
        fulfillment["quantityUnfulfilled"] = 0
        cancellation: Document = {
            "cancellationExecution": {"cancelledBy": cancelled_by, "cancelReason": reason}
        }
        if cancelled_by == "BUYER":
            cancellation["cancellationRequest"] = {"requester": "BUYER", "cancelReason": reason}
        item["cancellation"] = cancellation
    document.pop("packages", None)


def _ship(
    order: SandboxOrder,
    document: Document,
    status: str,
    at: datetime,
    *,
    rng: random.Random,
    shipper: Shipper,
) -> str:
    """Ship what ``status`` requires and return the status the order really reaches."""
    items = document["orderItems"]
    if status == "UNSHIPPED":
        _set_quantities(document, shipped=None)
        document.pop("packages", None)
        return status

    target = _shipped_quantities(items, partial=status == "PARTIALLY_SHIPPED")
    if status == "PARTIALLY_SHIPPED" and target == _ordered_quantities(items):
        status = "SHIPPED"  # one unit cannot ship partially; the order ships completely
    newly_shipped: dict[str, int] = {}
    for item in items:
        extra = target[item["orderItemId"]] - _already_shipped(item)
        if extra > 0:
            newly_shipped[item["orderItemId"]] = extra
    _set_quantities(document, shipped=target)
    if order.is_merchant_fulfilled and newly_shipped:
        packages = document.setdefault("packages", [])
        number = next_package_number(packages)
        packages.append(build_package(number, newly_shipped, at, rng=rng, shipper=shipper))
    return status


def next_package_number(packages: list[Document]) -> int:
    """Return one more than the highest numeric ``packageReferenceId`` among ``packages``.

    A client may choose any positive number for its packages, so counting the packages
    could repeat a reference that is already taken.
    """
    references = [str(package.get("packageReferenceId", "")) for package in packages]
    numbers = [int(reference) for reference in references if _DIGITS.fullmatch(reference)]
    return max(numbers, default=0) + 1


def _ordered_quantities(items: list[Document]) -> dict[str, int]:
    return {item["orderItemId"]: int(item["quantityOrdered"]) for item in items}


def _already_shipped(item: Document) -> int:
    return int(item.get("fulfillment", {}).get("quantityFulfilled", 0))


def _shipped_quantities(items: list[Document], *, partial: bool) -> dict[str, int]:
    ordered = _ordered_quantities(items)
    if not partial:
        return ordered
    shipped = dict.fromkeys(ordered, 0)
    first_id = items[0]["orderItemId"]
    if len(items) > 1:
        shipped[first_id] = ordered[first_id]
    else:
        shipped[first_id] = max(0, ordered[first_id] - 1) or ordered[first_id]
    # Keep units shipped earlier: a partial shipment never takes a shipment back.
    for item in items:
        shipped[item["orderItemId"]] = max(shipped[item["orderItemId"]], _already_shipped(item))
    return shipped


def _set_quantities(document: Document, shipped: dict[str, int] | None) -> None:
    for item in document["orderItems"]:
        ordered = int(item["quantityOrdered"])
        fulfilled = 0 if shipped is None else shipped.get(item["orderItemId"], 0)
        fulfillment = item.setdefault("fulfillment", {})
        fulfillment["quantityFulfilled"] = fulfilled
        fulfillment["quantityUnfulfilled"] = ordered - fulfilled


def build_package(
    number: int,
    quantities: dict[str, int],
    at: datetime,
    *,
    rng: random.Random,
    shipper: Shipper,
) -> Document:
    """Build one merchant-fulfilled package shipped at ``at`` with the given item quantities.

    ``packageReferenceId`` is the package's number within the order, a string of digits as
    confirmShipment requires.
    """
    carrier = rng.choice(shipper.carriers)
    tracking = "".join(rng.choice("0123456789") for _ in range(12))
    return {
        "packageReferenceId": str(number),
        "createdTime": clock.format_time(at - timedelta(minutes=rng.randint(5, 90))),
        "packageStatus": {"status": "IN_TRANSIT"},
        "carrier": carrier,
        "shipTime": clock.format_time(at),
        "shippingService": rng.choice(shipper.services),
        "trackingNumber": f"{carrier[:2].upper()}{tracking}",
        "shipFromAddress": dict(shipper.ship_from),
        "packageItems": [
            {"orderItemId": item_id, "quantity": quantity}
            for item_id, quantity in quantities.items()
        ],
    }
