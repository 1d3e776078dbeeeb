"""Token buckets with Amazon's default plans, the speed factor and the rate-limit header."""

from __future__ import annotations

from decimal import Decimal

import pytest

from syncd.sandbox import throttle
from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, SELLER_B, SpApi, days_ago
from tests.sandbox_fixtures import SandboxFactory

QUOTA_EXCEEDED = {
    "errors": [
        {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
    ]
}


def _search_statuses(api: SpApi, sandbox: SandboxServer, count: int) -> list[int]:
    params = {
        "marketplaceIds": DE,
        "createdAfter": days_ago(sandbox, 0.5),
        "maxResultsPerPage": "1",
    }
    return [api.search("eu", **params).status_code for _ in range(count)]


def test_search_orders_burst_then_429(api: SpApi, sandbox: SandboxServer) -> None:
    statuses = _search_statuses(api, sandbox, 21)

    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429


def test_429_body_and_headers(api: SpApi, sandbox: SandboxServer) -> None:
    _search_statuses(api, sandbox, 20)

    response = api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1))

    assert response.status_code == 429
    assert response.json() == QUOTA_EXCEEDED
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.0056"
    assert response.headers["x-amzn-RequestId"]


def test_get_order_burst_is_30(api: SpApi, sandbox: SandboxServer) -> None:
    statuses = [api.get_order("eu", "999-0000000-0000000").status_code for _ in range(31)]

    assert statuses[:30] == [404] * 30
    assert statuses[30] == 429


def test_get_order_rate_header(api: SpApi) -> None:
    response = api.get_order("eu", "999-0000000-0000000")

    assert response.headers["x-amzn-RateLimit-Limit"] == "0.5"


def test_buckets_are_per_seller(api: SpApi, sandbox: SandboxServer) -> None:
    _search_statuses(api, sandbox, 20)
    other = SpApi(sandbox, SELLER_B)
    try:
        status = other.search(
            "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1)
        ).status_code
    finally:
        other.close()

    assert status == 200


def test_buckets_are_per_operation(api: SpApi, sandbox: SandboxServer) -> None:
    _search_statuses(api, sandbox, 21)

    assert api.get_order("eu", "999-0000000-0000000").status_code == 404


def test_bucket_refills_with_clock(api: SpApi, sandbox: SandboxServer) -> None:
    _search_statuses(api, sandbox, 21)
    sandbox.state.advance_clock(180)  # 180 s x 0.0056/s = 1.008 tokens

    statuses = _search_statuses(api, sandbox, 2)

    assert statuses == [200, 429]


@pytest.mark.parametrize(
    ("speed", "header"),
    [
        pytest.param(10.0, "0.056", id="x10"),
        pytest.param(60.0, "0.336", id="x60"),
        pytest.param(0.5, "0.0028", id="half"),
    ],
)
def test_speed_factor_in_header(sandbox_factory: SandboxFactory, speed: float, header: str) -> None:
    sandbox = sandbox_factory(speed=speed, orders_per_marketplace=5)
    api = SpApi(sandbox)
    try:
        response = api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1))
    finally:
        api.close()

    assert response.headers["x-amzn-RateLimit-Limit"] == header


def test_speed_factor_refills_faster(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.update_settings(speed=100.0)
    _search_statuses(api, sandbox, 21)
    sandbox.state.advance_clock(3.6)  # 3.6 s x 0.56/s = 2.016 tokens

    statuses = _search_statuses(api, sandbox, 3)

    assert statuses == [200, 200, 429]


def test_quotas_off(api: SpApi, sandbox: SandboxServer) -> None:
    api.control("POST", "/settings", {"quotas": False})

    statuses = _search_statuses(api, sandbox, 30)
    header = api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1)).headers

    assert set(statuses) == {200}
    assert header["x-amzn-RateLimit-Limit"] == "1000.0"


def test_header_on_errors_too(api: SpApi) -> None:
    response = api.search("eu", marketplaceIds=DE)

    assert response.status_code == 400
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.0056"


def test_usage_plan_table() -> None:
    plans = throttle.USAGE_PLANS

    assert plans["searchOrders"] == throttle.UsagePlan(Decimal("0.0056"), 20)
    assert plans["getOrder"] == throttle.UsagePlan(Decimal("0.5"), 30)
    assert {
        "confirmShipment",
        "createReport",
        "getInventorySummaries",
        "listTransactions",
    } <= plans.keys()


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        pytest.param(Decimal("0.0056"), "0.0056", id="small"),
        pytest.param(Decimal("2.000"), "2", id="whole"),
        pytest.param(Decimal("0.50"), "0.5", id="trailing-zero"),
        pytest.param(Decimal("1E+1"), "10", id="exponent"),
    ],
)
def test_format_rate(rate: Decimal, text: str) -> None:
    assert throttle.format_rate(rate) == text
