"""Removing PII from orders that may not have the documented shape."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.db.order_rows import strip_pii


@pytest.mark.parametrize(
    "raw",
    [
        {"orderId": "1", "orderItems": 7},
        {"orderId": "1", "orderItems": ["n/a", None, 3]},
        {"orderId": "1", "orderItems": [{"orderItemId": "1", "fulfillment": "n/a"}]},
        {"orderId": "1", "orderItems": [{"orderItemId": "1", "fulfillment": {"packing": []}}]},
        {"orderId": "1", "tax": "none", "buyer": "someone", "recipient": ["x"]},
    ],
    ids=["items-number", "items-not-objects", "fulfillment-text", "packing-list", "parts-text"],
)
def test_strip_pii_accepts_malformed_orders(raw: dict[str, Any]) -> None:
    clean, parts = strip_pii(raw)

    assert clean.get("orderId") == "1"
    assert "buyer" not in clean
    assert "recipient" not in clean
    assert parts.buyer is None
    assert parts.gift_messages == {}


def test_strip_pii_removes_every_part() -> None:
    raw = {
        "orderId": "1",
        "buyer": {"buyerName": "Li Lei"},
        "recipient": {"deliveryAddress": {"city": "Berlin"}},
        "tax": {"taxRegistrations": [{"name": "Li Co."}], "other": 1},
        "orderItems": [
            {
                "orderItemId": "11",
                "fulfillment": {"packing": {"giftOption": {"giftMessage": "Happy birthday"}}},
            }
        ],
    }

    clean, parts = strip_pii(raw)

    assert clean == {
        "orderId": "1",
        "tax": {"other": 1},
        "orderItems": [{"orderItemId": "11", "fulfillment": {"packing": {"giftOption": {}}}}],
    }
    assert parts.buyer == {"buyerName": "Li Lei"}
    assert parts.recipient == {"deliveryAddress": {"city": "Berlin"}}
    assert parts.tax_registrations == [{"name": "Li Co."}]
    assert parts.gift_messages == {"11": "Happy birthday"}
    assert raw["buyer"] == {"buyerName": "Li Lei"}  # the input is not changed
