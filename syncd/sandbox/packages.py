"""Packages of merchant-fulfilled orders: what is left to ship, and recording a package.

A package lists order items and quantities in ``packageItems``. The units an item has
shipped are the sum over the order's packages, so recording a package recomputes each
item's ``fulfillment.quantityFulfilled`` and ``quantityUnfulfilled``, the order's
``fulfillmentStatus`` (UNSHIPPED, PARTIALLY_SHIPPED or SHIPPED) and its
``lastUpdatedTime``. A package with the ``packageReferenceId`` of an existing package of
the order replaces that package, the way confirmShipment edits a package.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Any

from syncd.sandbox import clock, lifecycle
from syncd.sandbox.lifecycle import Document, SandboxOrder, Shipper

# Statuses in which an order can get a package; SHIPPED only for editing an existing one.
SHIPPABLE_STATUSES = frozenset({"UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"})
# Fields of a package that the control API lets a test set; the others are derived.
MANUAL_PACKAGE_FIELDS = (
    "packageReferenceId",
    "carrier",
    "trackingNumber",
    "shipTime",
    "shippingService",
    "packageStatus",
    "packageItems",
)

_REFERENCE_ID = re.compile(r"[0-9]+")


def find_package(document: Document, reference_id: str) -> Document | None:
    """Return the order's package with this ``packageReferenceId``, or None."""
    for package in document.get("packages", []):
        if package.get("packageReferenceId") == reference_id:
            return dict(package)
    return None


def ordered_quantities(document: Document) -> dict[str, int]:
    """Return the ordered units of each order item, by ``orderItemId``."""
    return {item["orderItemId"]: int(item["quantityOrdered"]) for item in document["orderItems"]}


def packed_quantities(document: Document, excluding: str | None = None) -> dict[str, int]:
    """Return the units of each order item in the order's packages.

    Args:
        document: the order.
        excluding: the ``packageReferenceId`` of a package to leave out, such as the package
            that a confirmation edits.
    """
    packed: dict[str, int] = {}
    for package in document.get("packages", []):
        if excluding is not None and package.get("packageReferenceId") == excluding:
            continue
        for entry in package.get("packageItems", []):
            item_id = str(entry["orderItemId"])
            packed[item_id] = packed.get(item_id, 0) + int(entry["quantity"])
    return packed


def remaining_quantities(document: Document, excluding: str | None = None) -> dict[str, int]:
    """Return the units of each order item that no package contains yet (never below 0)."""
    packed = packed_quantities(document, excluding)
    return {
        item_id: max(0, ordered - packed.get(item_id, 0))
        for item_id, ordered in ordered_quantities(document).items()
    }


def is_fully_packed(document: Document) -> bool:
    """Return whether the order's packages hold every ordered unit."""
    return not any(remaining_quantities(document).values())


def record_package(order: SandboxOrder, package: Document, at: datetime) -> None:
    """Add ``package`` to the order, or replace the package with its reference, at ``at``.

    The caller has checked the package against the order: its items belong to the order and
    no item ends up with more units in packages than it has ordered.
    """
    document = lifecycle.copy_document(order.document)
    packages: list[Document] = document.setdefault("packages", [])
    reference_id = package["packageReferenceId"]
    positions = [
        index
        for index, existing in enumerate(packages)
        if existing.get("packageReferenceId") == reference_id
    ]
    if positions:
        packages[positions[0]] = lifecycle.copy_document(package)
    else:
        packages.append(lifecycle.copy_document(package))

    packed = packed_quantities(document)
    for item in document["orderItems"]:
        ordered = int(item["quantityOrdered"])
        shipped = min(ordered, packed.get(item["orderItemId"], 0))
        fulfillment = item.setdefault("fulfillment", {})
        fulfillment["quantityFulfilled"] = shipped
        fulfillment["quantityUnfulfilled"] = ordered - shipped

    document["fulfillment"]["fulfillmentStatus"] = _status_from_items(document["orderItems"])
    lifecycle.touch(document, at)
    order.document = document


def _status_from_items(items: list[Document]) -> str:
    unshipped = sum(int(item["fulfillment"]["quantityUnfulfilled"]) for item in items)
    shipped = sum(int(item["fulfillment"]["quantityFulfilled"]) for item in items)
    if unshipped == 0:
        return "SHIPPED"
    return "PARTIALLY_SHIPPED" if shipped else "UNSHIPPED"


