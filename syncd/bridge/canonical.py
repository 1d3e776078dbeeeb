"""Building the :class:`~syncd.bridge.fields.CanonicalOrder` of a stored order.

The order's typed columns give most fields. Its PII is decrypted from the encrypted columns
only when the mapping fills a PII column and the retention period has not passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from syncd.amazon.marketplaces import MARKETPLACES
from syncd.bridge.fields import LINE_FIELDS, ORDER_FIELDS, CanonicalLine, CanonicalOrder
from syncd.crypto import Vault
from syncd.db.models import OrderItem, table_of

_ITEMS = table_of(OrderItem)
_COUNTRY = {m.marketplace_id: m.country_code for m in MARKETPLACES}

# Amazon's names in the buyer and recipient JSON, by canonical field.
_BUYER_KEYS = {
    "buyer_name": "buyerName",
    "buyer_email": "buyerEmail",
    "buyer_company_name": "buyerCompanyName",
    "buyer_purchase_order_number": "buyerPurchaseOrderNumber",
}
_ADDRESS_KEYS = {
    "recipient_name": "name",
    "recipient_company_name": "companyName",
    "address_line1": "addressLine1",
    "address_line2": "addressLine2",
    "address_line3": "addressLine3",
    "city": "city",
    "district_or_county": "districtOrCounty",
    "state_or_region": "stateOrRegion",
    "municipality": "municipality",
    "postal_code": "postalCode",
    "country_code": "countryCode",
    "phone": "phone",
}


def load_items(connection: Connection, order_pks: Sequence[int]) -> dict[int, list[Any]]:
    """Return the stored items of each order, in the order Amazon listed them."""
    items: dict[int, list[Any]] = {pk: [] for pk in order_pks}
    if not order_pks:
        return items
    rows = connection.execute(
        select(_ITEMS).where(_ITEMS.c.order_pk.in_(list(order_pks))).order_by(_ITEMS.c.id)
    )
    for row in rows:
        items[row.order_pk].append(row)
    return items


def build_order(
    order: Any,
    items: Sequence[Any],
    account: str,
    *,
    vault: Vault | None,
) -> CanonicalOrder:
    """Return the canonical order of a stored order row and its item rows.

    ``vault`` decrypts the PII columns, and None leaves every PII field empty.
    """
    values: dict[str, Any] = {
        name: getattr(order, name, None) for name in ORDER_FIELDS if name in order._fields
    }
    values["account"] = account
    values["marketplace_country"] = _COUNTRY.get(order.marketplace_id or "")
    values.update(_pii_values(order, vault))
    lines = tuple(_build_line(item, vault) for item in items)
    raw = json.loads(order.raw_json) if order.raw_json else {}
    return CanonicalOrder(values=values, lines=lines, raw=raw)


def _pii_values(order: Any, vault: Vault | None) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys([*_BUYER_KEYS, *_ADDRESS_KEYS])
    if vault is None:
        return values
    buyer = _decrypted_json(vault, order.buyer_pii, "buyer")
    for field, key in _BUYER_KEYS.items():
        values[field] = _text(buyer.get(key))
    recipient = _decrypted_json(vault, order.recipient_pii, "recipient")
    address = recipient.get("deliveryAddress")
    address = address if isinstance(address, Mapping) else {}
    for field, key in _ADDRESS_KEYS.items():
        values[field] = _text(address.get(key))
    return values


def _build_line(item: Any, vault: Vault | None) -> CanonicalLine:
    values = {name: getattr(item, name, None) for name in LINE_FIELDS if name in item._fields}
    values["gift_message"] = (
        vault.decrypt(item.gift_message_pii, "gift message")
        if vault is not None and item.gift_message_pii
        else None
    )
    return CanonicalLine(values=values)


def _decrypted_json(vault: Vault, token: str | None, what: str) -> Mapping[str, Any]:
    if not token:
        return {}
    value = json.loads(vault.decrypt(token, what))
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
