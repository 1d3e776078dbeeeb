"""confirmShipment: route, quota, validation, order rules, recorded packages and edits."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from syncd.sandbox import shipments
from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    CONFIRM_PATH,
    DE,
    FR,
    SELLER_A,
    US,
    SpApi,
    confirmation_body,
    create_merchant_order,
    iso,
)

INVALID_TYPE = (
    "The input you have submitted is not valid. Please check the fields with invalid type [{}]."
)
PACKAGE_REFERENCE = "PackageReferenceId: is invalid, must be a positive numeric value."
ORDER_ITEM = (
    "OrderItemId {} is invalid, please obtain the value through the getOrderItems API or "
    "Manage Orders page"
)
ALREADY_FULFILLED = (
    "Failed to create package due to not finding a matching package or order already "
    "fulfilled. ErrorMessage(errorCode=GeneralError, errorDescription=Unable to find package "
    "to update for order ({}), errorMetric=PackageToUpdateNotFound, packageIndex=null)"
)


def _error(response: Any) -> dict[str, Any]:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return dict(errors[0])


def _packages(sandbox: SandboxServer, order: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox.state.packages(SELLER_A, order["orderId"])


def _fresh(sandbox: SandboxServer, order: dict[str, Any]) -> dict[str, Any]:
    current = sandbox.state.order(SELLER_A, order["orderId"])
    assert current is not None
    return current


@pytest.fixture
def order(sandbox: SandboxServer) -> dict[str, Any]:
    """An unshipped merchant order in the US with two items: two units and one unit."""
    return create_merchant_order(sandbox, US, (2, 1))


# -- route, headers, quota, call log -------------------------------------------------------------


def test_valid_confirmation_returns_204(api: SpApi, order: dict[str, Any]) -> None:
    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["x-amzn-RateLimit-Limit"] == "2"
    assert response.headers["x-amzn-RequestId"]
    assert "content-type" not in response.headers


def test_missing_token_is_403(api: SpApi, order: dict[str, Any]) -> None:
    path = CONFIRM_PATH.format(order["orderId"])

    response = api.post("na", path, confirmation_body(order), token=None)

    assert response.status_code == 403
    assert _error(response)["code"] == "Unauthorized"


def test_burst_of_ten_then_429(api: SpApi) -> None:
    statuses = [
        api.confirm_shipment("na", "111-0000000-0000000", {}).status_code for _ in range(11)
    ]

    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429


def test_quota_refills_at_two_per_second(api: SpApi, sandbox: SandboxServer) -> None:
    for _ in range(10):
        api.confirm_shipment("na", "111-0000000-0000000", {})
    sandbox.state.advance_clock(1)

    statuses = [api.confirm_shipment("na", "111-0000000-0000000", {}).status_code for _ in range(3)]

    assert statuses == [400, 400, 429]


def test_call_log_records_the_body(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    body = confirmation_body(order)

    api.confirm_shipment("na", order["orderId"], body)

    record = sandbox.state.calls(operation="confirmShipment")[0]
    assert record.method == "POST"
    assert record.path == CONFIRM_PATH.format(order["orderId"])
    assert record.status == 204
    assert record.body == body
    assert record.seller_id == sandbox.state.seller_id(SELLER_A)
    assert record.to_json()["body"] == body


def test_unknown_order_is_404(api: SpApi, order: dict[str, Any]) -> None:
    body = confirmation_body(order)

    response = api.confirm_shipment("na", "111-0000000-0000000", body)

    assert response.status_code == 404
    assert _error(response) == {
        "code": "NotFound",
        "message": "The order 111-0000000-0000000 was not found.",
        "details": "",
    }


def test_order_of_another_seller_is_404(api: SpApi, sandbox: SandboxServer) -> None:
    other = create_merchant_order(sandbox, US, (1,), refresh_token="Atzr|someone-else")

    response = api.confirm_shipment("na", other["orderId"], confirmation_body(other))

    assert response.status_code == 404


def test_marketplace_of_another_region(api: SpApi, order: dict[str, Any]) -> None:
    body = confirmation_body(order)
    body["marketplaceId"] = DE

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == (
        f"Invalid marketplaceId for this endpoint: {DE}. It must be a marketplace of the NA region."
    )


def test_marketplace_not_the_orders(api: SpApi, sandbox: SandboxServer) -> None:
    german = create_merchant_order(sandbox, DE, (1,))
    body = confirmation_body(german)
    body["marketplaceId"] = FR

    response = api.confirm_shipment("eu", german["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["code"] == "InvalidInput"
    assert _error(response)["message"] == (
        f"The marketplaceId {FR} is not the marketplace of order {german['orderId']}."
    )


def test_order_on_other_region_host_is_404(api: SpApi, sandbox: SandboxServer) -> None:
    german = create_merchant_order(sandbox, DE, (1,))
    body = confirmation_body(german)
    body["marketplaceId"] = US

    response = api.confirm_shipment("na", german["orderId"], body)

    assert response.status_code == 404


def test_undeclared_query_parameter_is_400(api: SpApi, order: dict[str, Any]) -> None:
    path = CONFIRM_PATH.format(order["orderId"]) + "?marketplaceId=" + US

    response = api.post("na", path, confirmation_body(order))

    assert response.status_code == 400
    assert "Unknown parameter 'marketplaceId'" in _error(response)["message"]


# -- body validation -----------------------------------------------------------------------------


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``body`` with the dotted ``path`` set to ``value`` (or removed)."""
    changed = copy.deepcopy(body)
    node: Any = changed
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _REMOVE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return changed


