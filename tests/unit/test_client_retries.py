"""The client's retry loop over httpx.MockTransport with fake time (no network)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from syncd import config, errors
from syncd.amazon.client import SpApiClient
from syncd.amazon.operations import GET_ORDER
from syncd.amazon.orders import OrdersClient
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.throttle import BucketRegistry, UsagePlan
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
    # 0.0167 requests per second, learned: close to a minute, where the default plan's
    # 0.5 per second would wait 2 s. The latency margin kept at the old rate shortens it.
    assert time.monotonic() - before_next >= 55.0


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


EXPIRED = {
    "errors": [{"code": "Unauthorized", "message": "The access token you provided has expired."}]
}


class TokenCounter:
    """A token endpoint that counts calls and can rotate the refresh token."""

    def __init__(self, rotate_to: str | None = None) -> None:
        self.refresh_tokens: list[str] = []
        self.rotate_to = rotate_to

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = dict(item.split("=", 1) for item in request.content.decode().split("&"))
        self.refresh_tokens.append(form.get("refresh_token", ""))
        body = {"access_token": f"Atza|{len(self.refresh_tokens)}", "expires_in": 3600}
        if self.rotate_to is not None:
            body["refresh_token"] = self.rotate_to
        return httpx.Response(200, json=body)


def _client_with_lwa(
    api: Callable[[httpx.Request], httpx.Response],
    lwa: TokenCounter,
    plans: dict[str, UsagePlan] | None = None,
    **kwargs: object,
) -> SpApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return lwa(request) if request.url.path == "/auth/o2/token" else api(request)

    settings = config.Settings(
        lwa_client_id="id",
        lwa_client_secret="secret",  # type: ignore[arg-type]
        lwa_token_url="https://lwa.test/auth/o2/token",  # type: ignore[arg-type]
        spapi_endpoint_na="https://na.test",  # type: ignore[arg-type]
        spapi_endpoint_eu="https://eu.test",  # type: ignore[arg-type]
        retry_base_delay=0.001,
    )
    time = FakeTime()
    return SpApiClient(
        settings,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        buckets=BucketRegistry(plans, clock=time.monotonic, sleep=time.sleep),
        sleep=time.sleep,
        monotonic_clock=time.monotonic,
        **kwargs,  # type: ignore[arg-type]
    )


def test_rotated_refresh_token_is_kept_and_reported() -> None:
    lwa = TokenCounter(rotate_to="Atzr|rotated")
    rotated: list[tuple[str, str, str]] = []
    client = _client_with_lwa(
        lambda _r: httpx.Response(200, json=ORDER),
        lwa,
        on_refresh_token_rotated=lambda name, region, token: rotated.append(
            (name, region, token.get_secret_value())
        ),
    )
    account = make_account("na", US)
    provider = client.token_provider(account)

    for _ in range(5):
        client.call(account, GET_ORDER, path_params={"orderId": "1"})
    provider.invalidate(provider.get())
    client.call(account, GET_ORDER, path_params={"orderId": "1"})

    assert client.token_provider(account) is provider
    assert lwa.refresh_tokens[1:] == ["Atzr%7Crotated"]
    assert len(lwa.refresh_tokens) == 2
    assert rotated == [(account.name, "na", "Atzr|rotated")]


def test_same_name_in_two_regions_keeps_two_tokens() -> None:
    lwa = TokenCounter()
    client = _client_with_lwa(lambda _r: httpx.Response(200, json=ORDER), lwa)
    na, eu = make_account("na", US), make_account("eu", "A1PA6795UKMFR9")
    na = na.__class__("acme", "na", na.refresh_token, na.marketplace_ids)
    eu = eu.__class__("acme", "eu", eu.refresh_token, eu.marketplace_ids)

    for _ in range(5):
        client.call(na, GET_ORDER, path_params={"orderId": "1"})
        client.call(eu, GET_ORDER, path_params={"orderId": "1"})

    assert len(lwa.refresh_tokens) == 2


def test_stop_ends_retries_without_sending() -> None:
    stop = threading.Event()
    sent: list[int] = []

    def api(_request: httpx.Request) -> httpx.Response:
        sent.append(1)
        stop.set()
        return httpx.Response(429, json=THROTTLED)

    client = _client_with_lwa(api, TokenCounter(), stop=stop)

    with pytest.raises(errors.StoppedError):
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert len(sent) == 1


def test_replay_once_per_call_paced() -> None:
    statuses = [403, 503, 403, 200]
    sent: list[int] = []

    def api(_request: httpx.Request) -> httpx.Response:
        status = statuses[len(sent)]
        sent.append(status)
        bodies = {403: EXPIRED, 503: {}, 200: ORDER}
        body = bodies[status]
        return httpx.Response(status, json=body)

    lwa = TokenCounter()
    client = _client_with_lwa(api, lwa, plans={"getOrder": UsagePlan(0.5, 3)})

    with pytest.raises(errors.AccessTokenExpiredError) as caught:
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert sent == [403, 503, 403]  # the second expiry is not replayed again
    assert len(lwa.refresh_tokens) == 2
    assert isinstance(caught.value, errors.RetryableApiError)
    bucket = client.buckets.bucket("acme-na", "na", "getOrder")
    assert bucket.reserve() == pytest.approx(2.0, abs=0.01)  # three tokens went to three sends


def test_corrupt_gzip_body_is_retried() -> None:
    answers = [
        httpx.Response(
            200,
            stream=httpx.ByteStream(b"\x1f\x8bnot gzip"),
            headers={"content-encoding": "gzip"},
        ),
        httpx.Response(200, json=ORDER),
    ]
    client = _client_with_lwa(lambda _r: answers.pop(0), TokenCounter())

    response = client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert response.attempts == 2


def test_request_that_never_left_returns_its_token() -> None:
    attempts: list[int] = []

    def api(_request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=ORDER)

    client = _client_with_lwa(api, TokenCounter(), plans={"getOrder": UsagePlan(0.5, 1)})

    response = client.call(make_account("na", US), GET_ORDER, path_params={"orderId": "1"})

    assert response.attempts == 2
    assert client.buckets.bucket("acme-na", "na", "getOrder").reserve() == pytest.approx(2.0)


@pytest.mark.parametrize("order_id", ["", ".", ".."])
def test_dot_segments_are_refused(order_id: str) -> None:
    sent: list[str] = []
    client = _client_with_lwa(
        lambda r: sent.append(r.url.path) or httpx.Response(200), TokenCounter()
    )

    with pytest.raises(errors.RequestError):
        client.call(make_account("na", US), GET_ORDER, path_params={"orderId": order_id})

    assert sent == []


def test_unparsable_order_is_a_record_error_without_pii() -> None:
    broken = {
        "order": {
            "orderId": "302-0000000-0000009",
            "lastUpdatedTime": "2026-05-10T10:00:00Z",
            "recipient": {"deliveryAddress": {"phone": "+49 30 5550100"}},
        }
    }
    client = _client_with_lwa(lambda _r: httpx.Response(200, json=broken), TokenCounter())

    with pytest.raises(errors.RecordError) as caught:
        OrdersClient(client, make_account("na", US)).get_order("302-0000000-0000009")

    assert caught.value.record_id == "302-0000000-0000009"
    assert "createdTime" in caught.value.reason
    assert "5550100" not in str(caught.value)
    assert caught.value.__cause__ is None
