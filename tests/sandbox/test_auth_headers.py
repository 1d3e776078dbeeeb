"""SP-API authentication and the headers every response carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, SEARCH_PATH, SpApi, days_ago

ACCESS_DENIED = {
    "errors": [
        {
            "code": "Unauthorized",
            "message": "Access to requested resource is denied.",
            "details": "",
        }
    ]
}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="missing"),
        pytest.param("Atza|never-issued", id="unknown"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_access_token_is_denied(api: SpApi, sandbox: SandboxServer, token: str | None) -> None:
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1)}

    response = api.get("eu", SEARCH_PATH, params, token=token)

    assert response.status_code == 403
    assert response.json() == ACCESS_DENIED


def test_get_order_needs_token(api: SpApi) -> None:
    response = api.get("eu", f"{SEARCH_PATH}/302-0000000-0000001", token=None)

    assert response.status_code == 403


def test_token_is_accepted_on_every_region(api: SpApi, sandbox: SandboxServer) -> None:
    statuses = {
        region: api.search(
            region, marketplaceIds=market, createdAfter=days_ago(sandbox, 1)
        ).status_code
        for region, market in (("na", "ATVPDKIKX0DER"), ("eu", DE), ("fe", "A1VC38T7YXB528"))
    }

    assert statuses == {"na": 200, "eu": 200, "fe": 200}


def test_common_headers(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1))

    assert response.headers["content-type"] == "application/json"
    assert uuid.UUID(response.headers["x-amzn-RequestId"])
    assert response.headers["x-amzn-RateLimit-Limit"] == "0.0056"
    assert "server" not in response.headers
    assert len(response.headers.get_list("date")) == 1


def test_request_ids_are_fresh(api: SpApi, sandbox: SandboxServer) -> None:
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1)}

    ids = {api.search("eu", **params).headers["x-amzn-RequestId"] for _ in range(3)}

    assert len(ids) == 3


def test_date_header_follows_sandbox_clock(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.set_clock_offset(-7200)

    response = api.get_order("eu", "302-0000000-0000001")

    sent = parsedate_to_datetime(response.headers["date"])
    skew = (datetime.now(UTC) - sent).total_seconds()
    assert 7190 <= skew <= 7210


def test_error_responses_carry_request_id(api: SpApi) -> None:
    response = api.get("eu", SEARCH_PATH, token=None)

    assert uuid.UUID(response.headers["x-amzn-RequestId"])
    assert response.headers["content-type"] == "application/json"


def test_unknown_path_is_not_found(api: SpApi) -> None:
    response = api.get("eu", "/orders/v0/orders")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NotFound"
    assert api.sandbox.state.call_count(operation="unknown") == 1
