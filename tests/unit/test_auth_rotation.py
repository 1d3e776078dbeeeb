"""LWA client secret rotation: the next secret after invalid_client, shared by every provider."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from syncd import errors
from syncd.amazon.auth import ClientCredentials, LwaClient, TokenProvider, fingerprint
from syncd.amazon.retry import RetryPolicy
from tests.unit.fakes import FakeTime

TOKEN_URL = "https://lwa.test/auth/o2/token"
CLIENT_ID = "amzn1.application-oa2-client.test"
OLD, NEW = SecretStr("old-client-secret"), SecretStr("new-client-secret")
RECHECK = 3600.0


class SecretCheckingLwa:
    """Issues tokens only for the accepted secrets and records the secret of each request."""

    def __init__(self, accepted: set[str]) -> None:
        self.accepted = accepted
        self.secrets_sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {key: value[0] for key, value in parse_qs(request.content.decode()).items()}
        with self.lock:
            self.secrets_sent.append(form["client_secret"])
            issued = len(self.secrets_sent)
        if form["client_secret"] not in self.accepted:
            body = {"error": "invalid_client", "error_description": "Client authentication failed"}
            return httpx.Response(401, json=body)
        body = {"access_token": f"Atza|token-{issued}", "token_type": "bearer", "expires_in": 3600}
        return httpx.Response(200, json=body)


def _credentials(time_: FakeTime, lwa: LwaClient, **kwargs: object) -> ClientCredentials:
    return ClientCredentials(
        lwa,
        failure_recheck=RECHECK,
        monotonic_clock=time_.monotonic,
        **kwargs,  # type: ignore[arg-type]
    )


def _provider(
    fake: SecretCheckingLwa, time_: FakeTime, credentials: ClientCredentials, account: str
) -> TokenProvider:
    return TokenProvider(
        httpx.Client(transport=httpx.MockTransport(fake)),
        credentials,
        account=account,
        refresh_token=SecretStr(f"Atzr|{account}"),
        failure_recheck=RECHECK,
        retry=RetryPolicy(max_attempts=3, max_seconds=60, base_delay=0.5),
        monotonic_clock=time_.monotonic,
        sleep=time_.sleep,
    )


def _both(next_secret: SecretStr | None = NEW) -> LwaClient:
    return LwaClient(CLIENT_ID, OLD, TOKEN_URL, next_secret)


def test_next_secret_tried_after_refusal() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    credentials = _credentials(clock, _both())

    with capture_logs() as logs:
        token = _provider(fake, clock, credentials, "acme-eu").get()

    assert token.value.startswith("Atza|")
    assert fake.secrets_sent == [OLD.get_secret_value(), NEW.get_secret_value()]
    events = {entry["event"]: entry for entry in logs}
    assert events["lwa_client_secret_refused"]["fingerprint"] == fingerprint(OLD)[:8]
    assert events["lwa_client_secret_next_in_use"]["fingerprint"] == fingerprint(NEW)[:8]
    assert "lwa_token_refresh_failed" not in events
    assert credentials.secret_in_use == NEW


def test_other_accounts_use_next_secret() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    credentials = _credentials(clock, _both())
    _provider(fake, clock, credentials, "acme-eu").get()
    fake.secrets_sent.clear()

    _provider(fake, clock, credentials, "acme-na").get()
    _provider(fake, clock, credentials, "acme-fe").get()

    assert fake.secrets_sent == [NEW.get_secret_value()] * 2


def test_logs_never_show_secrets() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both())

    with capture_logs() as logs, pytest.raises(errors.InvalidClientError):
        _provider(fake, clock, credentials, "acme-eu").get()

    text = repr(logs)
    assert OLD.get_secret_value() not in text
    assert NEW.get_secret_value() not in text
    assert fingerprint(OLD) not in text  # only the first 8 hex digits
    assert fingerprint(OLD)[:8] in text


def test_refused_application_alerts_once() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both(next_secret=None))
    providers = [_provider(fake, clock, credentials, f"acme-{n}") for n in range(5)]

    with capture_logs() as logs:
        for provider in providers:
            with pytest.raises(errors.InvalidClientError):
                provider.get()

    assert fake.secrets_sent == [OLD.get_secret_value()]
    alerts = [entry for entry in logs if entry["event"] == "lwa_client_invalid"]
    assert len(alerts) == 1
    assert alerts[0]["client_id"] == CLIENT_ID
    assert alerts[0]["fingerprint"] == fingerprint(OLD)[:8]
    # lwa_client_invalid is the one alert; no account repeats it as its own failure.
    assert "lwa_token_refresh_failed" not in [entry["event"] for entry in logs]
    assert credentials.is_refused


def test_both_refused_tries_each_once() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both())

    with capture_logs() as logs:
        for name in ("acme-eu", "acme-na"):
            with pytest.raises(errors.InvalidClientError):
                _provider(fake, clock, credentials, name).get()

    assert fake.secrets_sent == [OLD.get_secret_value(), NEW.get_secret_value()]
    assert [entry["event"] for entry in logs].count("lwa_client_invalid") == 1


def test_refused_application_rechecked_once() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both(next_secret=None))
    providers = [_provider(fake, clock, credentials, f"acme-{n}") for n in range(3)]
    for provider in providers:
        with pytest.raises(errors.InvalidClientError):
            provider.get()

    clock.advance(RECHECK - 1)
    with pytest.raises(errors.InvalidClientError):
        providers[1].get()
    assert len(fake.secrets_sent) == 1

    clock.advance(2)
    fake.accepted.add(OLD.get_secret_value())  # Amazon restored it, say
    with capture_logs() as logs:
        for provider in providers:
            provider.get()

    assert len(fake.secrets_sent) == 4  # the check, then one token per other account
    assert not credentials.is_refused
    assert "lwa_client_accepted" in [entry["event"] for entry in logs]


def test_replaced_secret_ends_refusal() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    credentials = _credentials(clock, _both(next_secret=None))
    provider = _provider(fake, clock, credentials, "acme-eu")
    with pytest.raises(errors.InvalidClientError):
        provider.get()

    credentials.replace(LwaClient(CLIENT_ID, NEW, TOKEN_URL))

    assert provider.get().value.startswith("Atza|")
    assert fake.secrets_sent == [OLD.get_secret_value(), NEW.get_secret_value()]


def test_same_settings_keep_refusal() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both(next_secret=None))
    with pytest.raises(errors.InvalidClientError):
        _provider(fake, clock, credentials, "acme-eu").get()

    credentials.replace(_both(next_secret=None))

    assert credentials.is_refused


def test_reload_keeps_next_in_use() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    credentials = _credentials(clock, _both())
    _provider(fake, clock, credentials, "acme-eu").get()

    credentials.replace(LwaClient(CLIENT_ID, OLD, "https://vendor.test/token", NEW))

    assert credentials.secret_in_use == NEW
    assert credentials.lwa.token_url == "https://vendor.test/token"


def test_known_refused_secret_is_skipped() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    credentials = _credentials(clock, _both(), refused=frozenset({fingerprint(OLD)}))

    _provider(fake, clock, credentials, "acme-eu").get()

    assert fake.secrets_sent == [NEW.get_secret_value()]


def test_refusal_and_use_reported() -> None:
    fake, clock = SecretCheckingLwa({NEW.get_secret_value()}), FakeTime()
    refused: list[str] = []
    used: list[str] = []
    credentials = _credentials(clock, _both(), on_refused=refused.append, on_used=used.append)

    _provider(fake, clock, credentials, "acme-eu").get()

    assert refused == [fingerprint(OLD)]
    assert used == [fingerprint(NEW)]


def test_same_next_secret_is_tried_once() -> None:
    fake, clock = SecretCheckingLwa(set()), FakeTime()
    credentials = _credentials(clock, _both(next_secret=OLD))

    with pytest.raises(errors.InvalidClientError):
        _provider(fake, clock, credentials, "acme-eu").get()

    assert fake.secrets_sent == [OLD.get_secret_value()]


def test_invalid_grant_leaves_secret_alone() -> None:
    clock = FakeTime()

    def revoked(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant", "error_description": "revoked"})

    credentials = _credentials(clock, _both())
    provider = TokenProvider(
        httpx.Client(transport=httpx.MockTransport(revoked)),
        credentials,
        account="acme-eu",
        refresh_token=SecretStr("Atzr|acme-eu"),
        monotonic_clock=clock.monotonic,
        sleep=clock.sleep,
    )

    with pytest.raises(errors.InvalidGrantError):
        provider.get()

    assert credentials.secret_in_use == OLD
    assert not credentials.is_refused
