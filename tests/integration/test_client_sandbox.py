"""The SP-API client against the local sandbox over real HTTP, one behaviour per test."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import structlog
from pydantic import SecretStr

from syncd import errors, logs
from syncd.amazon.client import CallRecord, SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.operations import GET_ORDER, SEARCH_ORDERS, Operation
from syncd.amazon.orders import OrdersClient, SearchOrdersQuery
from syncd.amazon.query import Query
from syncd.sandbox.server import SandboxServer
from tests import spec
from tests.integration.conftest import (
    DE,
    FR,
    IT,
    JP,
    REFRESH_TOKEN,
    US,
    ClientFactory,
    make_account,
)
from tests.integration.proxy import RecordingProxy

ALL_DATASETS = ("FULFILLMENT", "PROCEEDS", "BUYER", "RECIPIENT", "PACKAGES", "PROMOTION")


def _search(client: SpApiClient, region: str, *marketplace_ids: str, days: int = 30) -> list:
    orders = OrdersClient(client, make_account(region, *marketplace_ids))  # type: ignore[arg-type]
    query = SearchOrdersQuery(
        marketplace_ids,
        last_updated_after=utc_now() - timedelta(days=days),
        included_data=ALL_DATASETS,
    )
    return list(orders.search_orders(query))


def _visible(sandbox: SandboxServer, pages: list, *marketplace_ids: str) -> set[str]:  # type: ignore[type-arg]
    """The sandbox's orders that the searched window covers (Amazon hides the last minutes)."""
    bound = pages[0].window_before.strftime("%Y-%m-%dT%H:%M:%SZ")
    documents = sandbox.state.orders(REFRESH_TOKEN, marketplace_ids=list(marketplace_ids))
    return {doc["orderId"] for doc in documents if doc["lastUpdatedTime"] <= bound}


def _first_order_id(sandbox: SandboxServer, marketplace_id: str) -> str:
    return str(sandbox.state.orders(REFRESH_TOKEN, marketplace_ids=[marketplace_id])[0]["orderId"])


# -- data from all three regions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "marketplace_id"), [("na", US), ("eu", DE), ("fe", JP)], ids=["US", "DE", "JP"]
)
def test_orders_from_each_region_parse(
    client: SpApiClient, sandbox: SandboxServer, region: str, marketplace_id: str
) -> None:
    pages = _search(client, region, marketplace_id)

    orders = [order for page in pages for order in page.orders]
    assert {order.order_id for order in orders} == _visible(sandbox, pages, marketplace_id)
    assert all(page.invalid == [] for page in pages)
    assert {order.marketplace_id for order in orders} == {marketplace_id}
    assert all(isinstance(order.order_id, str) for order in orders)