def manual_package(
    order: SandboxOrder,
    partial: dict[str, Any],
    at: datetime,
    *,
    rng: random.Random,
    shipper: Shipper,
) -> Document:
    """Build a package that someone confirmed by hand in Seller Central, from ``partial``.

    ``partial`` may set any of :data:`MANUAL_PACKAGE_FIELDS` in Amazon's v2026-01-01 shape.
    Without ``packageReferenceId`` the package gets the next free number; a reference the
    order already has replaces that package. Without ``packageItems`` the package contains
    every unit not yet in a package. ``carrier`` and ``trackingNumber`` take any text.

    Raises:
        ValueError: the order cannot get a package, or ``partial`` is invalid for it.
        TypeError: an entry of ``packageItems`` is not an object.
    """
    document = order.document
    _check_can_get_package(order)
    unknown = sorted(set(partial) - set(MANUAL_PACKAGE_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown package fields: {', '.join(unknown)}. "
            f"The known ones are {', '.join(MANUAL_PACKAGE_FIELDS)}"
        )

    reference_id = partial.get("packageReferenceId")
    if reference_id is None:
        reference_id = str(lifecycle.next_package_number(document.get("packages", [])))
    if not isinstance(reference_id, str) or not _REFERENCE_ID.fullmatch(reference_id):
        raise ValueError(
            f'packageReferenceId must be a string of digits, such as "1", not {reference_id!r}'
        )
    quantities = _manual_quantities(document, partial.get("packageItems"), reference_id)

    package = lifecycle.build_package(1, quantities, at, rng=rng, shipper=shipper)
    package["packageReferenceId"] = reference_id
    existing = find_package(document, reference_id)
    if existing is not None and "createdTime" in existing:
        package["createdTime"] = existing["createdTime"]
    for name in ("carrier", "trackingNumber", "shippingService", "packageStatus"):
        if partial.get(name) is not None:
            package[name] = partial[name]
    if partial.get("shipTime") is not None:
        package["shipTime"] = _manual_ship_time(partial["shipTime"])
    return package


def _check_can_get_package(order: SandboxOrder) -> None:
    if not order.is_merchant_fulfilled:
        raise ValueError(
            f"order {order.order_id} is fulfilled by Amazon: packages exist only on "
            "merchant-fulfilled orders"
        )
    if order.status not in SHIPPABLE_STATUSES:
        raise ValueError(
            f"order {order.order_id} has the status {order.status}: only orders with the "
            f"status {', '.join(sorted(SHIPPABLE_STATUSES))} can get a package"
        )


def _manual_quantities(document: Document, entries: Any, reference_id: str) -> dict[str, int]:
    remaining = remaining_quantities(document, excluding=reference_id)
    if entries is None:
        quantities = {item_id: left for item_id, left in remaining.items() if left > 0}
        if not quantities:
            raise ValueError(
                f"order {document['orderId']} has no units left to ship: give packageItems "
                "with the units of an existing package's packageReferenceId to change it"
            )
        return quantities
    if not isinstance(entries, list) or not entries:
        raise ValueError("packageItems must be a non-empty list of {orderItemId, quantity}")

    quantities = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise TypeError("each entry of packageItems must be an object")
        item_id, quantity = entry.get("orderItemId"), entry.get("quantity")
        if not isinstance(item_id, str) or item_id not in remaining:
            raise ValueError(
                f"orderItemId {item_id!r} is not an item of order {document['orderId']}. "
                f"Its items are {', '.join(remaining)}"
            )
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError(f"quantity of item {item_id} must be a positive integer")
        quantities[item_id] = quantities.get(item_id, 0) + quantity
        if quantities[item_id] > remaining[item_id]:
            raise ValueError(
                f"item {item_id} has {remaining[item_id]} units left to ship, "
                f"fewer than the {quantities[item_id]} requested"
            )
    return quantities


def _manual_ship_time(value: Any) -> str:
    parsed = clock.parse_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"shipTime must be an ISO 8601 date-time, not {value!r}")
    return clock.format_time(parsed)
