"""Fault injection: every kind, rule matching (operation, region, seller, after, count)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from syncd.sandbox.faults import FaultRule
from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, JP, SELLER_A, SELLER_B, US, SpApi, days_ago

ORDER_ID = "999-0000000-0000000"  # not found: getOrder returns 404 unless a fault fires


def _search(api: SpApi, sandbox: SandboxServer, region: str = "eu", **extra: str) -> httpx.Response:
    market = {"na": US, "eu": DE, "fe": JP}[region]
    params = {"marketplaceIds": market, "createdAfter": days_ago(sandbox, 5), **extra}
    return api.search(region, **params)


def test_throttle_storm_then_recovery(api: SpApi, sandbox: SandboxServer) -> None:
    fault_id = sandbox.state.add_fault(
        {"kind": "throttle", "operation": "searchOrders", "count": 3}
    )

    statuses = [_search(api, sandbox).status_code for _ in range(4)]

    assert statuses == [429, 429, 429, 200]
    assert _search(api, sandbox).status_code == 200
    labels = [record.faults for record in sandbox.state.calls(operation="searchOrders")]
    assert labels[:3] == [(f"{fault_id}:throttle",)] * 3
    assert labels[3] == ()


def test_throttle_response_is_amazons(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "throttle", "count": 1})

    response = api.get_order("eu", ORDER_ID)

    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "QuotaExceeded"


def test_after_delays_the_fault(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault(
        {"kind": "server_error", "operation": "getOrder", "after": 2, "count": 1}
    )

    statuses = [api.get_order("eu", ORDER_ID).status_code for _ in range(4)]

    assert statuses == [404, 404, 503, 404]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(500, "InternalFailure", id="500"),
        pytest.param(503, "ServiceUnavailable", id="503"),
    ],
)
def test_server_error(api: SpApi, sandbox: SandboxServer, status: int, code: str) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "server_error", "status": status, "count": 1})

    response = api.get_order("eu", ORDER_ID)

    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code


def test_slow_exceeds_client_timeout(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "slow", "delay": 0.5, "count": 1, "operation": "getOrder"})
    token = api.token()

    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{sandbox.base_urls['eu']}/orders/2026-01-01/orders/{ORDER_ID}",
            headers={"x-amz-access-token": token},
            timeout=0.15,
        )
    timed_out_after = time.perf_counter() - started
    deadline = time.monotonic() + 5
    while not sandbox.state.calls(operation="getOrder") and time.monotonic() < deadline:
        time.sleep(0.02)  # the sandbox finishes the response after the client gave up

    assert timed_out_after < 0.45
    record = sandbox.state.calls(operation="getOrder")[-1]
    assert record.status == 404
    assert record.faults[0].endswith(":slow")
    assert record.duration_ms >= 450


def test_slow_response_still_arrives(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "slow", "delay": 0.2, "count": 1})

    started = time.perf_counter()
    response = api.get_order("eu", ORDER_ID)

    assert response.status_code == 404
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize(
    ("field", "message", "details"),
    [
        pytest.param(
            "details",
            "Access to requested resource is denied.",
            "The access token you provided has expired.",
            id="details",
        ),
        pytest.param("message", "The access token you provided has expired.", "", id="message"),
    ],
)
def test_expired_token_fault(
    api: SpApi, sandbox: SandboxServer, field: str, message: str, details: str
) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "expired_token", "field": field, "count": 1})

    first = _search(api, sandbox)
    second = _search(api, sandbox)

    assert first.status_code == 403
    assert first.json()["errors"] == [
        {"code": "Unauthorized", "message": message, "details": details}
    ]
    assert second.status_code == 200


def test_access_denied_for_one_seller(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault(
        {"kind": "access_denied", "operation": "searchOrders", "refresh_token": SELLER_B}
    )
    other = SpApi(sandbox, SELLER_B)
    try:
        denied = _search(other, sandbox)
    finally:
        other.close()

    assert _search(api, sandbox).status_code == 200
    assert denied.status_code == 403
    assert denied.headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_revoke_fault_revokes_refresh_token(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "revoke", "operation": "searchOrders", "count": 1})

    search = _search(api, sandbox)
    refresh = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert search.status_code == 200  # the access token stays valid until it expires
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"


def test_revoke_fault_on_lwa_names_token(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "revoke", "operation": "lwa", "refresh_token": SELLER_B})

    own = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)
    other = api.lwa(grant_type="refresh_token", refresh_token=SELLER_B)

    assert own.status_code == 200
    assert other.json()["error"] == "invalid_grant"


def test_invalid_client_fault(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "invalid_client", "operation": "lwa", "count": 1})

    first = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)
    second = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert first.status_code == 401
    assert first.json() == {
        "error_description": "Client authentication failed",
        "error": "invalid_client",
    }
    assert second.status_code == 200


@pytest.mark.parametrize("status", [500, 503])
def test_lwa_server_error(api: SpApi, sandbox: SandboxServer, status: int) -> None:
    sandbox.state.add_fault(
        {"kind": "server_error", "operation": "lwa", "status": status, "count": 1}
    )

    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert response.status_code == status
    assert response.json()["error"] == "server_error"


def test_lwa_throttle(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "throttle", "operation": "lwa", "count": 1})

    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert response.status_code == 429


def test_malformed_json(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "malformed_json", "operation": "searchOrders", "count": 1})

    response = _search(api, sandbox)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"orders"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_malformed_json_on_lwa(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "malformed_json", "operation": "lwa", "count": 1})

    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def _page_params(sandbox: SandboxServer) -> dict[str, str]:
    return {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 30), "maxResultsPerPage": "10"}


def test_repeat_page(api: SpApi, sandbox: SandboxServer) -> None:
    params = _page_params(sandbox)
    first = api.search("eu", **params).json()
    token = first["pagination"]["nextToken"]
    sandbox.state.add_fault({"kind": "repeat_page", "count": 1})

    second = api.search("eu", **params, paginationToken=token).json()
    third = api.search("eu", **params, paginationToken=token).json()

    assert second["pagination"]["nextToken"] == token
    assert [o["orderId"] for o in second["orders"]] == [o["orderId"] for o in third["orders"]]
    assert third["pagination"]["nextToken"] != token


def test_repeat_page_ignores_first_pages(api: SpApi, sandbox: SandboxServer) -> None:
    fault_id = sandbox.state.add_fault({"kind": "repeat_page", "count": 1})

    api.search("eu", **_page_params(sandbox))

    fault = next(f for f in sandbox.state.faults() if f["id"] == fault_id)
    assert fault["matched"] == 0
    assert fault["fired"] == 0


def test_duplicate_pages(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "duplicate_pages", "count": 3})
    params = _page_params(sandbox)

    pages: list[dict[str, Any]] = [api.search("eu", **params).json()]
    for _ in range(3):
        token = pages[-1]["pagination"]["nextToken"]
        pages.append(api.search("eu", **params, paginationToken=token).json())

    ids = [[o["orderId"] for o in page["orders"]] for page in pages]
    tokens = [page["pagination"]["nextToken"] for page in pages]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[0]  # the third duplicate still points at the first page
    assert len(set(tokens)) == 4
    fourth = api.search("eu", **params, paginationToken=tokens[3]).json()
    assert {o["orderId"] for o in fourth["orders"]}.isdisjoint(ids[0])


def test_omit_rate_limit_header(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "omit_rate_limit_header", "count": 1})

    without = _search(api, sandbox)
    with_header = _search(api, sandbox)

    assert "x-amzn-RateLimit-Limit" not in without.headers
    assert with_header.headers["x-amzn-RateLimit-Limit"] == "0.0056"


def test_reject_dataset_on_one_region(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "reject_dataset", "dataset": "FULFILLMENT", "region": "fe"})

    fe_with = _search(api, sandbox, "fe", includedData="PROCEEDS,FULFILLMENT")
    fe_without = _search(api, sandbox, "fe", includedData="PROCEEDS")
    na_with = _search(api, sandbox, "na", includedData="PROCEEDS,FULFILLMENT")

    assert fe_with.status_code == 400
    assert fe_with.json()["errors"][0]["code"] == "InvalidInput"
    assert fe_without.status_code == 200
    assert na_with.status_code == 200


def test_region_filter(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()  # log in before the fault, which also matches LWA calls
    sandbox.state.add_fault({"kind": "server_error", "region": "na"})

    assert _search(api, sandbox, "eu").status_code == 200
    assert _search(api, sandbox, "na").status_code == 503


def test_faults_do_not_consume_quota(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.add_fault({"kind": "throttle", "operation": "searchOrders", "count": 25})

    storm = [_search(api, sandbox).status_code for _ in range(25)]
    after = [_search(api, sandbox).status_code for _ in range(20)]

    assert set(storm) == {429}
    assert set(after) == {200}


def test_faults_from_config(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(faults=({"kind": "throttle", "operation": "getOrder", "count": 1},))
    api = SpApi(sandbox)
    try:
        statuses = [api.get_order("eu", ORDER_ID).status_code for _ in range(2)]
    finally:
        api.close()

    assert statuses == [429, 404]


def test_faults_over_http(api: SpApi) -> None:
    added = api.control(
        "POST",
        "/faults",
        {
            "rules": [
                {"kind": "throttle", "operation": "getOrder", "count": 1},
                {"kind": "slow", "delay": 0.01},
            ]
        },
    ).json()
    listed = api.control("GET", "/faults").json()["faults"]
    removed = api.control("DELETE", f"/faults/{added['ids'][1]}")
    status = api.get_order("eu", ORDER_ID).status_code
    after = api.control("GET", "/faults").json()["faults"]
    cleared = api.control("DELETE", "/faults").json()

    assert len(added["ids"]) == 2
    assert [f["kind"] for f in listed] == ["throttle", "slow"]
    assert removed.status_code == 200
    assert status == 429
    assert after[0]["fired"] == 1
    assert after[0]["exhausted"] is True
    assert cleared == {"faults": []}


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"kind": "explode"}, id="unknown-kind"),
        pytest.param({"kind": "slow"}, id="slow-without-delay"),
        pytest.param({"kind": "reject_dataset"}, id="no-dataset"),
        pytest.param({"kind": "invalid_client", "operation": "searchOrders"}, id="lwa-only"),
        pytest.param({"kind": "repeat_page", "operation": "getOrder"}, id="search-only"),
        pytest.param({"kind": "throttle", "count": 0}, id="count-zero"),
        pytest.param({"kind": "throttle", "region": "cn"}, id="bad-region"),
        pytest.param({"kind": "throttle", "color": "red"}, id="extra-field"),
        pytest.param({"kind": "reject_dataset", "dataset": "fulfillment"}, id="dataset-case"),
    ],
)
def test_invalid_rules_are_rejected(
    api: SpApi, sandbox: SandboxServer, rule: dict[str, Any]
) -> None:
    response = api.control("POST", "/faults", rule)

    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "; ".join(body["problems"])
    assert "pydantic" not in body["error"]
    with pytest.raises(ValidationError):
        sandbox.state.add_fault(rule)


def test_invalid_rule_names_field_value_and_choices(api: SpApi) -> None:
    response = api.control("POST", "/faults", {"kind": "thrott"})

    assert response.json()["problems"] == [
        (
            'kind "thrott" is not valid: expected one of throttle, server_error, slow, '
            "expired_token, access_denied, revoke, invalid_client, malformed_json, repeat_page, "
            "duplicate_pages, omit_rate_limit_header, reject_dataset, apply_then_slow, "
            "apply_then_server_error"
        )
    ]


def test_one_invalid_rule_adds_none(api: SpApi, sandbox: SandboxServer) -> None:
    rules = [{"kind": "throttle"}, {"kind": "slow", "delay": -1}]

    response = api.control("POST", "/faults", {"rules": rules})

    assert response.status_code == 400
    assert response.json()["problems"] == [
        "rules[1]: delay -1 is not valid: expected a number from 0 to 600"
    ]
    assert sandbox.state.faults() == []


def test_unknown_fault_id(api: SpApi) -> None:
    response = api.control("DELETE", "/faults/f999")

    assert response.status_code == 404


@pytest.mark.parametrize("operation", ["searchorders", "GetOrder", "confirmshipment"])
def test_unknown_operation_is_rejected(operation: str) -> None:
    with pytest.raises(ValidationError, match="unknown operation"):
        FaultRule(kind="throttle", operation=operation)
