"""Orders v2026-01-01 typed models and the searchOrders request rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pydantic
import pytest

from syncd import errors
from syncd.amazon.models.orders import Order
from syncd.amazon.orders import SearchOrdersQuery

PENDING = {
    "orderId": "028-1111111-0000003",
    "createdTime": "2026-03-02T08:00:00Z",
    "lastUpdatedTime": "2026-03-02T08:05:00Z",
    "salesChannel": {"channelName": "AMAZON", "marketplaceId": "A1PA6795UKMFR9"},
    "fulfillment": {"fulfillmentStatus": "PENDING", "fulfilledBy": "MERCHANT"},
    "orderItems": [
        {"orderItemId": "01234567890123", "quantityOrdered": 2, "product": {"sellerSku": "SKU-1"}}
    ],
}


def test_pending_order_without_prices_parses() -> None:
    order = Order.model_validate(PENDING)

    assert order.order_id == "028-1111111-0000003"
    assert order.order_items[0].order_item_id == "01234567890123"
    assert order.proceeds is None
    assert order.buyer is None
    assert order.order_items[0].product is not None
    assert order.order_items[0].product.price is None
    assert order.fulfillment_status == "PENDING"
    assert order.marketplace_id == "A1PA6795UKMFR9"
    assert order.created_time == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_new_fields_are_tolerated() -> None:
    order = Order.model_validate({**PENDING, "somethingNew": {"x": 1}})

    assert order.model_extra == {"somethingNew": {"x": 1}}


def test_numeric_id_is_rejected_not_stripped_of_zeros() -> None:
    with pytest.raises(pydantic.ValidationError):
        Order.model_validate({**PENDING, "orderId": 28111111110000003})


def test_amounts_are_exact_decimals() -> None:
    raw = {
        **PENDING,
        "proceeds": {"grandTotal": {"amount": "59.97", "currencyCode": "EUR"}},
        "orderItems": [
            {
                "orderItemId": "1",
                "quantityOrdered": 3,
                "product": {"price": {"unitPrice": {"amount": 19.99, "currencyCode": "EUR"}}},
            }
        ],
    }

    order = Order.model_validate(raw)

    assert order.proceeds is not None
    assert order.proceeds.grand_total is not None
    assert order.proceeds.grand_total.amount == Decimal("59.97")
    unit = order.order_items[0].product.price.unit_price  # type: ignore[union-attr]
    assert unit is not None
    assert unit.amount == Decimal("19.99")


def test_multichannel_order_is_marked() -> None:
    order = Order.model_validate({**PENDING, "salesChannel": {"channelName": "NON_AMAZON"}})

    assert order.is_multichannel
    assert order.marketplace_id is None


def test_time_without_offset_is_read_as_utc() -> None:
    order = Order.model_validate({**PENDING, "createdTime": "2024-01-27T04:55:15"})

    assert order.created_time.tzinfo is UTC


NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
EU = ("A1PA6795UKMFR9",)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        pytest.param(
            SearchOrdersQuery(EU, last_updated_after=NOW, created_after=NOW),
            "cannot be mixed",
            id="mixed",
        ),
        pytest.param(
            SearchOrdersQuery(EU, last_updated_after=NOW, created_before=NOW),
            "cannot be mixed",
            id="mixed-before",
        ),
        pytest.param(SearchOrdersQuery(EU), "exactly one", id="no-after"),
        pytest.param(
            SearchOrdersQuery((), last_updated_after=NOW),
            "at least one marketplace",
            id="no-marketplace",
        ),
        pytest.param(
            SearchOrdersQuery(("A1PA6795UKMFR9",) * 51, last_updated_after=NOW),
            "at most 50",
            id="51-marketplaces",
        ),
        pytest.param(
            SearchOrdersQuery(EU, last_updated_after=NOW, max_results_per_page=101),
            "between 1 and 100",
            id="page-101",
        ),
        pytest.param(
            SearchOrdersQuery(EU, last_updated_after=NOW, included_data=("ADDRESS",)),
            "includedData",
            id="bad-dataset",
        ),
        pytest.param(
            SearchOrdersQuery(
                EU, last_updated_after=NOW, last_updated_before=NOW - timedelta(seconds=1)
            ),
            "ends before it starts",
            id="inverted",
        ),
    ],
)
def test_search_query_rules(query: SearchOrdersQuery, reason: str) -> None:
    with pytest.raises(errors.RequestError, match=reason):
        query.validate()


def test_search_query_builds_amazon_parameters() -> None:
    query = SearchOrdersQuery(
        ("A1PA6795UKMFR9", "A13V1IB3VIYZZH"),
        last_updated_after=NOW - timedelta(hours=1),
        last_updated_before=NOW,
        included_data=("FULFILLMENT", "PROCEEDS"),
    )

    query.validate()

    assert query.to_query().encode() == (
        "lastUpdatedAfter=2026-05-10T11:00:00Z&lastUpdatedBefore=2026-05-10T12:00:00Z"
        "&marketplaceIds=A1PA6795UKMFR9,A13V1IB3VIYZZH&maxResultsPerPage=100"
        "&includedData=FULFILLMENT,PROCEEDS"
    )


def test_naive_bound_is_a_request_error() -> None:
    naive = datetime(2026, 5, 10, 12, 0)

    with pytest.raises(errors.RequestError, match="time zone"):
        SearchOrdersQuery(EU, last_updated_after=naive).validate()
