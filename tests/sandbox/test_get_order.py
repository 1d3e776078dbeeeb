"""getOrder, and Amazon's static sandbox examples for both operations."""

from __future__ import annotations

import pytest

from syncd.sandbox import static_examples
from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, SEARCH_PATH, SELLER_A, SELLER_B, US, SpApi

STATIC_GET_ORDER_DATASETS = (
    "BUYER,RECIPIENT,PROCEEDS,EXPENSE,PROMOTION,CANCELLATION,FULFILLMENT,PACKAGES"
)


def test_get_order_returns_the_order(api: SpApi, sandbox: SandboxServer) -> None:
    expected = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])[0]

    response = api.get_order("eu", expected["orderId"], "FULFILLMENT")

    assert response.status_code == 200
    order = response.json()["order"]
    assert order["orderId"] == expected["orderId"]
    assert order["fulfillment"] == expected["fulfillment"]
    assert order["orderItems"][0]["orderItemId"] == expected["orderItems"][0]["orderItemId"]


@pytest.mark.parametrize(
    "order_id",
    [pytest.param("999-0000000-0000000", id="unknown"), pytest.param("not-an-id", id="garbage")],
)
def test_unknown_order_is_not_found(api: SpApi, order_id: str) -> None:
    response = api.get_order("eu", order_id)

    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["code"] == "NotFound"
    assert order_id in error["message"]


def test_order_of_another_seller_is_not_found(api: SpApi, sandbox: SandboxServer) -> None:
    foreign = sandbox.state.orders(SELLER_B, marketplace_ids=[DE])[0]["orderId"]

    response = api.get_order("eu", foreign)

    assert response.status_code == 404


def test_order_of_another_region_is_not_found(api: SpApi, sandbox: SandboxServer) -> None:
    us_order = sandbox.state.orders(SELLER_A, marketplace_ids=[US])[0]["orderId"]

    on_eu = api.get_order("eu", us_order)
    on_na = api.get_order("na", us_order)

    assert on_eu.status_code == 404
    assert on_na.status_code == 200


def test_get_order_rejects_unknown_parameter(api: SpApi, sandbox: SandboxServer) -> None:
    order_id = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])[0]["orderId"]

    response = api.get("eu", f"{SEARCH_PATH}/{order_id}", {"marketplaceIds": DE})

    assert response.status_code == 400
    assert "marketplaceIds" in response.json()["errors"][0]["message"]


def test_get_order_rejects_bad_dataset(api: SpApi, sandbox: SandboxServer) -> None:
    order_id = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])[0]["orderId"]

    response = api.get_order("eu", order_id, "FULFILMENT")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(example, id=f"{operation}-{index}")
        for operation in ("searchOrders", "getOrder")
        for index, example in enumerate(
            static_examples.static_examples(operation, "orders_2026-01-01")
        )
    ],
)
def test_static_examples_returned_verbatim(
    api: SpApi, example: static_examples.StaticExample
) -> None:
    parameters = dict(example.parameters)
    order_id = parameters.pop("orderId", None)
    query = {
        name: ",".join(value) if isinstance(value, list) else str(value)
        for name, value in parameters.items()
    }
    path = SEARCH_PATH if order_id is None else f"{SEARCH_PATH}/{order_id}"

    response = api.get("eu", path, query)

    assert response.status_code == example.status
    assert response.json() == example.response


def test_static_example_needs_exact_parameters(api: SpApi) -> None:
    response = api.get_order("eu", "171-9876543-2109876", "BUYER,RECIPIENT")

    assert response.status_code == 404


def test_static_get_order_example(api: SpApi) -> None:
    response = api.get_order("na", "171-9876543-2109876", STATIC_GET_ORDER_DATASETS)

    order = response.json()["order"]
    assert order["salesChannel"]["marketplaceId"] == "A2Q3Y263D00KWC"
    assert order["buyer"]["buyerName"] == "Maria Silva Santos"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param(f"{SEARCH_PATH}/TEST_CASE_400", {}, id="get-order"),
        pytest.param(SEARCH_PATH, {"createdAfter": "TEST_CASE_400"}, id="search-orders"),
    ],
)
def test_test_case_400(api: SpApi, path: str, params: dict[str, str]) -> None:
    response = api.get("fe", path, params)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "InvalidInput"
    assert response.json()["errors"][0]["message"] == "Invalid Input"


def test_static_examples_still_need_a_token(api: SpApi) -> None:
    response = api.get("eu", f"{SEARCH_PATH}/TEST_CASE_400", token=None)

    assert response.status_code == 403
