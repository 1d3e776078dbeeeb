"""includedData gating at order and item level, and the PII roles switch."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import ALL_DATASETS, DE, IN, JP, SELLER_A, SpApi, days_ago
from tests.sandbox_fixtures import SandboxFactory

# Which keys each dataset adds: (order-level keys, item-level keys).
DATASET_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "BUYER": ({"buyer"}, set()),
    "RECIPIENT": ({"recipient"}, set()),
    "PROCEEDS": ({"proceeds"}, {"proceeds"}),
    "EXPENSE": (set(), {"expense"}),
    "PROMOTION": (set(), {"promotion"}),
    "CANCELLATION": (set(), {"cancellation"}),
    "FULFILLMENT": ({"fulfillment"}, {"fulfillment"}),
    "PACKAGES": ({"packages"}, set()),
    "TAX": ({"tax"}, {"tax"}),
    "PAYMENT": ({"payment"}, set()),
    "FULFILLMENT_ORDERS": ({"fulfillmentOrders"}, set()),
}
# Amazon points exist only in JP and Easy Ship fulfillment orders only in IN.
ONLY_IN_OTHER_MARKETPLACES = frozenset({"EXPENSE", "FULFILLMENT_ORDERS"})
ALWAYS_ORDER_KEYS = {"orderId", "createdTime", "lastUpdatedTime", "salesChannel", "orderItems"}
GATED_ORDER_KEYS = set().union(*(keys[0] for keys in DATASET_KEYS.values()))
GATED_ITEM_KEYS = set().union(*(keys[1] for keys in DATASET_KEYS.values()))


def _all_orders(api: SpApi, sandbox: SandboxServer, included: str | None) -> list[dict[str, Any]]:
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 30)}
    if included is not None:
        params["includedData"] = included
    return [order for page in api.search_pages("eu", **params) for order in page["orders"]]


def _keys(orders: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    order_keys = set().union(*(order.keys() for order in orders))
    item_keys = set().union(*(item.keys() for order in orders for item in order["orderItems"]))
    return order_keys, item_keys


def test_no_included_data_returns_core_only(api: SpApi, sandbox: SandboxServer) -> None:
    orders = _all_orders(api, sandbox, None)

    order_keys, item_keys = _keys(orders)
    assert order_keys >= ALWAYS_ORDER_KEYS
    assert not order_keys & GATED_ORDER_KEYS
    assert not item_keys & GATED_ITEM_KEYS
    assert all("product" in item for order in orders for item in order["orderItems"])


@pytest.mark.parametrize("dataset", sorted(DATASET_KEYS))
def test_each_dataset_alone(api: SpApi, sandbox: SandboxServer, dataset: str) -> None:
    orders = _all_orders(api, sandbox, dataset)

    order_keys, item_keys = _keys(orders)
    expected_order_keys, expected_item_keys = DATASET_KEYS[dataset]
    assert not (order_keys & GATED_ORDER_KEYS) - expected_order_keys
    assert not (item_keys & GATED_ITEM_KEYS) - expected_item_keys
    if dataset not in ONLY_IN_OTHER_MARKETPLACES:
        assert (order_keys | item_keys) & (expected_order_keys | expected_item_keys)


@pytest.mark.parametrize(
    ("dataset", "marketplace_id", "region", "key"),
    [
        pytest.param("EXPENSE", JP, "fe", "expense", id="jp-points"),
        pytest.param("FULFILLMENT_ORDERS", IN, "eu", "fulfillmentOrders", id="in-easy-ship"),
    ],
)
def test_marketplace_specific_datasets(
    *, api: SpApi, sandbox: SandboxServer, dataset: str, marketplace_id: str, region: str, key: str
) -> None:
    params = {"marketplaceIds": marketplace_id, "createdAfter": days_ago(sandbox, 30)}
    pages = api.search_pages(region, includedData=dataset, **params)

    orders = [order for page in pages for order in page["orders"]]
    order_keys, item_keys = _keys(orders)
    assert key in order_keys | item_keys


def test_all_datasets(api: SpApi, sandbox: SandboxServer) -> None:
    orders = _all_orders(api, sandbox, ALL_DATASETS)

    order_keys, item_keys = _keys(orders)
    expected_order = {"buyer", "recipient", "proceeds", "fulfillment", "packages", "payment", "tax"}
    assert expected_order <= order_keys
    assert {"proceeds", "fulfillment", "tax", "cancellation", "promotion"} <= item_keys


def test_product_is_always_there(api: SpApi, sandbox: SandboxServer) -> None:
    orders = _all_orders(api, sandbox, None)

    for order in orders:
        for item in order["orderItems"]:
            product = item["product"]
            assert {"asin", "title", "sellerSku"} <= product.keys()


def test_pending_orders_have_no_money_or_address(api: SpApi, sandbox: SandboxServer) -> None:
    orders = _all_orders(api, sandbox, ALL_DATASETS)

    pending = [o for o in orders if o["fulfillment"]["fulfillmentStatus"] == "PENDING"]
    priced = [o for o in orders if o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"]
    assert pending, "the generator should produce pending orders"
    for order in pending:
        assert "proceeds" not in order
        assert "recipient" not in order
        assert "buyer" not in order
        for item in order["orderItems"]:
            assert "price" not in item["product"]
            assert "proceeds" not in item
    for order in priced:
        assert "proceeds" in order
        assert all("price" in item["product"] for item in order["orderItems"])


def test_packages_only_for_merchant_orders(api: SpApi, sandbox: SandboxServer) -> None:
    orders = _all_orders(api, sandbox, "FULFILLMENT,PACKAGES")

    with_packages = [o for o in orders if "packages" in o]
    assert with_packages
    assert all(o["fulfillment"]["fulfilledBy"] == "MERCHANT" for o in with_packages)


def test_get_order_gates_datasets(api: SpApi, sandbox: SandboxServer) -> None:
    order = sandbox.state.create_order(SELLER_A, DE, {"fulfillment": {"fulfilledBy": "MERCHANT"}})

    bare = api.get_order("eu", order["orderId"]).json()["order"]
    full = api.get_order("eu", order["orderId"], "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT").json()[
        "order"
    ]

    assert not bare.keys() & GATED_ORDER_KEYS
    assert {"buyer", "recipient", "proceeds", "fulfillment"} <= full.keys()
    assert "fulfillment" in full["orderItems"][0]


@pytest.mark.parametrize("operation", ["search", "get"])
def test_pii_omitted_leaves_out_buyer_and_recipient(
    sandbox_factory: SandboxFactory, operation: str
) -> None:
    sandbox = sandbox_factory(pii_roles="omitted", orders_per_marketplace=20)
    api = SpApi(sandbox)
    try:
        if operation == "search":
            response = api.search(
                "eu",
                marketplaceIds=DE,
                createdAfter=days_ago(sandbox, 30),
                includedData="BUYER,RECIPIENT,PROCEEDS",
            )
            orders = response.json()["orders"]
        else:
            order_id = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])[0]["orderId"]
            response = api.get_order("eu", order_id, "BUYER,RECIPIENT,PROCEEDS")
            orders = [response.json()["order"]]
    finally:
        api.close()

    assert response.status_code == 200
    assert all("buyer" not in order and "recipient" not in order for order in orders)
    assert any("proceeds" in order for order in orders)


@pytest.mark.parametrize(
    ("included", "status"),
    [
        pytest.param("BUYER", 403, id="buyer"),
        pytest.param("PROCEEDS,RECIPIENT", 403, id="recipient"),
        pytest.param("PROCEEDS,FULFILLMENT", 200, id="no-pii"),
    ],
)
def test_pii_forbidden_returns_403(
    sandbox_factory: SandboxFactory, included: str, status: int
) -> None:
    sandbox = sandbox_factory(pii_roles="forbidden", orders_per_marketplace=5)
    api = SpApi(sandbox)
    try:
        response = api.search(
            "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 30), includedData=included
        )
        order_id = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])[0]["orderId"]
        single = api.get_order("eu", order_id, included)
    finally:
        api.close()

    assert response.status_code == status
    assert single.status_code == status
    if status == 403:
        assert response.json()["errors"][0] == {
            "code": "Unauthorized",
            "message": "Access to requested resource is denied.",
            "details": "",
        }


def test_pii_setting_changes_at_runtime(api: SpApi, sandbox: SandboxServer) -> None:
    api.control("POST", "/settings", {"pii_roles": "forbidden"})

    response = api.search(
        "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1), includedData="BUYER"
    )

    assert response.status_code == 403
