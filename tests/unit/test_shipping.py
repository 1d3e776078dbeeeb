"""Carrier map, the confirmShipment body and the intake rules, without a network or database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from syncd import config, errors
from syncd.amazon.client import SellerAccount, SpApiClient
from syncd.amazon.models.orders import Order
from syncd.amazon.shipments import (
    Package,
    PackageItem,
    ShipmentsClient,
    format_ship_date,
    is_already_fulfilled,
    next_package_reference,
    package_reference,
)
from syncd.db.intake import RequestRow
from syncd.db.outbox import OutboxRow
from syncd.shipping.carriers import AMAZON_CARRIER_CODES, Carrier, CarrierMap
from syncd.shipping.intake import (
    RejectedError,
    RequestedItem,
    check_order,
    choose_items,
    left_to_ship,
    parse_items,
    parse_request,
    ship_time_utc,
)

NOW = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "code", "name"),
    [
        ("DHL", "DHL", None),
        ("dhl", "DHL", None),
        ("UPS", "UPS", None),
        ("云途", "Yun Express", None),
        ("YunExpress", "Yun Express", None),
        ("燕文物流", "Yanwen", None),
        ("4PX", "4PX", None),
        ("顺丰", "SF Express", None),
        ("中国邮政", "China Post", None),
        ("菜鸟", "Cainiao", None),
        ("联邦快递", "FedEx", None),
        ("ＵＳＰＳ", "USPS", None),  # full-width, as some Chinese input methods type it
        ("Kurier Schmidt", "Other", "Kurier Schmidt"),
        ("DHL Paket GmbH", "Other", "DHL Paket GmbH"),
    ],
)
def test_carrier_names_map_to_codes(text: str, code: str, name: str | None) -> None:
    assert CarrierMap().resolve(text) == Carrier(code, name)


def test_other_needs_a_name() -> None:
    carriers = CarrierMap()

    assert carriers.resolve("Other") is None
    assert carriers.resolve("其他") is None
    assert carriers.resolve("   ") is None
    assert carriers.resolve("其他", "Kurier Schmidt") == Carrier("Other", "Kurier Schmidt")
    assert carriers.resolve("KS-Express", "Kurier Schmidt") == Carrier("Other", "Kurier Schmidt")


def test_settings_extend_the_map() -> None:
    carriers = CarrierMap({"YW": "Yanwen", "Hermes": "Evri"}, ["Evri"])

    assert carriers.resolve("yw") == Carrier("Yanwen")
    assert carriers.resolve("Hermes") == Carrier("Evri")
    assert carriers.resolve("Evri") == Carrier("Evri")


def test_map_to_unknown_code_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_CARRIER_MAP", '{"YW": "Yan Wen"}')

    with pytest.raises(errors.SettingsError) as caught:
        config.load_settings()

    assert "SYNCD_CARRIER_MAP" in str(caught.value)
    assert "Yan Wen" in str(caught.value)


def test_every_alias_names_a_listed_code() -> None:
    from syncd.shipping.carriers import CARRIER_ALIASES  # noqa: PLC0415

    assert set(CARRIER_ALIASES.values()) <= set(AMAZON_CARRIER_CODES)


def _package(**changes: Any) -> Package:
    values: dict[str, Any] = {
        "package_reference_id": "1",
        "carrier": Carrier("UPS"),
        "tracking_number": "1Z0000000000000000",
        "ship_date": datetime(2024, 1, 27, 4, 55, 15, tzinfo=UTC),
        "items": (PackageItem("12345678901234", 1),),
    }
    values.update(changes)
    return Package(**values)


def test_body_matches_the_right_example() -> None:
    body = _package().to_body("ATVPDKIKX0DER")

    assert body == {
        "marketplaceId": "ATVPDKIKX0DER",
        "packageDetail": {
            "packageReferenceId": "1",
            "carrierCode": "UPS",
            "trackingNumber": "1Z0000000000000000",
            "shipDate": "2024-01-27T04:55:15Z",
            "orderItems": [{"orderItemId": "12345678901234", "quantity": 1}],
        },
    }
    assert _package().problems(NOW) == []


def test_other_body_carries_the_name() -> None:
    package = _package(carrier=Carrier("Other", "Kurier Schmidt"), shipping_method="Standard")

    detail = package.to_body("A1PA6795UKMFR9")["packageDetail"]

    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Kurier Schmidt")
    assert detail["shippingMethod"] == "Standard"


def test_ship_date_written_in_utc() -> None:
    beijing = datetime(2024, 1, 27, 12, 55, 15, 900_000).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
    )
    assert format_ship_date(beijing.replace(year=2024)).endswith("Z")
    offset = datetime.fromisoformat("2024-01-27T12:55:15+08:00")
    assert format_ship_date(offset) == "2024-01-27T04:55:15Z"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"package_reference_id": "0"}, "package reference"),
        ({"package_reference_id": "A1"}, "package reference"),
        ({"carrier": Carrier("Other")}, "Other"),
        ({"tracking_number": " "}, "tracking number"),
        ({"ship_date": "in an hour"}, "future"),
        ({"items": ()}, "no items"),
        ({"items": (PackageItem("1", 0),)}, "below 1"),
    ],
)
def test_bad_package_never_sent(changes: dict[str, Any], fragment: str) -> None:
    sent: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    settings = config.Settings(
        lwa_client_id="id",
        lwa_client_secret=SecretStr("secret"),
        spapi_endpoint_na="http://127.0.0.1:9",  # type: ignore[arg-type]
    )
    http = httpx.Client(transport=httpx.MockTransport(transport))
    client = SpApiClient(settings, http=http)
    client.clock.observe_date_header(None)
    account = SellerAccount("acme", "na", SecretStr("Atzr|x"))
    if "ship_date" in changes:
        changes = {**changes, "ship_date": datetime.now(UTC) + timedelta(hours=1)}
    else:
        changes = {**changes, "ship_date": datetime.now(UTC) - timedelta(days=1)}
    package = _package(**changes)

    with pytest.raises(errors.RequestError) as caught:
        ShipmentsClient(client, account).confirm("113-0000000-0000036", "ATVPDKIKX0DER", package)

    assert fragment in str(caught.value)
    assert sent == []


def test_integer_reference_becomes_digits() -> None:
    assert package_reference(1) == "1"
    assert package_reference(" 12 ") == "12"
    with pytest.raises(ValueError, match="positive whole number"):
        package_reference(0)


def test_next_reference_is_one_more() -> None:
    assert next_package_reference([]) == "1"
    assert next_package_reference(["1", "2"]) == "3"
    assert next_package_reference(["2", "hand-made", "10"]) == "11"


def test_already_fulfilled_is_recognised() -> None:
    message = (
        "Failed to create package due to not finding a matching package or order already "
        "fulfilled. ErrorMessage(errorCode=GeneralError, errorDescription=Unable to find "
        "package to update for order (), errorMetric=PackageToUpdateNotFound, packageIndex=null)"
    )
    fulfilled = errors.FatalApiError("confirmShipment", 400, "InvalidInput", message, "r1")
    other = errors.FatalApiError(
        "confirmShipment", 400, "InvalidInput", "PackageReferenceId: is invalid", "r2"
    )

    assert is_already_fulfilled(fulfilled)
    assert not is_already_fulfilled(other)


# -- intake rules ------------------------------------------------------------------------------


def _order(**changes: Any) -> Order:
    document: dict[str, Any] = {
        "orderId": "113-0000000-0000036",
        "createdTime": "2026-03-01T10:00:00Z",
        "lastUpdatedTime": "2026-03-03T15:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": "ATVPDKIKX0DER"},
        "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
        "orderItems": [
            {
                "orderItemId": "11111111111111",
                "quantityOrdered": 2,
                "product": {"sellerSku": "MUG-RED"},
            },
            {
                "orderItemId": "22222222222222",
                "quantityOrdered": 1,
                "product": {"sellerSku": "MUG-BLUE"},
            },
        ],
        "packages": [],
    }
    document.update(changes)
    return Order.model_validate(document)


def _outbox_row(reference: str, items: dict[str, int], state: str = "pending") -> OutboxRow:
    now = NOW
    return OutboxRow(
        id=1,
        account_id=1,
        account="acme",
        marketplace_id="ATVPDKIKX0DER",
        order_id="113-0000000-0000036",
        package_reference_id=reference,
        carrier_code="UPS",
        carrier_name=None,
        shipping_method=None,
        tracking_number="1Z",
        ship_date=now,
        items=tuple(PackageItem(key, value) for key, value in items.items()),
        state=state,
        attempts=0,
        next_attempt_at=now,
        claimed_by=None,
        deadline=None,
        last_error_code=None,
        last_error_message=None,
        last_request_id=None,
        sent_at=None,
        verified_at=None,
        verify_attempts=0,
        created_at=now,
        updated_at=now,
        request_id=None,
    )


def test_left_counts_amazon_and_outbox() -> None:
    order = _order(
        packages=[
            {
                "packageReferenceId": "1",
                "packageItems": [{"orderItemId": "11111111111111", "quantity": 1}],
            }
        ]
    )
    rows = [
        _outbox_row("1", {"11111111111111": 1}, "delivered"),  # the same package: counted once
        _outbox_row("2", {"22222222222222": 1}),
        _outbox_row("3", {"11111111111111": 1}, "dead"),  # never on Amazon
    ]

    assert left_to_ship(order, rows) == {"11111111111111": 1, "22222222222222": 0}


def test_quantity_above_left_is_refused() -> None:
    left = {"11111111111111": 1, "22222222222222": 1}

    with pytest.raises(RejectedError) as caught:
        choose_items(_order(), [RequestedItem(2, order_item_id="11111111111111")], left)

    assert caught.value.code == "quantity_exceeds_unshipped"


def test_sku_and_empty_items_resolve() -> None:
    left = {"11111111111111": 2, "22222222222222": 1}
    order = _order()

    by_sku = choose_items(order, [RequestedItem(2, sku="MUG-RED")], left)
    everything = choose_items(order, [], left)

    assert by_sku == (PackageItem("11111111111111", 2),)
    assert everything == (PackageItem("11111111111111", 2), PackageItem("22222222222222", 1))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "AMAZON"}}, "fba_order"),
        ({"programs": ["FBM_SHIP_PLUS"]}, "ship_plus_order"),
        ({"programs": ["AMAZON_EASY_SHIP"]}, "easy_ship_order"),
        ({"fulfillment": {"fulfillmentStatus": "PENDING"}}, "pending_order"),
    ],
)
def test_orders_amazon_handles_are_refused(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(RejectedError) as caught:
        check_order(_order(**changes))

    assert caught.value.code == code


@pytest.mark.parametrize("zone", ["+08:99", "+15:00", "Beijing", "UTC+8h"])
def test_bad_zone_is_refused(zone: str) -> None:
    with pytest.raises(RejectedError) as caught:
        ship_time_utc(datetime(2026, 3, 8, 2, 30), zone)

    assert caught.value.code == "bad_time_zone"


def test_beijing_time_has_no_gap() -> None:
    local = datetime(2026, 3, 8, 2, 30)

    assert ship_time_utc(local, "Asia/Shanghai") == datetime(2026, 3, 7, 18, 30, tzinfo=UTC)
    assert ship_time_utc(local, "+08:00") == datetime(2026, 3, 7, 18, 30, tzinfo=UTC)
    with pytest.raises(RejectedError) as caught:
        ship_time_utc(local, "America/New_York")  # 02:30 does not exist that night
    assert caught.value.code == "bad_ship_date"


@pytest.mark.parametrize(
    "text",
    ['{"sku": "A"}', "[1, 2]", '[{"sku": "A", "quantity": 0}]', '[{"quantity": 1}]', "nonsense"],
)
def test_unreadable_items_are_refused(text: str) -> None:
    with pytest.raises(RejectedError) as caught:
        parse_items(text)

    assert caught.value.code == "bad_items"


def test_request_contract_version_checked() -> None:
    row = RequestRow(
        id=1,
        contract_version=2,
        source_system="wms",
        source_key="k",
        account="acme",
        amazon_order_id="113-0000000-0000036",
        carrier="UPS",
        carrier_name=None,
        shipping_method=None,
        tracking_number="1Z",
        shipped_at=datetime(2026, 3, 3, 8, 0),
        shipped_at_zone="UTC",
        items=None,
        status="new",
        reject_code=None,
        reject_reason=None,
        outbox_id=None,
        processed_at=None,
    )

    with pytest.raises(RejectedError) as caught:
        parse_request(row, CarrierMap(), NOW)

    assert caught.value.code == "unsupported_version"
    assert json.dumps(caught.value.reason, ensure_ascii=False)
