"""Control routes for packages and for creating orders in the states shipment tests need."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    DE,
    SELLER_A,
    US,
    SpApi,
    confirmation_body,
    create_merchant_order,
    iso,
)


def _orders_path(order: dict[str, Any], suffix: str = "") -> str:
    return f"/orders/{order['orderId']}{suffix}"


def test_list_packages_over_http(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (2, 1))
    api.confirm_shipment("na", order["orderId"], confirmation_body(order, [1, 0]))

    response = api.http.get(
        sandbox.base_urls["eu"] + "/_sandbox" + _orders_path(order, "/packages"),
        params={"refresh_token": SELLER_A},
    )

    body = response.json()
    assert response.status_code == 200
    assert body["order_id"] == order["orderId"]
    assert [p["packageReferenceId"] for p in body["packages"]] == ["1"]
    assert body["packages"][0]["trackingNumber"] == "1Z0000000000000001"


def test_unshipped_order_has_no_packages(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (1,))

    response = api.http.get(
        sandbox.base_urls["na"] + "/_sandbox" + _orders_path(order, "/packages"),
        params={"refresh_token": SELLER_A},
    )

    assert response.json()["packages"] == []


def test_packages_of_unknown_order_are_404(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.http.get(
        sandbox.base_urls["na"] + "/_sandbox/orders/111-0000000-0000000/packages",
        params={"refresh_token": SELLER_A},
    )

    assert response.status_code == 404
    assert response.json()["error"] == "order 111-0000000-0000000 not found for this seller"


def test_packages_need_refresh_token(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (1,))

    response = api.control("GET", _orders_path(order, "/packages"))

    assert response.status_code == 400
    assert response.json()["error"] == "missing query parameter 'refresh_token'"


def test_get_one_order_over_http(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, DE, (1,))

    found = api.http.get(
        sandbox.base_urls["na"] + "/_sandbox" + _orders_path(order),
        params={"refresh_token": SELLER_A},
    )
    missing = api.http.get(
        sandbox.base_urls["na"] + "/_sandbox/orders/111-0000000-0000000",
        params={"refresh_token": SELLER_A},
    )

    assert found.status_code == 200
    assert found.json()["order"] == sandbox.state.order(SELLER_A, order["orderId"])
    assert missing.status_code == 404


def test_add_package_by_hand(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (2, 1))
    api.token()
    sandbox.state.clear_calls()

    response = api.control(
        "POST",
        _orders_path(order, "/packages"),
        {
            "refresh_token": SELLER_A,
            "package": {"carrier": "Kurier Schmidt", "trackingNumber": "anything at all"},
        },
    )

    body = response.json()
    assert response.status_code == 201
    assert body["package"]["packageReferenceId"] == "1"
    assert body["package"]["carrier"] == "Kurier Schmidt"
    assert body["package"]["trackingNumber"] == "anything at all"
    assert body["package"]["packageStatus"] == {"status": "IN_TRANSIT"}
    assert body["order"]["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert body["order"]["packages"] == [body["package"]]
    assert sandbox.state.call_count() == 0


def test_hand_package_takes_no_quota(api: SpApi, sandbox: SandboxServer) -> None:
    orders = [create_merchant_order(sandbox, US, (1,)) for _ in range(12)]

    for order in orders:
        sandbox.state.add_package(SELLER_A, order["orderId"])
    statuses = [
        api.confirm_shipment("na", o["orderId"], confirmation_body(o)).status_code
        for o in orders[:10]
    ]

    assert statuses == [204] * 10


def test_hand_package_with_items(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (3, 1))
    first, second = (item["orderItemId"] for item in order["orderItems"])
    ship_time = iso(sandbox.state.now() - timedelta(hours=2))

    package = sandbox.state.add_package(
        SELLER_A,
        order["orderId"],
        {
            "packageReferenceId": "5",
            "shipTime": ship_time,
            "packageItems": [{"orderItemId": first, "quantity": 2}],
        },
    )
    later = sandbox.state.add_package(SELLER_A, order["orderId"])

    current = sandbox.state.order(SELLER_A, order["orderId"])
    assert current is not None
    assert package["packageReferenceId"] == "5"
    assert package["shipTime"] == ship_time
    assert package["packageItems"] == [{"orderItemId": first, "quantity": 2}]
    assert later["packageReferenceId"] == "6"
    assert later["packageItems"] == [
        {"orderItemId": first, "quantity": 1},
        {"orderItemId": second, "quantity": 1},
    ]
    assert current["fulfillment"]["fulfillmentStatus"] == "SHIPPED"


def test_hand_package_replaces_same_reference(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (1,))
    api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    sandbox.state.add_package(
        SELLER_A, order["orderId"], {"packageReferenceId": "1", "trackingNumber": "CHANGED"}
    )

    packages = sandbox.state.packages(SELLER_A, order["orderId"])
    assert [p["trackingNumber"] for p in packages] == ["CHANGED"]


@pytest.mark.parametrize(
    ("options", "package", "fragment"),
    [
        pytest.param({"fulfilled_by": "AMAZON"}, {}, "is fulfilled by Amazon", id="fba"),
        pytest.param({"status": "CANCELLED"}, {}, "has the status CANCELLED", id="cancelled"),
        pytest.param({"status": "PENDING"}, {}, "has the status PENDING", id="pending"),
        pytest.param({}, {"colour": "red"}, "unknown package fields: colour", id="unknown-field"),
        pytest.param({}, {"packageReferenceId": 1}, "string of digits", id="reference-number"),
        pytest.param({}, {"packageReferenceId": "A"}, "string of digits", id="reference-text"),
        pytest.param(
            {},
            {"packageItems": [{"orderItemId": "00000000000000", "quantity": 1}]},
            "is not an item of order",
            id="unknown-item",
        ),
        pytest.param(
            {}, {"packageItems": [{"quantity": 1}]}, "is not an item of order", id="no-item-id"
        ),
        pytest.param({}, {"packageItems": []}, "non-empty list", id="no-items"),
        pytest.param({}, {"packageItems": ["x"]}, "must be an object", id="item-not-object"),
        pytest.param({}, {"shipTime": "yesterday"}, "ISO 8601", id="ship-time"),
    ],
)
def test_hand_package_errors(
    api: SpApi,
    sandbox: SandboxServer,
    options: dict[str, Any],
    package: dict[str, Any],
    fragment: str,
) -> None:
    order = create_merchant_order(sandbox, US, (1,), **options)

    response = api.control(
        "POST", _orders_path(order, "/packages"), {"refresh_token": SELLER_A, "package": package}
    )

    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert sandbox.state.packages(SELLER_A, order["orderId"]) == []


def test_hand_package_quantity_errors(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (2,))
    item_id = order["orderItems"][0]["orderItemId"]
    too_many = {"packageItems": [{"orderItemId": item_id, "quantity": 3}]}
    zero = {"packageItems": [{"orderItemId": item_id, "quantity": 0}]}

    over = api.control(
        "POST", _orders_path(order, "/packages"), {"refresh_token": SELLER_A, "package": too_many}
    )
    below = api.control(
        "POST", _orders_path(order, "/packages"), {"refresh_token": SELLER_A, "package": zero}
    )

    assert over.status_code == 400
    assert over.json()["error"] == (
        f"item {item_id} has 2 units left to ship, fewer than the 3 requested"
    )
    assert below.status_code == 400
    assert below.json()["error"] == f"quantity of item {item_id} must be a positive integer"


def test_hand_package_on_shipped_order(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (1,))
    sandbox.state.add_package(SELLER_A, order["orderId"])

    response = api.control("POST", _orders_path(order, "/packages"), {"refresh_token": SELLER_A})

    assert response.status_code == 400
    assert "has no units left to ship" in response.json()["error"]


def test_hand_package_on_unknown_order(api: SpApi) -> None:
    response = api.control(
        "POST", "/orders/111-0000000-0000000/packages", {"refresh_token": SELLER_A}
    )

    assert response.status_code == 404


def test_hand_package_body_errors(api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (1,))

    no_token = api.control("POST", _orders_path(order, "/packages"), {})
    not_object = api.control(
        "POST", _orders_path(order, "/packages"), {"refresh_token": SELLER_A, "package": []}
    )

    assert no_token.status_code == 400
    assert not_object.status_code == 400
    assert not_object.json()["error"].startswith("package must be a JSON object")


# -- orders in the states shipment tests need ----------------------------------------------------


def test_created_merchant_order_shape(sandbox: SandboxServer) -> None:
    ship_by = sandbox.state.now() + timedelta(hours=20)

    order = create_merchant_order(sandbox, US, (3, 1, 2), ship_by=ship_by)

    fulfillment = order["fulfillment"]
    assert fulfillment["fulfilledBy"] == "MERCHANT"
    assert fulfillment["fulfillmentStatus"] == "UNSHIPPED"
    assert fulfillment["shipByWindow"]["latestDateTime"] == iso(ship_by)
    assert "earliestDateTime" in fulfillment["shipByWindow"]
    assert [i["quantityOrdered"] for i in order["orderItems"]] == [3, 1, 2]
    assert [i["fulfillment"]["quantityUnfulfilled"] for i in order["orderItems"]] == [3, 1, 2]
    assert "packages" not in order
    assert "FBM_SHIP_PLUS" not in order.get("programs", [])


def test_created_orders_are_never_ship_plus(sandbox: SandboxServer) -> None:
    created = [create_merchant_order(sandbox, US, (1,)) for _ in range(60)]

    assert not any("FBM_SHIP_PLUS" in o.get("programs", []) for o in created)


@pytest.mark.parametrize(
    ("options", "check"),
    [
        pytest.param(
            {"fulfilled_by": "AMAZON"},
            lambda o: o["fulfillment"]["fulfilledBy"] == "AMAZON",
            id="fba",
        ),
        pytest.param(
            {"programs": ["FBM_SHIP_PLUS"]},
            lambda o: o["programs"] == ["FBM_SHIP_PLUS"],
            id="ship-plus",
        ),
        pytest.param(
            {"status": "SHIPPED"},
            lambda o: len(o["packages"]) == 1,
            id="shipped",
        ),
    ],
)
def test_created_order_states(sandbox: SandboxServer, options: dict[str, Any], check: Any) -> None:
    order = create_merchant_order(sandbox, US, (2,), **options)

    assert check(order)


def test_create_ship_plus_order_over_http(api: SpApi) -> None:
    response = api.control(
        "POST",
        "/orders",
        {
            "refresh_token": SELLER_A,
            "marketplace_id": US,
            "order": {
                "programs": ["FBM_SHIP_PLUS"],
                "fulfillment": {"fulfilledBy": "MERCHANT"},
                "orderItems": [{"quantityOrdered": 2}, {"quantityOrdered": 1}],
            },
        },
    )

    order = response.json()["order"]
    assert response.status_code == 201
    assert order["programs"] == ["FBM_SHIP_PLUS"]
    assert [i["quantityOrdered"] for i in order["orderItems"]] == [2, 1]
