"""LWA token endpoint: grants, errors in LWA's shape, revocation, expiry, grantless tokens."""

from __future__ import annotations

import re

import httpx
import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, SEARCH_PATH, SELLER_A, SpApi, days_ago
from tests.sandbox_fixtures import SandboxFactory

INVALID_GRANT = (
    "The request has an invalid grant parameter : refresh_token. User may have revoked or "
    "didn't grant the permission."
)


def test_refresh_grant_returns_bearer_token(api: SpApi) -> None:
    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert re.fullmatch(r"Atza\|[A-Za-z0-9_-]+", body["access_token"])
    assert body["refresh_token"] == SELLER_A
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-amzn-RequestId"]


def test_refresh_grant_tokens_are_fresh(api: SpApi) -> None:
    first = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A).json()["access_token"]
    second = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A).json()["access_token"]

    assert first != second


def test_json_body_is_accepted(api: SpApi, sandbox: SandboxServer) -> None:
    env = sandbox.settings_env()
    body = {
        "grant_type": "refresh_token",
        "refresh_token": SELLER_A,
        "client_id": env["SYNCD_LWA_CLIENT_ID"],
        "client_secret": env["SYNCD_LWA_CLIENT_SECRET"],
    }

    response = api.http.post(sandbox.lwa_token_url, json=body)

    assert response.status_code == 200
    assert response.json()["access_token"].startswith("Atza|")


def test_client_credentials_grant(api: SpApi) -> None:
    response = api.lwa(grant_type="client_credentials", scope="sellingpartnerapi::notifications")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "token_type", "expires_in"}
    assert body["scope"] == "sellingpartnerapi::notifications"


def test_grantless_token_rejected_by_orders(api: SpApi, sandbox: SandboxServer) -> None:
    grantless = api.lwa(grant_type="client_credentials", scope="sellingpartnerapi::notifications")

    response = api.get(
        "eu",
        "/orders/2026-01-01/orders",
        {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1)},
        token=grantless.json()["access_token"],
    )

    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "Unauthorized"


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        pytest.param({"refresh_token": SELLER_A}, 400, "invalid_request", id="no-grant-type"),
        pytest.param(
            {"grant_type": "refresh_token"}, 400, "invalid_request", id="no-refresh-token"
        ),
        pytest.param(
            {"grant_type": "password"}, 400, "unsupported_grant_type", id="bad-grant-type"
        ),
        pytest.param({"grant_type": "client_credentials"}, 400, "invalid_request", id="no-scope"),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "sellingpartnerapi::orders"},
            400,
            "invalid_scope",
            id="unknown-scope",
        ),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": SELLER_A, "client_secret": "wrong"},
            401,
            "invalid_client",
            id="wrong-secret",
        ),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": SELLER_A, "client_id": "other"},
            401,
            "invalid_client",
            id="wrong-client-id",
        ),
    ],
)
def test_token_request_errors(api: SpApi, fields: dict[str, str], status: int, error: str) -> None:
    response = api.lwa(**fields)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]


def test_missing_client_secret_is_invalid_request(api: SpApi, sandbox: SandboxServer) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": SELLER_A, "client_id": "x"}

    response = api.http.post(sandbox.lwa_token_url, data=form)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_unreadable_body_is_invalid_request(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.http.post(
        sandbox.lwa_token_url, content=b"<xml/>", headers={"content-type": "text/xml"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_invalid_client_message(api: SpApi) -> None:
    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A, client_secret="old")

    assert response.json() == {
        "error_description": "Client authentication failed",
        "error": "invalid_client",
    }


def test_client_check_can_be_disabled(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(check_client=False)
    client = SpApi(sandbox)
    try:
        response = client.lwa(
            grant_type="refresh_token", refresh_token=SELLER_A, client_id="any", client_secret="any"
        )
    finally:
        client.close()

    assert response.status_code == 200


def test_revoked_refresh_token_gets_invalid_grant(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.revoke(SELLER_A)

    response = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert response.status_code == 400
    assert response.json() == {"error_description": INVALID_GRANT, "error": "invalid_grant"}


def test_revocation_over_http_and_restore(api: SpApi) -> None:
    revoked = api.control("POST", "/revocations", {"refresh_token": SELLER_A})
    rejected = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)
    api.control("POST", "/revocations", {"refresh_token": SELLER_A, "revoked": False})
    accepted = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert revoked.json()["revoked"] is True
    assert rejected.json()["error"] == "invalid_grant"
    assert accepted.status_code == 200


def test_other_refresh_tokens_unaffected_by_revocation(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.revoke(SELLER_A)

    response = api.lwa(grant_type="refresh_token", refresh_token="Atzr|another-seller")

    assert response.status_code == 200


def test_access_token_expires_by_sandbox_clock(api: SpApi, sandbox: SandboxServer) -> None:
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1)}
    assert api.search("eu", **params).status_code == 200

    sandbox.state.advance_clock(3600)
    response = api.search("eu", **params)

    assert response.status_code == 403
    assert response.json() == {
        "errors": [
            {
                "code": "Unauthorized",
                "message": "Access to requested resource is denied.",
                "details": "The access token you provided has expired.",
            }
        ]
    }


def test_token_lifetime_setting(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.set_token_lifetime(60)

    body = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A).json()
    sandbox.state.advance_clock(61)
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1)}
    response = api.get("eu", SEARCH_PATH, params, token=body["access_token"])

    assert body["expires_in"] == 60
    assert response.status_code == 403
    assert "expired" in response.json()["errors"][0]["details"]


def test_expiry_text_in_message_when_configured(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.update_settings(expired_token_field="message")
    api.token()
    sandbox.state.advance_clock(3601)

    response = api.search("eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1))

    error = response.json()["errors"][0]
    assert error["message"] == "The access token you provided has expired."
    assert error["details"] == ""


def test_lwa_served_only_on_na_port(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.http.post(sandbox.base_urls["eu"] + "/auth/o2/token", data={})

    assert response.status_code == 404


def test_lwa_works_without_keep_alive(sandbox: SandboxServer) -> None:
    env = sandbox.settings_env()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": SELLER_A,
        "client_id": env["SYNCD_LWA_CLIENT_ID"],
        "client_secret": env["SYNCD_LWA_CLIENT_SECRET"],
    }

    response = httpx.post(sandbox.lwa_token_url, data=form, timeout=5)

    assert response.status_code == 200
