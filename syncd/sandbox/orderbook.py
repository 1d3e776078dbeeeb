"""The order world: every seller's orders, generated lazily and changed over time.

A seller's orders in a marketplace are generated the first time a request or a control
call reads that marketplace. Scheduled changes (PENDING to UNSHIPPED, UNSHIPPED to SHIPPED,
cancellations) take effect when the sandbox clock passes their time: they are applied in
time order before any read. Once a package is recorded on an order (by confirmShipment or
the control API), its scheduled changes are dropped, so the seller's own packages are the
only ones it gets. Control calls create, patch and evolve orders at the sandbox's now.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.sandbox import clock, lifecycle, marketplaces, packages, sellers
from syncd.sandbox.generator import ItemSpec, OrderGenerator, ScheduledChange
from syncd.sandbox.lifecycle import Document, SandboxOrder
from syncd.sandbox.marketplaces import Marketplace

# Status changes still possible from each status, for scheduled and evolved changes.
_NEXT_STATUSES: dict[str, frozenset[str]] = {
    "PENDING_AVAILABILITY": frozenset({"PENDING", "UNSHIPPED", "CANCELLED"}),
    "PENDING": frozenset({"UNSHIPPED", "CANCELLED"}),
    "UNSHIPPED": frozenset({"PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED"}),
    "PARTIALLY_SHIPPED": frozenset({"SHIPPED"}),
}


class OrderNotFoundError(LookupError):
    """No order with this id belongs to the seller."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} not found for this seller")


@dataclass
class SellerBook:
    """One seller's orders, the marketplaces generated so far and the pending changes."""

    seller: sellers.Seller
    orders: dict[str, SandboxOrder] = field(default_factory=dict)
    generated: set[str] = field(default_factory=set)
    schedule: list[tuple[datetime, int, str, str]] = field(default_factory=list)
    schedule_counter: int = 0
    settled: set[str] = field(default_factory=set)  # order ids whose schedule is dropped
    created_count: int = 0
    evolve_count: int = 0


@dataclass(frozen=True)
class OrderChange:
    """One change made by :meth:`OrderBook.evolve`."""

    order_id: str
    change: str  # "created" or "status"
    previous_status: str | None
    status: str

    def to_json(self) -> dict[str, Any]:
        """Return the change for the control API."""
        return {
            "order_id": self.order_id,
            "change": self.change,
            "previous_status": self.previous_status,
            "status": self.status,
        }


