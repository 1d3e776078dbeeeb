"""searchOrders pagination: opaque tokens, encoding, parameter binding, expiry, snapshots."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import DE, FR, SEARCH_PATH, SELLER_B, SpApi, days_ago

TOKEN_MESSAGE = (
    "The paginationToken you have submitted is not valid. All parameters must match the "
    "original request except maxResultsPerPage."
)


def _first_page(
    api: SpApi, sandbox: SandboxServer, **extra: str
) -> tuple[dict[str, str], dict[str, Any]]:
    params = {
        "marketplaceIds": f"{DE},{FR}",
        "createdAfter": days_ago(sandbox, 30),
        "maxResultsPerPage": "20",
        **extra,
    }
    response = api.search("eu", **params)
    assert response.status_code == 200, response.text
    return params, response.json()


def _error_message(response: object) -> str:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    return str(response.json()["errors"][0]["message"])  # type: ignore[attr-defined]


def test_pages_cover_every_order_once(api: SpApi, sandbox: SandboxServer) -> None:
    pages = api.search_pages(
        "eu",
        marketplaceIds=f"{DE},{FR}",
        createdAfter=days_ago(sandbox, 30),
        maxResultsPerPage="50",
    )

    ids = [order["orderId"] for page in pages for order in page["orders"]]
    expected = {
        o["orderId"]
        for o in sandbox.state.orders("Atzr|sandbox-seller-a", marketplace_ids=[DE, FR])
    }
    assert len(pages) > 2
    assert len(ids) == len(set(ids))
    assert set(ids) <= expected
    assert all("pagination" in page for page in pages[:-1])
    assert "pagination" not in pages[-1]
    assert all(len(page["orders"]) == 50 for page in pages[:-1])


def test_tokens_contain_characters_needing_encoding(api: SpApi, sandbox: SandboxServer) -> None:
    _, body = _first_page(api, sandbox)

    token = body["pagination"]["nextToken"]
    assert "+" in token
    assert "/" in token
    assert token.endswith("=")


def test_token_encoded_once_round_trips(api: SpApi, sandbox: SandboxServer) -> None:
    params, body = _first_page(api, sandbox)
    token = body["pagination"]["nextToken"]
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())

    response = api.get("eu", SEARCH_PATH, query=f"{query}&paginationToken={quote(token, safe='')}")

    assert response.status_code == 200
    first_ids = {order["orderId"] for order in body["orders"]}
    assert first_ids.isdisjoint(order["orderId"] for order in response.json()["orders"])


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda token: token, id="raw"),
        pytest.param(lambda token: quote(quote(token, safe=""), safe=""), id="double-encoded"),
    ],
)
def test_token_sent_wrongly_is_rejected(api: SpApi, sandbox: SandboxServer, encode: object) -> None:
    params, body = _first_page(api, sandbox)
    token = body["pagination"]["nextToken"]
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())

    sent = encode(token)  # type: ignore[operator]
    response = api.get("eu", SEARCH_PATH, query=f"{query}&paginationToken={sent}")

    assert _error_message(response) == TOKEN_MESSAGE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("maxResultsPerPage", "7", id="page-size"),
        pytest.param("includedData", "FULFILLMENT,PROCEEDS", id="included-data"),
    ],
)
def test_token_allows_changing(api: SpApi, sandbox: SandboxServer, name: str, value: str) -> None:
    params, body = _first_page(api, sandbox)

    response = api.search(
        "eu", **{**params, name: value, "paginationToken": body["pagination"]["nextToken"]}
    )

    assert response.status_code == 200
    if name == "maxResultsPerPage":
        assert len(response.json()["orders"]) == 7


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"createdBefore": "NOW-3M"}, id="before-added"),
        pytest.param({"marketplaceIds": f"{FR},{DE}"}, id="marketplaces-reordered"),
        pytest.param({"marketplaceIds": DE}, id="marketplace-dropped"),
        pytest.param({"fulfilledBy": "MERCHANT"}, id="filter-added"),
        pytest.param({"createdAfter": None}, id="after-dropped"),
    ],
)
def test_token_bound_to_parameters(
    api: SpApi, sandbox: SandboxServer, change: dict[str, str | None]
) -> None:
    params, body = _first_page(api, sandbox)
    changed = {**params, "paginationToken": body["pagination"]["nextToken"]}
    for name, value in change.items():
        if value is None:
            del changed[name]
        else:
            changed[name] = days_ago(sandbox, 0.003) if value == "NOW-3M" else value

    response = api.search("eu", **changed)

    assert _error_message(response) == TOKEN_MESSAGE


def test_recomputed_before_breaks_token(api: SpApi, sandbox: SandboxServer) -> None:
    params, body = _first_page(api, sandbox, createdBefore=days_ago(sandbox, 0.01))
    token = body["pagination"]["nextToken"]

    recomputed = {**params, "createdBefore": days_ago(sandbox, 0.005), "paginationToken": token}
    unchanged = {**params, "paginationToken": token}

    assert _error_message(api.search("eu", **recomputed)) == TOKEN_MESSAGE
    assert api.search("eu", **unchanged).status_code == 200


def test_token_of_another_seller_is_rejected(api: SpApi, sandbox: SandboxServer) -> None:
    params, body = _first_page(api, sandbox)
    other = SpApi(sandbox, SELLER_B)
    try:
        response = other.search("eu", **params, paginationToken=body["pagination"]["nextToken"])
    finally:
        other.close()

    assert _error_message(response) == TOKEN_MESSAGE


def test_unknown_token_is_rejected(api: SpApi, sandbox: SandboxServer) -> None:
    params, _ = _first_page(api, sandbox)

    response = api.search("eu", **params, paginationToken="Zm9v+YmFy/==")

    assert _error_message(response) == TOKEN_MESSAGE


@pytest.mark.parametrize(
    ("hours", "status"),
    [pytest.param(23.9, 200, id="23.9h"), pytest.param(24.1, 400, id="24.1h")],
)
def test_token_lifetime_24_hours(
    api: SpApi, sandbox: SandboxServer, hours: float, status: int
) -> None:
    params, body = _first_page(api, sandbox, createdBefore=days_ago(sandbox, 0.01))
    sandbox.state.advance_clock(hours * 3600)
    fresh = SpApi(sandbox)  # the old access token expired with the clock move
    try:
        response = fresh.search("eu", **params, paginationToken=body["pagination"]["nextToken"])
    finally:
        fresh.close()

    assert response.status_code == status
    if status == 400:
        assert response.json()["errors"][0]["message"] == TOKEN_MESSAGE


def test_token_can_be_replayed(api: SpApi, sandbox: SandboxServer) -> None:
    params, body = _first_page(api, sandbox)
    query = {**params, "paginationToken": body["pagination"]["nextToken"]}

    first = api.search("eu", **query).json()
    again = api.search("eu", **query).json()

    assert [o["orderId"] for o in first["orders"]] == [o["orderId"] for o in again["orders"]]


def test_snapshot_ignores_later_orders(api: SpApi, sandbox: SandboxServer) -> None:
    params, body = _first_page(api, sandbox, maxResultsPerPage="100")
    total_before = len(body["orders"])
    created = sandbox.state.create_order("Atzr|sandbox-seller-a", DE, {})

    pages = [body]
    token = body["pagination"]["nextToken"]
    while token:
        page = api.search("eu", **params, paginationToken=token).json()
        pages.append(page)
        token = page.get("pagination", {}).get("nextToken")

    ids = {order["orderId"] for page in pages for order in page["orders"]}
    assert created["orderId"] not in ids
    assert total_before == 100


def test_result_order_is_shuffled_but_stable(api: SpApi, sandbox: SandboxServer) -> None:
    # A fixed end keeps an order that the clock moves into the window from changing the set.
    params, body = _first_page(
        api, sandbox, maxResultsPerPage="100", createdBefore=days_ago(sandbox, 1)
    )
    again = api.search("eu", **params).json()

    times = [order["createdTime"] for order in body["orders"]]
    assert times != sorted(times)
    assert times != sorted(times, reverse=True)
    assert [o["orderId"] for o in body["orders"]] == [o["orderId"] for o in again["orders"]]


def test_empty_result_has_no_pagination(api: SpApi, sandbox: SandboxServer) -> None:
    before_history = days_ago(sandbox, 100)
    body = api.search(
        "eu", marketplaceIds=DE, createdAfter=before_history, createdBefore=before_history
    ).json()

    assert body["orders"] == []
    assert "pagination" not in body