_REMOVE = object()
_ITEMS = "packageDetail.orderItems"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param(
            "packageDetail.packageReferenceId",
            1,
            INVALID_TYPE.format("packageDetail.packageReferenceId"),
            id="reference-number",
        ),
        pytest.param(
            "packageDetail.trackingNumber",
            123456,
            INVALID_TYPE.format("packageDetail.trackingNumber"),
            id="tracking-number-type",
        ),
        pytest.param(
            f"{_ITEMS}.0.quantity",
            "1",
            INVALID_TYPE.format("packageDetail.orderItems[0].quantity"),
            id="quantity-string",
        ),
        pytest.param(
            f"{_ITEMS}.0.quantity",
            True,
            INVALID_TYPE.format("packageDetail.orderItems[0].quantity"),
            id="quantity-bool",
        ),
        pytest.param(
            f"{_ITEMS}.0.transparencyCodes",
            "0987",
            INVALID_TYPE.format("packageDetail.orderItems[0].transparencyCodes"),
            id="transparency-codes",
        ),
        pytest.param(
            f"{_ITEMS}.0",
            "12345",
            INVALID_TYPE.format("packageDetail.orderItems[0]"),
            id="item-not-object",
        ),
        pytest.param(
            "packageDetail", "x", INVALID_TYPE.format("packageDetail"), id="detail-string"
        ),
        pytest.param("packageDetail.packageReferenceId", "0", PACKAGE_REFERENCE, id="zero"),
        pytest.param("packageDetail.packageReferenceId", "-1", PACKAGE_REFERENCE, id="negative"),
        pytest.param("packageDetail.packageReferenceId", "A1", PACKAGE_REFERENCE, id="letters"),
        pytest.param("packageDetail.packageReferenceId", "", PACKAGE_REFERENCE, id="empty"),
        pytest.param("packageDetail.packageReferenceId", "1.5", PACKAGE_REFERENCE, id="decimal"),
        pytest.param(
            "packageDetail.packageReferenceId", _REMOVE, PACKAGE_REFERENCE, id="no-reference"
        ),
        pytest.param(
            _ITEMS,
            {"orderItemId": "12345678901234", "quantity": 1},
            ORDER_ITEM.format(""),
            id="items-object",
        ),
        pytest.param(
            f"{_ITEMS}.0.orderItemId",
            12345678901234,
            ORDER_ITEM.format("12345678901234"),
            id="item-id-number",
        ),
        pytest.param(
            f"{_ITEMS}.0.orderItemId",
            "99999999999999",
            ORDER_ITEM.format("99999999999999"),
            id="item-id-unknown",
        ),
        pytest.param(f"{_ITEMS}.0.orderItemId", _REMOVE, ORDER_ITEM.format(""), id="no-item-id"),
        pytest.param(
            "marketplaceId",
            _REMOVE,
            "The input you have submitted is not valid. Please check the missing required "
            "fields [marketplaceId].",
            id="no-marketplace",
        ),
        pytest.param(
            "packageDetail.carrierCode",
            _REMOVE,
            "The input you have submitted is not valid. Please check the missing required "
            "fields [packageDetail.carrierCode].",
            id="no-carrier-code",
        ),
        pytest.param(
            _ITEMS,
            [],
            "The input you have submitted is not valid. Please check the missing required "
            "fields [packageDetail.orderItems].",
            id="no-items",
        ),
        pytest.param(
            "packageDetail.carrierCode",
            "ups",
            shipments.CARRIER_CODE_MESSAGE.format("ups"),
            id="carrier-case",
        ),
        pytest.param(
            "packageDetail.carrierCode",
            "Kurier Schmidt",
            shipments.CARRIER_CODE_MESSAGE.format("Kurier Schmidt"),
            id="carrier-free-text",
        ),
        pytest.param(
            "packageDetail.carrierCode",
            "Other",
            shipments.CARRIER_NAME_MESSAGE,
            id="other-without-name",
        ),
        pytest.param(
            "packageDetail.trackingNumber",
            "",
            shipments.TRACKING_NUMBER_MESSAGE,
            id="tracking-empty",
        ),
        pytest.param(
            "packageDetail.trackingNumber",
            "   ",
            shipments.TRACKING_NUMBER_MESSAGE,
            id="tracking-blank",
        ),
        pytest.param(
            "packageDetail.shipDate",
            "02/21/2022",
            shipments.SHIP_DATE_FORMAT_MESSAGE.format("02/21/2022"),
            id="ship-date-us-format",
        ),
        pytest.param(
            "packageDetail.shipDate",
            "2024-01-27",
            shipments.SHIP_DATE_FORMAT_MESSAGE.format("2024-01-27"),
            id="ship-date-only",
        ),
        pytest.param(
            "packageDetail.shipDate",
            "2024-01-27T04:55:15",
            shipments.SHIP_DATE_FORMAT_MESSAGE.format("2024-01-27T04:55:15"),
            id="ship-date-no-zone",
        ),
        pytest.param(
            "codCollectionMethod",
            "Cash",
            shipments.COD_METHOD_MESSAGE.format("Cash"),
            id="cod-method",
        ),
    ],
)
def test_invalid_body_is_400(
    api: SpApi, order: dict[str, Any], path: str, value: Any, message: str
) -> None:
    body = _set(confirmation_body(order), path, value)

    response = api.confirm_shipment("na", order["orderId"], body)

    error = _error(response)
    assert response.status_code == 400
    assert error["code"] == "InvalidInput"
    assert error["message"] == message
    assert error["details"] == ""
    assert _packages(api.sandbox, order) == []


