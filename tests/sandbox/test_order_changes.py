"""Orders that change: scheduled changes, evolve, create and patch, seen by later searches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, FR, JP, SELLER_A, SpApi, iso
from tests.sandbox_fixtures import SandboxFactory


def _by_id(orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {order["orderId"]: order for order in orders}


def _updated_since(api: SpApi, since: str, marketplace_ids: str = DE) -> dict[str, dict[str, Any]]:
    pages = api.search_pages(
        "eu",
        marketplaceIds=marketplace_ids,
        lastUpdatedAfter=since,
        includedData="FULFILLMENT,PROCEEDS,PACKAGES",
    )
    return _by_id([order for page in pages for order in page["orders"]])


def test_scheduled_changes_happen_when_clock_passes(sandbox: SandboxServer) -> None:
    state = sandbox.state
    before = _by_id(state.orders(SELLER_A, marketplace_ids=[DE, FR]))

    state.advance_clock(3 * 86400)
    after = _by_id(state.orders(SELLER_A, marketplace_ids=[DE, FR]))

    changed = [
        oid for oid in before if before[oid]["lastUpdatedTime"] != after[oid]["lastUpdatedTime"]
    ]
    assert changed
    for order_id in changed:
        old, new = before[order_id], after[order_id]
        assert new["lastUpdatedTime"] > old["lastUpdatedTime"]
        assert new["fulfillment"]["fulfillmentStatus"] != old["fulfillment"]["fulfillmentStatus"]


def test_pending_order_gets_prices_when_released(sandbox: SandboxServer) -> None:
    state = sandbox.state
    pending = [
        o
        for o in state.orders(SELLER_A, marketplace_ids=[DE, FR])
        if o["fulfillment"]["fulfillmentStatus"] == "PENDING"
    ]
    assert pending

    state.advance_clock(3 * 86400)
    after = _by_id(state.orders(SELLER_A, marketplace_ids=[DE, FR]))

    released = [
        after[o["orderId"]]
        for o in pending
        if after[o["orderId"]]["fulfillment"]["fulfillmentStatus"] != "CANCELLED"
    ]
    assert released
    for order in released:
        assert "proceeds" in order
        assert "recipient" in order
        assert all("price" in item["product"] for item in order["orderItems"])


def test_evolve_changes_are_seen_by_next_search(api: SpApi, sandbox: SandboxServer) -> None:
    watermark = iso(sandbox.state.now() - timedelta(seconds=1))

    changes = api.control(
        "POST",
        "/orders/evolve",
        {"refresh_token": SELLER_A, "count": 6, "marketplace_ids": [DE]},
        region="eu",
    ).json()["changes"]
    sandbox.state.advance_clock(150)  # the two-minute rule hides the changes until then
    seen = _updated_since(api, watermark)

    assert len(changes) == 6
    for change in changes:
        assert change["order_id"] in seen
        assert seen[change["order_id"]]["fulfillment"]["fulfillmentStatus"] == change["status"]


def test_evolve_is_deterministic(sandbox_factory: SandboxFactory) -> None:
    anchor = datetime(2026, 3, 1, tzinfo=UTC)
    offset = (anchor - datetime.now(UTC)).total_seconds()
    results = []
    for _ in range(2):
        server = sandbox_factory(anchor=anchor, clock_offset=offset, orders_per_marketplace=30)
        changes = server.state.evolve(SELLER_A, count=5, marketplace_ids=[DE])
        results.append([(c["order_id"], c["change"], c["status"]) for c in changes])

    assert results[0] == results[1]


def test_create_order_over_http(api: SpApi, sandbox: SandboxServer) -> None:
    watermark = iso(sandbox.state.now() - timedelta(seconds=1))
    body = {
        "refresh_token": SELLER_A,
        "marketplace_id": DE,
        "order": {
            "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
            "orderItems": [
                {"quantityOrdered": 2, "product": {"sellerSku": "MY-SKU-1", "title": "Grüner Tee"}}
            ],
        },
    }

    response = api.control("POST", "/orders", body, region="eu")
    sandbox.state.advance_clock(150)
    seen = _updated_since(api, watermark)

    assert response.status_code == 201
    created = response.json()["order"]
    assert created["orderId"] in seen
    item = seen[created["orderId"]]["orderItems"][0]
    assert item["product"]["sellerSku"] == "MY-SKU-1"
    assert item["product"]["title"] == "Grüner Tee"
    assert item["quantityOrdered"] == 2
    assert item["fulfillment"] == {"quantityFulfilled": 0, "quantityUnfulfilled": 2}


def test_patch_order_ships_and_bumps_update_time(api: SpApi, sandbox: SandboxServer) -> None:
    order = sandbox.state.create_order(
        SELLER_A, DE, {"fulfillment": {"fulfilledBy": "MERCHANT", "fulfillmentStatus": "UNSHIPPED"}}
    )
    sandbox.state.advance_clock(600)

    response = api.control(
        "PATCH", f"/orders/{order['orderId']}", {"refresh_token": SELLER_A, "status": "SHIPPED"}
    )

    patched = response.json()["order"]
    assert patched["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert patched["packages"][0]["packageReferenceId"] == "1"
    assert patched["lastUpdatedTime"] > order["lastUpdatedTime"]
    now = sandbox.state.now()
    assert abs((datetime.fromisoformat(patched["lastUpdatedTime"]) - now).total_seconds()) < 5


def test_patch_merges_fields(api: SpApi, sandbox: SandboxServer) -> None:
    order = sandbox.state.create_order(
        SELLER_A, DE, {"orderAliases": [{"aliasId": "A-1", "aliasType": "SELLER_ORDER_ID"}]}
    )
    changes = {"orderAliases": None, "buyer": {"buyerName": "Jörg Weiß"}}

    response = api.control(
        "PATCH", f"/orders/{order['orderId']}", {"refresh_token": SELLER_A, "changes": changes}
    )

    patched = response.json()["order"]
    assert "orderAliases" not in patched
    assert patched["buyer"]["buyerName"] == "Jörg Weiß"
    assert patched["buyer"].get("buyerEmail") == order["buyer"].get("buyerEmail")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param(
            "/orders/999-0000000-0000000",
            {"refresh_token": SELLER_A, "status": "SHIPPED"},
            404,
            id="unknown",
        ),
        pytest.param("/orders/x", {"status": "SHIPPED"}, 400, id="no-token"),
        pytest.param(
            "/orders",
            {"refresh_token": SELLER_A, "marketplace_id": "XX"},
            400,
            id="bad-marketplace",
        ),
        pytest.param(
            "/orders",
            {"refresh_token": SELLER_A, "marketplace_id": DE, "order": {"orderItems": []}},
            400,
            id="no-items",
        ),
        pytest.param(
            "/orders/evolve", {"refresh_token": SELLER_A, "count": 0}, 400, id="evolve-zero"
        ),
    ],
)
def test_order_control_errors(api: SpApi, path: str, body: dict[str, Any], status: int) -> None:
    method = "PATCH" if path.startswith("/orders/") and path != "/orders/evolve" else "POST"

    response = api.control(method, path, body)

    assert response.status_code == status
    assert response.json()["error"]


def test_patch_with_unknown_status(api: SpApi, sandbox: SandboxServer) -> None:
    order = sandbox.state.create_order(SELLER_A, DE)

    response = api.control(
        "PATCH", f"/orders/{order['orderId']}", {"refresh_token": SELLER_A, "status": "LOST"}
    )

    assert response.status_code == 400


def test_read_orders_over_http(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.http.get(
        sandbox.base_urls["eu"] + "/_sandbox/orders",
        params={"refresh_token": SELLER_A, "marketplace_ids": DE},
    )

    body = response.json()
    assert body["seller_id"] == sandbox.state.seller_id(SELLER_A)
    assert len(body["orders"]) == 120
    assert {o["salesChannel"]["marketplaceId"] for o in body["orders"]} == {DE}


@pytest.mark.parametrize(
    ("marketplace_id", "region", "created", "status"),
    [
        pytest.param(DE, "eu", "800-days-ago", 404, id="de-older-than-two-years"),
        pytest.param(DE, "eu", "700-days-ago", 200, id="de-within-two-years"),
        pytest.param(JP, "fe", "800-days-ago", 200, id="jp-kept-since-2016"),
        pytest.param(JP, "fe", "2015-12-31T00:00:00Z", 404, id="jp-before-2016"),
    ],
)
def test_order_retention(
    *,
    api: SpApi,
    sandbox: SandboxServer,
    marketplace_id: str,
    region: str,
    created: str,
    status: int,
) -> None:
    if created.endswith("-days-ago"):
        days = int(created.split("-", 1)[0])
        created = iso(sandbox.state.now() - timedelta(days=days))
    order = sandbox.state.create_order(SELLER_A, marketplace_id, {"createdTime": created})

    response = api.get_order(region, order["orderId"])

    assert response.status_code == status


def test_evolve_in_the_past_is_visible_at_once(sandbox: SandboxServer) -> None:
    before = {
        doc["orderId"]: doc["lastUpdatedTime"]
        for doc in sandbox.state.orders(SELLER_A, region="na")
    }

    changes = sandbox.state.evolve(SELLER_A, 5, region="na", ago=300)

    now = sandbox.state.now()
    after = {
        doc["orderId"]: doc["lastUpdatedTime"]
        for doc in sandbox.state.orders(SELLER_A, region="na")
    }
    changed = [oid for oid in after if after[oid] != before.get(oid)]
    assert len(changes) == 5
    assert changed
    for order_id in changed:
        updated = datetime.fromisoformat(after[order_id].replace("Z", "+00:00"))
        assert updated <= now - timedelta(seconds=299)
