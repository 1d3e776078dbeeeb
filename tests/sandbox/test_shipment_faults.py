"""Faults on confirmShipment: the existing kinds, and those acting after the request took effect."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    CONFIRM_PATH,
    SELLER_A,
    US,
    SpApi,
    confirmation_body,
    create_merchant_order,
)


@pytest.fixture
def order(sandbox: SandboxServer) -> dict[str, Any]:
    """An unshipped merchant order in the US with one item of two units."""
    return create_merchant_order(sandbox, US, (2,))


def _packages(sandbox: SandboxServer, order: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox.state.packages(SELLER_A, order["orderId"])


def _wait_for_record(sandbox: SandboxServer) -> None:
    """Wait until the sandbox has logged its confirmShipment response."""
    deadline = time.monotonic() + 5
    while not sandbox.state.calls(operation="confirmShipment") and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        pytest.param({"kind": "throttle"}, 429, "QuotaExceeded", id="throttle"),
        pytest.param({"kind": "server_error", "status": 500}, 500, "InternalFailure", id="500"),
        pytest.param({"kind": "server_error"}, 503, "ServiceUnavailable", id="503"),
        pytest.param({"kind": "expired_token"}, 403, "Unauthorized", id="expired-token"),
        pytest.param({"kind": "access_denied"}, 403, "Unauthorized", id="access-denied"),
    ],
)
def test_replacing_faults_record_nothing(
    api: SpApi, order: dict[str, Any], rule: dict[str, Any], status: int, code: str
) -> None:
    sandbox = api.sandbox
    fault_id = sandbox.state.add_fault({**rule, "operation": "confirmShipment", "count": 1})

    failed = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    retried = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert failed.status_code == status
    assert failed.json()["errors"][0]["code"] == code
    assert retried.status_code == 204
    assert len(_packages(sandbox, order)) == 1
    record = sandbox.state.calls(operation="confirmShipment")[0]
    assert record.faults == (f"{fault_id}:{rule['kind']}",)


def test_slow_fault_delays_then_records(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    api.token()
    sandbox.state.add_fault({"kind": "slow", "delay": 0.2, "operation": "confirmShipment"})

    started = time.perf_counter()
    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert response.status_code == 204
    assert time.perf_counter() - started >= 0.2
    assert len(_packages(sandbox, order)) == 1


def test_malformed_json_cuts_error_body(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()
    sandbox.state.add_fault({"kind": "malformed_json", "operation": "confirmShipment"})

    response = api.confirm_shipment("na", "111-0000000-0000000", {})

    assert response.status_code == 400
    assert response.content.startswith(b'{"errors"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_omit_rate_limit_header(api: SpApi, sandbox: SandboxServer, order: dict[str, Any]) -> None:
    api.token()
    sandbox.state.add_fault(
        {"kind": "omit_rate_limit_header", "operation": "confirmShipment", "count": 1}
    )

    without = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    with_header = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert without.status_code == 204
    assert "x-amzn-RateLimit-Limit" not in without.headers
    assert with_header.headers["x-amzn-RateLimit-Limit"] == "2"


def test_revoke_fault_on_confirmation(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    sandbox.state.add_fault({"kind": "revoke", "operation": "confirmShipment", "count": 1})

    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    refresh = api.lwa(grant_type="refresh_token", refresh_token=SELLER_A)

    assert response.status_code == 204
    assert refresh.json()["error"] == "invalid_grant"


def test_apply_then_slow_records_before_timeout(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    token = api.token()
    fault_id = sandbox.state.add_fault(
        {"kind": "apply_then_slow", "delay": 0.5, "operation": "confirmShipment", "count": 1}
    )
    url = sandbox.base_urls["na"] + CONFIRM_PATH.format(order["orderId"])

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            url,
            json=confirmation_body(order),
            headers={"x-amz-access-token": token},
            timeout=0.15,
        )
    recorded_at_timeout = _packages(sandbox, order)
    _wait_for_record(sandbox)

    assert len(recorded_at_timeout) == 1
    record = sandbox.state.calls(operation="confirmShipment")[0]
    assert record.status == 204
    assert record.faults == (f"{fault_id}:apply_then_slow",)
    assert record.duration_ms >= 450


def test_resend_after_timeout_keeps_one_package(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    token = api.token()
    sandbox.state.add_fault(
        {"kind": "apply_then_slow", "delay": 0.4, "operation": "confirmShipment", "count": 1}
    )
    url = sandbox.base_urls["na"] + CONFIRM_PATH.format(order["orderId"])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            url,
            json=confirmation_body(order),
            headers={"x-amz-access-token": token},
            timeout=0.1,
        )

    resent = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    second_package = api.confirm_shipment(
        "na", order["orderId"], confirmation_body(order, reference_id="2")
    )

    assert resent.status_code == 204
    assert second_package.status_code == 400
    assert "PackageToUpdateNotFound" in second_package.json()["errors"][0]["message"]
    assert len(_packages(sandbox, order)) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(500, "InternalFailure", id="500"),
        pytest.param(503, "ServiceUnavailable", id="503"),
    ],
)
def test_apply_then_server_error_records_package(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any], status: int, code: str
) -> None:
    api.token()
    sandbox.state.add_fault(
        {
            "kind": "apply_then_server_error",
            "status": status,
            "operation": "confirmShipment",
            "count": 1,
        }
    )

    failed = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    resent = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert failed.status_code == status
    assert failed.json()["errors"][0]["code"] == code
    assert resent.status_code == 204
    packages = _packages(sandbox, order)
    assert len(packages) == 1
    assert packages[0]["trackingNumber"] == "1Z0000000000000001"


def test_apply_then_server_error_on_reads(api: SpApi, sandbox: SandboxServer) -> None:
    api.token()
    sandbox.state.add_fault({"kind": "apply_then_server_error", "operation": "getOrder"})

    response = api.get_order("na", "111-0000000-0000000")

    assert response.status_code == 503


def test_apply_then_slow_ends_on_shutdown(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory(orders_per_marketplace=0)
    created = create_merchant_order(sandbox, US, (1,))
    api = SpApi(sandbox)
    try:
        token = api.token()
        sandbox.state.add_fault(
            {"kind": "apply_then_slow", "delay": 30, "operation": "confirmShipment"}
        )
        url = sandbox.base_urls["na"] + CONFIRM_PATH.format(created["orderId"])
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                url,
                json=confirmation_body(created),
                headers={"x-amz-access-token": token},
                timeout=0.2,
            )
        started = time.perf_counter()
        sandbox.stop()
        stopped_after = time.perf_counter() - started
    finally:
        api.close()

    assert stopped_after < 5
    record = sandbox.state.calls(operation="confirmShipment")[0]
    assert record.status == 503
    assert len(sandbox.state.packages(SELLER_A, created["orderId"])) == 1


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"kind": "apply_then_slow"}, id="no-delay"),
        pytest.param({"kind": "apply_then_slow", "operation": "lwa", "delay": 1}, id="lwa"),
        pytest.param({"kind": "apply_then_server_error", "operation": "lwa"}, id="lwa-error"),
        pytest.param({"kind": "apply_then_server_error", "status": 404}, id="bad-status"),
        pytest.param({"kind": "repeat_page", "operation": "confirmShipment"}, id="search-only"),
    ],
)
def test_invalid_shipment_rules_are_rejected(
    api: SpApi, sandbox: SandboxServer, rule: dict[str, Any]
) -> None:
    response = api.control("POST", "/faults", rule)

    assert response.status_code == 400
    with pytest.raises(ValidationError):
        sandbox.state.add_fault(rule)


def test_apply_then_slow_needs_delay(api: SpApi) -> None:
    response = api.control("POST", "/faults", {"kind": "apply_then_slow"})

    assert response.json()["problems"] == [
        "missing field delay: expected a number of seconds above 0 for a slow fault"
    ]