@pytest.mark.parametrize("quantity", [0, -1])
def test_quantity_below_one_is_400(api: SpApi, order: dict[str, Any], quantity: int) -> None:
    body = _set(confirmation_body(order), f"{_ITEMS}.0.quantity", quantity)
    item_id = order["orderItems"][0]["orderItemId"]

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.QUANTITY_MESSAGE.format(item_id)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"{not json", "is not valid JSON", id="not-json"),
        pytest.param(b"", "is not valid JSON", id="empty"),
        pytest.param(b'[{"marketplaceId": "x"}]', "got a JSON list", id="list"),
    ],
)
def test_unreadable_body_is_400(
    api: SpApi, order: dict[str, Any], content: bytes, fragment: str
) -> None:
    response = api.confirm_shipment("na", order["orderId"], None, content=content)

    assert response.status_code == 400
    assert fragment in _error(response)["message"]


def test_invalid_types_are_listed_together(api: SpApi, order: dict[str, Any]) -> None:
    body = confirmation_body(order)
    body["packageDetail"]["packageReferenceId"] = 1
    body["packageDetail"]["carrierCode"] = 7

    response = api.confirm_shipment("na", order["orderId"], body)

    assert _error(response)["message"] == INVALID_TYPE.format(
        "packageDetail.packageReferenceId, packageDetail.carrierCode"
    )


