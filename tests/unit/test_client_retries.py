"""The client's retry loop over httpx.MockTransport with fake time (no network)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from syncd import config, errors
from syncd.amazon.client import SpApiClient
from syncd.amazon.operations import GET_ORDER
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.throttle import BucketRegistry
from tests.integration.conftest import US, make_account
from tests.unit.fakes import FakeTime

THROTTLED = {
    "errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota.", "details": ""}]
}
ORDER = {
    "order": {
        "orderId": "111-0000000-0000001",
        "createdTime": "2026-05-10T10:00:00Z",
        "lastUpdatedTime": "2026-05-10T10:00:00Z",
        "orderItems": [],
    }
}


def _client(
    api: Callable[[httpx.Request], httpx.Response],
    time: FakeTime,
    backoff_sleeps: list[float],
    *,
    max_attempts: int = 5,
    max_seconds: float = 600.0,
) -> SpApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return httpx.Response(200, json={"access_token": "Atza|t", "expires_in": 3600})
        return api(request)

    settings = config.Settings(
        lwa_client_id="id",
        lwa_client_secret="secret",  # type: ignore[arg-type]
        lwa_token_url="https://lwa.test/auth/o2/token",  # type: ignore[arg-type]
        spapi_endpoint_na="https://na.test",  # type: ignore[arg-type]
    )

    def sleep(seconds: float) -> None:
        backoff_sleeps.append(seconds)
        time.sleep(seconds)

    return SpApiClient(
        settings,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        buckets=BucketRegistry(clock=time.monotonic, sleep=time.sleep),
        retry=RetryPolicy(max_attempts=max_attempts, max_seconds=max_seconds, base_delay=1.0),
        sleep=sleep,
        monotonic_clock=time.monotonic,
    )


def test_429_backoff_grows_then_rate_paces() -> None:
    answers = [
        httpx.Response(429, json=THROTTLED),
        httpx.Response(429, json=THROTTLED),
        httpx.Response(200, json=ORDER, headers={"X-Amzn-Ratelimit-Limit": "0.0167"}),
        httpx.Response(200, json=ORDER),
    ]
    time, backoff = FakeTime(), []
    client = _client(lambda _request: answers.pop(0), time, backoff)
    account = make_account("na", US)

    client.call(account, GET_ORDER, path_params={"orderId": "111-0000000-0000001"})
    before_next = time.monotonic()
    client.call(account, GET_ORDER, path_params={"orderId": "111-0000000-0000001"})

    assert len(backoff) == 2
    assert 0.5 <= backoff[0] <= 1.0 <= backoff[1] <= 2.0
    quota_waits = [s for s in time.sleeps if s not in backoff]
    assert len(quota_waits) >= 2  # each 429 emptied the bucket, so the retry waited for a token
    assert time.monotonic() - before_next >= 59.0  # 0.0167 requests per second, learned


def test_time_budget_counts_the_wait_for_quota() -> None:
    time, backoff = FakeTime(), []
    client = _client(
        lambda _r: httpx.Response(429, json=THROTTLED), time, backoff, max_seconds=30.0
    )
    start = time.monotonic()

    with pytest.raises(errors.ThrottledError):
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert time.monotonic() - start <= 30.0


def test_attempt_budget_is_never_exceeded() -> None:
    sent: list[int] = []

    def api(_request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(
            503, json={"errors": [{"code": "ServiceUnavailable", "message": "x"}]}
        )

    client = _client(api, FakeTime(), [], max_attempts=3)

    with pytest.raises(errors.RetryableApiError):
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert len(sent) == 3


def test_time_budget_is_never_exceeded() -> None:
    time, backoff = FakeTime(), []
    client = _client(
        lambda _r: httpx.Response(500, json={}), time, backoff, max_attempts=20, max_seconds=10.0
    )
    start = time.monotonic()

    with pytest.raises(errors.RetryableApiError):
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert sum(backoff) <= 10.0
    assert time.monotonic() - start <= 10.0


def test_fatal_answer_is_not_retried() -> None:
    sent: list[int] = []

    def api(_request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(400, json={"errors": [{"code": "InvalidInput", "message": "bad"}]})

    with pytest.raises(errors.FatalApiError) as caught:
        _client(api, FakeTime(), []).call(
            make_account("na", US), GET_ORDER, path_params={"orderId": "1"}
        )

    assert len(sent) == 1
    assert caught.value.error_code == "InvalidInput"


def test_path_parameters_are_encoded() -> None:
    paths: list[bytes] = []

    def api(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(200, json=ORDER)

    _client(api, FakeTime(), []).call(
        make_account("na", US), GET_ORDER, path_params={"orderId": "a/b c"}
    )

    assert paths == [b"/orders/2026-01-01/orders/a%2Fb%20c"]
