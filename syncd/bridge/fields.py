"""The canonical fields a mapping can copy into ERP columns, and the order handed to code hooks.

Each field has a kind (text, integer, amount, time, flag), the longest text Amazon sends
for it where that is known, the closed set of values Amazon can send where there is one,
and whether it is buyer PII. The mapping check compares these with the reflected columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from syncd.amazon.marketplaces import MARKETPLACES

Kind = Literal["text", "integer", "amount", "time", "flag"]

# Amazon's order ids are opaque strings of 19 characters today (order item ids are 14
# digits). The check rejects an id column shorter than 20 and warns below 50, which leaves
# room for longer ids.
ID_MIN_LENGTH = 20  # characters
ID_RECOMMENDED_LENGTH = 50  # characters
# An amount column needs this many digits before and after the decimal point. The estimate
# is that 99,999,999.99 covers any single order in every currency Amazon uses, JPY and INR
# included.
AMOUNT_INTEGER_DIGITS = 8
AMOUNT_SCALE = 2

# FulfillmentStatus of the Orders API v2026-01-01 model.
ORDER_STATUSES = (
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
)


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field a column can take its value from."""

    name: str
    kind: Kind
    max_length: int | None = None  # characters, for text Amazon limits
    values: tuple[object, ...] | None = None  # every value Amazon can send; None: open set
    is_id: bool = False
    is_pii: bool = False


def _text(name: str, length: int | None = None, **extra: Any) -> FieldSpec:
    return FieldSpec(name, "text", length, **extra)


_ORDER_FIELDS = (
    _text("account", 64),
    _text("order_id", 64, is_id=True),
    _text("marketplace_id", 32, values=tuple(m.marketplace_id for m in MARKETPLACES)),
    _text("marketplace_country", 2, values=tuple(m.country_code for m in MARKETPLACES)),
    _text("sales_channel", 32, values=("AMAZON", "NON_AMAZON")),
    FieldSpec("is_multichannel", "flag", values=(True, False)),
    _text("status", 32, values=ORDER_STATUSES),
    _text("fulfilled_by", 32, values=("AMAZON", "MERCHANT")),
    _text("service_level", 32),
    _text("programs"),
    FieldSpec("purchase_time", "time"),
    FieldSpec("last_updated_time", "time"),
    FieldSpec("ship_by_earliest", "time"),
    FieldSpec("ship_by_latest", "time"),
    FieldSpec("deliver_by_earliest", "time"),
    FieldSpec("deliver_by_latest", "time"),
    FieldSpec("order_total", "amount"),
    _text("currency", 3),
    FieldSpec("item_count", "integer"),
    # The time syncd writes the row, for an ERP's created and updated time columns. A
    # database default would fill them in syncd's session zone (UTC), not the ERP's.
    FieldSpec("now", "time"),
    # Buyer and recipient: returned only to applications with Amazon's restricted roles.
    _text("buyer_name", is_pii=True),
    _text("buyer_email", is_pii=True),
    _text("buyer_company_name", is_pii=True),
    _text("buyer_purchase_order_number", is_pii=True),
    _text("recipient_name", is_pii=True),
    _text("recipient_company_name", is_pii=True),
    _text("address_line1", is_pii=True),
    _text("address_line2", is_pii=True),
    _text("address_line3", is_pii=True),
    _text("city", is_pii=True),
    _text("district_or_county", is_pii=True),
    _text("state_or_region", is_pii=True),
    _text("municipality", is_pii=True),
    _text("postal_code", is_pii=True),
    _text("country_code", 2, is_pii=True),
    _text("phone", is_pii=True),
)

_LINE_FIELDS = (
    _text("order_item_id", 64, is_id=True),
    _text("seller_sku", 40),  # Amazon's limit for a SKU
    _text("asin", 10),
    _text("title"),
    FieldSpec("quantity_ordered", "integer"),
    FieldSpec("quantity_shipped", "integer"),
    FieldSpec("quantity_unshipped", "integer"),
    FieldSpec("unit_price", "amount"),
    FieldSpec("item_amount", "amount"),
    FieldSpec("shipping_amount", "amount"),
    FieldSpec("tax_amount", "amount"),
    FieldSpec("discount_amount", "amount"),
    FieldSpec("proceeds_total", "amount"),
    _text("currency", 3),
    _text("promotion_ids"),
    _text("gift_message", is_pii=True),
)

ORDER_FIELDS: Mapping[str, FieldSpec] = {spec.name: spec for spec in _ORDER_FIELDS}
LINE_FIELDS: Mapping[str, FieldSpec] = {spec.name: spec for spec in _LINE_FIELDS}
ORDER_PII_FIELDS = frozenset(name for name, spec in ORDER_FIELDS.items() if spec.is_pii)
LINE_PII_FIELDS = frozenset(name for name, spec in LINE_FIELDS.items() if spec.is_pii)


def find_field(name: str, *, line: bool) -> FieldSpec | None:
    """Return the field a column names: a line's own fields first, then its order's."""
    if line and name in LINE_FIELDS:
        return LINE_FIELDS[name]
    return ORDER_FIELDS.get(name)


@dataclass(frozen=True)
class CanonicalLine:
    """One order item as a mapping reads it, with every line field by name in ``values``."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class CanonicalOrder:
    """One order as a mapping reads it: every order field by name, its lines, its raw JSON.

    A code hook of the mapping receives this object (and, for a line column, the line too).
    ``raw`` is Amazon's order without PII. PII fields are None when the order carries none,
    when the retention period has passed, or when the mapping fills no PII column.
    """

    values: Mapping[str, Any]
    lines: tuple[CanonicalLine, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def last_updated(self) -> datetime:
        """Amazon's last update of the order, in UTC."""
        value = self.values["last_updated_time"]
        assert isinstance(value, datetime)
        return value


def is_amount(value: object) -> bool:
    """Return whether ``value`` is an exact amount as syncd keeps them (Decimal, never float)."""
    return isinstance(value, Decimal)
