"""From an Amazon order to syncd's rows: typed columns, raw JSON without PII, PII apart.

Buyer and recipient data (names, addresses, phones, e-mails, tax registrations) and the gift
messages of items never go into ``raw_json``. They are kept in their own columns, encrypted,
so that encryption and the retention purge have one place to act.

Money is never added across currencies, and a missing amount stays None (a pending order
has no prices yet), never 0.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table

from syncd import errors
from syncd.amazon.models.orders import Order, OrderItem, ProceedsBreakdown
from syncd.crypto import Vault
from syncd.db import retention
from syncd.db.models import ID_LENGTH, table_of
from syncd.db.models import Order as OrderModel
from syncd.db.models import OrderItem as OrderItemModel
from syncd.db.types import MONEY_LIMIT
from syncd.i18n import gettext as _
from syncd.i18n import gettext_noop as N_

_ORDERS = table_of(OrderModel)
_ITEMS = table_of(OrderItemModel)

# Breakdown types of an item's proceeds and the column each one fills.
_BREAKDOWN_COLUMNS = {
    "ITEM": "item_amount",
    "SHIPPING": "shipping_amount",
    "TAX": "tax_amount",
    "DISCOUNT": "discount_amount",
}


@dataclass
class PiiParts:
    """The PII taken out of one order's raw JSON."""

    buyer: dict[str, Any] | None = None
    recipient: dict[str, Any] | None = None
    tax_registrations: list[Any] | None = None
    gift_messages: dict[str, str] = field(default_factory=dict)  # by order item id

    @property
    def is_empty(self) -> bool:
        """True when the order carried no PII at all."""
        return (
            self.buyer is None
            and self.recipient is None
            and self.tax_registrations is None
            and not self.gift_messages
        )


def strip_pii(raw: dict[str, Any]) -> tuple[dict[str, Any], PiiParts]:
    """Return a copy of ``raw`` without PII, and the PII it held.

    Removed: ``buyer``, ``recipient``, the tax registrations under ``tax`` (they name the
    buyer's company and address), and each item's gift message. ``raw`` may be an order that
    failed validation, so no part of it is assumed to have the documented type.
    """
    clean = copy.deepcopy(raw)
    parts = PiiParts()
    buyer = clean.pop("buyer", None)
    recipient = clean.pop("recipient", None)
    tax = clean.get("tax")
    if isinstance(tax, dict) and "taxRegistrations" in tax:
        registrations = tax.pop("taxRegistrations")
        parts.tax_registrations = registrations if isinstance(registrations, list) else None
    parts.buyer = buyer if isinstance(buyer, dict) else None
    parts.recipient = recipient if isinstance(recipient, dict) else None
    items = clean.get("orderItems")
    for item in items if isinstance(items, list) else []:
        message = _pop_gift_message(item)
        if message is not None and isinstance(item.get("orderItemId"), str):
            parts.gift_messages[item["orderItemId"]] = message
    return clean, parts