def test_quoted_reference_passes(api: SpApi, order: dict[str, Any]) -> None:
    wrong = confirmation_body(order)
    wrong["packageDetail"]["packageReferenceId"] = 1
    right = confirmation_body(order)

    rejected = api.confirm_shipment("na", order["orderId"], wrong)
    accepted = api.confirm_shipment("na", order["orderId"], right)

    assert rejected.status_code == 400
    assert accepted.status_code == 204


def test_future_ship_date_is_400(api: SpApi, sandbox: SandboxServer, order: dict[str, Any]) -> None:
    tomorrow = iso(sandbox.state.now() + timedelta(minutes=5))
    body = confirmation_body(order, ship_date=tomorrow)

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.SHIP_DATE_FUTURE_MESSAGE.format(tomorrow)


def test_ship_date_uses_sandbox_clock(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    soon = iso(sandbox.state.now() + timedelta(minutes=5))
    sandbox.state.advance_clock(600)

    response = api.confirm_shipment(
        "na", order["orderId"], confirmation_body(order, ship_date=soon)
    )

    assert response.status_code == 204


@pytest.mark.parametrize(
    ("ship_date", "stored"),
    [
        pytest.param("2024-01-27T04:55:15Z", "2024-01-27T04:55:15Z", id="z"),
        pytest.param("2024-01-27T04:55:15.000Z", "2024-01-27T04:55:15Z", id="fraction"),
        pytest.param("2024-01-27T04:55:15-00:00", "2024-01-27T04:55:15Z", id="minus-zero"),
        pytest.param("2024-01-27T12:55:15+08:00", "2024-01-27T04:55:15Z", id="beijing"),
        pytest.param("2024-01-27T12:55:15+0800", "2024-01-27T04:55:15Z", id="no-colon"),
        pytest.param("2024-01-27T04:55Z", "2024-01-27T04:55:00Z", id="no-seconds"),
    ],
)
def test_ship_date_forms_are_accepted(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any], ship_date: str, stored: str
) -> None:
    body = confirmation_body(order, ship_date=ship_date)

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 204, response.text
    assert _packages(sandbox, order)[0]["shipTime"] == stored


def test_other_needs_carrier_name(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    body = confirmation_body(order, carrier_code="Other", carrierName="Kurier Schmidt")

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 204
    assert _packages(sandbox, order)[0]["carrier"] == "Kurier Schmidt"


@pytest.mark.parametrize("name", ["", "  "])
def test_other_with_blank_name_is_400(api: SpApi, order: dict[str, Any], name: str) -> None:
    body = confirmation_body(order, carrier_code="Other", carrierName=name)

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.CARRIER_NAME_MESSAGE


@pytest.mark.parametrize(
    "carrier_code",
    ["USPS", "FedEx", "DHL eCommerce", "Yun Express", "4PX", "Yamato Transport", "WanbExpress"],
)
def test_listed_carrier_codes_pass(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any], carrier_code: str
) -> None:
    body = confirmation_body(order, carrier_code=carrier_code)

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 204
    assert _packages(sandbox, order)[0]["carrier"] == carrier_code


def test_same_item_twice_is_400(api: SpApi, order: dict[str, Any]) -> None:
    body = confirmation_body(order, [1, 0])
    body["packageDetail"]["orderItems"].append(dict(body["packageDetail"]["orderItems"][0]))
    item_id = order["orderItems"][0]["orderItemId"]

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.DUPLICATE_ITEM_MESSAGE.format(item_id)


