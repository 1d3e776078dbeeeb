"""Contract: every sandbox response, success or error, validates against Amazon's model.

The requests themselves are checked with ``spec.check_request`` (and confirmShipment bodies
with ``spec.validate_request_body``) too, so the contract holds for requests a correct
client sends.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from syncd.sandbox import datasets, marketplaces
from syncd.sandbox.server import SandboxServer
from tests import spec
from tests.sandbox.helpers import (
    ALL_DATASETS,
    DE,
    SEARCH_PATH,
    SELLER_A,
    US,
    SpApi,
    confirmation_body,
    create_merchant_order,
    days_ago,
    iso,
)
from tests.sandbox_fixtures import SandboxFactory

REGION_MARKETS = {
    "na": "ATVPDKIKX0DER,A2EUQ1WTGCTBG2,A1AM78C64UM0Y8,A2Q3Y263D00KWC",
    "eu": "A1PA6795UKMFR9,A1F83G8C2ARO7P,A33AVAJ2PDY3EV,A17E79C6D8DWNP,A21TJRUUN4KGV",
    "fe": "A1VC38T7YXB528,A39IBJ37TRP1C6,A19VAU5U5O7RUS",
}


def _check(operation: str, response: httpx.Response) -> dict[str, Any]:
    url = urlsplit(str(response.request.url))
    spec.check_request(operation, url.path, url.query)
    body = response.json()
    spec.validate_response(operation, response.status_code, body)
    return dict(body)


@pytest.fixture
def fast_api(api: SpApi, sandbox: SandboxServer) -> SpApi:
    """The client of seller A with quotas off, so a test can send hundreds of calls."""
    sandbox.state.update_settings(quotas=False)
    return api


@pytest.mark.parametrize(
    ("region", "included"),
    [
        *[pytest.param(region, None, id=f"{region}-none") for region in sorted(REGION_MARKETS)],
        *[
            pytest.param(region, ALL_DATASETS, id=f"{region}-all")
            for region in sorted(REGION_MARKETS)
        ],
        *[pytest.param("eu", dataset, id=f"eu-{dataset}") for dataset in datasets.INCLUDED_DATA],
    ],
)
def test_search_pages_follow_the_model(
    fast_api: SpApi, sandbox: SandboxServer, region: str, included: str | None
) -> None:
    params = {
        "marketplaceIds": REGION_MARKETS[region],
        "lastUpdatedAfter": days_ago(sandbox, 3),
        "maxResultsPerPage": "40",
    }
    if included is not None:
        params["includedData"] = included

    pages = 0
    query = dict(params)
    while True:
        body = _check("searchOrders", fast_api.search(region, **query))
        pages += 1
        token = body.get("pagination", {}).get("nextToken")
        if token is None:
            break
        query = {**params, "paginationToken": token}

    assert pages >= 2


@pytest.mark.parametrize("region", sorted(REGION_MARKETS))
def test_get_order_follows_the_model(fast_api: SpApi, sandbox: SandboxServer, region: str) -> None:
    orders = sandbox.state.orders(SELLER_A, region=region)
    by_status = {order["fulfillment"]["fulfillmentStatus"]: order for order in orders}
    sample = list(by_status.values()) + orders[:10]

    for order in sample:
        for included in (None, ALL_DATASETS):
            body = _check("getOrder", fast_api.get_order(region, order["orderId"], included))
            assert body["order"]["orderId"] == order["orderId"]


def test_every_marketplace_follows_the_model(sandbox: SandboxServer) -> None:
    every = [m.marketplace_id for m in marketplaces.MARKETPLACES]

    orders = sandbox.state.orders(SELLER_A, marketplace_ids=every)

    # Every order that is not simply shipped, and a few shipped ones of each marketplace.
    shipped_seen: Counter[str] = Counter()
    checked = 0
    for order in orders:
        market = order["salesChannel"]["marketplaceId"]
        if order["fulfillment"]["fulfillmentStatus"] == "SHIPPED":
            shipped_seen[market] += 1
            if shipped_seen[market] > 5:
                continue
        spec.validate_response("getOrder", 200, {"order": order})
        checked += 1
    assert len(orders) == 120 * len(every)
    assert checked > 400


def test_changed_orders_follow_the_model(sandbox: SandboxServer) -> None:
    state = sandbox.state
    state.evolve(SELLER_A, count=40, marketplace_ids=[DE])
    state.advance_clock(3 * 86400)
    created = state.create_order(SELLER_A, DE, {"fulfillment": {"fulfillmentStatus": "PENDING"}})
    state.patch_order(SELLER_A, created["orderId"], status="PARTIALLY_SHIPPED")

    for order in state.orders(SELLER_A, marketplace_ids=[DE]):
        spec.validate_response("getOrder", 200, {"order": order})


def _error_requests(sandbox: SandboxServer) -> list[tuple[str, str, dict[str, str]]]:
    now = sandbox.state.now()
    recent = iso(now - timedelta(seconds=30))
    day = iso(now - timedelta(days=1))
    return [
        ("searchOrders", SEARCH_PATH, {"marketplaceIds": DE}),
        (
            "searchOrders",
            SEARCH_PATH,
            {"marketplaceIds": DE, "createdAfter": day, "createdBefore": recent},
        ),
        ("searchOrders", SEARCH_PATH, {"marketplaceIds": "A1VC38T7YXB528", "createdAfter": day}),
        (
            "searchOrders",
            SEARCH_PATH,
            {"marketplaceIds": DE, "createdAfter": day, "maxResultsPerPage": "0"},
        ),
        (
            "searchOrders",
            SEARCH_PATH,
            {"marketplaceIds": DE, "createdAfter": day, "paginationToken": "Zm9v"},
        ),
        ("searchOrders", SEARCH_PATH, {"createdAfter": "TEST_CASE_400"}),
        ("getOrder", f"{SEARCH_PATH}/999-0000000-0000000", {}),
        ("getOrder", f"{SEARCH_PATH}/TEST_CASE_400", {}),
    ]


def test_validation_errors_follow_the_model(fast_api: SpApi, sandbox: SandboxServer) -> None:
    statuses: Counter[int] = Counter()
    for operation, path, params in _error_requests(sandbox):
        response = fast_api.get("eu", path, params)
        statuses[response.status_code] += 1
        spec.validate_response(operation, response.status_code, response.json())

    assert statuses == {400: 7, 404: 1}


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"kind": "throttle"}, id="429"),
        pytest.param({"kind": "server_error", "status": 500}, id="500"),
        pytest.param({"kind": "server_error", "status": 503}, id="503"),
        pytest.param({"kind": "expired_token"}, id="403-expired"),
        pytest.param({"kind": "expired_token", "field": "message"}, id="403-expired-message"),
        pytest.param({"kind": "access_denied"}, id="403-denied"),
        pytest.param({"kind": "reject_dataset", "dataset": "FULFILLMENT"}, id="400-dataset"),
    ],
)
@pytest.mark.parametrize("operation", ["searchOrders", "getOrder"])
def test_fault_responses_follow_the_model(
    api: SpApi, sandbox: SandboxServer, rule: dict[str, Any], operation: str
) -> None:
    api.token()
    sandbox.state.add_fault({**rule, "operation": operation})

    if operation == "searchOrders":
        response = api.search(
            "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1), includedData="FULFILLMENT"
        )
    else:
        response = api.get_order("eu", "999-0000000-0000000", "FULFILLMENT")

    assert response.status_code >= 400
    spec.validate_response(operation, response.status_code, response.json())


def test_auth_errors_follow_the_model(api: SpApi, sandbox: SandboxServer) -> None:
    missing = api.get("eu", SEARCH_PATH, token=None)
    api.token()
    sandbox.state.advance_clock(3601)
    expired = api.get_order("eu", "999-0000000-0000000")

    spec.validate_response("searchOrders", 403, missing.json())
    spec.validate_response("getOrder", 403, expired.json())


def test_quota_error_follows_the_model(api: SpApi) -> None:
    responses = [api.get_order("eu", "999-0000000-0000000") for _ in range(31)]

    assert responses[-1].status_code == 429
    spec.validate_response("getOrder", 429, responses[-1].json())


def test_pii_forbidden_follows_the_model(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(pii_roles="forbidden", orders_per_marketplace=2)
    api = SpApi(sandbox)
    try:
        response = api.search(
            "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1), includedData="BUYER"
        )
    finally:
        api.close()

    assert response.status_code == 403
    spec.validate_response("searchOrders", 403, response.json())


# -- confirmShipment -----------------------------------------------------------------------------


def _confirm(api: SpApi, region: str, order_id: str, body: Any) -> httpx.Response:
    response = api.confirm_shipment(region, order_id, body)
    url = urlsplit(str(response.request.url))
    spec.check_request("confirmShipment", url.path, url.query)
    content = response.content if response.status_code == 204 else response.json()
    spec.validate_response("confirmShipment", response.status_code, content)
    return response


def test_confirmation_follows_the_model(fast_api: SpApi, sandbox: SandboxServer) -> None:
    order = create_merchant_order(sandbox, US, (2, 1))
    first = confirmation_body(order, [1, 1], shippingMethod="UPS Ground")
    second = confirmation_body(order, [1, 0], reference_id="2", tracking_number="1Z2")
    edit = confirmation_body(order, [1, 0], reference_id="2", tracking_number="1Z3")

    statuses = []
    for body in (first, second, edit):
        spec.validate_request_body("confirmShipment", body)
        statuses.append(_confirm(fast_api, "na", order["orderId"], body).status_code)

    assert statuses == [204, 204, 204]


def test_shipped_orders_follow_the_model(fast_api: SpApi, sandbox: SandboxServer) -> None:
    partial = create_merchant_order(sandbox, US, (2, 1))
    full = create_merchant_order(sandbox, US, (1,))
    by_hand = create_merchant_order(sandbox, US, (3,))
    _confirm(fast_api, "na", partial["orderId"], confirmation_body(partial, [1, 0]))
    _confirm(fast_api, "na", full["orderId"], confirmation_body(full))
    sandbox.state.add_package(SELLER_A, by_hand["orderId"], {"trackingNumber": "any text"})
    sandbox.state.advance_clock(150)

    for order in (partial, full, by_hand):
        body = _check("getOrder", fast_api.get_order("na", order["orderId"], ALL_DATASETS))
        assert body["order"]["packages"]
    pages = fast_api.search_pages(
        "na", marketplaceIds=US, lastUpdatedAfter=days_ago(sandbox, 0.1), includedData="PACKAGES"
    )
    for page in pages:
        spec.validate_response("searchOrders", 200, page)


def _shipment_error_cases(
    sandbox: SandboxServer,
) -> list[tuple[str, str, dict[str, Any] | None, bytes | None]]:
    order = create_merchant_order(sandbox, US, (1,))
    shipped = create_merchant_order(sandbox, US, (1,))
    sandbox.state.add_package(SELLER_A, shipped["orderId"], {"packageReferenceId": "9"})
    fba = create_merchant_order(sandbox, US, (1,), fulfilled_by="AMAZON")
    valid = confirmation_body(order)
    numeric = confirmation_body(order)
    numeric["packageDetail"]["packageReferenceId"] = 1
    single = confirmation_body(order)
    single["packageDetail"]["orderItems"] = single["packageDetail"]["orderItems"][0]
    return [
        ("na", order["orderId"], numeric, None),
        ("na", order["orderId"], single, None),
        ("na", order["orderId"], confirmation_body(order, carrier_code="Other"), None),
        ("na", order["orderId"], confirmation_body(order, ship_date="02/21/2022"), None),
        ("na", order["orderId"], None, b"{not json"),
        ("na", shipped["orderId"], confirmation_body(shipped), None),
        ("na", fba["orderId"], confirmation_body(fba), None),
        ("eu", order["orderId"], {**valid, "marketplaceId": DE}, None),
        ("na", "111-0000000-0000000", valid, None),
    ]


def test_shipment_errors_follow_the_model(fast_api: SpApi, sandbox: SandboxServer) -> None:
    statuses: Counter[int] = Counter()
    for region, order_id, body, content in _shipment_error_cases(sandbox):
        response = fast_api.confirm_shipment(region, order_id, body, content=content)
        statuses[response.status_code] += 1
        spec.validate_response("confirmShipment", response.status_code, response.json())

    assert statuses == {400: 7, 404: 2}


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"kind": "throttle"}, id="429"),
        pytest.param({"kind": "server_error", "status": 500}, id="500"),
        pytest.param({"kind": "server_error", "status": 503}, id="503"),
        pytest.param({"kind": "expired_token"}, id="403-expired"),
        pytest.param({"kind": "access_denied"}, id="403-denied"),
        pytest.param({"kind": "apply_then_server_error", "status": 500}, id="500-applied"),
        pytest.param({"kind": "apply_then_server_error", "status": 503}, id="503-applied"),
    ],
)
def test_shipment_faults_follow_the_model(
    api: SpApi, sandbox: SandboxServer, rule: dict[str, Any]
) -> None:
    order = create_merchant_order(sandbox, US, (1,))
    api.token()
    sandbox.state.add_fault({**rule, "operation": "confirmShipment"})

    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert response.status_code >= 400
    spec.validate_response("confirmShipment", response.status_code, response.json())


def test_shipment_quota_follows_the_model(api: SpApi) -> None:
    responses = [api.confirm_shipment("na", "111-0000000-0000000", {}) for _ in range(11)]

    assert responses[-1].status_code == 429
    spec.validate_response("confirmShipment", 429, responses[-1].json())


def test_static_shipment_examples_replay(api: SpApi) -> None:
    operation = spec.find_operation("confirmShipment")
    responses = operation.definition["responses"]
    examples = {
        status: responses[status]["x-amzn-api-sandbox"]["static"][0]["request"]["parameters"]
        for status in ("204", "400")
    }

    accepted = api.confirm_shipment(
        "na", examples["204"]["orderId"]["value"], examples["204"]["body"]["value"]
    )
    rejected = api.confirm_shipment(
        "na", examples["400"]["orderId"]["value"], examples["400"]["body"]["value"]
    )

    assert accepted.status_code == 204
    assert accepted.content == b""
    assert rejected.status_code == 400
    assert rejected.json() == {"errors": [{"code": "Invalid Input", "message": "Invalid Input"}]}
    spec.validate_response("confirmShipment", 400, rejected.json())
