"""The call log: what each record holds, filters, the HTTP view and clearing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, IT, SEARCH_PATH, SELLER_A, SpApi, days_ago


def test_search_record_fields(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()
    after = days_ago(sandbox, 1)

    response = api.search("eu", marketplaceIds=DE, createdAfter=after, includedData="FULFILLMENT")

    record = sandbox.state.calls(operation="searchOrders")[0]
    assert record.request_id == response.headers["x-amzn-RequestId"]
    assert record.status == 200
    assert record.region == "eu"
    assert record.port == sandbox.ports["eu"]
    assert record.method == "GET"
    assert record.path == SEARCH_PATH
    assert record.params == {
        "marketplaceIds": DE,
        "createdAfter": after,
        "includedData": "FULFILLMENT",
    }
    assert "createdAfter=" in record.raw_query
    assert record.seller_id == sandbox.state.seller_id(SELLER_A)
    assert record.faults == ()
    assert abs(record.sandbox_time - sandbox.state.now()) < timedelta(seconds=5)
    assert record.duration_ms >= 0


def test_sandbox_time_follows_clock_offset(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.set_clock_offset(86400)

    api.token()

    record = sandbox.state.calls(operation="lwa")[0]
    assert record.sandbox_time - record.wall_time > timedelta(hours=23)


def test_repeated_parameters_are_kept(api: SpApi, sandbox: SandboxServer) -> None:
    query = f"marketplaceIds={IT}&marketplaceIds={DE}&createdAfter={days_ago(sandbox, 1)}"

    api.get("eu", SEARCH_PATH, query=query)

    record = sandbox.state.calls(operation="searchOrders")[0]
    assert record.params["marketplaceIds"] == IT
    assert record.params_all["marketplaceIds"] == [IT, DE]
    assert record.raw_query == query


def test_lwa_record_hides_secrets(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()

    record = sandbox.state.calls(operation="lwa")[0]
    assert record.params["grant_type"] == "refresh_token"
    assert record.params["refresh_token"] == "[REDACTED]"
    assert record.params["client_secret"] == "[REDACTED]"
    assert record.seller_id == sandbox.state.seller_id(SELLER_A)
    assert SELLER_A not in repr(record.to_json())


def test_failed_auth_is_recorded(api: SpApi, sandbox: SandboxServer) -> None:
    api.get("eu", SEARCH_PATH, token=None)

    record = sandbox.state.calls()[0]
    assert record.operation == "searchOrders"
    assert record.status == 403
    assert record.seller_id is None


def test_counts_and_filters(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()
    for _ in range(3):
        api.get_order("eu", "999-0000000-0000000")
    api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1))

    state = sandbox.state
    assert state.call_count() == 5
    assert state.call_count(operation="getOrder") == 3
    assert state.call_count(operation="getOrder", status=404) == 3
    assert state.call_count(region="na") == 1
    assert len(state.calls(seller_id=state.seller_id(SELLER_A))) == 5


def test_control_calls_are_not_recorded(api: SpApi, sandbox: SandboxServer) -> None:
    api.control("GET", "/clock")
    api.control("GET", "/calls")

    assert sandbox.state.call_count() == 0


def test_call_log_over_http(api: SpApi) -> None:
    api.token()
    api.get_order("eu", "999-0000000-0000000")

    everything = api.control("GET", "/calls").json()
    only_get = api.http.get(
        api.sandbox.base_urls["fe"] + "/_sandbox/calls", params={"operation": "getOrder"}
    ).json()
    cleared = api.control("DELETE", "/calls").json()
    after = api.control("GET", "/calls").json()

    assert everything["count"] == 2
    assert only_get["count"] == 1
    call = only_get["calls"][0]
    assert call["operation"] == "getOrder"
    assert call["status"] == 404
    assert call["request_id"]
    assert call["sandbox_time"].endswith("Z")
    assert cleared == {"calls": []}
    assert after["count"] == 0


def test_call_log_rejects_bad_status_filter(api: SpApi) -> None:
    response = api.http.get(
        api.sandbox.base_urls["na"] + "/_sandbox/calls", params={"status": "ok"}
    )

    assert response.status_code == 400


def test_call_log_rejects_unknown_operation(api: SpApi) -> None:
    response = api.http.get(
        api.sandbox.base_urls["na"] + "/_sandbox/calls", params={"operation": "searchorders"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == (
        "unknown operation 'searchorders': use one of lwa, searchOrders, getOrder, "
        "confirmShipment, unknown"
    )


@pytest.mark.parametrize(
    "operation", ["lwa", "searchOrders", "getOrder", "confirmShipment", "unknown"]
)
def test_call_log_accepts_known_operations(api: SpApi, operation: str) -> None:
    response = api.http.get(
        api.sandbox.base_urls["na"] + "/_sandbox/calls", params={"operation": operation}
    )

    assert response.status_code == 200


def test_call_log_rejects_unknown_region(api: SpApi) -> None:
    response = api.http.get(
        api.sandbox.base_urls["na"] + "/_sandbox/calls", params={"region": "NA"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unknown region 'NA': use one of na, eu, fe"
