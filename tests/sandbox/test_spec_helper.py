"""tests/spec.py itself: it accepts what the model allows and rejects real mistakes."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests import spec

ORDER: dict[str, Any] = {
    "orderId": "028-1234567-8901234",
    "createdTime": "2026-03-01T10:00:00Z",
    "lastUpdatedTime": "2026-03-01T10:05:00Z",
    "salesChannel": {"channelName": "AMAZON", "marketplaceId": "A1PA6795UKMFR9"},
    "proceeds": {"grandTotal": {"amount": "19.99", "currencyCode": "EUR"}},
    "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
    "orderItems": [
        {"orderItemId": "02812345678901", "quantityOrdered": 1, "product": {"sellerSku": "SKU-1"}}
    ],
}
SEARCH_QUERY = (
    "lastUpdatedAfter=2026-03-01T10%3A00%3A00Z&lastUpdatedBefore=2026-03-01T11%3A58%3A00Z"
    "&marketplaceIds=A1PA6795UKMFR9%2CAPJ6JRA9NG5V4&includedData=FULFILLMENT,PROCEEDS"
    "&maxResultsPerPage=100&paginationToken=Zm9v%2BYmFy%2F%3D%3D"
)
SEARCH_PATH = "/orders/2026-01-01/orders"


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    node: Any = order
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return order


_DELETE = object()


def test_valid_search_response_passes() -> None:
    spec.validate_response(
        "searchOrders", 200, {"orders": [ORDER], "lastUpdatedBefore": "2026-03-01T11:58:00Z"}
    )


def test_extra_properties_are_allowed() -> None:
    spec.validate_response("getOrder", 200, {"order": {**ORDER, "somethingNew": 1}})


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        pytest.param(("orderId",), _DELETE, "'orderId' is a required property", id="no-order-id"),
        pytest.param(("salesChannel",), _DELETE, "'salesChannel' is a required", id="no-channel"),
        pytest.param(("createdTime",), "2026-03-01 10:00:00", "date-time", id="space-separator"),
        pytest.param(("createdTime",), "2026-02-30T10:00:00Z", "date-time", id="february-30"),
        pytest.param(("createdTime",), "2026-03-01T10:00:00", "date-time", id="no-offset"),
        pytest.param(("createdTime",), "2026-03-01T25:00:00Z", "date-time", id="hour-25"),
        pytest.param(
            ("proceeds", "grandTotal", "amount"),
            19.99,
            "is not of type 'string'",
            id="amount-number",
        ),
        pytest.param(
            ("proceeds", "grandTotal", "currencyCode"),
            _DELETE,
            "'currencyCode' is a required",
            id="no-currency",
        ),
        pytest.param(
            ("fulfillment", "fulfillmentStatus"), "Shipped", "is not one of", id="status-enum"
        ),
        pytest.param(
            ("orderItems", 0, "quantityOrdered"),
            "1",
            "is not of type 'integer'",
            id="quantity-string",
        ),
        pytest.param(
            ("orderItems", 0, "product"), _DELETE, "'product' is a required", id="no-product"
        ),
    ],
)
def test_broken_orders_fail(path: tuple[Any, ...], value: Any, fragment: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(fragment)):
        spec.validate_response("getOrder", 200, {"order": _with(path, value)})


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.123456Z",
        "2026-03-01T18:00:00+08:00",
        "2016-12-31T23:59:60Z",
    ],
)
def test_rfc3339_values_pass(value: str) -> None:
    assert spec.is_rfc3339_date_time(value)


def test_missing_orders_list_fails() -> None:
    with pytest.raises(AssertionError, match="'orders' is a required property"):
        spec.validate_response("searchOrders", 200, {"pagination": {"nextToken": "x"}})


def test_error_list_needs_code() -> None:
    spec.validate_response(
        "searchOrders", 400, {"errors": [{"code": "InvalidInput", "message": "m"}]}
    )
    with pytest.raises(AssertionError, match="'code' is a required property"):
        spec.validate_response("searchOrders", 400, {"errors": [{"message": "m"}]})


def test_undeclared_status_fails() -> None:
    with pytest.raises(AssertionError, match="declares no response 418"):
        spec.validate_response("getOrder", 418, {})


def test_unknown_operation_fails() -> None:
    with pytest.raises(AssertionError, match="no vendored model"):
        spec.validate_response("getOrders2", 200, {})


def test_v0_operation_without_body() -> None:
    spec.validate_response("confirmShipment", 204, None)


def test_valid_search_request_passes() -> None:
    spec.check_request("searchOrders", SEARCH_PATH, SEARCH_QUERY)


def test_valid_get_order_request_passes() -> None:
    spec.check_request(
        "getOrder", f"{SEARCH_PATH}/028-1234567-8901234", "includedData=BUYER%2CRECIPIENT"
    )


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        pytest.param("marketplaceIds=A&marketplaceIds=B", "repeated", id="repeated"),
        pytest.param("MarketplaceIds=A", "not a query parameter", id="undeclared"),
        pytest.param("paginationToken=Zm9v+YmFy", "unencoded '+'", id="raw-plus"),
        pytest.param("paginationToken=Zm9v/YmFy", "unencoded '/'", id="raw-slash"),
        pytest.param("paginationToken=Zm9vYmFy==", "unencoded '='", id="raw-equals"),
        pytest.param("paginationToken=Zm9v%252BYmFy", "encoded twice", id="double-encoded"),
        pytest.param("createdAfter=2026-03-01T10%3A00%3A00%2B08%3A00", "not in UTC", id="not-utc"),
        pytest.param("createdAfter=2026-03-01", "not an RFC 3339", id="date-only"),
        pytest.param("createdAfter=2026-03-01T10%3A00%3A00", "not an RFC 3339", id="no-zone"),
        pytest.param("maxResultsPerPage=ten", "not an integer", id="page-size-text"),
        pytest.param(
            "includedData=FULFILLMENT,ADDRESS", "'ADDRESS' is not one of", id="bad-dataset"
        ),
        pytest.param("fulfillmentStatuses=SHIPPED,,PENDING", "empty item", id="empty-item"),
        pytest.param(
            "marketplaceIds=" + ",".join(["A1PA6795UKMFR9"] * 51), "more than 50", id="51-ids"
        ),
        pytest.param("paginationToken=", "empty", id="empty-token"),
    ],
)
def test_bad_search_requests_fail(query: str, fragment: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(fragment)):
        spec.check_request("searchOrders", SEARCH_PATH, query)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        pytest.param(f"{SEARCH_PATH}/", "orderId is empty", id="empty-order-id"),
        pytest.param("/orders/v0/orders/028-1234567-8901234", "does not match", id="v0-path"),
    ],
)
def test_bad_get_order_paths_fail(path: str, fragment: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(fragment)):
        spec.check_request("getOrder", path, "")


def test_check_request_lists_every_problem() -> None:
    with pytest.raises(AssertionError) as failure:
        spec.check_request("searchOrders", SEARCH_PATH, "a=1&b=2&maxResultsPerPage=x")

    message = str(failure.value)
    assert "a is not a query parameter" in message
    assert "b is not a query parameter" in message
    assert "not an integer" in message


def test_confirm_shipment_path() -> None:
    spec.check_request(
        "confirmShipment", "/orders/v0/orders/028-1234567-8901234/shipmentConfirmation", ""
    )


CONFIRMATION: dict[str, Any] = {
    "marketplaceId": "ATVPDKIKX0DER",
    "packageDetail": {
        "packageReferenceId": "1",
        "carrierCode": "UPS",
        "trackingNumber": "1Z0000000000000000",
        "shipDate": "2024-01-27T04:55:15Z",
        "orderItems": [{"orderItemId": "12345678901234", "quantity": 1}],
    },
}


def test_valid_confirmation_body_passes() -> None:
    spec.validate_request_body("confirmShipment", CONFIRMATION)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        pytest.param("packageReferenceId", 1, "1 is not of type 'string'", id="numeric-reference"),
        pytest.param(
            "orderItems",
            {"orderItemId": "12345678901234", "quantity": 1},
            "is not of type 'array'",
            id="items-object",
        ),
        pytest.param("shipDate", "02/21/2022", "is not a 'date-time'", id="us-date"),
        pytest.param("trackingNumber", _DELETE, "'trackingNumber' is a required", id="no-tracking"),
    ],
)
def test_bad_confirmation_body_fails(field: str, value: Any, fragment: str) -> None:
    body = copy.deepcopy(CONFIRMATION)
    if value is _DELETE:
        del body["packageDetail"][field]
    else:
        body["packageDetail"][field] = value

    with pytest.raises(AssertionError, match=re.escape(fragment)):
        spec.validate_request_body("confirmShipment", body)


def test_operation_without_body_fails() -> None:
    with pytest.raises(AssertionError, match="getOrder takes no request body"):
        spec.validate_request_body("getOrder", {})