class OrderBook:
    """All sellers' orders. Not thread-safe: callers hold the state lock."""

    def __init__(
        self, seed: int, generator: OrderGenerator, selling_in: frozenset[str] | None
    ) -> None:
        self._seed = seed
        self._generator = generator
        self._selling_in = selling_in
        self._books: dict[str, SellerBook] = {}

    def seller(self, refresh_token: str) -> sellers.Seller:
        """Return the seller of a refresh token, creating its (still empty) book."""
        return self._book(refresh_token).seller

    def orders(
        self, refresh_token: str, marketplace_ids: Iterable[str], now: datetime
    ) -> list[SandboxOrder]:
        """Return a seller's orders in the given marketplaces as of ``now``, by order id."""
        requested_ids = set(marketplace_ids)
        book = self._prepared_book(refresh_token, requested_ids, now)
        selected = [
            order for order in book.orders.values() if order.marketplace_id in requested_ids
        ]
        return sorted(selected, key=lambda order: order.order_id)

    def find(
        self, refresh_token: str, order_id: str, region: str, now: datetime
    ) -> SandboxOrder | None:
        """Return a seller's order by id if it belongs to a marketplace of ``region``."""
        region_ids = {m.marketplace_id for m in marketplaces.marketplaces_of(region)}
        book = self._prepared_book(refresh_token, region_ids, now)
        order = book.orders.get(order_id)
        if order is None or order.marketplace_id not in region_ids:
            return None
        return order

    def create(
        self, refresh_token: str, marketplace: Marketplace, partial: Document, now: datetime
    ) -> SandboxOrder:
        """Add an order built from a partial Amazon-shaped body, completed by the generator.

        These fields steer the generator: ``fulfillment.fulfillmentStatus`` (default
        UNSHIPPED), ``fulfillment.fulfilledBy``, ``salesChannel.channelName`` and each
        item's quantity, SKU, ASIN, title and unit price. Every other field given is merged
        over the generated order. Without ``programs`` the order never gets FBM_SHIP_PLUS,
        which would make confirmShipment reject it; give ``programs`` to choose them.

        Raises:
            ValueError: the body is not a usable partial order.
        """
        book = self._prepared_book(refresh_token, {marketplace.marketplace_id}, now)
        rng = book.seller.rng(self._seed, "created", str(book.created_count))
        book.created_count += 1
        created = _partial_time(partial, "createdTime") or now
        status = _partial_field(partial, "fulfillment", "fulfillmentStatus") or "UNSHIPPED"

        taken_ids = set(book.orders)
        order = self._generator.new_order(
            book.seller,
            marketplace,
            rng,
            created,
            taken_ids,
            fulfilled_by=_partial_field(partial, "fulfillment", "fulfilledBy"),
            channel=_partial_field(partial, "salesChannel", "channelName"),
            item_specs=_item_specs(partial.get("orderItems")),
        )
        self._set_status(book, order, status, max(created, now), rng)
        if "programs" not in partial:
            order.document = _without_program(order.document, "FBM_SHIP_PLUS")
        order.document = _merge_partial(order.document, partial, now)
        if order.order_id in book.orders:
            raise ValueError(f"order {order.order_id} already exists")
        book.orders[order.order_id] = order
        return order

    def patch(
        self,
        refresh_token: str,
        order_id: str,
        now: datetime,
        *,
        status: str | None = None,
        changes: Document | None = None,
    ) -> SandboxOrder:
        """Change an order's status and/or fields (JSON merge patch) and bump lastUpdatedTime.

        Raises:
            OrderNotFoundError: the seller has no order with this id.
            ValueError: ``status`` is not a fulfillment status.
        """
        book = self._book(refresh_token)
        self._apply_due_changes(book, now)
        order = book.orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)

        if status is not None:
            rng = book.seller.rng(self._seed, "patch", order_id, clock.format_time(now))
            self._set_status(book, order, status, now, rng)
        document = merge_patch(order.document, changes or {})
        if "lastUpdatedTime" not in (changes or {}):
            lifecycle.touch(document, now)
        order.document = document
        return order

    def existing_order(self, refresh_token: str, order_id: str, now: datetime) -> SandboxOrder:
        """Return a seller's order in any region, with the changes due by ``now`` applied.

        Raises:
            OrderNotFoundError: the seller has no order with this id.
        """
        book = self._book(refresh_token)
        self._apply_due_changes(book, now)
        order = book.orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    def ship_package(
        self, refresh_token: str, order_id: str, package: Document, now: datetime
    ) -> SandboxOrder:
        """Record a package on an order now; a package with the same reference is replaced.

        The package gets the order's ship-from address unless it has one. The order's
        scheduled status changes are dropped.

        Raises:
            OrderNotFoundError: the seller has no order with this id.
        """
        book = self._book(refresh_token)
        order = self.existing_order(refresh_token, order_id, now)
        if "shipFromAddress" not in package:
            shipper = self._shipper(book, order)
            package = {**package, "shipFromAddress": dict(shipper.ship_from)}
        packages.record_package(order, package, now)
        book.settled.add(order_id)
        return order

    def add_manual_package(
        self, refresh_token: str, order_id: str, partial: Document, now: datetime
    ) -> Document:
        """Record a package confirmed by hand (see :func:`packages.manual_package`); return it.

        Raises:
            OrderNotFoundError: the seller has no order with this id.
            ValueError: the order cannot get this package.
            TypeError: an entry of ``packageItems`` is not an object.
        """
        book = self._book(refresh_token)
        order = self.existing_order(refresh_token, order_id, now)
        rng = book.seller.rng(self._seed, "package", order_id, clock.format_time(now))
        package = packages.manual_package(
            order, partial, now, rng=rng, shipper=self._shipper(book, order)
        )
        self.ship_package(refresh_token, order_id, package, now)
        return package

    def evolve(
        self, refresh_token: str, marketplace_ids: list[str], count: int, now: datetime
    ) -> list[OrderChange]:
        """Apply ``count`` realistic changes now: status moves of open orders and new orders."""
        book = self._prepared_book(refresh_token, set(marketplace_ids), now)
        rng = book.seller.rng(self._seed, "evolve", str(book.evolve_count))
        book.evolve_count += 1
        candidates = [
            order
            for order in sorted(book.orders.values(), key=lambda order: order.order_id)
            if order.marketplace_id in marketplace_ids
            and order.status in _NEXT_STATUSES
            and _last_updated(order) <= now
        ]

        changes: list[OrderChange] = []
        for _ in range(count):
            if not candidates or rng.random() < 0.2:
                changes.append(self._evolve_new_order(book, rng, marketplace_ids, now))
                continue
            order = candidates.pop(rng.randrange(len(candidates)))
            previous = order.status
            target = _pick_next_status(rng, order)
            self._set_status(book, order, target, now, rng)
            changes.append(OrderChange(order.order_id, "status", previous, order.status))
        return changes

    # -- internals -----------------------------------------------------------------------------

    def _book(self, refresh_token: str) -> SellerBook:
        book = self._books.get(refresh_token)
        if book is None:
            book = SellerBook(seller=sellers.derive_seller(self._seed, refresh_token))
            self._books[refresh_token] = book
        return book

    def _prepared_book(
        self, refresh_token: str, marketplace_ids: set[str], now: datetime
    ) -> SellerBook:
        book = self._book(refresh_token)
        for marketplace_id in sorted(marketplace_ids - book.generated):
            self._generate(book, marketplace_id)
        self._apply_due_changes(book, now)
        return book

    def _generate(self, book: SellerBook, marketplace_id: str) -> None:
        book.generated.add(marketplace_id)
        marketplace = marketplaces.find_marketplace(marketplace_id)
        if marketplace is None:
            return
        if self._selling_in is not None and marketplace_id not in self._selling_in:
            return
        taken_ids = set(book.orders)
        generated = self._generator.generate(book.seller, marketplace, taken_ids)
        for order in generated.orders:
            book.orders[order.order_id] = order
        for change in generated.changes:
            self._schedule(book, change)

    def _schedule(self, book: SellerBook, change: ScheduledChange) -> None:
        book.schedule_counter += 1
        entry = (change.at, book.schedule_counter, change.order_id, change.status)
        heapq.heappush(book.schedule, entry)

    def _apply_due_changes(self, book: SellerBook, now: datetime) -> None:
        while book.schedule and book.schedule[0][0] <= now:
            at, _, order_id, status = heapq.heappop(book.schedule)
            order = book.orders.get(order_id)
            if order is None or order_id in book.settled:
                continue
            if status not in _NEXT_STATUSES.get(order.status, frozenset()):
                continue  # patched or evolved since: the change no longer applies
            rng = sellers.seeded_random(self._seed, order_id, status, clock.format_time(at))
            self._set_status(book, order, status, at, rng)

    def _set_status(
        self, book: SellerBook, order: SandboxOrder, status: str, at: datetime, rng: random.Random
    ) -> None:
        lifecycle.set_status(order, status, at, rng, self._shipper(book, order))

    def _shipper(self, book: SellerBook, order: SandboxOrder) -> lifecycle.Shipper:
        marketplace = marketplaces.find_marketplace(order.marketplace_id)
        assert marketplace is not None
        return self._generator.shipper(book.seller, marketplace, order.order_id)

    def _evolve_new_order(
        self, book: SellerBook, rng: random.Random, marketplace_ids: list[str], now: datetime
    ) -> OrderChange:
        marketplace = marketplaces.find_marketplace(rng.choice(sorted(marketplace_ids)))
        assert marketplace is not None
        taken_ids = set(book.orders)
        order = self._generator.new_order(book.seller, marketplace, rng, now, taken_ids)
        self._set_status(book, order, rng.choice(("PENDING", "UNSHIPPED")), now, rng)
        book.orders[order.order_id] = order
        return OrderChange(order.order_id, "created", None, order.status)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): objects merge, ``null`` removes, the rest replaces.

    Returns new containers along the patched paths and shares untouched ones with
    ``target``, which stays unchanged.
    """
    if not isinstance(patch, dict):
        return lifecycle.copy_document(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pick_next_status(rng: random.Random, order: SandboxOrder) -> str:
    status = order.status
    draw = rng.random()
    if status in ("PENDING", "PENDING_AVAILABILITY"):
        return "UNSHIPPED" if draw < 0.8 else "CANCELLED"
    if status == "PARTIALLY_SHIPPED":
        return "SHIPPED"
    units = sum(int(item["quantityOrdered"]) for item in order.document["orderItems"])
    if draw < 0.7:
        return "SHIPPED"
    if draw < 0.85 and units > 1:
        return "PARTIALLY_SHIPPED"
    return "CANCELLED"


def _partial_field(partial: Document, section: str, key: str) -> str | None:
    value = partial.get(section, {}).get(key) if isinstance(partial.get(section), dict) else None
    return str(value) if value is not None else None


def _partial_time(partial: Document, key: str) -> datetime | None:
    value = partial.get(key)
    if value is None:
        return None
    parsed = clock.parse_time(str(value))
    if parsed is None:
        raise ValueError(f"{key} is not an ISO 8601 date-time: {value!r}")
    return parsed


def _item_specs(partial_items: Any) -> list[ItemSpec] | None:
    if partial_items is None:
        return None
    if not isinstance(partial_items, list) or not partial_items:
        raise ValueError("orderItems must be a non-empty list of partial order items")
    return [_item_spec(item) for item in partial_items]


def _item_spec(item: Any) -> ItemSpec:
    if not isinstance(item, dict):
        raise TypeError("each entry of orderItems must be an object")
    product = item.get("product") or {}
    unit_price = ((product.get("price") or {}).get("unitPrice") or {}).get("amount")
    quantity = item.get("quantityOrdered")
    if quantity is not None and (not isinstance(quantity, int) or quantity < 1):
        raise ValueError(f"quantityOrdered must be a positive integer, not {quantity!r}")
    try:
        price = Decimal(str(unit_price)) if unit_price is not None else None
    except InvalidOperation as exc:
        raise ValueError(f"unitPrice.amount is not a decimal number: {unit_price!r}") from exc
    return ItemSpec(
        sku=product.get("sellerSku"),
        asin=product.get("asin"),
        title=product.get("title"),
        quantity=quantity,
        unit_price=price,
    )


def _merge_partial(document: Document, partial: Document, now: datetime) -> Document:
    rest = {key: value for key, value in partial.items() if key != "orderItems"}
    merged: Document = merge_patch(document, rest)
    partial_items = partial.get("orderItems") or []
    merged["orderItems"] = [
        merge_patch(item, partial_items[index]) if index < len(partial_items) else item
        for index, item in enumerate(merged["orderItems"])
    ]
    if "lastUpdatedTime" not in partial:
        merged["lastUpdatedTime"] = clock.format_time(
            max(now, clock.parse_time(merged["createdTime"]) or now)
        )
    return merged


def _without_program(document: Document, program: str) -> Document:
    programs = [name for name in document.get("programs", []) if name != program]
    if programs:
        return {**document, "programs": programs}
    return {key: value for key, value in document.items() if key != "programs"}


def _last_updated(order: SandboxOrder) -> datetime:
    return datetime.fromisoformat(str(order.document["lastUpdatedTime"]).replace("Z", "+00:00"))
