"""LWA token provider and auth flow, over httpx.MockTransport with a fake clock."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from syncd import errors
from syncd.amazon.auth import ACCESS_TOKEN_HEADER, LwaAuth, LwaClient, TokenProvider
from syncd.amazon.retry import RetryPolicy
from tests.unit.fakes import FakeTime

TOKEN_URL = "https://lwa.test/auth/o2/token"
LWA = LwaClient("amzn1.application-oa2-client.test", SecretStr("client-secret-value"), TOKEN_URL)


class FakeLwa:
    """Returns queued (status, body) responses to token requests, then fresh tokens."""

    def __init__(self, answers: list[tuple[int, dict[str, object]]] | None = None) -> None:
        self.answers = list(answers or [])
        self.forms: list[dict[str, str]] = []
        self.issued = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.forms.append(form)
            if self.answers:
                status, body = self.answers.pop(0)
                return httpx.Response(status, json=body)
            self.issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"Atza|token-{self.issued}",
                    "refresh_token": form.get("refresh_token"),
                    "token_type": "bearer",
                    "expires_in": 3600,
                },
            )


def _provider(lwa: FakeLwa, time_: FakeTime, **kwargs: object) -> TokenProvider:
    http = httpx.Client(transport=httpx.MockTransport(lwa))
    options: dict[str, object] = {"refresh_token": SecretStr("Atzr|refresh-value")}
    options.update(kwargs)
    return TokenProvider(
        http,
        LWA,
        account="acme-eu",
        refresh_margin=300,
        failure_recheck=3600,
        retry=RetryPolicy(max_attempts=3, max_seconds=60, base_delay=0.5),
        monotonic_clock=time_.monotonic,
        sleep=time_.sleep,
        **options,  # type: ignore[arg-type]
    )


def test_token_is_cached_until_shortly_before_expiry() -> None:
    lwa, clock = FakeLwa(), FakeTime()
    provider = _provider(lwa, clock)

    first = provider.get()
    clock.advance(3600 - 301)
    assert provider.get() is first
    clock.advance(2)
    second = provider.get()

    assert second is not first
    assert len(lwa.forms) == 2
    assert lwa.forms[0] == {
        "client_id": LWA.client_id,
        "client_secret": "client-secret-value",
        "grant_type": "refresh_token",
        "refresh_token": "Atzr|refresh-value",
    }


def test_short_lived_token_refreshes_at_half_life() -> None:
    lwa, clock = FakeLwa([(200, {"access_token": "Atza|short", "expires_in": 60})]), FakeTime()
    provider = _provider(lwa, clock)

    provider.get()
    clock.advance(29)
    provider.get()
    clock.advance(2)
    provider.get()

    assert len(lwa.forms) == 2


def test_many_threads_cause_one_refresh() -> None:
    lwa = FakeLwa()
    original = lwa.__call__

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return original(request)

    provider = _provider(lwa, FakeTime())
    provider._http = httpx.Client(transport=httpx.MockTransport(slow))
    barrier = threading.Barrier(16)
    tokens: list[str] = []

    def worker() -> None:
        barrier.wait()
        tokens.append(provider.get().value)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(lwa.forms) == 1
    assert set(tokens) == {"Atza|token-1"}


def test_invalid_grant_is_typed_and_remembered() -> None:
    body = {
        "error": "invalid_grant",
        "error_description": "The request has an invalid grant parameter : refresh_token.",
    }
    lwa, clock = FakeLwa([(400, body)]), FakeTime()
    provider = _provider(lwa, clock)

    for _ in range(3):
        with pytest.raises(errors.InvalidGrantError) as caught:
            provider.get()

    assert caught.value.lwa_error == "invalid_grant"
    assert caught.value.status_code == 400
    assert len(lwa.forms) == 1
    assert clock.sleeps == []
    clock.advance(3601)
    provider.get()
    assert len(lwa.forms) == 2


def test_invalid_grant_names_the_command_to_fix_it() -> None:
    lwa = FakeLwa([(400, {"error": "invalid_grant", "error_description": "revoked"})])

    with pytest.raises(errors.InvalidGrantError) as caught:
        _provider(lwa, FakeTime()).get()

    assert "syncd account set-token acme-eu --refresh-token-file FILE" in str(caught.value)


def test_invalid_client_is_typed_and_never_retried() -> None:
    lwa, clock = (
        FakeLwa(
            [
                (
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed",
                    },
                )
            ]
        ),
        FakeTime(),
    )

    with pytest.raises(errors.InvalidClientError) as caught:
        _provider(lwa, clock).get()

    assert caught.value.lwa_error == "invalid_client"
    assert "client-secret-value" not in str(caught.value)
    assert len(lwa.forms) == 1


def test_other_lwa_error_is_an_auth_error() -> None:
    lwa = FakeLwa([(400, {"error": "invalid_scope", "error_description": "bad scope"})])

    with pytest.raises(errors.AuthError) as caught:
        _provider(lwa, FakeTime()).get()

    assert type(caught.value) is errors.AuthError
    assert caught.value.lwa_error == "invalid_scope"


def test_lwa_server_errors_are_retried_with_backoff() -> None:
    lwa, clock = FakeLwa([(503, {}), (500, {})]), FakeTime()

    token = _provider(lwa, clock).get()

    assert token.value == "Atza|token-1"
    assert len(lwa.forms) == 3
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] > clock.sleeps[0] * 0.9


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, "server_error"),
        (500, "invalid_request"),
        (429, "too_many_requests"),
        (400, "temporarily_unavailable"),
    ],
)
def test_lwa_error_code_from_failing_server_is_retried(status: int, error: str) -> None:
    lwa, clock = FakeLwa([(status, {"error": error, "error_description": "try later"})]), FakeTime()

    token = _provider(lwa, clock).get()

    assert token.value == "Atza|token-1"
    assert len(lwa.forms) == 2
    assert len(clock.sleeps) == 1


def test_lwa_outage_ends_in_a_retryable_error() -> None:
    lwa = FakeLwa([(503, {})] * 5)

    with pytest.raises(errors.RetryableApiError):
        _provider(lwa, FakeTime()).get()

    assert len(lwa.forms) == 3


def test_rotated_refresh_token_is_kept() -> None:
    rotated: list[SecretStr] = []
    lwa = FakeLwa(
        [(200, {"access_token": "Atza|a", "refresh_token": "Atzr|new", "expires_in": 3600})]
    )
    provider = _provider(lwa, FakeTime(), on_refresh_token_rotated=rotated.append)

    provider.get()

    assert provider.refresh_token == SecretStr("Atzr|new")
    assert [token.get_secret_value() for token in rotated] == ["Atzr|new"]


def test_grantless_token_uses_client_credentials_and_scope() -> None:
    lwa = FakeLwa()
    provider = _provider(
        lwa, FakeTime(), refresh_token=None, scope="sellingpartnerapi::notifications"
    )

    provider.get()

    assert lwa.forms[0]["grant_type"] == "client_credentials"
    assert lwa.forms[0]["scope"] == "sellingpartnerapi::notifications"
    assert "refresh_token" not in lwa.forms[0]


def test_provider_needs_exactly_one_grant() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        _provider(FakeLwa(), FakeTime(), refresh_token=None)


def test_token_repr_hides_the_value() -> None:
    token = _provider(FakeLwa(), FakeTime()).get()

    assert "Atza|" not in repr(token)


def _api(responses: list[httpx.Response], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers[ACCESS_TOKEN_HEADER])
        return responses.pop(0)

    return httpx.MockTransport(handler)


EXPIRED = {
    "errors": [{"code": "Unauthorized", "message": "The access token you provided has expired."}]
}
DENIED = {
    "errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]
}


def test_expired_token_is_refreshed_and_replayed_once() -> None:
    lwa = FakeLwa()
    provider = _provider(lwa, FakeTime())
    seen: list[str] = []
    api = httpx.Client(
        transport=_api([httpx.Response(403, json=EXPIRED), httpx.Response(200, json={})], seen)
    )

    response = api.get("https://api.test/orders/2026-01-01/orders", auth=LwaAuth(provider))

    assert response.status_code == 200
    assert seen == ["Atza|token-1", "Atza|token-2"]
    assert len(lwa.forms) == 2


def test_other_403_is_not_replayed() -> None:
    lwa = FakeLwa()
    seen: list[str] = []
    api = httpx.Client(transport=_api([httpx.Response(403, json=DENIED)], seen))

    response = api.get("https://api.test/x", auth=LwaAuth(_provider(lwa, FakeTime())))

    assert response.status_code == 403
    assert len(seen) == 1
    assert len(lwa.forms) == 1


def test_second_expiry_is_not_replayed_again() -> None:
    seen: list[str] = []
    api = httpx.Client(
        transport=_api([httpx.Response(403, json=EXPIRED), httpx.Response(403, json=EXPIRED)], seen)
    )

    response = api.get("https://api.test/x", auth=LwaAuth(_provider(FakeLwa(), FakeTime())))

    assert response.status_code == 403
    assert len(seen) == 2


def test_proxy_page_is_retried_not_remembered() -> None:
    lwa, clock = FakeLwa(), FakeTime()
    original = lwa.__call__
    pages = [httpx.Response(200, text="<html>login to the network</html>")] * 3

    def portal_then_lwa(request: httpx.Request) -> httpx.Response:
        if pages:
            lwa.forms.append({})
            return pages.pop()
        return original(request)

    provider = _provider(lwa, clock)
    provider._http = httpx.Client(transport=httpx.MockTransport(portal_then_lwa))

    with pytest.raises(errors.RetryableApiError) as caught:
        provider.get()
    token = provider.get()

    assert "login to the network" in caught.value.error_message
    assert token.value == "Atza|token-1"
    assert len(lwa.forms) == 4


@pytest.mark.parametrize("status", [403, 407, 408])
def test_intermediary_error_without_lwa_code_is_retryable(status: int) -> None:
    lwa = FakeLwa([(status, {"message": "blocked"})] * 3)

    with pytest.raises(errors.RetryableApiError):
        _provider(lwa, FakeTime()).get()

    assert len(lwa.forms) == 3


@pytest.mark.parametrize("value", ["3600s", -60, 0, None, "nan"])
def test_unusable_expires_in_falls_back_to_an_hour(value: object) -> None:
    lwa, clock = FakeLwa([(200, {"access_token": "Atza|odd", "expires_in": value})]), FakeTime()
    provider = _provider(lwa, clock)

    token = provider.get()
    provider.get()

    assert token.expires_in == 3600.0
    assert len(lwa.forms) == 1


def test_failed_refresh_is_not_repeated_by_waiting_threads() -> None:
    lwa = FakeLwa([(503, {})] * 100)
    original = lwa.__call__

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)
        return original(request)

    provider = _provider(lwa, FakeTime())
    provider._http = httpx.Client(transport=httpx.MockTransport(slow))
    barrier = threading.Barrier(8)
    failures: list[type[BaseException]] = []

    def worker() -> None:
        barrier.wait()
        try:
            provider.get()
        except errors.SyncdError as exc:
            failures.append(type(exc))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == [errors.RetryableApiError] * 8
    assert len(lwa.forms) == 3  # one refresh with its three attempts, shared by all threads