def test_quantity_above_ordered_is_400(api: SpApi, order: dict[str, Any]) -> None:
    body = confirmation_body(order, [3, 1])
    item_id = order["orderItems"][0]["orderItemId"]

    response = api.confirm_shipment("na", order["orderId"], body)

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.QUANTITY_EXCEEDED_MESSAGE.format(3, item_id, 2)


def test_quantity_above_unshipped_is_400(api: SpApi, order: dict[str, Any]) -> None:
    first = confirmation_body(order, [1, 0], reference_id="1")
    second = confirmation_body(order, [2, 0], reference_id="2", tracking_number="1Z2")
    item_id = order["orderItems"][0]["orderItemId"]

    accepted = api.confirm_shipment("na", order["orderId"], first)
    rejected = api.confirm_shipment("na", order["orderId"], second)

    assert accepted.status_code == 204
    assert rejected.status_code == 400
    assert _error(rejected)["message"] == shipments.QUANTITY_EXCEEDED_MESSAGE.format(2, item_id, 1)


# -- order state rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"fulfilled_by": "AMAZON"}, shipments.AMAZON_FULFILLED_MESSAGE, id="fba"),
        pytest.param({"programs": ["FBM_SHIP_PLUS"]}, shipments.SHIP_PLUS_MESSAGE, id="ship-plus"),
    ],
)
def test_order_kind_is_rejected(
    api: SpApi, sandbox: SandboxServer, options: dict[str, Any], message: str
) -> None:
    created = create_merchant_order(sandbox, US, (1,), **options)

    response = api.confirm_shipment("na", created["orderId"], confirmation_body(created))

    assert response.status_code == 400
    assert _error(response) == {
        "code": "InvalidInput",
        "message": message.format(created["orderId"]),
        "details": "",
    }


@pytest.mark.parametrize("status", ["PENDING", "PENDING_AVAILABILITY", "CANCELLED"])
def test_order_status_is_rejected(api: SpApi, sandbox: SandboxServer, status: str) -> None:
    created = create_merchant_order(sandbox, US, (1,), status=status)

    response = api.confirm_shipment("na", created["orderId"], confirmation_body(created))

    assert response.status_code == 400
    assert _error(response)["message"] == shipments.STATUS_MESSAGE.format(
        created["orderId"], status
    )
    assert _packages(sandbox, created) == []


