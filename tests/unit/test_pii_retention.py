"""The PII retention rule, rows of purged orders, and storing PII without a key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from syncd import errors
from syncd.amazon.models.orders import Order
from syncd.crypto import Vault, generate_key
from syncd.db.order_rows import build_rows, without_pii
from syncd.db.retention import is_pii_expired, retention_start

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
UPDATED = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
DELIVER_BY = datetime(2026, 11, 4, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "deliver_by", "expected"),
    [
        ("SHIPPED", DELIVER_BY, DELIVER_BY),
        ("SHIPPED", None, UPDATED),
        ("CANCELLED", DELIVER_BY, UPDATED),
        ("UNFULFILLABLE", None, UPDATED),
        ("UNSHIPPED", DELIVER_BY, None),
        ("PARTIALLY_SHIPPED", DELIVER_BY, None),
        ("PENDING", None, None),
        (None, None, None),
    ],
    ids=[
        "shipped-deliver-by",
        "shipped-no-date",
        "cancelled",
        "unfulfillable",
        "unshipped",
        "partially-shipped",
        "pending",
        "no-status",
    ],
)
def test_retention_start_by_status(
    status: str | None, deliver_by: datetime | None, expected: datetime | None
) -> None:
    assert retention_start(status, deliver_by, UPDATED) == expected


def _order(status: str, deliver_by: datetime | None, updated: datetime) -> Any:
    return SimpleNamespace(status=status, deliver_by_latest=deliver_by, last_updated_time=updated)


def test_expiry_exact_boundary() -> None:
    start = NOW - timedelta(days=30)

    assert is_pii_expired(_order("SHIPPED", start, UPDATED), NOW, 30)
    assert not is_pii_expired(
        _order("SHIPPED", start + timedelta(microseconds=1), UPDATED), NOW, 30
    )
    assert is_pii_expired(_order("CANCELLED", None, start), NOW, 30)
    assert not is_pii_expired(_order("CANCELLED", None, start + timedelta(seconds=1)), NOW, 30)


def test_expiry_with_zero_days() -> None:
    assert is_pii_expired(_order("CANCELLED", None, NOW), NOW, 0)
    assert not is_pii_expired(_order("SHIPPED", NOW + timedelta(seconds=1), UPDATED), NOW, 0)
    assert not is_pii_expired(_order("UNSHIPPED", None, NOW - timedelta(days=400)), NOW, 0)


def _raw_order() -> dict[str, Any]:
    return {
        "orderId": "113-0000001-0000001",
        "createdTime": "2026-11-01T08:00:00Z",
        "lastUpdatedTime": "2026-11-02T08:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER"},
        "buyer": {"buyerName": "Mei Lin Tanaka", "buyerEmail": "mei.pii@example.com"},
        "recipient": {"deliveryAddress": {"name": "Mei Lin Tanaka", "postalCode": "98101"}},
        "fulfillment": {"fulfillmentStatus": "SHIPPED"},
        "orderItems": [
            {
                "orderItemId": "11",
                "quantityOrdered": 1,
                "fulfillment": {"packing": {"giftOption": {"giftMessage": "For Mei, with love"}}},
            }
        ],
    }


def test_build_rows_without_key_rejects_pii() -> None:
    raw = _raw_order()

    with pytest.raises(errors.SettingsError) as caught:
        build_rows(Order.model_validate(raw), raw, Vault(None))

    message = str(caught.value)
    assert "SYNCD_ENCRYPTION_KEY" in message
    assert "syncd key generate" in message
    assert "Mei" not in message


def test_build_rows_without_pii_needs_no_key() -> None:
    raw = _raw_order()
    del raw["buyer"], raw["recipient"]
    del raw["orderItems"][0]["fulfillment"]

    rows = build_rows(Order.model_validate(raw), raw, Vault(None))

    assert rows.order["buyer_pii"] is None
    assert rows.pii.is_empty


def test_without_pii_empties_every_column() -> None:
    raw = _raw_order()
    rows = build_rows(Order.model_validate(raw), raw, Vault(SecretStr(generate_key())))
    assert rows.order["buyer_pii"] is not None
    assert rows.items[0]["gift_message_pii"] is not None

    clean = without_pii(rows)

    assert clean.order["buyer_pii"] is None
    assert clean.order["recipient_pii"] is None
    assert clean.order["tax_registrations_pii"] is None
    assert clean.items[0]["gift_message_pii"] is None
    assert clean.pii.is_empty
    assert clean.content_hash == rows.content_hash
    assert "Mei" not in clean.order["raw_json"]
    assert "For Mei" not in clean.items[0]["raw_json"]
