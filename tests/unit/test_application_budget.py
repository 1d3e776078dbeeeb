"""The application budget: one bucket per operation that every account's calls also take from."""

from __future__ import annotations

import threading

import httpx
import pytest
from pydantic import SecretStr

from syncd import config
from syncd.amazon.client import SellerAccount, SpApiClient
from syncd.amazon.operations import GET_ORDER
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.throttle import BucketRegistry, UsagePlan
from tests.unit.fakes import FakeTime

ORDER = {
    "order": {
        "orderId": "111-0000000-0000001",
        "createdTime": "2026-05-10T10:00:00Z",
        "lastUpdatedTime": "2026-05-10T10:00:00Z",
        "orderItems": [],
    }
}


def _registry(time: FakeTime, budget: dict[str, float]) -> BucketRegistry:
    return BucketRegistry(
        {"getOrder": UsagePlan(0.5, 30), "searchOrders": UsagePlan(0.0056, 20)},
        clock=time.monotonic,
        sleep=time.sleep,
        application_budget=budget,
    )


def test_budget_caps_all_accounts_together() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 2.0})
    start = time.monotonic()

    # Ten accounts, each with 30 tokens of burst of its own, so only the budget slows them.
    for account in range(10):
        for _ in range(2):
            assert registry.pacer(f"shop-{account}", "na", "getOrder").acquire() is not None

    # 20 calls at 2 per second with a burst of one: the first at once, then one per 0.5 s.
    assert time.monotonic() - start == pytest.approx(19 * 0.5, abs=0.05)


def test_operation_without_budget_is_unaffected() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 2.0})

    pacer = registry.pacer("shop-1", "na", "searchOrders")
    waits = [registry.pacer(f"shop-{n}", "na", "searchOrders").acquire() for n in range(10)]

    assert pacer.application is None
    assert waits == [0.0] * 10


def test_budget_is_shared_by_live_nodes() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 2.0})
    bucket = registry.application_bucket("getOrder")
    assert bucket is not None

    registry.share_application_budget(4)
    shared = bucket.rate
    registry.share_application_budget(1)

    assert shared == pytest.approx(0.5)
    assert bucket.rate == pytest.approx(2.0)


def test_share_spaces_calls_by_node_count() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 2.0})
    registry.share_application_budget(2)
    start = time.monotonic()

    for account in range(5):
        registry.pacer(f"shop-{account}", "na", "getOrder").acquire()

    # One node of two gets 1 call per second.
    assert time.monotonic() - start == pytest.approx(4 * 1.0, abs=0.05)


def test_stopped_wait_returns_account_token() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 0.01})
    registry.pacer("shop-1", "na", "getOrder").acquire()  # the budget's one token
    before = registry.bucket("shop-2", "na", "getOrder").level().tokens
    stop = threading.Event()
    stop.set()

    got = registry.pacer("shop-2", "na", "getOrder").acquire(stop=stop)

    assert got is None
    assert registry.bucket("shop-2", "na", "getOrder").level().tokens == pytest.approx(before)


def test_deadline_past_budget_returns_account_token() -> None:
    time = FakeTime()
    registry = _registry(time, {"getOrder": 0.01})
    registry.pacer("shop-1", "na", "getOrder").acquire()
    before = registry.bucket("shop-2", "na", "getOrder").level().tokens

    got = registry.pacer("shop-2", "na", "getOrder").acquire(deadline=time.monotonic() + 5)

    assert got is None
    assert registry.bucket("shop-2", "na", "getOrder").level().tokens == pytest.approx(before)


def _settings(**values: object) -> config.Settings:
    return config.Settings(
        lwa_client_id="id",
        lwa_client_secret="secret",  # type: ignore[arg-type]
        lwa_token_url="https://lwa.test/auth/o2/token",  # type: ignore[arg-type]
        spapi_endpoint_na="https://na.test",  # type: ignore[arg-type]
        **values,  # type: ignore[arg-type]
    )


def test_client_builds_budget_from_settings() -> None:
    client = SpApiClient(
        _settings(application_budget={"getOrder": 3.0}),
        http=httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(500))),
    )

    bucket = client.buckets.application_bucket("getOrder")

    assert bucket is not None
    assert bucket.rate == pytest.approx(3.0)
    assert client.buckets.application_bucket("searchOrders") is None


def test_client_calls_wait_for_budget() -> None:
    time = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return httpx.Response(200, json={"access_token": "Atza|t", "expires_in": 3600})
        return httpx.Response(200, json=ORDER)

    client = SpApiClient(
        _settings(),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        buckets=_registry(time, {"getOrder": 1.0}),
        retry=RetryPolicy(max_attempts=1),
        sleep=time.sleep,
        monotonic_clock=time.monotonic,
    )
    start = time.monotonic()

    for number in range(4):
        account = SellerAccount(f"shop-{number}", "na", SecretStr(f"Atzr|shop-{number}"))
        client.call(account, GET_ORDER, path_params={"orderId": "111-0000000-0000001"})

    assert time.monotonic() - start == pytest.approx(3 * 1.0, abs=0.05)