def _pop_gift_message(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    fulfillment = item.get("fulfillment")
    packing = fulfillment.get("packing") if isinstance(fulfillment, dict) else None
    if not isinstance(packing, dict):
        return None
    gift = packing.get("giftOption")
    if not isinstance(gift, dict) or "giftMessage" not in gift:
        return None
    message = gift.pop("giftMessage")
    return str(message) if message is not None else None


@dataclass
class OrderRows:
    """The row of one order and the rows of its items, ready for the database."""

    order: dict[str, Any]
    items: list[dict[str, Any]]
    pii: PiiParts

    @property
    def content_hash(self) -> str:
        """The hash stored with the order: equal hashes mean Amazon sent the same order."""
        return str(self.order["content_hash"])

    @property
    def order_id(self) -> str:
        """Amazon's order id."""
        return str(self.order["order_id"])


def without_pii(rows: OrderRows) -> OrderRows:
    """Return ``rows`` with every PII column empty, for an order whose PII was purged.

    Amazon keeps returning the PII of an order after syncd's retention period ends, so a
    later fetch of a purged order must not store it again.
    """
    order = {**rows.order, **dict.fromkeys(retention.ORDER_PII_COLUMNS)}
    items = [{**item, "gift_message_pii": None} for item in rows.items]
    return OrderRows(order, items, PiiParts())


def build_rows(order: Order, raw: dict[str, Any], vault: Vault) -> OrderRows:
    """Map one parsed order and its raw JSON to rows; PII is encrypted with ``vault``.

    Raises:
        errors.SettingsError: the order carries PII but no encryption key is set; it names
            ``SYNCD_ENCRYPTION_KEY``, so no PII is ever stored in plain text.
    """
    clean, pii = strip_pii(raw)
    content_hash = hashlib.sha256(_dumps(raw).encode("utf-8")).hexdigest()
    fulfillment = order.fulfillment
    channel = order.sales_channel
    grand_total = order.proceeds.grand_total if order.proceeds is not None else None
    row: dict[str, Any] = {
        "order_id": order.order_id,
        "marketplace_id": order.marketplace_id,
        "sales_channel": None if channel is None else channel.channel_name,
        "is_multichannel": order.is_multichannel,
        "status": order.fulfillment_status,
        "fulfilled_by": None if fulfillment is None else fulfillment.fulfilled_by,
        "service_level": None if fulfillment is None else fulfillment.fulfillment_service_level,
        "programs": ",".join(order.programs) or None,
        "purchase_time": order.created_time,
        "last_updated_time": order.last_updated_time,
        "ship_by_earliest": _window_start(fulfillment and fulfillment.ship_by_window),
        "ship_by_latest": _window_end(fulfillment and fulfillment.ship_by_window),
        "deliver_by_earliest": _window_start(fulfillment and fulfillment.deliver_by_window),
        "deliver_by_latest": _window_end(fulfillment and fulfillment.deliver_by_window),
        "order_total": None if grand_total is None else grand_total.amount,
        "currency": None if grand_total is None else grand_total.currency_code,
        "item_count": sum(item.quantity_ordered for item in order.order_items),
        "raw_json": _dumps(clean),
        "content_hash": content_hash,
        "buyer_pii": None if pii.buyer is None else vault.encrypt(_dumps(pii.buyer)),
        "recipient_pii": None if pii.recipient is None else vault.encrypt(_dumps(pii.recipient)),
        "tax_registrations_pii": (
            None if pii.tax_registrations is None else vault.encrypt(_dumps(pii.tax_registrations))
        ),
    }
    raw_items = {
        item.get("orderItemId"): item
        for item in clean.get("orderItems") or []
        if isinstance(item, dict)
    }
    items = [
        _without_nul(
            _item_row(item, raw_items.get(item.order_item_id, {}), pii.gift_messages, vault)
        )
        for item in order.order_items
    ]
    row = _without_nul(row)
    _check_lengths(order.order_id, row, _ORDERS)
    for item_row in items:
        _check_lengths(order.order_id, item_row, _ITEMS)
    return OrderRows(row, items, pii)


def _check_lengths(order_id: str, row: dict[str, Any], table: Table) -> None:
    """Reject text longer than its column and amounts too large for theirs, on every database.

    SQLite would store it, PostgreSQL and MariaDB would fail the page with a message that
    does not always name the column.

    Raises:
        errors.RecordError: naming the column, the length and the limit.
    """
    for column in table.columns:
        value = row.get(column.name)
        if isinstance(value, Decimal) and abs(value) >= MONEY_LIMIT:
            raise errors.RecordError(
                N_("order"),
                order_id[:ID_LENGTH],
                _("{column} is {value}, too large for the column").format(
                    column=column.name, value=value
                ),
            )
        if not isinstance(value, str) or not isinstance(column.type, String):
            continue
        limit = column.type.length
        if limit is not None and len(value) > limit:
            raise errors.RecordError(
                N_("order"),
                order_id[:ID_LENGTH],
                _("{column} is {length} characters long, but the column holds {limit}").format(
                    column=column.name, length=len(value), limit=limit
                ),
            )


def _without_nul(row: dict[str, Any]) -> dict[str, Any]:
    """Drop NUL characters from the text columns: PostgreSQL rejects them in text.

    The JSON columns keep them, escaped as ``\\u0000``.
    """
    return {
        key: value.replace("\x00", "") if isinstance(value, str) else value
        for key, value in row.items()
    }


def _item_row(
    item: OrderItem, raw: dict[str, Any], gift_messages: dict[str, str], vault: Vault
) -> dict[str, Any]:
    product = item.product
    unit = product.price.unit_price if product is not None and product.price is not None else None
    proceeds = item.proceeds
    total = proceeds.proceeds_total if proceeds is not None else None
    # The line's currency: the proceeds total's, else the unit price's.
    priced = total if total is not None else unit
    currency = None if priced is None else priced.currency_code
    row: dict[str, Any] = {
        "order_item_id": item.order_item_id,
        "seller_sku": None if product is None else product.seller_sku,
        "asin": None if product is None else product.asin,
        "title": None if product is None else product.title,
        "quantity_ordered": item.quantity_ordered,
        "quantity_shipped": None
        if item.fulfillment is None
        else item.fulfillment.quantity_fulfilled,
        "quantity_unshipped": (
            None if item.fulfillment is None else item.fulfillment.quantity_unfulfilled
        ),
        "unit_price": None
        if unit is None
        else _same_currency(unit.amount, unit.currency_code, currency),
        "proceeds_total": None if total is None else total.amount,
        "currency": currency,
        "promotion_ids": _promotion_ids(item),
        "gift_message_pii": (
            vault.encrypt(gift_messages[item.order_item_id])
            if item.order_item_id in gift_messages
            else None
        ),
        "raw_json": _dumps(raw),
    }
    breakdowns = proceeds.breakdowns if proceeds is not None else []
    if row["currency"] is None:
        # No total and no price: the breakdowns name the line's currency.
        row["currency"] = next(
            (b.subtotal.currency_code for b in breakdowns if b.subtotal is not None), None
        )
    row.update(dict.fromkeys(_BREAKDOWN_COLUMNS.values()))
    for breakdown in breakdowns:
        target = _BREAKDOWN_COLUMNS.get(breakdown.type)
        amount = _breakdown_amount(breakdown, row["currency"])
        if target is not None and amount is not None:
            # Two breakdowns of one type add up; an amount in another currency is left out.
            row[target] = amount if row[target] is None else row[target] + amount
    return row


def _breakdown_amount(breakdown: ProceedsBreakdown, currency: str | None) -> Decimal | None:
    subtotal = breakdown.subtotal
    if subtotal is None or currency is None:
        return None
    return _same_currency(subtotal.amount, subtotal.currency_code, currency)


def _same_currency(
    amount: Decimal | None, amount_currency: str | None, currency: str | None
) -> Decimal | None:
    # An amount in another currency than the line's cannot share its currency column.
    if amount is None or (currency is not None and amount_currency != currency):
        return None
    return amount


def _promotion_ids(item: OrderItem) -> str | None:
    if item.promotion is None:
        return None
    ids = [b.promotion_id for b in item.promotion.breakdowns if b.promotion_id]
    return ",".join(ids) or None


def _window_start(window: Any) -> Any:
    return None if not window else window.earliest_date_time


def _window_end(window: Any) -> Any:
    return None if not window else window.latest_date_time


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