def test_marketplaces_go_comma_joined_in_one_parameter(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    pages = _search(client, "eu", DE, FR, IT)

    calls = sandbox.state.calls(operation="searchOrders")
    assert calls
    assert all(call.params_all["marketplaceIds"] == [f"{DE},{FR},{IT}"] for call in calls)
    got = {order.marketplace_id for page in pages for order in page.orders}
    assert got == {DE, FR, IT}


def test_page_tokens_are_encoded_once_and_parameters_repeat(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    pages = _search(client, "eu", DE, FR, IT)

    calls = sandbox.state.calls(operation="searchOrders")
    assert len(calls) == len(pages) >= 3
    assert all(call.status == 200 for call in calls)
    first = calls[0].raw_query
    tokens = [page.token for page in pages[1:]]
    assert any(set(token or "") & set("+/=") for token in tokens)
    for call, token in zip(calls[1:], tokens, strict=True):
        assert "%25" not in call.raw_query
        base, _, sent = call.raw_query.rpartition("&paginationToken=")
        assert base == first
        assert parse_qs(f"t={sent}")["t"] == [token]
        assert "+" not in sent
        assert "/" not in sent
        assert "=" not in sent


def test_requests_use_only_declared_parameters(client: SpApiClient, sandbox: SandboxServer) -> None:
    _search(client, "eu", DE, FR)
    order_id = _first_order_id(sandbox, DE)
    OrdersClient(client, make_account("eu", DE)).get_order(order_id, ["FULFILLMENT", "PACKAGES"])

    calls = sandbox.state.calls(operation="searchOrders") + sandbox.state.calls(
        operation="getOrder"
    )
    for call in calls:
        spec.check_request(call.operation, call.path, call.raw_query)


def test_get_order_keeps_leading_zeros(client: SpApiClient, sandbox: SandboxServer) -> None:
    documents = sandbox.state.orders(REFRESH_TOKEN, region="eu")
    with_zero = next(doc for doc in documents if doc["orderId"].startswith("0"))

    order = OrdersClient(client, make_account("eu", DE)).get_order(
        with_zero["orderId"], ["FULFILLMENT"]
    )

    assert order.order_id == with_zero["orderId"]
    assert [item.order_item_id for item in order.order_items] == [
        item["orderItemId"] for item in with_zero["orderItems"]
    ]


# -- LWA tokens ---------------------------------------------------------------------------------


def test_token_is_refreshed_ahead_of_expiry(client: SpApiClient, sandbox: SandboxServer) -> None:
    sandbox.state.set_token_lifetime(2)
    orders = OrdersClient(client, make_account("na", US))
    order_id = _first_order_id(sandbox, US)

    orders.get_order(order_id)
    time.sleep(1.2)  # past half the lifetime: the provider refreshes before the token expires
    orders.get_order(order_id)

    assert sandbox.state.call_count(operation="lwa") == 2
    assert sandbox.state.call_count(status=403) == 0


@pytest.mark.parametrize("field", ["details", "message"])
def test_expired_token_is_refreshed_and_replayed(
    client: SpApiClient, sandbox: SandboxServer, field: str
) -> None:
    order_id = _first_order_id(sandbox, US)
    sandbox.state.add_fault(
        {"kind": "expired_token", "operation": "getOrder", "count": 1, "field": field}
    )

    order = OrdersClient(client, make_account("na", US)).get_order(order_id)

    assert order.order_id == order_id
    assert [call.status for call in sandbox.state.calls(operation="getOrder")] == [403, 200]
    assert sandbox.state.call_count(operation="lwa") == 2


def test_other_403_is_raised_without_refresh(client: SpApiClient, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "access_denied", "operation": "getOrder"})

    with pytest.raises(errors.AccessDeniedError) as caught:
        OrdersClient(client, make_account("na", US)).get_order(_first_order_id(sandbox, US))

    assert caught.value.status_code == 403
    assert caught.value.request_id
    assert sandbox.state.call_count(operation="getOrder") == 1
    assert sandbox.state.call_count(operation="lwa") == 1


def test_revoked_refresh_token_stops_before_any_api_call(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    sandbox.state.revoke(REFRESH_TOKEN)
    orders = OrdersClient(client, make_account("eu", DE))

    for _ in range(3):
        with pytest.raises(errors.InvalidGrantError) as caught:
            list(
                orders.search_orders(
                    SearchOrdersQuery((DE,), last_updated_after=utc_now() - timedelta(days=1))
                )
            )

    assert caught.value.lwa_error == "invalid_grant"
    assert sandbox.state.call_count(operation="lwa") == 1
    assert sandbox.state.call_count(operation="searchOrders") == 0


def test_invalid_client_is_typed(client: SpApiClient, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "invalid_client", "operation": "lwa"})

    with pytest.raises(errors.InvalidClientError):
        OrdersClient(client, make_account("na", US)).get_order(_first_order_id(sandbox, US))

    assert sandbox.state.call_count(operation="getOrder") == 0


def test_grantless_token_from_client_credentials(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    token = client.grantless_provider("sellingpartnerapi::notifications").get()

    assert token.value
    lwa = sandbox.state.calls(operation="lwa")
    assert [call.status for call in lwa] == [200]


# -- throttling and transient failures ----------------------------------------------------------


def test_429_storm_causes_no_retry_storm(sandbox_factory, client_factory: ClientFactory) -> None:  # type: ignore[no-untyped-def]
    server = sandbox_factory(speed=1000)
    client = client_factory(server)
    order_id = _first_order_id(server, US)
    server.state.add_fault({"kind": "throttle", "operation": "getOrder", "count": 3})

    order = OrdersClient(client, make_account("na", US)).get_order(order_id)

    assert order.order_id == order_id
    assert [call.status for call in server.state.calls(operation="getOrder")] == [
        429,
        429,
        429,
        200,
    ]


def test_endless_429_gives_up_after_the_attempt_budget(
    sandbox_factory,
    client_factory: ClientFactory,  # type: ignore[no-untyped-def]
) -> None:
    server = sandbox_factory(speed=1000)
    client = client_factory(server, SYNCD_RETRY_MAX_ATTEMPTS="3")
    server.state.add_fault({"kind": "throttle", "operation": "getOrder"})

    with pytest.raises(errors.ThrottledError) as caught:
        OrdersClient(client, make_account("na", US)).get_order(_first_order_id(server, US))

    assert caught.value.error_code == "QuotaExceeded"
    assert server.state.call_count(operation="getOrder") == 3


def test_client_learns_the_rate_limit_header(client: SpApiClient, sandbox: SandboxServer) -> None:
    _search(client, "na", US, days=1)

    bucket = client.buckets.bucket("acme-na", "na", "searchOrders")
    header = sandbox.state.calls(operation="searchOrders")[-1]
    assert bucket.rate == pytest.approx(0.0056)
    assert header.status == 200


def test_client_paces_itself_instead_of_provoking_429(
    sandbox_factory,
    client_factory: ClientFactory,  # type: ignore[no-untyped-def]
) -> None:
    server = sandbox_factory(speed=200)  # getOrder: 100 per second, burst 30
    client = client_factory(server)
    orders = OrdersClient(client, make_account("na", US))
    order_id = _first_order_id(server, US)

    for _ in range(60):
        orders.get_order(order_id)

    assert server.state.call_count(operation="getOrder") == 60
    assert server.state.call_count(status=429) == 0


def test_server_errors_are_retried(client: SpApiClient, sandbox: SandboxServer) -> None:
    order_id = _first_order_id(sandbox, US)
    sandbox.state.add_fault(
        {"kind": "server_error", "operation": "getOrder", "count": 2, "status": 500}
    )

    OrdersClient(client, make_account("na", US)).get_order(order_id)

    assert [call.status for call in sandbox.state.calls(operation="getOrder")] == [500, 500, 200]


# The slow-response tests use their own sandbox, so that its late responses cannot land in the
# call log of the next test.


def test_read_timeout_is_retried_on_a_read(sandbox_factory, client_factory: ClientFactory) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_factory()
    # A second more than the retry needs. Under a loaded test run the sandbox's thread once
    # sent the retry's response 636 ms late, which a 0.3 s timeout took for a hang.
    client = client_factory(sandbox, SYNCD_HTTP_READ_TIMEOUT="1.0")
    order_id = _first_order_id(sandbox, US)
    sandbox.state.add_fault({"kind": "slow", "operation": "getOrder", "count": 1, "delay": 3.0})
    records: list[str | None] = []
    client.add_listener(lambda record: records.append(record.failure))

    order = OrdersClient(client, make_account("na", US)).get_order(order_id)

    assert order.order_id == order_id
    assert records == ["no_response", None]


def test_read_timeout_on_a_create_is_not_repeated(
    sandbox_factory,
    client_factory: ClientFactory,  # type: ignore[no-untyped-def]
) -> None:
    sandbox = sandbox_factory()
    client = client_factory(sandbox, SYNCD_HTTP_READ_TIMEOUT="0.3")
    # getOrder's route, declared as an operation that creates something: a timeout must not
    # lead to a second request.
    creating = Operation("getOrder", "GET", GET_ORDER.path, idempotent=False)
    sandbox.state.add_fault({"kind": "slow", "operation": "getOrder", "delay": 1.0})
    records: list[str | None] = []
    client.add_listener(lambda record: records.append(record.failure))

    with pytest.raises(errors.OutcomeUnknownError):
        client.call(
            make_account("na", US), creating, path_params={"orderId": _first_order_id(sandbox, US)}
        )

    assert records == ["no_response"]


def test_malformed_json_is_retried(client: SpApiClient, sandbox: SandboxServer) -> None:
    order_id = _first_order_id(sandbox, US)
    sandbox.state.add_fault({"kind": "malformed_json", "operation": "getOrder", "count": 1})

    OrdersClient(client, make_account("na", US)).get_order(order_id)

    assert sandbox.state.call_count(operation="getOrder") == 2


def test_unreachable_host_is_retried_then_raised(
    sandbox: SandboxServer, client_factory: ClientFactory
) -> None:
    client = client_factory(
        sandbox, SYNCD_SPAPI_ENDPOINT_NA="http://127.0.0.1:9", SYNCD_RETRY_MAX_ATTEMPTS="2"
    )

    with pytest.raises(errors.RetryableApiError) as caught:
        client.call(
            make_account("na", US), GET_ORDER, path_params={"orderId": "111-1111111-1111111"}
        )

    assert caught.value.status_code is None
    assert "ConnectError from http://127.0.0.1:9" in caught.value.error_message
    assert "SYNCD_HTTPS_PROXY" in str(caught.value)


# -- paging guards ------------------------------------------------------------------------------


def test_repeated_page_token_stops_paging(client: SpApiClient, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "repeat_page", "operation": "searchOrders", "after": 1})

    with pytest.raises(errors.PaginationError) as caught:
        _search(client, "eu", DE, FR, IT)

    assert caught.value.reason == errors.PaginationError.REPEATED_TOKEN
    calls = sandbox.state.calls(operation="searchOrders")
    assert [bool(call.faults) for call in calls] == [False] * (len(calls) - 1) + [True]


def test_same_orders_under_new_tokens_stop_paging(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    sandbox.state.add_fault({"kind": "duplicate_pages", "operation": "searchOrders", "after": 1})

    with pytest.raises(errors.PaginationError) as caught:
        _search(client, "eu", DE, FR, IT)

    assert caught.value.reason == errors.PaginationError.NO_NEW_ITEMS
    assert sandbox.state.call_count(operation="searchOrders") <= 8


# -- the two-minute rule ------------------------------------------------------------------------


def _window_bounds(sandbox: SandboxServer) -> list[str]:
    return [
        call.params["lastUpdatedBefore"] for call in sandbox.state.calls(operation="searchOrders")
    ]


@pytest.mark.parametrize("offset", [-600, 600], ids=["amazon-behind", "amazon-ahead"])
def test_skewed_clock_never_breaks_the_two_minute_rule(
    client: SpApiClient, sandbox: SandboxServer, offset: int
) -> None:
    sandbox.state.set_clock_offset(offset)
    orders = OrdersClient(client, make_account("na", US))
    orders.get_order(_first_order_id(sandbox, US))  # any response teaches the client Amazon's clock

    query = SearchOrdersQuery(
        (US,), last_updated_after=utc_now() - timedelta(days=2), last_updated_before=utc_now()
    )
    pages = list(orders.search_orders(query))

    assert pages
    assert sandbox.state.call_count(operation="searchOrders", status=400) == 0
    for bound in _window_bounds(sandbox):
        assert bound <= (sandbox.state.now() - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_two_minute_400_is_fixed_and_retried_once(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    orders = OrdersClient(client, make_account("na", US), skew_margin=timedelta(seconds=5))
    orders.get_order(_first_order_id(sandbox, US))  # the client measures a skew of zero
    sandbox.state.set_clock_offset(-300)  # then Amazon's clock falls five minutes behind

    query = SearchOrdersQuery((US,), last_updated_after=utc_now() - timedelta(days=2))
    pages = list(orders.search_orders(query))

    statuses = [call.status for call in sandbox.state.calls(operation="searchOrders")]
    assert statuses[:2] == [400, 200]
    first, second = _window_bounds(sandbox)[:2]
    assert second < first
    assert pages[0].window_before is not None


def test_window_that_clamps_to_nothing_is_not_sent(
    client: SpApiClient, sandbox: SandboxServer
) -> None:
    orders = OrdersClient(client, make_account("na", US))

    pages = list(
        orders.search_orders(
            SearchOrdersQuery((US,), last_updated_after=utc_now() - timedelta(seconds=30))
        )
    )

    assert pages == []
    assert sandbox.state.call_count(operation="searchOrders") == 0


def test_mixed_windows_are_refused_locally(client: SpApiClient, sandbox: SandboxServer) -> None:
    orders = OrdersClient(client, make_account("na", US))
    query = SearchOrdersQuery(
        (US,), created_after=utc_now() - timedelta(days=1), last_updated_after=utc_now()
    )

    with pytest.raises(errors.RequestError):
        list(orders.search_orders(query))

    assert sandbox.state.call_count() == 0


# -- configuration guards -----------------------------------------------------------------------


def test_wrong_region_rejected_before_sending(client: SpApiClient, sandbox: SandboxServer) -> None:
    orders = OrdersClient(client, make_account("eu", DE, JP))

    with pytest.raises(errors.MarketplaceError) as caught:
        list(
            orders.search_orders(
                SearchOrdersQuery((DE, JP), last_updated_after=utc_now() - timedelta(days=1))
            )
        )

    assert caught.value.marketplace_id == JP
    assert sandbox.state.call_count() == 0


def test_proxy_setting_covers_lwa_and_sp_api(
    sandbox: SandboxServer, client_factory: ClientFactory
) -> None:
    with RecordingProxy() as proxy:
        client = client_factory(sandbox, SYNCD_HTTPS_PROXY=proxy.url)
        OrdersClient(client, make_account("na", US)).get_order(_first_order_id(sandbox, US))

    methods_and_paths = [
        (method, url.split("?")[0].split("/", 3)[-1]) for method, url in proxy.requests
    ]
    assert ("POST", "auth/o2/token") in methods_and_paths
    assert any(
        method == "GET" and path.startswith("orders/2026-01-01/orders/")
        for method, path in methods_and_paths
    )


def test_secrets_never_reach_the_logs(
    sandbox: SandboxServer, client_factory: ClientFactory
) -> None:
    out = io.StringIO()
    logs.configure_logging("json", "debug", stream=out)
    client = client_factory(sandbox)
    orders = OrdersClient(client, make_account("na", US))
    sandbox.state.add_fault({"kind": "expired_token", "operation": "getOrder", "count": 1})
    orders.get_order(_first_order_id(sandbox, US))
    list(
        orders.search_orders(
            SearchOrdersQuery((US,), last_updated_after=utc_now() - timedelta(days=3))
        )
    )
    sandbox.state.revoke(REFRESH_TOKEN)
    client.token_provider(make_account("na", US)).invalidate(
        client.token_provider(make_account("na", US)).get()
    )
    with pytest.raises(errors.InvalidGrantError):
        orders.get_order("111-0000000-0000000")
    structlog.get_logger().info("done")

    text = out.getvalue()
    assert "lwa_token_refreshed" in text
    assert "access_token_expired" in text
    assert "lwa_token_refresh_failed" in text
    assert REFRESH_TOKEN not in text
    assert sandbox.state.config.client_secret not in text
    assert "Atza|" not in text  # every access token the sandbox issues starts like this


def test_refresh_token_never_in_repr_or_errors() -> None:
    account = make_account("eu", DE)

    assert REFRESH_TOKEN not in repr(account)
    assert isinstance(account.refresh_token, SecretStr)


def test_query_snapshot_is_reused_for_resume(client: SpApiClient, sandbox: SandboxServer) -> None:
    orders = OrdersClient(client, make_account("eu", DE, FR, IT))
    query = SearchOrdersQuery((DE, FR, IT), last_updated_after=utc_now() - timedelta(days=30))
    iterator = orders.search_orders(query)
    first = next(iterator)
    assert first.next_token is not None

    resumed = list(
        orders.search_orders(query, resume_query=first.query, resume_token=first.next_token)
    )

    seen = {order.order_id for order in first.orders} | {
        order.order_id for page in resumed for order in page.orders
    }
    assert seen == _visible(sandbox, [first], DE, FR, IT)
    assert Query.build({}).params == ()
    assert SEARCH_ORDERS.window_bounds == ("createdBefore", "lastUpdatedBefore")


def test_threads_sharing_a_bucket_keep_the_time_budget(
    sandbox_factory,
    client_factory: ClientFactory,  # type: ignore[no-untyped-def]
) -> None:
    server = sandbox_factory(speed=100)  # searchOrders refills 0.56 tokens per second
    client = client_factory(server, SYNCD_RETRY_MAX_SECONDS="3", SYNCD_RETRY_MAX_ATTEMPTS="20")
    orders = OrdersClient(client, make_account("na", US))
    orders.get_order(_first_order_id(server, US))  # learn the clock and the token first
    server.state.add_fault({"kind": "throttle", "operation": "searchOrders"})
    # Per thread, not per thread id: Python reuses the id of a thread that has ended.
    first_wait = threading.local()

    def remember_first_wait(record: CallRecord) -> None:
        if record.attempt == 1:
            first_wait.seconds = record.quota_wait_seconds

    client.add_listener(remember_first_wait)
    retry_times: list[float] = []

    def search() -> None:
        started = time.monotonic()
        query = SearchOrdersQuery((US,), last_updated_after=utc_now() - timedelta(days=1))
        with pytest.raises(errors.ThrottledError):
            list(orders.search_orders(query))
        retry_times.append(time.monotonic() - started - first_wait.seconds)

    threads = [threading.Thread(target=search) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # A first attempt waits its turn in the queue, as the plan requires. The backoff and the
    # retries' quota waits after it stay within SYNCD_RETRY_MAX_SECONDS.
    assert len(retry_times) == 6
    assert max(retry_times) <= 3.5
