"""searchOrders input rules: windows, the two-minute rule, marketplaces, enums, page size."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, IT, JP, US, SpApi, days_ago, iso
from tests.sandbox_fixtures import SandboxFactory

TWO_MINUTE_MESSAGE = (
    "The input you have submitted is not valid. Please provide a date that is at least "
    "2 minutes before current time and try again."
)


def _invalid_input_message(response: object) -> str:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["code"] == "InvalidInput"
    assert error["details"] == ""
    return str(error["message"])


def _ago(sandbox: SandboxServer, **delta: float) -> str:
    return iso(sandbox.state.now() - timedelta(**delta))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, "Exactly one of createdAfter and lastUpdatedAfter", id="no-after"),
        pytest.param(
            {"createdAfter": "D2", "lastUpdatedAfter": "D2"}, "cannot be combined", id="both-after"
        ),
        pytest.param(
            {"createdAfter": "D2", "lastUpdatedBefore": "D1"}, "cannot be combined", id="mixed"
        ),
        pytest.param(
            {"lastUpdatedAfter": "D2", "createdBefore": "D1"}, "cannot be combined", id="mixed-2"
        ),
        pytest.param(
            {"createdBefore": "D1"}, "Exactly one of createdAfter", id="before-without-after"
        ),
        pytest.param(
            {"createdAfter": "D1", "createdBefore": "D2"},
            "createdBefore must be equal to or after createdAfter",
            id="created-before-earlier",
        ),
        pytest.param(
            {"lastUpdatedAfter": "D1", "lastUpdatedBefore": "D2"},
            "lastUpdatedBefore must be equal to or after lastUpdatedAfter",
            id="updated-before-earlier",
        ),
        pytest.param({"createdAfter": "yesterday"}, "Invalid createdAfter", id="not-a-date"),
        pytest.param(
            {"lastUpdatedAfter": "D2", "lastUpdatedBefore": "2026-13-01T00:00:00Z"},
            "Invalid lastUpdatedBefore",
            id="bad-month",
        ),
    ],
)
def test_window_rules(
    api: SpApi, sandbox: SandboxServer, params: dict[str, str], expected: str
) -> None:
    dates = {"D1": _ago(sandbox, days=1), "D2": _ago(sandbox, days=2)}
    query = {name: dates.get(value, value) for name, value in params.items()}

    response = api.search("eu", marketplaceIds=DE, **query)

    assert expected in _invalid_input_message(response)


def test_equal_bounds_are_allowed(api: SpApi, sandbox: SandboxServer) -> None:
    moment = _ago(sandbox, hours=3)

    response = api.search("eu", marketplaceIds=DE, createdAfter=moment, createdBefore=moment)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("seconds_ago", "status"),
    [
        pytest.param(30, 400, id="30s"),
        pytest.param(110, 400, id="110s"),
        pytest.param(125, 200, id="125s"),
        pytest.param(600, 200, id="10min"),
    ],
)
def test_two_minute_rule(api: SpApi, sandbox: SandboxServer, seconds_ago: int, status: int) -> None:
    response = api.search(
        "eu",
        marketplaceIds=DE,
        lastUpdatedAfter=_ago(sandbox, hours=1),
        lastUpdatedBefore=_ago(sandbox, seconds=seconds_ago),
    )

    assert response.status_code == status
    if status == 400:
        assert _invalid_input_message(response) == TWO_MINUTE_MESSAGE


def test_two_minute_rule_applies_to_created_before(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.search(
        "eu",
        marketplaceIds=DE,
        createdAfter=_ago(sandbox, hours=1),
        createdBefore=_ago(sandbox, seconds=60),
    )

    assert _invalid_input_message(response) == TWO_MINUTE_MESSAGE


def test_after_within_two_minutes_without_before(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.search("eu", marketplaceIds=DE, lastUpdatedAfter=_ago(sandbox, seconds=30))

    assert _invalid_input_message(response) == TWO_MINUTE_MESSAGE


def test_two_minute_rule_uses_skewed_clock(api: SpApi, sandbox: SandboxServer) -> None:
    # The client's clock is right, Amazon's runs 10 minutes behind: a bound 5 minutes
    # ago by the client's clock is in Amazon's future.
    bound = _ago(sandbox, minutes=5)
    sandbox.state.set_clock_offset(-600)

    rejected = api.search(
        "eu", marketplaceIds=DE, lastUpdatedAfter=_ago(sandbox, hours=2), lastUpdatedBefore=bound
    )
    sandbox.state.set_clock_offset(600)
    accepted = api.search(
        "eu", marketplaceIds=DE, lastUpdatedAfter=_ago(sandbox, hours=2), lastUpdatedBefore=bound
    )

    assert _invalid_input_message(rejected) == TWO_MINUTE_MESSAGE
    assert accepted.status_code == 200


def test_echoes_given_before(api: SpApi, sandbox: SandboxServer) -> None:
    before = _ago(sandbox, minutes=5)

    body = api.search(
        "eu", marketplaceIds=DE, lastUpdatedAfter=_ago(sandbox, days=1), lastUpdatedBefore=before
    ).json()

    assert body["lastUpdatedBefore"] == before
    assert "createdBefore" not in body


def test_echoes_now_minus_two_minutes(api: SpApi, sandbox: SandboxServer) -> None:
    sent_at = sandbox.state.now()

    body = api.search("eu", marketplaceIds=DE, createdAfter=_ago(sandbox, days=1)).json()

    echoed = datetime.fromisoformat(body["createdBefore"])
    assert "lastUpdatedBefore" not in body
    assert sent_at - timedelta(minutes=2, seconds=1) <= echoed
    assert echoed <= sandbox.state.now() - timedelta(minutes=2)


@pytest.mark.parametrize(
    ("marketplace_ids", "expected"),
    [
        pytest.param(None, "marketplaceIds is required", id="missing"),
        pytest.param("", "marketplaceIds is required", id="empty"),
        pytest.param(JP, f"Invalid marketplaceIds for this endpoint: {JP}", id="jp-on-eu"),
        pytest.param(
            f"{DE},{US}", f"Invalid marketplaceIds for this endpoint: {US}", id="us-on-eu"
        ),
        pytest.param("A1B2C3D4E5F6G7", "A1B2C3D4E5F6G7", id="unknown"),
        pytest.param(",".join([DE] * 51), "at most 50", id="51-ids"),
        pytest.param(f"{DE},,{IT}", "Invalid marketplaceIds", id="empty-item"),
    ],
)
def test_marketplace_rules(
    api: SpApi, sandbox: SandboxServer, marketplace_ids: str | None, expected: str
) -> None:
    params = {"createdAfter": days_ago(sandbox, 1)}
    if marketplace_ids is not None:
        params["marketplaceIds"] = marketplace_ids

    response = api.search("eu", **params)

    assert expected in _invalid_input_message(response)


def test_fifty_marketplace_ids_are_allowed(api: SpApi, sandbox: SandboxServer) -> None:
    response = api.search(
        "eu", marketplaceIds=",".join([DE] * 50), createdAfter=days_ago(sandbox, 1)
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("maxResultsPerPage", "0", "from 1 to 100", id="page-0"),
        pytest.param("maxResultsPerPage", "101", "from 1 to 100", id="page-101"),
        pytest.param("maxResultsPerPage", "ten", "from 1 to 100", id="page-text"),
        pytest.param("maxResultsPerPage", "10.5", "from 1 to 100", id="page-fraction"),
        pytest.param(
            "includedData", "BUYER,ADDRESS", "Invalid includedData value 'ADDRESS'", id="dataset"
        ),
        pytest.param("includedData", "buyer", "Invalid includedData", id="dataset-case"),
        pytest.param("fulfillmentStatuses", "Shipped", "Invalid fulfillmentStatuses", id="status"),
        pytest.param("fulfilledBy", "AFN", "Invalid fulfilledBy", id="fulfilled-by"),
        pytest.param("MarketplaceIds", DE, "Unknown parameter 'MarketplaceIds'", id="v0-casing"),
        pytest.param("nextToken", "abc", "Unknown parameter 'nextToken'", id="v0-token-name"),
    ],
)
def test_parameter_values(
    api: SpApi, sandbox: SandboxServer, name: str, value: str, expected: str
) -> None:
    params = {"marketplaceIds": DE, "createdAfter": days_ago(sandbox, 1), name: value}

    response = api.search("eu", **params)

    assert expected in _invalid_input_message(response)


@pytest.mark.parametrize("size", ["1", "100"])
def test_page_size_bounds_accepted(api: SpApi, sandbox: SandboxServer, size: str) -> None:
    body = api.search(
        "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 30), maxResultsPerPage=size
    ).json()

    assert len(body["orders"]) == int(size)


def test_repeated_parameter_uses_first_value(api: SpApi, sandbox: SandboxServer) -> None:
    after = days_ago(sandbox, 30).replace(":", "%3A")

    response = api.get(
        "eu",
        "/orders/2026-01-01/orders",
        query=f"createdAfter={after}&marketplaceIds={IT}&marketplaceIds={DE}",
    )

    markets = {
        order["salesChannel"]["marketplaceId"]
        for page in [response.json()]
        for order in page["orders"]
    }
    assert response.status_code == 200
    assert markets == {IT}
    record = sandbox.state.calls(operation="searchOrders")[-1]
    assert record.params["marketplaceIds"] == IT
    assert record.params_all["marketplaceIds"] == [IT, DE]


def test_comma_joined_marketplaces_return_both(api: SpApi, sandbox: SandboxServer) -> None:
    pages = api.search_pages("eu", marketplaceIds=f"{IT},{DE}", createdAfter=days_ago(sandbox, 30))

    markets = {order["salesChannel"]["marketplaceId"] for page in pages for order in page["orders"]}
    assert markets == {IT, DE}


def test_encoded_comma_is_accepted(api: SpApi, sandbox: SandboxServer) -> None:
    after = days_ago(sandbox, 2).replace(":", "%3A")

    response = api.get(
        "eu", "/orders/2026-01-01/orders", query=f"createdAfter={after}&marketplaceIds={IT}%2C{DE}"
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("offset", "fraction"),
    [
        pytest.param("+08:00", "", id="offset"),
        pytest.param("Z", ".123", id="fraction"),
        pytest.param("", "", id="no-offset"),
    ],
)
def test_iso_dates_parse(api: SpApi, sandbox: SandboxServer, offset: str, fraction: str) -> None:
    day = (sandbox.state.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")

    response = api.search("eu", marketplaceIds=DE, createdAfter=f"{day}{fraction}{offset}")

    assert response.status_code == 200


def test_lenient_parameters_ignore_unknown(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(strict_parameters=False, orders_per_marketplace=3)
    api = SpApi(sandbox)
    try:
        response = api.search(
            "eu", marketplaceIds=DE, createdAfter=days_ago(sandbox, 1), MarketplaceIds=IT
        )
    finally:
        api.close()

    assert response.status_code == 200
