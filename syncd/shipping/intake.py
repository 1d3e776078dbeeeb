"""From an intake request to a package: parse, check against the order, allocate a reference.

Everything here is pure: the shipments job supplies the request, Amazon's current order
(from getOrder) and the outbox rows the order already has. A request that cannot become a
package raises :class:`RejectedError` with a stable code for the ERP and a reason for the
operator.

:func:`parse_request` checks, in this order: the contract version, the tracking number, the
carrier (``Other`` needs a name), the order id, the ship time and its zone (not more than an
hour ahead), and the items JSON. Then, with the order: :func:`check_order` rejects orders
that Amazon ships (FBA), that Ship+ or Easy Ship handles, and cancelled or pending ones;
:func:`check_ship_date` rejects a ship time before the order was placed; and
:func:`choose_items` rejects items that are not the order's and quantities beyond what is
left to ship.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.amazon.models.orders import FULFILLED_BY_AMAZON, Order
from syncd.amazon.shipments import PackageItem, next_package_reference
from syncd.db import intake as intake_store
from syncd.db.intake import RequestRow
from syncd.db.outbox import ACTIVE_STATES, OutboxRow
from syncd.i18n import gettext as _
from syncd.shipping.carriers import Carrier, CarrierMap

# Order-level programs whose orders do not take a confirmShipment from the seller.
SHIP_PLUS = "FBM_SHIP_PLUS"
EASY_SHIP = "AMAZON_EASY_SHIP"
# A ship time up to this far ahead is taken (a warehouse clock running fast); the outbox
# holds the row until Amazon's clock passes it. Beyond it the time zone is likely wrong.
FUTURE_TOLERANCE = timedelta(hours=1)
# A ship time this much before the order's creation still passes: clocks differ.
SHIP_BEFORE_ORDER_TOLERANCE = timedelta(hours=1)
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2}):?([0-5]\d)?$", re.IGNORECASE)


class RejectedError(Exception):
    """A request syncd will not send, with a stable code and a reason in the operator's language."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


@dataclass(frozen=True)
class RequestedItem:
    """One line of a request's items: an order item id or a SKU, and a quantity."""

    quantity: int
    order_item_id: str | None = None
    sku: str | None = None


@dataclass(frozen=True)
class ParsedRequest:
    """The parts of a request that do not depend on the order."""

    carrier: Carrier
    tracking_number: str
    ship_date: datetime  # UTC
    shipping_method: str | None
    items: tuple[RequestedItem, ...]  # empty: every item left to ship


def parse_zone(name: str) -> timezone | ZoneInfo:
    """Return the time zone a request names: an IANA name, ``UTC``/``Z`` or an offset.

    Raises:
        RejectedError: the name is neither.
    """
    text = name.strip()
    if text.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta <= timedelta(hours=14):
            return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise RejectedError(
            "bad_time_zone",
            _(
                "shipped_at_zone {zone!r} is not a time zone; use a name such as Asia/Shanghai "
                "or an offset such as +08:00"
            ).format(zone=name),
        ) from None


def ship_time_utc(local: datetime, zone_name: str) -> datetime:
    """Return the UTC instant of a wall-clock ship time in the named zone.

    A wall-clock time that a zone skips (the hour lost to daylight saving time) is rejected.
    One that occurs twice (the hour repeated when daylight saving time ends) is taken at its
    first occurrence. China has no daylight saving time, so neither happens with Beijing time.

    Raises:
        RejectedError: the zone is unknown or the time does not exist in it.
    """
    zone = parse_zone(zone_name)
    try:
        if local.tzinfo is not None:
            return local.astimezone(UTC)
        aware = local.replace(tzinfo=zone, fold=0)
        utc = aware.astimezone(UTC)
        there_and_back = utc.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        # 0001-01-01 (a .NET DateTime.MinValue) or 9999-12-31 leave the datetime range.
        raise RejectedError(
            "bad_ship_date",
            _("shipped_at {time} is not a real ship time").format(time=local.isoformat(sep=" ")),
        ) from None
    if isinstance(zone, ZoneInfo) and there_and_back != local:
        raise RejectedError(
            "bad_ship_date",
            _("shipped_at {time} does not exist in {zone} (a daylight saving gap)").format(
                time=local.isoformat(sep=" "), zone=zone_name
            ),
        )
    return utc