def test_generated_orders_follow_the_rules(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.update_settings(quotas=False)
    generated = sandbox.state.orders(SELLER_A, marketplace_ids=[DE])
    unshipped = [
        o
        for o in generated
        if o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
        and o["fulfillment"]["fulfilledBy"] == "MERCHANT"
    ]
    plain = [o for o in unshipped if "FBM_SHIP_PLUS" not in o.get("programs", [])]
    ship_plus = [o for o in generated if "FBM_SHIP_PLUS" in o.get("programs", [])]
    assert plain
    assert ship_plus

    plain_statuses = {
        api.confirm_shipment("eu", o["orderId"], confirmation_body(o)).status_code for o in plain
    }
    ship_plus_statuses = {
        api.confirm_shipment("eu", o["orderId"], confirmation_body(o)).status_code
        for o in ship_plus
    }

    assert plain_statuses == {204}
    assert ship_plus_statuses == {400}
    for generated_order in plain:
        assert "latestDateTime" in generated_order["fulfillment"]["shipByWindow"]


# -- the recorded package ------------------------------------------------------------------------


def test_package_shows_in_get_order(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    body = confirmation_body(
        order,
        [1, 0],
        reference_id="7",
        tracking_number="1Z0000000000000036",
        ship_date="2024-05-10T09:00:00Z",
        shippingMethod="UPS Ground",
    )
    api.confirm_shipment("na", order["orderId"], body)

    seen = api.get_order("na", order["orderId"], "PACKAGES,FULFILLMENT").json()["order"]

    first, second = order["orderItems"]
    package = seen["packages"][0]
    assert len(seen["packages"]) == 1
    assert package["packageReferenceId"] == "7"
    assert package["carrier"] == "UPS"
    assert package["trackingNumber"] == "1Z0000000000000036"
    assert package["shipTime"] == "2024-05-10T09:00:00Z"
    assert package["shippingService"] == "UPS Ground"
    assert package["packageItems"] == [{"orderItemId": first["orderItemId"], "quantity": 1}]
    assert package["packageStatus"] == {"status": "IN_TRANSIT"}
    assert package["createdTime"].endswith("Z")
    assert "shipFromAddress" in package
    assert seen["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
    fulfilled = {i["orderItemId"]: i["fulfillment"] for i in seen["orderItems"]}
    assert fulfilled[first["orderItemId"]]["quantityFulfilled"] == 1
    assert fulfilled[first["orderItemId"]]["quantityUnfulfilled"] == 1
    assert fulfilled[second["orderItemId"]]["quantityFulfilled"] == 0
    assert fulfilled[second["orderItemId"]]["quantityUnfulfilled"] == 1


def test_last_package_ships_the_order(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    first = confirmation_body(order, [2, 0], reference_id="1", tracking_number="1ZA")
    second = confirmation_body(order, [0, 1], reference_id="2", tracking_number="1ZB")

    statuses = [
        api.confirm_shipment("na", order["orderId"], body).status_code for body in (first, second)
    ]

    shipped = _fresh(sandbox, order)
    assert statuses == [204, 204]
    assert shipped["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert [p["packageReferenceId"] for p in shipped["packages"]] == ["1", "2"]
    assert all(i["fulfillment"]["quantityUnfulfilled"] == 0 for i in shipped["orderItems"])


def test_packages_need_the_dataset(api: SpApi, order: dict[str, Any]) -> None:
    api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    bare = api.get_order("na", order["orderId"], "FULFILLMENT").json()["order"]

    assert "packages" not in bare
    assert bare["fulfillment"]["fulfillmentStatus"] == "SHIPPED"


def test_confirmation_bumps_last_updated(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    sandbox.state.advance_clock(600)
    watermark = iso(sandbox.state.now() - timedelta(seconds=1))

    api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    sandbox.state.advance_clock(150)  # the two-minute rule hides the change until then
    pages = api.search_pages(
        "na", marketplaceIds=US, lastUpdatedAfter=watermark, includedData="PACKAGES"
    )

    found = {o["orderId"]: o for page in pages for o in page["orders"]}
    assert order["orderId"] in found
    assert found[order["orderId"]]["packages"][0]["trackingNumber"] == "1Z0000000000000001"
    assert found[order["orderId"]]["lastUpdatedTime"] > order["lastUpdatedTime"]


def test_transparency_codes_are_kept(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    body = confirmation_body(order, [1, 0])
    body["packageDetail"]["orderItems"][0]["transparencyCodes"] = ["09876543211234567890"]

    api.confirm_shipment("na", order["orderId"], body)

    entry = _packages(sandbox, order)[0]["packageItems"][0]
    assert entry["transparencyCodes"] == ["09876543211234567890"]


# -- editing a package ---------------------------------------------------------------------------


def test_same_reference_edits_package(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    first = confirmation_body(order, [2, 1], tracking_number="1ZOLD")
    edit = confirmation_body(
        order,
        [1, 0],
        tracking_number="1ZNEW",
        carrier_code="FedEx",
        ship_date="2024-05-11T08:00:00Z",
    )

    statuses = [api.confirm_shipment("na", order["orderId"], b).status_code for b in (first, edit)]

    edited = _fresh(sandbox, order)
    packages = edited["packages"]
    assert statuses == [204, 204]
    assert len(packages) == 1
    assert packages[0]["trackingNumber"] == "1ZNEW"
    assert packages[0]["carrier"] == "FedEx"
    assert packages[0]["shipTime"] == "2024-05-11T08:00:00Z"
    assert packages[0]["packageItems"] == [
        {"orderItemId": order["orderItems"][0]["orderItemId"], "quantity": 1}
    ]
    assert edited["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
    assert [i["fulfillment"]["quantityFulfilled"] for i in edited["orderItems"]] == [1, 0]


def test_edit_keeps_created_time(api: SpApi, sandbox: SandboxServer, order: dict[str, Any]) -> None:
    api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    created = _packages(sandbox, order)[0]["createdTime"]
    sandbox.state.advance_clock(3600)

    api.confirm_shipment("na", order["orderId"], confirmation_body(order, tracking_number="1Z9"))

    assert _packages(sandbox, order)[0]["createdTime"] == created


def test_edit_does_not_count_against_itself(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    resend = api.confirm_shipment(
        "na", order["orderId"], confirmation_body(order, tracking_number="1ZRESENT")
    )

    assert resend.status_code == 204
    assert _fresh(sandbox, order)["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert [p["trackingNumber"] for p in _packages(sandbox, order)] == ["1ZRESENT"]


def test_new_reference_on_shipped_order(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    api.confirm_shipment("na", order["orderId"], confirmation_body(order, reference_id="1"))

    response = api.confirm_shipment(
        "na", order["orderId"], confirmation_body(order, [1, 0], reference_id="2")
    )

    assert response.status_code == 400
    assert _error(response) == {
        "code": "InvalidInput",
        "message": ALREADY_FULFILLED.format(order["orderId"]),
        "details": "",
    }
    assert len(_packages(sandbox, order)) == 1


def test_hand_shipped_order_is_fulfilled(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    by_hand = {"packageReferenceId": "9", "trackingNumber": "SELLER-CENTRAL-1"}
    sandbox.state.add_package(SELLER_A, order["orderId"], by_hand)

    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))
    seen = api.get_order("na", order["orderId"], "PACKAGES").json()["order"]

    assert response.status_code == 400
    assert "PackageToUpdateNotFound" in _error(response)["message"]
    assert [p["trackingNumber"] for p in seen["packages"]] == ["SELLER-CENTRAL-1"]


def test_same_reference_edits_hand_package(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    sandbox.state.add_package(SELLER_A, order["orderId"], {"trackingNumber": "SELLER-CENTRAL-1"})

    response = api.confirm_shipment("na", order["orderId"], confirmation_body(order))

    assert response.status_code == 204
    assert [p["trackingNumber"] for p in _packages(sandbox, order)] == ["1Z0000000000000001"]


def test_client_reference_is_not_reused(
    api: SpApi, sandbox: SandboxServer, order: dict[str, Any]
) -> None:
    api.confirm_shipment("na", order["orderId"], confirmation_body(order, [1, 0], reference_id="2"))

    sandbox.state.patch_order(SELLER_A, order["orderId"], status="SHIPPED")

    references = [p["packageReferenceId"] for p in _packages(sandbox, order)]
    assert references == ["2", "3"]


def test_confirmed_orders_keep_their_packages(api: SpApi, sandbox: SandboxServer) -> None:
    sandbox.state.update_settings(quotas=False)
    unshipped = [
        o
        for o in sandbox.state.orders(SELLER_A, marketplace_ids=[DE, FR])
        if o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
        and o["fulfillment"]["fulfilledBy"] == "MERCHANT"
        and "FBM_SHIP_PLUS" not in o.get("programs", [])
    ]
    for unshipped_order in unshipped:
        counts = [1] + [0] * (len(unshipped_order["orderItems"]) - 1)
        body = confirmation_body(unshipped_order, counts)
        region_response = api.confirm_shipment("eu", unshipped_order["orderId"], body)
        assert region_response.status_code == 204

    sandbox.state.advance_clock(3 * 86400)  # past every scheduled change of the generator

    assert len(unshipped) > 10
    for unshipped_order in unshipped:
        assert len(_packages(sandbox, unshipped_order)) == 1
