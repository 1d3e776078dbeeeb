"""Control endpoints: index, settings, clock, reset and input errors."""

from __future__ import annotations

from datetime import datetime

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, SELLER_A, SpApi

RUNTIME_SETTINGS = (
    "speed, quotas, token_lifetime, pii_roles, client_secret, retiring_client_secrets, "
    "check_client, expired_token_field"
)


def test_index_lists_routes(api: SpApi) -> None:
    body = api.control("GET", "/", region="fe").json()

    assert body["region"] == "fe"
    assert "/_sandbox/faults" in body["control"]
    assert body["settings"]["seed"] == 7
    assert datetime.fromisoformat(body["now"])


def test_settings_round_trip(api: SpApi, sandbox: SandboxServer) -> None:
    changed = api.control("POST", "/settings", {"token_lifetime": 120, "speed": 2.5}).json()

    assert changed["token_lifetime"] == 120
    assert changed["speed"] == 2.5
    assert sandbox.state.config.token_lifetime == 120
    assert api.lwa(grant_type="refresh_token", refresh_token=SELLER_A).json()["expires_in"] == 120


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"seed": 3}, id="needs-reset"),
        pytest.param({"speed": 0}, id="zero-speed"),
        pytest.param({"pii_roles": "maybe"}, id="bad-choice"),
        pytest.param({"colour": "red"}, id="unknown"),
        pytest.param({"self": 1}, id="parameter-name"),
    ],
)
def test_settings_errors(api: SpApi, body: dict[str, object]) -> None:
    response = api.control("POST", "/settings", body)

    assert response.status_code == 400
    assert response.json()["error"]


def test_settings_unknown_key(api: SpApi) -> None:
    response = api.control("POST", "/settings", {"sped": 60})

    error = response.json()["error"]
    assert response.status_code == 400
    assert error.startswith("unknown setting: sped. ")
    assert f"Settings that change while the sandbox runs: {RUNTIME_SETTINGS}." in error
    assert "Settings that need a reset: seed, " in error


def test_settings_needing_reset_name_the_reset_call(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.control("POST", "/settings", {"seed": 5})

    error = response.json()["error"]
    assert response.status_code == 400
    assert error.startswith("seed cannot change while the sandbox runs. ")
    assert 'POST /_sandbox/reset with the body {"seed": 5}' in error
    assert sandbox.state.config.seed == 7


def test_settings_error_lists_problems(api: SpApi) -> None:
    response = api.control("POST", "/settings", {"speed": 0, "pii_roles": "all"})

    body = response.json()
    assert response.status_code == 400
    assert body["problems"] == [
        "speed 0 is not valid: expected a number above 0 and at most 1000000",
        'pii_roles "all" is not valid: expected one of granted, omitted, forbidden',
    ]
    assert body["error"] == "; ".join(body["problems"])


def test_clock_offset_and_advance(api: SpApi, sandbox: SandboxServer) -> None:
    set_offset = api.control("POST", "/clock", {"offset_seconds": 3600}).json()
    advanced = api.control("POST", "/clock", {"advance_seconds": 60}).json()
    read = api.control("GET", "/clock").json()

    assert set_offset["offset_seconds"] == 3600
    assert advanced["offset_seconds"] == 3660
    assert read["offset_seconds"] == 3660
    assert sandbox.state.clock.offset_seconds == 3660


def test_reset_restores_a_fresh_world(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()
    sandbox.state.add_fault({"kind": "throttle"})
    sandbox.state.set_clock_offset(500)
    sandbox.state.revoke("Atzr|x")
    sandbox.state.update_settings(speed=9.0)
    created = sandbox.state.create_order(SELLER_A, DE)

    response = api.control("POST", "/reset")

    state = sandbox.state
    assert response.status_code == 200
    assert state.faults() == []
    assert state.call_count() == 0
    assert state.clock.offset_seconds == 0
    assert state.config.speed == 1.0
    assert state.order(SELLER_A, created["orderId"]) is None
    assert (
        api.search("eu", marketplaceIds=DE, createdAfter="2020-01-01T00:00:00Z").status_code == 403
    )


def test_reset_applies_settings(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.control("POST", "/reset", {"seed": 5, "orders_per_marketplace": 2})

    assert response.status_code == 200
    assert response.json()["settings"]["seed"] == 5
    assert sandbox.state.config.seed == 5
    assert len(sandbox.state.orders(SELLER_A, marketplace_ids=[DE])) == 2


def test_reset_settings_stay_for_later_resets(api: SpApi, sandbox: SandboxServer) -> None:
    api.control("POST", "/reset", {"seed": 5})
    api.control("POST", "/settings", {"speed": 3.0})

    plain = api.control("POST", "/reset").json()

    assert plain["settings"]["seed"] == 5
    assert plain["settings"]["speed"] == 1.0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"sped": 1}, "unknown field sped: the known fields are seed, ", id="unknown"),
        pytest.param({"config": {}}, "unknown field config: ", id="parameter-name"),
        pytest.param({"seed": "x"}, 'seed "x" is not valid: expected a whole number', id="type"),
    ],
)
def test_reset_rejects_invalid_settings(
    api: SpApi, sandbox: SandboxServer, body: dict[str, object], problem: str
) -> None:
    sandbox.state.add_fault({"kind": "throttle"})

    response = api.control("POST", "/reset", body)

    assert response.status_code == 400
    assert response.json()["problems"][0].startswith(problem)
    assert len(sandbox.state.faults()) == 1


def test_unknown_control_path_has_control_shape(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.control("GET", "/nope")

    body = response.json()
    assert response.status_code == 404
    assert body["error"].startswith("no control endpoint at GET /_sandbox/nope")
    assert "/_sandbox/faults" in body["control"]
    assert "errors" not in body
    assert sandbox.state.call_count() == 0


def test_wrong_method_on_control_path(api: SpApi) -> None:
    response = api.control("GET", "/reset")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"] == "GET is not allowed on /_sandbox/reset: use POST"


def test_bare_prefix_serves_index(api: SpApi) -> None:
    response = api.http.get(api.sandbox.base_urls["eu"] + "/_sandbox")

    assert response.status_code == 200
    assert response.json()["region"] == "eu"


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        pytest.param("POST", "/faults", b"{not json", id="bad-json"),
        pytest.param("POST", "/faults", b"[1, 2]", id="not-object"),
        pytest.param("POST", "/revocations", b"{}", id="missing-field"),
        pytest.param(
            "POST", "/orders/evolve", b'{"refresh_token": "x", "region": "cn"}', id="bad-region"
        ),
        pytest.param(
            "POST",
            "/orders",
            b'{"refresh_token": "x", "marketplace_id": "A1PA6795UKMFR9", "order": []}',
            id="order-not-object",
        ),
    ],
)
def test_control_input_errors(api: SpApi, method: str, path: str, raw: bytes) -> None:
    url = api.sandbox.base_urls["na"] + "/_sandbox" + path

    response = api.http.request(
        method, url, content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]


def test_orders_read_needs_refresh_token(api: SpApi) -> None:
    response = api.control("GET", "/orders")

    assert response.status_code == 400


def test_orders_read_by_region(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.http.get(
        sandbox.base_urls["na"] + "/_sandbox/orders",
        params={"refresh_token": SELLER_A, "region": "fe"},
    )

    markets = {o["salesChannel"]["marketplaceId"] for o in response.json()["orders"]}
    assert markets == {"A1VC38T7YXB528", "A39IBJ37TRP1C6", "A19VAU5U5O7RUS"}