def parse_items(text: str | None) -> tuple[RequestedItem, ...]:
    """Read a request's ``items`` JSON; empty or NULL means every item left to ship.

    Raises:
        RejectedError: the text is not a list of objects with a positive whole quantity and
            either ``order_item_id`` or ``sku``.
    """
    if text is None or not text.strip():
        return ()
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raw = None
    if not isinstance(raw, list):
        raise RejectedError("bad_items", _bad_items(text))
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise RejectedError("bad_items", _bad_items(text))
        quantity = entry.get("quantity")
        item_id = entry.get("order_item_id")
        sku = entry.get("sku")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise RejectedError("bad_items", _bad_items(text))
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            # An id that went through a numeric column has lost any leading zeros.
            raise RejectedError(
                "bad_items",
                _("order_item_id {value} must be a JSON string, as Amazon sends it").format(
                    value=item_id
                ),
            )
        if not (isinstance(item_id, str) and item_id) and not (isinstance(sku, str) and sku):
            raise RejectedError("bad_items", _bad_items(text))
        items.append(
            RequestedItem(
                quantity,
                item_id if isinstance(item_id, str) and item_id else None,
                sku if isinstance(sku, str) and sku else None,
            )
        )
    return tuple(items)


def _bad_items(text: str) -> str:
    return _(
        'items {value} is not a JSON list such as [{{"sku": "ABC-1", "quantity": 2}}] or '
        '[{{"order_item_id": "12345678901234", "quantity": 1}}]'
    ).format(value=text[:200])


def parse_request(request: RequestRow, carriers: CarrierMap, now: datetime) -> ParsedRequest:
    """Check everything in a request that does not need the order.

    Raises:
        RejectedError: the first problem found.
    """
    if request.contract_version != intake_store.CONTRACT_VERSION:
        raise RejectedError(
            "unsupported_version",
            _("contract_version {version} is not supported; this syncd reads version 1").format(
                version=request.contract_version
            ),
        )
    tracking = (request.tracking_number or "").strip()
    if not tracking:
        raise RejectedError("missing_tracking", _("the tracking number is missing"))
    carrier = carriers.resolve(request.carrier or "", request.carrier_name)
    if carrier is None:
        raise RejectedError(
            "unknown_carrier",
            _(
                "the carrier is missing, or it is Other without carrier_name; give the carrier "
                "as the WMS names it (such as 云途 or UPS) or fill carrier_name"
            ),
        )
    order_id = request.amazon_order_id.strip()
    if order_id in ("", ".", ".."):
        raise RejectedError(
            "unknown_order",
            _("amazon_order_id {value!r} is not an Amazon order id").format(
                value=request.amazon_order_id
            ),
        )
    if request.shipped_at is None and request.shipped_at_text is not None:
        raise RejectedError(
            "bad_ship_date",
            _("shipped_at {value!r} is not a date and time such as 2026-12-04 15:30:00").format(
                value=request.shipped_at_text
            ),
        )
    if request.shipped_at is None or not (request.shipped_at_zone or "").strip():
        raise RejectedError(
            "missing_ship_date",
            _("shipped_at and shipped_at_zone are both needed (for example Asia/Shanghai)"),
        )
    ship_date = ship_time_utc(request.shipped_at, request.shipped_at_zone or "")
    if ship_date > now + FUTURE_TOLERANCE:
        raise RejectedError(
            "ship_date_in_future",
            _(
                "shipped_at {time} ({zone}) lies in the future; check the time zone named in "
                "shipped_at_zone"
            ).format(time=request.shipped_at.isoformat(sep=" "), zone=request.shipped_at_zone),
        )
    method = (request.shipping_method or "").strip() or None
    return ParsedRequest(carrier, tracking, ship_date, method, parse_items(request.items))


def check_order(order: Order) -> None:
    """Reject orders whose shipment the seller does not confirm.

    Raises:
        RejectedError: FBA, Ship+, Easy Ship, cancelled or pending orders.
    """
    fulfillment = order.fulfillment
    if fulfillment is not None and fulfillment.fulfilled_by == FULFILLED_BY_AMAZON:
        raise RejectedError(
            "fba_order", _("Amazon fulfils this order (FBA) and confirms it itself")
        )
    if SHIP_PLUS in order.programs:
        raise RejectedError(
            "ship_plus_order",
            _("this is a Ship+ order; Amazon rejects shipment confirmations for Ship+ orders"),
        )
    if EASY_SHIP in order.programs:
        raise RejectedError(
            "easy_ship_order",
            _("this is an Easy Ship order; Amazon's carrier picks it up and confirms it"),
        )
    status = order.fulfillment_status
    if status == "CANCELLED":
        raise RejectedError("cancelled_order", _("the order is cancelled"))
    if status in ("PENDING", "PENDING_AVAILABILITY"):
        raise RejectedError(
            "pending_order", _("the order is still pending; Amazon has not released it to ship")
        )


def check_ship_date(order: Order, ship_date: datetime) -> None:
    """Reject a ship time before the order was placed (a wrong zone or a placeholder date).

    Raises:
        RejectedError: ``bad_ship_date``.
    """
    if ship_date < order.created_time - SHIP_BEFORE_ORDER_TOLERANCE:
        raise RejectedError(
            "bad_ship_date",
            _("the ship time {ship} is before the order was placed ({placed})").format(
                ship=ship_date.isoformat(), placed=order.created_time.isoformat()
            ),
        )


