"""The ``includedData`` gate: which parts of an order a request gets to see.

An order document in the sandbox contains every dataset. Amazon returns each dataset only
when its ``includedData`` value is requested, at order and at item level alike. The core
fields (ids, times, programs, sales channel, items with their product) are always returned.
"""

from __future__ import annotations

from typing import Any

from syncd.sandbox import apimodels

INCLUDED_DATA: tuple[str, ...] = apimodels.parameter_enum("searchOrders", "includedData")
PII_DATASETS = frozenset({"BUYER", "RECIPIENT"})

# Order-level key -> the includedData value that returns it.
ORDER_DATASETS: dict[str, str] = {
    "buyer": "BUYER",
    "recipient": "RECIPIENT",
    "proceeds": "PROCEEDS",
    "payment": "PAYMENT",
    "tax": "TAX",
    "fulfillment": "FULFILLMENT",
    "packages": "PACKAGES",
    "fulfillmentOrders": "FULFILLMENT_ORDERS",
}
# Item-level key -> the includedData value that returns it.
ITEM_DATASETS: dict[str, str] = {
    "proceeds": "PROCEEDS",
    "expense": "EXPENSE",
    "promotion": "PROMOTION",
    "cancellation": "CANCELLATION",
    "fulfillment": "FULFILLMENT",
    "tax": "TAX",
}


def render_order(document: dict[str, Any], included: frozenset[str]) -> dict[str, Any]:
    """Return the view of an order that a request with ``included`` datasets gets.

    The result shares unchanged sub-objects with ``document``; callers serialize it and
    never modify it.
    """
    view = {
        key: value
        for key, value in document.items()
        if key not in ORDER_DATASETS or ORDER_DATASETS[key] in included
    }
    view["orderItems"] = [
        {
            key: value
            for key, value in item.items()
            if key not in ITEM_DATASETS or ITEM_DATASETS[key] in included
        }
        for item in document["orderItems"]
    ]
    return view
