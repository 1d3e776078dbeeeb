"""Metrics counters at their choke points, over httpx.MockTransport with fake time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from syncd import config, errors, metrics
from syncd.amazon.auth import LwaClient, TokenProvider
from syncd.amazon.client import SpApiClient
from syncd.amazon.operations import GET_ORDER
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.throttle import BucketRegistry
from syncd.db.engine import create_db_engine
from tests.integration.conftest import US, make_account
from tests.unit.fakes import FakeTime

ORDER_ID = "111-0000000-0000001"
ORDER = {
    "order": {
        "orderId": ORDER_ID,
        "createdTime": "2026-05-10T10:00:00Z",
        "lastUpdatedTime": "2026-05-10T10:00:00Z",
        "orderItems": [],
    }
}
THROTTLED = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]}
SERVER_ERROR = {"errors": [{"code": "InternalFailure", "message": "We encountered an error."}]}


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class _Delta:
    """Reads a counter before and after a block, since the registry lives for the process."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name = name
        self.labels = labels
        self.before = _sample(name, **labels)

    @property
    def value(self) -> float:
        return _sample(self.name, **self.labels) - self.before


def _client(api: Callable[[httpx.Request], httpx.Response], time: FakeTime) -> SpApiClient:
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
    return SpApiClient(
        settings,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        buckets=BucketRegistry(clock=time.monotonic, sleep=time.sleep),
        retry=RetryPolicy(max_attempts=5, max_seconds=600.0, base_delay=1.0),
        sleep=time.sleep,
        monotonic_clock=time.monotonic,
    )


def test_every_attempt_counts_by_status() -> None:
    answers = [
        httpx.Response(429, json=THROTTLED),
        httpx.Response(500, json=SERVER_ERROR),
        httpx.Response(200, json=ORDER),
    ]
    client = _client(lambda _request: answers.pop(0), FakeTime())
    counted = {
        status: _Delta("syncd_api_calls_total", operation="getOrder", status=status)
        for status in ("429", "500", "200")
    }
    throttled = _Delta("syncd_api_throttled_total", operation="getOrder")

    client.call(make_account("na", US), GET_ORDER, path_params={"orderId": ORDER_ID})

    assert counted["429"].value == 1
    assert counted["500"].value == 1
    assert counted["200"].value == 1
    assert throttled.value == 1


def test_transport_failure_counts_as_error() -> None:
    answers: list[httpx.Response | None] = [None, httpx.Response(200, json=ORDER)]

    def api(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return answer

    client = _client(api, FakeTime())
    failed = _Delta("syncd_api_calls_total", operation="getOrder", status="error")
    throttled = _Delta("syncd_api_throttled_total", operation="getOrder")

    client.call(make_account("na", US), GET_ORDER, path_params={"orderId": ORDER_ID})

    assert failed.value == 1
    assert throttled.value == 0


def _provider(answers: list[httpx.Response], account: str) -> TokenProvider:
    time = FakeTime()
    lwa = LwaClient("client-id", SecretStr("client-secret"), "https://lwa.test/auth/o2/token")
    http = httpx.Client(transport=httpx.MockTransport(lambda _request: answers.pop(0)))
    return TokenProvider(
        http,
        lwa,
        account=account,
        refresh_token=SecretStr("Atzr|refresh"),
        retry=RetryPolicy(max_attempts=2, max_seconds=60, base_delay=0.5),
        monotonic_clock=time.monotonic,
        sleep=time.sleep,
    )


@pytest.mark.parametrize(
    ("error", "label"),
    [
        pytest.param("invalid_grant", "invalid_grant", id="invalid-grant"),
        pytest.param("invalid_client", "invalid_client", id="invalid-client"),
        pytest.param("vendor_specific_code", "other", id="unknown-code"),
    ],
)
def test_rejected_refresh_counts_its_code(error: str, label: str) -> None:
    provider = _provider([httpx.Response(400, json={"error": error})], "acme-rejected")
    failures = _Delta("syncd_token_refresh_failures_total", account="acme-rejected", error=label)

    with pytest.raises(errors.AuthError):
        provider.get()
    # The remembered failure is raised again without a refresh, so it is not counted again.
    with pytest.raises(errors.AuthError):
        provider.get()

    assert failures.value == 1


def test_unreachable_lwa_counts_as_unavailable() -> None:
    answers = [httpx.Response(503, text="busy"), httpx.Response(503, text="busy")]
    provider = _provider(answers, "acme-unreachable")
    failures = _Delta(
        "syncd_token_refresh_failures_total", account="acme-unreachable", error="unavailable"
    )

    with pytest.raises(errors.RetryableApiError):
        provider.get()

    assert failures.value == 1


def test_orders_counter_skips_zero() -> None:
    synced = _Delta("syncd_orders_synced_total", account="acme-zero")

    metrics.count_orders_synced("acme-zero", 0)
    metrics.count_orders_synced("acme-zero", 3)

    assert synced.value == 3


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("127.0.0.1", True, id="ipv4-loopback"),
        pytest.param("127.0.0.2", True, id="ipv4-loopback-net"),
        pytest.param("::1", True, id="ipv6-loopback"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("0.0.0.0", False, id="any-ipv4"),  # noqa: S104 - the value under test
        pytest.param("::", False, id="any-ipv6"),
        pytest.param("192.168.1.20", False, id="private-address"),
        pytest.param("metrics.example", False, id="host-name"),
    ],
)
def test_loopback_hosts_are_recognised(host: str, expected: bool) -> None:
    assert metrics.is_loopback(host) is expected


@pytest.fixture
def broken_collector(tmp_path: Path) -> Iterator[metrics.DatabaseCollector]:
    """A collector whose SQLite file lies in a folder that does not exist."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'syncd.sqlite3'}")
    yield metrics.DatabaseCollector(
        engine, lambda: timedelta(hours=12), lambda: datetime(2026, 5, 10, tzinfo=UTC)
    )
    engine.dispose()


def test_unreadable_database_reports_down(broken_collector: metrics.DatabaseCollector) -> None:
    with capture_logs() as logs:
        first = list(broken_collector.collect())
        second = list(broken_collector.collect())

    assert [family.name for family in first] == ["syncd_database_up"]
    assert first[0].samples[0].value == 0
    assert second[0].samples[0].value == 0
    events = [entry["event"] for entry in logs]
    assert events.count("metrics_database_unavailable") == 1


def test_metrics_off_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_if_called(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("start_http_server was called with metrics off")

    monkeypatch.setattr(metrics, "start_http_server", fail_if_called)
    settings = config.Settings()
    context = _Context(settings)

    endpoint = metrics.start_metrics(context)  # type: ignore[arg-type]

    assert settings.metrics_port is None
    assert endpoint.address is None
    endpoint.stop()


class _Context:
    """The part of a job context that start_metrics reads."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.engine = None
        self.now = lambda: datetime(2026, 5, 10, tzinfo=UTC)


def test_unknown_request_accounts_share_label() -> None:
    counts = {"acme-na": 2, "ACME-EU": 1, "acme-na ": 4, "typo": 3}
    known = {"acme-na": "acme-na", "acme-eu": "acme-EU"}

    found = metrics._by_known_account(counts, known)

    assert found == {"acme-na": 2, "acme-EU": 1, metrics.UNKNOWN_ACCOUNT: 7}