def amazon_packages(order: Order) -> dict[str, dict[str, int]]:
    """Return the order's packages on Amazon: reference to {order item id: quantity}."""
    found: dict[str, dict[str, int]] = {}
    for package in order.packages or []:
        items = found.setdefault(package.package_reference_id, {})
        for item in package.package_items:
            items[item.order_item_id] = items.get(item.order_item_id, 0) + item.quantity
    return found


def left_to_ship(order: Order, outbox_rows: Sequence[OutboxRow]) -> dict[str, int]:
    """Return, per order item id, how many are neither on Amazon nor in the outbox.

    A package counts once: an outbox row whose reference Amazon already shows replaces that
    package (a resend edits it). Without package data, Amazon's shipped quantity is used.
    """
    packages = amazon_packages(order)
    for row in outbox_rows:
        if row.state in ACTIVE_STATES:
            packages[row.package_reference_id] = {
                item.order_item_id: item.quantity for item in row.items
            }
    shipped: dict[str, int] = {}
    for items in packages.values():
        for item_id, quantity in items.items():
            shipped[item_id] = shipped.get(item_id, 0) + quantity
    left = {}
    for item in order.order_items:
        done = shipped.get(item.order_item_id, 0)
        if order.packages is None and item.fulfillment is not None:
            done = max(done, item.fulfillment.quantity_fulfilled or 0)
        left[item.order_item_id] = max(0, item.quantity_ordered - done)
    return left


def choose_items(
    order: Order, requested: Sequence[RequestedItem], left: Mapping[str, int]
) -> tuple[PackageItem, ...]:
    """Turn the requested items into order items and quantities.

    Empty ``requested`` takes every item left to ship. A SKU spreads over the order's lines
    of that SKU in their order.

    Raises:
        RejectedError: an unknown item or SKU, or more than is left to ship.
    """
    if not requested:
        items = tuple(PackageItem(item_id, count) for item_id, count in left.items() if count > 0)
        if not items:
            raise RejectedError(
                "nothing_to_ship", _("every item of the order is already shipped or queued")
            )
        return items
    remaining = dict(left)
    chosen: dict[str, int] = {}
    for entry in requested:
        if entry.order_item_id is not None:
            if entry.order_item_id not in remaining:
                raise RejectedError(
                    "unknown_item",
                    _("order item {item} is not an item of this order").format(
                        item=entry.order_item_id
                    ),
                )
            lines = [entry.order_item_id]
        else:
            lines = [
                item.order_item_id
                for item in order.order_items
                if item.product is not None and item.product.seller_sku == entry.sku
            ]
            if not lines:
                raise RejectedError(
                    "unknown_item",
                    _("SKU {sku} is not in this order").format(sku=entry.sku),
                )
        wanted = entry.quantity
        for line in lines:
            take = min(wanted, remaining[line])
            if take:
                chosen[line] = chosen.get(line, 0) + take
                remaining[line] -= take
                wanted -= take
        if wanted:
            label = entry.order_item_id or entry.sku
            raise RejectedError(
                "quantity_exceeds_unshipped",
                _("{item}: {asked} requested, {left} left to ship").format(
                    item=label, asked=entry.quantity, left=entry.quantity - wanted
                ),
            )
    return tuple(PackageItem(item_id, count) for item_id, count in chosen.items())


def allocate_reference(order: Order, outbox_rows: Sequence[OutboxRow]) -> str:
    """Return the next package reference: above every one Amazon or the outbox has used."""
    used = [*amazon_packages(order), *(row.package_reference_id for row in outbox_rows)]
    return next_package_reference(used)


def request_values(
    *,
    account: str,
    order_id: str,
    carrier: str,
    tracking_number: str,
    shipped_at: datetime,
    source_system: str,
    source_key: str,
    items: Sequence[Mapping[str, Any]] | None = None,
    carrier_name: str | None = None,
    shipping_method: str | None = None,
) -> dict[str, Any]:
    """Return the intake row for a request made in Python; ``shipped_at`` must be aware.

    Raises:
        ValueError: ``shipped_at`` has no time zone.
    """
    if shipped_at.utcoffset() is None:
        raise ValueError("shipped_at needs a time zone, for example datetime.now(UTC)")
    return {
        "contract_version": intake_store.CONTRACT_VERSION,
        "source_system": source_system,
        "source_key": source_key,
        "account": account,
        "amazon_order_id": order_id,
        "carrier": carrier,
        "carrier_name": carrier_name,
        "shipping_method": shipping_method,
        "tracking_number": tracking_number,
        "shipped_at": shipped_at.astimezone(UTC).replace(tzinfo=None),
        "shipped_at_zone": "UTC",
        "items": None if not items else json.dumps(list(items), ensure_ascii=False),
        "status": intake_store.NEW,
    }
