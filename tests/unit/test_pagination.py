"""Paginator: frozen page-one query, token styles, loop guards."""

from __future__ import annotations

from typing import Any

import pytest

from syncd import errors
from syncd.amazon import pagination
from syncd.amazon.query import Query

FIRST = Query.build(
    {"lastUpdatedAfter": "2026-03-01T10:00:00Z", "marketplaceIds": ["A1PA6795UKMFR9"]}
)


class Pages:
    """Serves bodies in order and records the queries it was asked."""

    def __init__(self, bodies: list[Any]) -> None:
        self.bodies = bodies
        self.queries: list[Query] = []

    def __call__(self, query: Query) -> Any:
        self.queries.append(query)
        return self.bodies[len(self.queries) - 1]


def _orders_body(ids: list[str], token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"orders": [{"orderId": i} for i in ids]}
    if token is not None:
        body["pagination"] = {"nextToken": token}
    return body


def test_pages_repeat_page_one_query_plus_token() -> None:
    pages = Pages(
        [_orders_body(["1"], "t+1/="), _orders_body(["2"], "t2"), _orders_body(["3"], None)]
    )

    got = list(pagination.Paginator("searchOrders", pagination.ORDERS_2026, FIRST, pages))

    assert [page.number for page in got] == [1, 2, 3]
    assert pages.queries[0] == FIRST
    assert pages.queries[1] == FIRST.with_param("paginationToken", "t+1/=")
    assert pages.queries[2].without("paginationToken") == FIRST
    assert got[1].token == "t+1/="
    assert got[2].next_token is None


def test_last_page_has_no_pagination_key() -> None:
    pages = Pages([{"orders": []}])

    assert (
        len(list(pagination.Paginator("searchOrders", pagination.ORDERS_2026, FIRST, pages))) == 1
    )


@pytest.mark.parametrize("token", ["", None])
def test_empty_token_ends_paging(token: str | None) -> None:
    pages = Pages([{"orders": [], "pagination": {"nextToken": token}}])

    assert (
        len(list(pagination.Paginator("searchOrders", pagination.ORDERS_2026, FIRST, pages))) == 1
    )


def test_repeated_token_raises() -> None:
    pages = Pages([_orders_body(["1"], "a"), _orders_body(["2"], "b"), _orders_body(["3"], "a")])

    with pytest.raises(errors.PaginationError) as caught:
        list(pagination.Paginator("searchOrders", pagination.ORDERS_2026, FIRST, pages))

    assert caught.value.reason == errors.PaginationError.REPEATED_TOKEN
    assert caught.value.page_number == 3
    assert len(pages.queries) == 3


def test_stale_pages_stop_paging() -> None:
    same = ["171-0000001-0000001", "171-0000002-0000002"]
    pages = Pages([_orders_body(same, f"t{n}") for n in range(1, 50)])

    with pytest.raises(errors.PaginationError) as caught:
        list(
            pagination.Paginator(
                "searchOrders",
                pagination.ORDERS_2026,
                FIRST,
                pages,
                items=lambda body: body["orders"],
                item_key=lambda order: order["orderId"],
                max_stale_pages=3,
            )
        )

    assert caught.value.reason == errors.PaginationError.NO_NEW_ITEMS
    assert len(pages.queries) == 4


def test_resume_starts_at_the_stored_token() -> None:
    pages = Pages([_orders_body(["9"], None)])

    got = list(
        pagination.Paginator(
            "searchOrders", pagination.ORDERS_2026, FIRST, pages, start_token="stored"
        )
    )

    assert pages.queries == [FIRST.with_param("paginationToken", "stored")]
    assert got[0].token == "stored"


def test_prefetched_first_page_is_not_fetched_again() -> None:
    pages = Pages([_orders_body(["2"], None)])

    got = list(
        pagination.Paginator(
            "searchOrders",
            pagination.ORDERS_2026,
            FIRST,
            pages,
            first_body=_orders_body(["1"], "t"),
        )
    )

    assert [page.body["orders"][0]["orderId"] for page in got] == ["1", "2"]
    assert pages.queries == [FIRST.with_param("paginationToken", "t")]


def test_reports_style_sends_the_token_alone() -> None:
    first = Query.build(
        {"reportTypes": ["GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"], "pageSize": 100}
    )
    pages = Pages([{"reports": [], "nextToken": "bmV4dDQz"}, {"reports": []}])

    list(pagination.Paginator("getReports", pagination.REPORTS_2021, first, pages))

    assert pages.queries[1] == Query((("nextToken", "bmV4dDQz"),))


@pytest.mark.parametrize(
    ("style", "body", "param"),
    [
        pytest.param(
            pagination.ORDERS_V0, {"payload": {"NextToken": "x"}}, "NextToken", id="orders-v0"
        ),
        pytest.param(
            pagination.FINANCES_2024, {"payload": {"nextToken": "x"}}, "nextToken", id="finances"
        ),
        pytest.param(
            pagination.FBA_INVENTORY_V1, {"pagination": {"nextToken": "x"}}, "nextToken", id="fba"
        ),
    ],
)
def test_other_token_spellings(
    style: pagination.TokenStyle, body: dict[str, Any], param: str
) -> None:
    assert style.next_token(body) == "x"
    assert style.page_query(FIRST, "x").get(param) == "x"
    assert style.page_query(FIRST, "x").without(param) == FIRST


def test_stale_guard_needs_item_functions() -> None:
    with pytest.raises(ValueError, match="items and item_key"):
        pagination.Paginator("x", pagination.ORDERS_2026, FIRST, Pages([]), max_stale_pages=2)
